/**
 * Review FR 4 (session 17): flocker-csi looked for the volumes staged on its node only once per
 * process. A node plugin (re)started while its node's dataset agent is down, and while the control
 * service has no report of that node (here: the control service restarted meanwhile; on a real
 * cluster also a node plugin started before its agent ever reported), found nothing: the lease was
 * already released (the agent dead past --node-timeout + --lease-grace), and the agent's mount was
 * not in the snapshot. When the agent came back, the pod kept writing to a volume nobody held a lease
 * for: never taken again, never reported LEASE_LOST.
 *
 * Now the node plugin reads the kubelet targets of a volume once the agent reports it mounted, so it
 * finds the pod's volume when the agent is back and takes its `csi` share of the lease again.
 * Run: npx tsc -b e2e && npx jest --selectProjects e2e --runInBand e2e/dist/csi-restart-while-agent-down.test.js
 */
import { spawn } from 'node:child_process';
import { openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { waitFor } from './cluster/run';
import { K8sHarness } from './k8s-harness';

jest.setTimeout(900_000);

const DIR = '/tmp/flocker-k8s-c1';
const k8s = new K8sHarness(DIR);

const claim = `
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: v}
spec:
  accessModes: [ReadWriteOnce]
  storageClassName: flocker
  resources: {requests: {storage: 64Mi}}
`;
const pod = `
apiVersion: v1
kind: Pod
metadata: {name: pa}
spec:
  nodeName: node2
  automountServiceAccountToken: false
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: docker.io/library/busybox:1.35
    imagePullPolicy: Never
    command: ["/bin/sh", "-c", "i=0; while true; do i=$((i+1)); echo pa $i >> /data/seq; sync /data/seq; sleep 0.2; done"]
    volumeMounts: [{name: d, mountPath: /data}]
  volumes: [{name: d, persistentVolumeClaim: {claimName: v}}]
`;

/**
 * kill -9 the harness process `name` (scripts/k8s records its pid in run/<name>.pid); the answer starts it again
 * with the same command line, its log appended and its pid file updated (so down.sh stops it).
 */
function kill9(name: string): () => void {
  const pidFile = join(DIR, `run/${name}.pid`);
  const pid = Number(readFileSync(pidFile, 'utf8').trim());
  const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8')
    .split('\0')
    .filter((a) => a !== '');
  process.kill(pid, 'SIGKILL');
  return () => {
    const log = openSync(join(DIR, `logs/${name}.log`), 'a');
    const child = spawn(argv[0] ?? 'node', argv.slice(1), { detached: true, stdio: ['ignore', log, log] });
    child.unref();
    writeFileSync(pidFile, `${child.pid}\n`);
  };
}

/** How many times `text` is in the log of harness process `name`. */
function logCount(name: string, text: string): number {
  return readFileSync(join(DIR, `logs/${name}.log`), 'utf8').split(text).length - 1;
}

beforeAll(async () => {
  k8s.build();
  await k8s.up();
});

afterAll(async () => {
  await k8s.down().catch((e: unknown) => process.stdout.write(`${String(e)}\n`));
});

it('a node plugin restarted while its agent is down (the lease released meanwhile) takes the lease again once the agent is back', async () => {
  await k8s.apply(claim);
  await k8s.apply(pod);
  await k8s.podRunning('pa', { node: 'node2' });
  const before = await k8s.flocker.listLeases();
  expect(before).toHaveLength(1);
  const node2 = before[0]?.node_uuid ?? '';

  const startAgent = kill9('flocker-agent-n2');
  // node-timeout 10 s + lease-grace 5 s in the harness: the lease goes while pa still writes.
  await waitFor('the lease released', async () => ((await k8s.flocker.listLeases()).length === 0 ? true : undefined), {
    timeoutMs: 60_000,
    intervalMs: 500,
  });
  // The control service restarts (node reports are kept in memory): node2 is unknown to it until its agent reports.
  kill9('flocker-control')();
  await waitFor(
    'the control service back',
    async () => ((await k8s.flocker.listLeases().catch(() => undefined)) === undefined ? undefined : true),
    { timeoutMs: 60_000, intervalMs: 250 },
  );
  expect((await k8s.flocker.waitForCluster(undefined, 0)).nodes.map((n) => n.uuid)).not.toContain(node2);

  // node2's plugin restarts now (a DaemonSet rollout, a crash): nothing tells it the volume is staged there yet.
  const started = logCount('flocker-csi-n2', 'flocker-csi started');
  kill9('flocker-csi-n2')();
  await waitFor(
    'node2 plugin started again',
    () => (logCount('flocker-csi-n2', 'flocker-csi started') > started ? true : undefined),
    { timeoutMs: 60_000, intervalMs: 250 },
  );
  await new Promise((r) => setTimeout(r, 3000)); // its first lease watch passes ran without node2's report
  expect(await k8s.flocker.listLeases()).toEqual([]);

  startAgent();
  await waitFor(
    'node2 reporting again',
    async () =>
      (await k8s.flocker.waitForCluster(undefined, 0)).nodes.some((n) => n.uuid === node2 && n.alive)
        ? true
        : undefined,
    { timeoutMs: 60_000, intervalMs: 500 },
  );
  // Before the fix the plugin never looked again: no lease, however long one waits.
  await waitFor(
    'node2 holding the lease again',
    async () => ((await k8s.flocker.listLeases()).some((l) => l.node_uuid === node2) ? true : undefined),
    { timeoutMs: 30_000, intervalMs: 250, context: () => k8s.logTails(20) },
  );
  expect((await k8s.flocker.listLeases()).map((l) => [l.node_uuid, l.holders])).toEqual([[node2, ['csi']]]);
  expect(await k8s.kubectl(['exec', 'pa', '--', 'tail', '-1', '/data/seq'])).toMatch(/^pa \d+/);
});

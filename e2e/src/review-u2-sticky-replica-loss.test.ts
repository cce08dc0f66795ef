/**
 * Review U2 (session 16), local storage (issue 24) as a Docker user meets it: `flocker volumes move V X
 * --accept-replica-loss` once, after a first host died, leaves clusterhq:flocker:accept-replica-loss=true on the
 * volume. Later the new primary X dies too, with a container having written (and synced) lines; a plain
 * `docker run -v V:/data` on the host holding the new standby replica then exits 0 with those acknowledged lines
 * missing: nobody opted into losing them, nothing says they were lost. Now the opt-in is one-shot (the control
 * service removes it once the move it was given for completed), so the second failover asks again: the Docker run
 * fails naming the replica loss, as it did the first time. Needs root.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomUUID } from 'node:crypto';
import { startCluster, TINY_IMAGE, VOLUME_DRIVER, waitFor, type Cluster, type ClusterHost } from './cluster';
import { parseUpArgs } from './cluster/cli';

jest.setTimeout(300_000);

const volume = `u2-sticky-${randomUUID().slice(0, 8)}`;
let cluster: Cluster | undefined;

const started = (): Cluster => {
  if (cluster === undefined) throw new Error('the cluster did not start');
  return cluster;
};

function agentLogs(): string {
  return started()
    .hosts.map((h) => {
      const log = path.join(h.layout.logDir, 'agent.log');
      const text = fs.existsSync(log) ? fs.readFileSync(log, 'utf8') : '';
      return `--- agent ${h.name}\n${text.split('\n').slice(-10).join('\n')}`;
    })
    .join('\n');
}

/** The live host (not `primary`) whose pool holds the dataset's standby replica (its snapshots, no live copy). */
async function replicaHost(id: string, primary: ClusterHost): Promise<ClusterHost | undefined> {
  for (const h of started().hosts) {
    if (h === primary || !h.isPoweredOn()) continue;
    const snaps = path.join(h.layout.localPool, 'flocker', 'snapshots', id);
    const live = path.join(h.layout.localPool, 'flocker', 'datasets', id);
    const has = (await h.exec(['sh', '-c', `test -d ${snaps} && ! test -d ${live}`], { check: false })).code === 0;
    if (has) return h;
  }
  return undefined;
}

/** Until the control service shows `host` dead and holding no lease (node timeout, then lease grace). */
async function declaredDead(host: ClusterHost): Promise<void> {
  const c = started();
  const uuid = host.requireNodeUuid();
  await waitFor(
    `host ${host.name} declared dead and its leases released`,
    async () => {
      const dead = (await c.client.waitForCluster(undefined, 0)).nodes.some((n) => n.uuid === uuid && !n.alive);
      return dead && !(await c.client.listLeases()).some((l) => l.node_uuid === uuid) ? true : undefined;
    },
    { timeoutMs: 90_000, intervalMs: 250, context: agentLogs },
  );
}

afterAll(async () => {
  if (cluster !== undefined && !cluster.isStopped) await cluster.stop();
});

it('a second failover of a volume once moved with --accept-replica-loss does not silently drop acknowledged lines', async () => {
  // Node timeout 6 s, lease grace 2 s (agents report every 2 s): each host's death is declared in 8 s, not 15 s.
  cluster = await startCluster(parseUpArgs(['3', '--backend', 'local', '--node-timeout', '6', '--lease-grace', '2']));
  const c = cluster;
  const [a] = c.hosts as [ClusterHost, ClusterHost, ClusterHost];
  const created = await c.client.createDataset({
    primary: a.requireNodeUuid(),
    maximum_size: 100 * 1024 * 1024,
    metadata: {
      name: volume,
      'clusterhq:flocker:replicas': '1',
      // One replica round at the start, then none for the test's length: which writes a failover loses is certain.
      'clusterhq:flocker:replica-interval': '3600',
    },
  });
  const id = created.dataset_id;
  const x = await waitFor('a standby replica of the volume', () => replicaHost(id, a), {
    timeoutMs: 60_000,
    intervalMs: 500,
    context: agentLogs,
  });

  // First failover, opted into as the README says: a dies, `flocker volumes move V X --accept-replica-loss`.
  await a.powerOff();
  await declaredDead(a);
  await c.client.updateDataset(id, {
    primary: x.requireNodeUuid(),
    metadata: { 'clusterhq:flocker:accept-replica-loss': 'true' },
  });
  const run = (host: ClusterHost, args: string[], script: string) =>
    host.docker(
      ['run', ...args, '-v', `${volume}:/data`, `--volume-driver=${VOLUME_DRIVER}`, TINY_IMAGE, 'sh', '-c', script],
      { check: false, timeoutMs: 150_000 },
    );
  const first = await run(x, ['--rm'], 'echo ok');
  expect(first.code).toBe(0);
  // One-shot: the control service removes the opt-in once the move it was given for has completed.
  await waitFor(
    'the opt-in removed after the completed move',
    async () =>
      (await c.client.getDataset(id)).metadata['clusterhq:flocker:accept-replica-loss'] === undefined
        ? true
        : undefined,
    { timeoutMs: 30_000, intervalMs: 500, context: agentLogs },
  );

  // A new standby replica on the remaining host, then a container on X writes numbered lines, each synced, each
  // acknowledged in a file outside the volume.
  const y = await waitFor('a new standby replica', () => replicaHost(id, x), {
    timeoutMs: 60_000,
    intervalMs: 500,
    context: agentLogs,
  });
  const ackDir = path.join(c.baseDir, 'u2-ack');
  fs.mkdirSync(ackDir, { recursive: true });
  const writer = await run(
    x,
    ['-d', '-v', `${ackDir}:/ack`],
    'i=0; while :; do i=$((i+1)); echo "line $i" >> /data/log; sync; echo $i > /ack/n; sleep 0.1; done',
  );
  expect(writer.code).toBe(0);
  await waitFor(
    '40 acknowledged lines',
    () => {
      const n = Number(fs.existsSync(path.join(ackDir, 'n')) ? fs.readFileSync(path.join(ackDir, 'n'), 'utf8') : 0);
      return n >= 40 ? true : undefined;
    },
    { timeoutMs: 60_000, intervalMs: 200 },
  );

  // Second failover: X dies; the user just runs the container on Y, the replica's host.
  await x.powerOff();
  const acked = Number(fs.readFileSync(path.join(ackDir, 'n'), 'utf8'));
  await declaredDead(x);
  const second = await run(y, ['--rm'], 'cat /data/log 2>/dev/null; true');
  // Refused: nobody opted into this loss (the replica is an hour old), so the user is told and asked again; the
  // acknowledged lines are on X, waiting for it to come back.
  expect({ code: second.code, stdout: second.stdout.trim() }).toEqual({ code: 125, stdout: '' });
  expect(second.stderr).toMatch(/accept-replica-loss/);
  expect(acked).toBeGreaterThanOrEqual(40);
});

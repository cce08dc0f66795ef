/**
 * (5) Docker Swarm across the simulated hosts: a service with a Flocker volume,
 * rescheduled from A to B by draining A, keeps its data. No IPVS in this kernel,
 * hence --endpoint-mode dnsrr; no registry, hence --no-resolve-image; --init so
 * the task stops on SIGTERM (cluster-harness.md P11–P13).
 */
import { randomUUID } from 'node:crypto';
import { sleep, TINY_IMAGE, VOLUME_DRIVER, waitFor, type Cluster, type ClusterHost } from './cluster';
import { clusterForSuite } from './cluster/suite';

jest.setTimeout(180_000);

let cluster: Cluster;
let a: ClusterHost;
let b: ClusterHost;

clusterForSuite({ hosts: 2, withDocker: true, nodeTimeoutSeconds: 5 }, async (started) => {
  cluster = started;
  [a, b] = cluster.hosts as [ClusterHost, ClusterHost];
  await Promise.all(cluster.hosts.map((h) => h.registerVolumePlugin()));
  await a.docker(['swarm', 'init', '--advertise-addr', a.address]);
  const token = (await a.docker(['swarm', 'join-token', '-q', 'worker'])).stdout.trim();
  await b.docker(['swarm', 'join', '--advertise-addr', b.address, '--token', token, `${a.address}:2377`]);
});

/** The running task's node hostname, once exactly one task runs. */
async function runningOn(service: string): Promise<string | undefined> {
  const { stdout } = await a.docker([
    'service',
    'ps',
    service,
    '--filter',
    'desired-state=running',
    '--format',
    '{{.Node}} {{.CurrentState}}',
  ]);
  const running = stdout.split('\n').filter((l) => / Running /.test(l + ' '));
  return running.length === 1 ? running[0]?.split(' ')[0] : undefined;
}

async function containerOf(host: ClusterHost, service: string): Promise<string | undefined> {
  const { stdout } = await host.docker(['ps', '-q', '--filter', `label=com.docker.swarm.service.name=${service}`]);
  const id = stdout.trim();
  return id.length > 0 && !id.includes('\n') ? id : undefined;
}

describe('(5) Docker Swarm', () => {
  it('a service with a Flocker volume, rescheduled A→B by draining A, keeps its data', async () => {
    const service = `svc${randomUUID().slice(0, 6)}`;
    const volume = `swv-${randomUUID().slice(0, 8)}`;
    await a.docker(['node', 'update', '--availability', 'drain', b.layout.hostname]);
    await a.docker([
      'service',
      'create',
      '--detach',
      '--name',
      service,
      '--endpoint-mode',
      'dnsrr',
      '--no-resolve-image',
      '--init',
      '--stop-grace-period',
      '5s',
      '--hostname',
      '{{.Node.Hostname}}',
      '--mount',
      `type=volume,source=${volume},target=/data,volume-driver=${VOLUME_DRIVER},volume-nocopy=true`,
      TINY_IMAGE,
      'sh',
      '-c',
      'hostname >> /data/log; exec sleep 3600',
    ]);
    expect(
      await waitFor(`service ${service} running`, () => runningOn(service), { timeoutMs: 60_000, intervalMs: 250 }),
    ).toBe('host-a');
    const onA = await waitFor('task container on A', () => containerOf(a, service), { timeoutMs: 10_000 });
    await a.docker(['exec', onA, 'sh', '-c', 'echo precious > /data/payload; sync']);

    const t0 = Date.now();
    await a.docker(['node', 'update', '--availability', 'active', b.layout.hostname]);
    await a.docker(['node', 'update', '--availability', 'drain', a.layout.hostname]);
    expect(
      await waitFor(
        `service ${service} on B`,
        async () => ((await runningOn(service)) === 'host-b' ? 'host-b' : undefined),
        { timeoutMs: 90_000, intervalMs: 250 },
      ),
    ).toBe('host-b');
    const moveMs = Date.now() - t0;
    const onB = await waitFor('task container on B', () => containerOf(b, service), { timeoutMs: 10_000 });
    const { stdout } = await b.docker([
      'exec',
      onB,
      'sh',
      '-c',
      'cat /data/payload /data/log; grep " /data " /proc/mounts',
    ]);
    expect(stdout).toMatch(/^precious\nhost-a\nhost-b\n\/dev\/loop\d+ \/data ext4/);
    // No task was rejected on the way (the volume-nocopy + --init recipe).
    const tasks = (await a.docker(['service', 'ps', service, '--format', '{{.Node}} {{.CurrentState}} {{.Error}}']))
      .stdout;
    expect(tasks).not.toMatch(/Rejected|Failed/);
    expect(moveMs).toBeLessThan(60_000);

    await a.docker(['service', 'rm', service]);
    await waitFor(
      'task container on B gone',
      async () => ((await containerOf(b, service)) === undefined ? true : undefined),
      { timeoutMs: 30_000 },
    );
    await sleep(100);
  });
});

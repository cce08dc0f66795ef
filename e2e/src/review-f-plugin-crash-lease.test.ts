/**
 * Review F (session 17), found by hand on `./dev cluster up 3` (loopback): the Docker plugin on host a is SIGKILLed
 * while a container there uses a Flocker volume; the container then exits (Docker's Unmount goes nowhere) and the
 * plugin is started again at once. No container on a uses the volume any more, yet its lease stays held for about
 * a minute (the plugin's mount-safety window, 60 s from the Mount, then the next 30 s reconcile), and `docker run` of
 * the volume on b is refused meanwhile with "volume V is in use by a container on host 10.77.0.11 (by docker). Stop
 * that container first", naming a container that does not exist. The top-level README ("When a host dies or is cut
 * off") says the plugin checks its leases against the containers dockerd really runs "at start", "so a lease is not
 * kept by a container that died without Docker sending Unmount". Expected: the restarted plugin's start reconcile
 * releases it (its mount IDs were recorded by the previous plugin process, before the container list it takes, so
 * the window's race cannot apply to them), and `docker run` on b works within a few seconds. Needs root.
 */
import { randomUUID } from 'node:crypto';
import { startCluster, TINY_IMAGE, waitFor, type Cluster, type ClusterHost } from './cluster';
import { flockerVolumeArgs } from './dockerVolumes';

jest.setTimeout(240_000);

/** How soon after the plugin's restart `docker run` on b must get the volume (start reconcile, then the move). */
const AFTER_RESTART_MS = Number(process.env['FLOCKER_E2E_PLUGIN_RESTART_RELEASE_MS'] ?? 15_000);

let cluster: Cluster | undefined;

afterEach(async () => {
  if (cluster !== undefined && !cluster.isStopped) await cluster.stop();
  cluster = undefined;
});

it('a plugin SIGKILLed while a container uses the volume: after the container exits and the plugin restarts, the lease goes at start', async () => {
  const volume = `f-plugin-${randomUUID().slice(0, 8)}`;
  cluster = await startCluster({ hosts: 2, withDocker: true, nodeTimeoutSeconds: 6, leaseGraceSeconds: 2 });
  const c = cluster;
  const [a, b] = c.hosts as [ClusterHost, ClusterHost];
  const vol = flockerVolumeArgs(volume);
  const started = await a.docker(
    ['run', '-d', '--name', 'writer', ...vol, TINY_IMAGE, 'sh', '-c', 'echo hi > /data/f; sync; sleep 4'],
    { check: false, timeoutMs: 150_000 },
  );
  expect({ code: started.code, stderr: started.stderr }).toEqual({ code: 0, stderr: '' });
  const leased = await waitFor(
    'the lease of a',
    async () => (await c.client.listLeases()).find((l) => l.node_uuid === a.requireNodeUuid()),
    { timeoutMs: 20_000, intervalMs: 200 },
  );
  await a.killPlugin();
  // The container ends with the plugin down: Docker's Unmount is lost.
  await a.docker(['wait', 'writer'], { check: false, timeoutMs: 30_000 });
  await a.startPlugin();
  const restarted = Date.now();
  let last = '';
  await waitFor(
    'docker run on b to get the volume after a restarted its plugin',
    async () => {
      const r = await b.docker(['run', '--rm', ...vol, TINY_IMAGE, 'cat', '/data/f'], {
        check: false,
        timeoutMs: 60_000,
      });
      last = `${((Date.now() - restarted) / 1000).toFixed(1)} s after the restart: ${r.stderr.trim()}`;
      return r.code === 0 && r.stdout.trim() === 'hi' ? true : undefined;
    },
    {
      timeoutMs: AFTER_RESTART_MS,
      intervalMs: 1_000,
      context: () => `no container on a uses ${volume} (dataset ${leased.dataset_id}), yet b was told: ${last}`,
    },
  );
});

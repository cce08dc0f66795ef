/**
 * Review U2 (session 16), local storage (issue 24) as a Docker user meets it: a container on host a uses a volume,
 * `flocker volumes move V b --when-released` waits for it; host a reboots (poweroff, poweron within the node
 * timeout): the container is gone (Exited 255), the plugin's start drops its mount IDs ("dropping stale mount IDs":
 * the primary is b now) but keeps a's lease ("held by <a> (docker), expires never"). The move then waits for ever
 * and `docker run` on b says "volume V is in use by a container on host a … Stop that container first", though no
 * container there uses it; only `flocker leases release V --force` gets it out. Expected: the move finishes and
 * `docker run` on b gets the volume soon after the reboot. The same without a move on the loopback backend (the
 * plugin's start may see the volume not yet mounted again, which dropped its mount IDs and kept the lease too).
 * Needs root.
 */
import { randomUUID } from 'node:crypto';
import { defaultCommands, startCluster, TINY_IMAGE, waitFor, type Cluster, type ClusterHost } from './cluster';
import { parseUpArgs } from './cluster/cli';
import { flockerVolumeArgs, runDetachedScript } from './dockerVolumes';

jest.setTimeout(240_000);

let cluster: Cluster | undefined;

afterEach(async () => {
  if (cluster !== undefined && !cluster.isStopped) await cluster.stop();
  cluster = undefined;
});

/**
 * A container on a holds the volume; `whenReleased`: the volume is moved to b when_released meanwhile (local storage
 * only: loopback refuses a move from a lease holder); a reboots; `docker run` on b must get the volume soon after.
 */
async function rebootThenRunOnB(backend: 'local' | 'loopback', whenReleased: boolean): Promise<void> {
  const volume = `u2-reboot-${randomUUID().slice(0, 8)}`;
  // The plugin reconciles with dockerd every 2 s and trusts Docker's view of a mount after 3 s (defaults 30 s and
  // 60 s), as in multihost-fencing: after the reboot, Docker's view (no container) lets the lease go in seconds.
  cluster = await startCluster({
    ...parseUpArgs(['2', '--backend', backend]),
    commands: {
      plugin: (p) => [...defaultCommands.plugin(p), '--reconcile-interval', '2', '--mount-safety-window', '3'],
    },
  });
  const c = cluster;
  const [a, b] = c.hosts as [ClusterHost, ClusterHost];
  const vol = flockerVolumeArgs(volume);
  const held = await runDetachedScript(
    a,
    vol,
    'i=0; while :; do i=$((i+1)); echo $i >> /data/log; sync; sleep 0.1; done',
  );
  expect(held.code).toBe(0);
  const d = (await c.client.listDatasets()).find((x) => x.metadata?.name === volume);
  if (d === undefined) throw new Error(`no dataset named ${volume}`);
  if (whenReleased) await c.client.updateDataset(d.dataset_id, { primary: b.requireNodeUuid(), when_released: true });
  await new Promise((r) => setTimeout(r, 3_000));
  await a.powerOff();
  await a.powerOn();
  let last = '';
  await waitFor(
    'docker run on b to get the volume',
    async () => {
      const r = await b.docker(['run', '--rm', ...vol, TINY_IMAGE, 'wc', '-l', '/data/log'], {
        check: false,
        timeoutMs: 150_000,
      });
      last = r.stderr;
      return r.code === 0 ? true : undefined;
    },
    { timeoutMs: 90_000, intervalMs: 2_000, context: () => last },
  );
}

it('a reboot of the old node during a --when-released move does not leave its lease held for ever', async () => {
  await rebootThenRunOnB('local', true);
});

it('loopback: a reboot of the node whose container held the volume does not leave its lease held for ever', async () => {
  await rebootThenRunOnB('loopback', false);
});

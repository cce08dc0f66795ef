/**
 * Review F (session 17), found by hand on `./dev cluster up 2 --node-timeout 6 --lease-grace 2` (loopback): a
 * container on host a writes a Flocker volume; a is partitioned (or dies) and the control service is restarted
 * (kill -9, start: a crash or an upgrade) before another host has taken the volume over. The restarted control
 * service declares a dead ("it has not reported since the control service started"), releases its lease, and b's
 * plugin takes a lease and moves the volume to b; but b's agent never force-detaches it: the pool record says the
 * volume is attached to a's instance, and the nodes of b's view are only those that reported since the restart, so
 * a's instance is neither live nor dead there (calculateChanges: 'elsewhereLive' → wait). `docker run` on b fails
 * with "Timed out after 100 s waiting for volume V to be mounted on this host", again and again; by hand it stayed so
 * for 11 minutes, until a came back. A dead host that never comes back keeps its volumes for ever, with no operator
 * step documented. (No acknowledged line was lost: once a was healed, b got all 63.) Expected, as documented in
 * "When a host dies or is cut off": `docker run` on b gets the volume within T + G (+ slack) of the restart, with
 * every line a acknowledged. Fixed (FX1): the file store keeps each node's identity (node_identities.json) and the
 * restarted service shows such a node dead, with its instance, in every agent view from start + T. Needs root.
 * The same with no lease (FX3): an idle volume on a host that died before the restart (its container had exited)
 * stayed attached to that host's instance; only lease holders were declared dead after a restart, so docker run on b
 * waited for the detach for ever. Now every node with a known identity (block backend) unreported at start + T is.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { randomUUID } from 'node:crypto';
import { defaultCommands, startCluster, TINY_IMAGE, waitFor, type Cluster, type ClusterHost } from './cluster';
import { flockerVolumeArgs } from './dockerVolumes';

jest.setTimeout(300_000);

const T = 6;
const G = 2;
/** T + G + slack after the restart: the documented bound, restarted from the restart. */
const BOUND_MS = Number(process.env['FLOCKER_E2E_FAILOVER_AFTER_RESTART_MS'] ?? (T + G + 22) * 1000);

let cluster: Cluster | undefined;
let ackDir: string | undefined;

afterEach(async () => {
  if (cluster !== undefined && !cluster.isStopped) await cluster.stop();
  cluster = undefined;
  if (ackDir !== undefined) fs.rmSync(ackDir, { recursive: true, force: true });
  ackDir = undefined;
});

/** The numbers a's writer recorded as acknowledged (its fsync returned 0). */
function acknowledged(dir: string): number[] {
  const text = fs.existsSync(path.join(dir, 'log')) ? fs.readFileSync(path.join(dir, 'log'), 'utf8') : '';
  return text
    .split('\n')
    .filter((l) => l.startsWith('acked '))
    .map((l) => Number(l.slice('acked '.length)));
}

/**
 * What the control service shows when b did not get the volume: its nodes, leases, the volume's primary and where it
 * is mounted, and its events (session 25: one CI failure, at 5.6 s refused then a docker run that never answered,
 * left nothing to say which part waited). Best effort: what cannot be read is said so.
 */
async function clusterShows(c: Cluster, volume: string): Promise<string> {
  const part = async (what: string, read: () => Promise<unknown>): Promise<string> =>
    `${what}: ${await read().then(
      (v) => JSON.stringify(v),
      (err: unknown) => `(not read: ${String(err)})`,
    )}`;
  const dataset = async () => (await c.client.listDatasets()).find((d) => d.metadata['name'] === volume);
  const parts = await Promise.all([
    part('nodes', () => c.client.listNodes()),
    part('leases', () => c.client.listLeases()),
    part('dataset', async () => {
      const d = await dataset();
      return d === undefined ? undefined : { id: d.dataset_id, primary: d.primary, deleted: d.deleted };
    }),
    part('state', async () => {
      const d = await dataset();
      return d === undefined ? undefined : await c.client.datasetState(d.dataset_id);
    }),
    part('events', async () => (await c.client.listEvents()).map((e) => `${e.time} ${e.kind}: ${e.message}`)),
  ]);
  return parts.join('\n');
}

/** SIGCONT to a stopped agent; one gone meanwhile (ESRCH) is no error (a timer's throw would fail another test). */
function resumeAgent(pid: number): void {
  try {
    process.kill(pid, 'SIGCONT');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
  }
}

/**
 * `bUnheardMs`: b's dataset agent is stopped (SIGSTOP) from before the restart until that long after it, past T + G:
 * the restarted service declares b dead too (not reported since its start), and releases the lease b's plugin takes
 * meanwhile after the grace.
 */
async function failoverAcrossControlRestart(
  fault: (a: ClusterHost) => Promise<void>,
  opts: { bUnheardMs?: number } = {},
): Promise<void> {
  const volume = `f-ctl-${randomUUID().slice(0, 8)}`;
  ackDir = fs.mkdtempSync(path.join(os.tmpdir(), 'review-f-ack-'));
  cluster = await startCluster({ hosts: 2, withDocker: true, nodeTimeoutSeconds: T, leaseGraceSeconds: G });
  const c = cluster;
  const [a, b] = c.hosts as [ClusterHost, ClusterHost];
  const vol = flockerVolumeArgs(volume);
  const started = await a.docker(
    [
      'run',
      '-d',
      ...vol,
      '-v',
      `${ackDir}:/ack`,
      TINY_IMAGE,
      'sh',
      '-c',
      'i=0; while :; do i=$((i+1)); if echo $i >> /data/log && sync /data/log; then echo "acked $i"; else echo "failed $i"; fi >> /ack/log; sleep 0.1; done',
    ],
    { check: false, timeoutMs: 150_000 },
  );
  expect({ code: started.code, stderr: started.stderr }).toEqual({ code: 0, stderr: '' });
  const dir = ackDir;
  await waitFor('a few acknowledged lines', () => acknowledged(dir).length >= 10, { timeoutMs: 30_000 });
  await fault(a);
  const agentOfB = opts.bUnheardMs !== undefined ? b.agentPid() : undefined;
  if (opts.bUnheardMs !== undefined && agentOfB === undefined) throw new Error('no dataset agent runs on b');
  if (agentOfB !== undefined) process.kill(agentOfB, 'SIGSTOP');
  await c.killControl();
  await c.startControl();
  const restarted = Date.now();
  const resume = agentOfB !== undefined ? setTimeout(() => resumeAgent(agentOfB), opts.bUnheardMs) : undefined;
  let last = '';
  let attempt = '';
  const lines = await waitFor(
    'docker run on b to get the volume after the control service restarted',
    async () => {
      attempt = `the docker run begun ${((Date.now() - restarted) / 1000).toFixed(1)} s after the restart`;
      const r = await b.docker(['run', '--rm', ...vol, TINY_IMAGE, 'cat', '/data/log'], {
        check: false,
        // Within the bound (the plugin's own Mount wait is 100 s): the test ends at the bound, not 100 s later.
        timeoutMs: Math.max(5_000, restarted + BOUND_MS - Date.now()),
      });
      last = `${((Date.now() - restarted) / 1000).toFixed(1)} s after the restart: ${r.stderr.trim()}`;
      return r.code === 0 ? r.stdout : undefined;
    },
    { timeoutMs: BOUND_MS, intervalMs: 1_000, context: () => `b was told: ${last}\nlast tried: ${attempt}` },
  )
    .catch(async (err: unknown) => {
      throw new Error(`${String(err)}\nthe control service shows:\n${await clusterShows(c, volume)}`);
    })
    .finally(() => {
      clearTimeout(resume);
      if (agentOfB !== undefined) resumeAgent(agentOfB);
    });
  const onB = new Set(
    lines
      .split('\n')
      .filter((l) => l !== '')
      .map(Number),
  );
  expect(acknowledged(dir).filter((n) => !onB.has(n))).toEqual([]);
}

it('a partitioned, then the control service restarted: docker run on b still gets the volume within T + G', async () => {
  await failoverAcrossControlRestart((a) => a.disconnect());
});

it('a powered off, then the control service restarted: docker run on b still gets the volume within T + G', async () => {
  await failoverAcrossControlRestart((a) => a.powerOff());
});

/**
 * Session 26 (the s25 CI failure of the case above: refused at 5.6 s, then a docker run that never answered): b's agent
 * unheard from before the restart to 9.5 s after it (a loaded host). The restarted service declared b dead with a; b's
 * plugin took the lease a's release freed, the dead-node sweep released it (b dead for the grace), and the Mount waited
 * for "mounted under this node's lease" for its whole timeout (100 s), though b's agent mounted the volume once it
 * reported. Now the Mount takes the lease again once b shows alive.
 */
it('a powered off and b unheard across the control service restart: docker run on b gets the volume once b reports', async () => {
  await failoverAcrossControlRestart((a) => a.powerOff(), { bUnheardMs: 9_500 });
});

it('an idle volume (no lease) on a powered-off a, then the control service restarted: docker run on b gets it within T + G', async () => {
  const volume = `f-idle-${randomUUID().slice(0, 8)}`;
  // "Idle" here means no lease at all (plugin idle leases off); a powered-off holder of a lease is the test above.
  cluster = await startCluster({
    hosts: 2,
    withDocker: true,
    nodeTimeoutSeconds: T,
    leaseGraceSeconds: G,
    commands: { plugin: (args) => [...defaultCommands.plugin(args), '--idle-lease-seconds', '0'] },
  });
  const c = cluster;
  const [a, b] = c.hosts as [ClusterHost, ClusterHost];
  const vol = flockerVolumeArgs(volume);
  const wrote = await a.docker(
    ['run', '--rm', ...vol, TINY_IMAGE, 'sh', '-c', 'seq 1 50 > /data/log && sync /data/log'],
    {
      check: false,
      timeoutMs: 150_000,
    },
  );
  expect({ code: wrote.code, stderr: wrote.stderr }).toEqual({ code: 0, stderr: '' });
  // The container is gone and Docker's Unmount released the lease: the volume stays on a (its primary), attached.
  await waitFor(
    'the lease released after the container exited',
    async () => (await c.client.listLeases()).length === 0,
    {
      timeoutMs: 30_000,
    },
  );
  await a.powerOff();
  await c.killControl();
  await c.startControl();
  const restarted = Date.now();
  let last = '';
  const lines = await waitFor(
    'docker run on b to get the idle volume after the control service restarted',
    async () => {
      const r = await b.docker(['run', '--rm', ...vol, TINY_IMAGE, 'cat', '/data/log'], {
        check: false,
        timeoutMs: Math.max(5_000, restarted + BOUND_MS - Date.now()),
      });
      last = `${((Date.now() - restarted) / 1000).toFixed(1)} s after the restart: ${r.stderr.trim()}`;
      return r.code === 0 ? r.stdout : undefined;
    },
    { timeoutMs: BOUND_MS, intervalMs: 1_000, context: () => `b was told: ${last}` },
  );
  expect(lines.split('\n').filter((l) => l !== '')).toEqual(Array.from({ length: 50 }, (_, i) => String(i + 1)));
});

/**
 * Failover without an operator, and fencing of the host that lost the volume.
 * Real control service, agents, plugins and dockerds on 2 simulated hosts; needs root.
 *
 * A writer container on host A uses a Flocker volume: it appends a counter line to
 * /data/log, fsyncs it (busybox `sync FILE` is an fsync of FILE) and only then
 * records the number as acknowledged in /ack/acked, a bind mount of a host
 * directory OUTSIDE the volume, so the test knows what A's application saw
 * acknowledged. Failed writes or fsyncs are logged to /ack/errors.
 *
 * What each scenario asserts (each fails on the code before failover/fencing,
 * where a dead host's lease is held forever and `docker run` on B answers
 * "in use … on host A" until an operator deletes the lease):
 * (a) kill A (agent, plugin, dockerd SIGKILL; the writer keeps running):
 *     - `docker run` on B with the volume succeeds by itself (retried, no lease DELETE)
 *       within T + G + slack, and the control service's events record that it released
 *       A's lease (lease_released_dead_node)      [control service releases dead nodes' leases after G]
 *     - B's copy holds every number A acknowledged, lines 1..N consecutive, no NUL bytes
 *                                                  [loopback fencing: crash-consistent copy]
 *     - A's acknowledged counter stops advancing, A's writer logs failed writes/fsyncs
 *                                                  [loopback fencing: the old device's writes fail]
 *     - for a few seconds A neither re-attaches (pool record) nor mounts anew (mountinfo); nor after
 *       its daemons are restarted (same era), when its stale mount must go   [agent: stale mounts removed]
 * (b) partition A (every process keeps running), B takes over as in (a):
 *     - before B's takeover (the pool record leaving A) A's agent has stopped the writer and
 *       unmounted the volume                       [dataset-agent self-fencing within F = T/2]
 *     - after heal: A has no mount of the volume, does not re-attach, B keeps the volume and
 *       its writes                                 [no stale mounts; actions gated on fresh configuration]
 * (c) poweroff A, B takes over; poweron A: no mount of the volume on A, no re-attach.
 * (d) leases of containers Docker no longer runs are released   [volume-plugin reconciliation]:
 *     - dockerd SIGKILLed on A and restarted (it kills the container, never sends Unmount):
 *       the lease goes within a bound, and `docker run` on B then works at the first try;
 *     - plugin SIGKILLed, the container stopped while it is down (Docker gives up its Unmount),
 *       plugin restarted: the lease goes within a bound.
 * Timings: FLOCKER_E2E_NODE_TIMEOUT (T, default 3 s), FLOCKER_E2E_LEASE_GRACE (G, default 1 s),
 * FLOCKER_E2E_FENCING_SLACK_MS (default 8000), FLOCKER_E2E_LEASE_RELEASE_MS (default 15000).
 */
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  defaultCommands,
  sleep,
  TINY_IMAGE,
  VOLUME_DRIVER,
  waitFor,
  type Cluster,
  type ClusterHost,
  type RunResult,
} from './cluster';
import { clusterForSuite } from './cluster/suite';

const T_S = Number(process.env.FLOCKER_E2E_NODE_TIMEOUT ?? 3);
const G_S = Number(process.env.FLOCKER_E2E_LEASE_GRACE ?? 1);
const SLACK_MS = Number(process.env.FLOCKER_E2E_FENCING_SLACK_MS ?? 8_000);
/** From the fault to `docker run` on B succeeding. */
const TAKEOVER_BOUND_MS = (T_S + G_S) * 1_000 + SLACK_MS;
/** How long a plugin may take to notice that Docker no longer runs a container. */
const LEASE_RELEASE_MS = Number(process.env.FLOCKER_E2E_LEASE_RELEASE_MS ?? 15_000);
/** How long the host that lost the volume is watched for a re-attach or a new mount. */
const WATCH_MS = 3_000;

jest.setTimeout(100_000);

let cluster: Cluster;
let a: ClusterHost;
let b: ClusterHost;

clusterForSuite(
  {
    // A and B: every scenario is between the two (a third host ran idle beside them, slowing a 2-core CI host).
    hosts: 2,
    withDocker: true,
    nodeTimeoutSeconds: T_S,
    leaseGraceSeconds: G_S,
    // Short like T and G: the plugin reconciles with dockerd every 2 s, and trusts Docker's view of a mount after 3 s.
    commands: {
      plugin: (p) => [...defaultCommands.plugin(p), '--reconcile-interval', '2', '--mount-safety-window', '3'],
    },
  },
  (started) => {
    cluster = started;
    [a, b] = cluster.hosts as [ClusterHost, ClusterHost];
  },
);

/** Whatever a scenario left behind (even when it failed), A is up, connected and running everything again. */
afterEach(async () => {
  await a.reconnect();
  if (!a.isPoweredOn()) await a.powerOn();
  else await a.startStopped();
});

/** Appends i to /data/log, fsyncs it, then acknowledges i outside the volume; never reuses a number. */
const WRITER_SCRIPT = `
i=0
while :; do
  i=$((i+1))
  if echo "$i" >> /data/log && sync /data/log; then
    echo "$i" >> /ack/acked
  else
    echo "write or fsync of $i failed" >> /ack/errors
    sleep 0.2
  fi
  sleep 0.05
done`;

interface Writer {
  container: string;
  volume: string;
  ackDir: string;
  datasetId: string;
  /** Where A's agent mounts the dataset, in A's mount namespace. */
  pathOnA: string;
}

const volumeArgs = (volume: string): string[] => ['-v', `${volume}:/data`, `--volume-driver=${VOLUME_DRIVER}`];

async function startWriter(host: ClusterHost, tag: string): Promise<Writer> {
  const id = randomUUID().slice(0, 8);
  const volume = `fence-${tag}-${id}`;
  const container = `writer-${tag}-${id}`;
  const ackDir = path.join(cluster.baseDir, 'ack', container);
  fs.mkdirSync(ackDir, { recursive: true });
  await host.docker([
    'run',
    '-d',
    '--name',
    container,
    '--init',
    ...volumeArgs(volume),
    '-v',
    `${ackDir}:/ack`,
    TINY_IMAGE,
    'sh',
    '-c',
    WRITER_SCRIPT,
  ]);
  await waitFor(
    `writer ${container} to acknowledge 10 lines`,
    () => readNumbers(path.join(ackDir, 'acked')).length >= 10,
    {
      timeoutMs: 30_000,
      intervalMs: 100,
    },
  );
  const dataset = (await cluster.client.listDatasets()).find((d) => d.metadata.name === volume && d.deleted !== true);
  if (dataset === undefined) throw new Error(`no dataset named ${volume}`);
  return {
    container,
    volume,
    ackDir,
    datasetId: dataset.dataset_id,
    pathOnA: path.join(host.layout.mountRoot, dataset.dataset_id),
  };
}

function readNumbers(file: string): number[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  return text
    .split('\n')
    .filter((l) => l !== '')
    .map(Number);
}

const acked = (w: Writer): number[] => readNumbers(path.join(w.ackDir, 'acked'));
const writerErrors = (w: Writer): string => {
  try {
    return fs.readFileSync(path.join(w.ackDir, 'errors'), 'utf8');
  } catch {
    return '';
  }
};

/** attached_to of the dataset's volume in the shared loopback pool (<pool>/volumes/<id>.json). */
function poolAttachedTo(datasetId: string): string | null | undefined {
  const dir = path.join(cluster.layout.poolDir, 'volumes');
  for (const f of fs.readdirSync(dir).filter((n) => /^[0-9a-f-]+\.json$/.test(n))) {
    try {
      const rec = JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')) as {
        dataset_id?: string;
        attached_to?: string | null;
      };
      if (rec.dataset_id === datasetId) return rec.attached_to ?? null;
    } catch {
      // being replaced right now; the next look sees it
    }
  }
  return undefined;
}

async function instanceId(host: ClusterHost): Promise<string> {
  const snapshot = await cluster.client.waitForCluster(undefined, 0);
  const node = snapshot.nodes.find((n) => n.uuid === host.requireNodeUuid());
  if (node === undefined) throw new Error(`host ${host.name} has never reported`);
  return node.instance_id;
}

/** Mount ids at `target` in the host's mount namespace (its /proc/self/mountinfo). */
async function mountIdsAt(host: ClusterHost, target: string): Promise<string[]> {
  const { stdout } = await host.exec(['cat', '/proc/self/mountinfo']);
  return stdout
    .split('\n')
    .map((l) => l.split(' '))
    .filter((f) => f[4] === target)
    .map((f) => f[0] ?? '');
}

async function containerRunning(host: ClusterHost, container: string): Promise<boolean> {
  const r = await host.docker(['inspect', '--format', '{{.State.Running}}', container], {
    check: false,
    timeoutMs: 10_000,
  });
  return r.stdout.trim() === 'true';
}

interface Takeover {
  /** B's view of /data/log. */
  copy: string;
  /** From the fault to the first successful `docker run` on B. */
  ms: number;
  attempts: number;
  lastFailure: string;
}

/**
 * `docker run` on B with the volume, retried (a user retrying, not an operator
 * fixing anything) until it succeeds or TAKEOVER_BOUND_MS after the fault.
 * It prints /data/log and leaves a file of B's.
 */
async function takeOverOnB(w: Writer, faultAt: number): Promise<Takeover> {
  let attempts = 0;
  let last: RunResult | undefined;
  for (;;) {
    attempts++;
    last = await b.docker(
      [
        'run',
        '--rm',
        ...volumeArgs(w.volume),
        TINY_IMAGE,
        'sh',
        '-c',
        'cat /data/log && echo "written on B" > /data/from-b && sync /data/from-b',
      ],
      { check: false, timeoutMs: 150_000 },
    );
    const ms = Date.now() - faultAt;
    if (last.code === 0) return { copy: last.stdout, ms, attempts, lastFailure: '' };
    if (ms > TAKEOVER_BOUND_MS) {
      throw new Error(
        `docker run on B did not get volume ${w.volume} within ${TAKEOVER_BOUND_MS} ms (${attempts} attempts); last: ${last.stderr.trim()}`,
      );
    }
    await sleep(250);
  }
}

/** The control service released A's lease itself (no operator's DELETE): its event says so. */
async function expectLeaseReleasedAsDead(w: Writer): Promise<void> {
  const events = await cluster.client.listEvents();
  const released = events.filter((e) => e.kind === 'lease_released_dead_node' && e.dataset_id === w.datasetId);
  expect(released.map((e) => e.node_uuid)).toEqual([a.requireNodeUuid()]);
}

/** B's copy: lines 1..N, consecutive, no NUL; returns N. */
function checkCopy(copy: string): number {
  expect(copy.includes('\0')).toBe(false);
  expect(copy).toMatch(/^(\d+\n)+$/);
  const lines = copy
    .split('\n')
    .filter((l) => l !== '')
    .map(Number);
  lines.forEach((n, i) => {
    if (n !== i + 1) throw new Error(`B's copy: line ${i + 1} is ${n}, not ${i + 1}`);
  });
  return lines.length;
}

/** B took over within the bound, the control service released A's lease as a dead node's, B's copy is whole (1..N): returns N. */
async function expectTakeover(w: Writer, t: Takeover): Promise<number> {
  expect(t.ms).toBeLessThan(TAKEOVER_BOUND_MS);
  await expectLeaseReleasedAsDead(w);
  return checkCopy(t.copy);
}

/** Everything A's application saw acknowledged is in B's copy (which is 1..n). */
function expectAckedIn(w: Writer, n: number): void {
  const ack = acked(w);
  expect(ack.length).toBeGreaterThanOrEqual(10);
  expect(Math.max(...ack)).toBeLessThanOrEqual(n);
}

/** For WATCH_MS: the pool record never names A again and A mounts nothing new at the dataset's path. */
async function watchANeverTakesBack(w: Writer, idA: string): Promise<void> {
  const before = new Set(await mountIdsAt(a, w.pathOnA));
  const deadline = Date.now() + WATCH_MS;
  while (Date.now() < deadline) {
    expect(poolAttachedTo(w.datasetId)).not.toBe(idA);
    const now = await mountIdsAt(a, w.pathOnA);
    expect(now.filter((m) => !before.has(m))).toEqual([]);
    await sleep(200);
  }
}

async function expectNoMountOnA(w: Writer, boundMs: number): Promise<void> {
  await waitFor(`no mount of ${w.pathOnA} on host a`, async () => (await mountIdsAt(a, w.pathOnA)).length === 0, {
    timeoutMs: boundMs,
    intervalMs: 200,
    context: () => logTail(a, 'agent.log'),
  });
}

/** B still holds the volume with B's file and the copy B saw. */
async function expectStillOnB(w: Writer, copy: string): Promise<void> {
  const r = await b.docker(
    ['run', '--rm', ...volumeArgs(w.volume), TINY_IMAGE, 'sh', '-c', 'cat /data/from-b && cat /data/log'],
    { timeoutMs: 60_000 },
  );
  expect(r.stdout).toBe(`written on B\n${copy}`);
}

/** A, back after the fault, has no mount of the volume within mountGoneMs and never takes it back; B still has it, with B's copy. */
async function expectAStaysOff(w: Writer, idA: string, copy: string, mountGoneMs: number): Promise<void> {
  await expectNoMountOnA(w, mountGoneMs);
  await watchANeverTakesBack(w, idA);
  await expectStillOnB(w, copy);
}

/** How many Unmount calls for the volume the host's plugin has logged (every start appends to plugin.log). */
function unmountCalls(host: ClusterHost, volume: string): number {
  let text: string;
  try {
    text = fs.readFileSync(path.join(host.layout.logDir, 'plugin.log'), 'utf8');
  } catch {
    return 0;
  }
  return text
    .split('\n')
    .filter((l) => l.includes('"call":"/VolumeDriver.Unmount"') && l.includes(`"Name":${JSON.stringify(volume)}`))
    .length;
}

/** The agent's fencing log lines (what it stopped and unmounted). */
function fencingLines(host: ClusterHost): string {
  try {
    const lines = fs.readFileSync(path.join(host.layout.logDir, 'agent.log'), 'utf8').split('\n');
    return `--- ${host.name}/agent.log, fencing lines\n${lines
      .filter((l) => /fenc/i.test(l) && !/fenced image/.test(l))
      .slice(-6)
      .join('\n')}`;
  } catch {
    return '';
  }
}

function logTail(host: ClusterHost, log: string, lines = 15): string {
  try {
    const text = fs.readFileSync(path.join(host.layout.logDir, log), 'utf8').trimEnd().split('\n');
    return `--- ${host.name}/${log}\n${text.slice(-lines).join('\n')}`;
  } catch {
    return '';
  }
}

describe(`failover without an operator, and fencing (T = ${T_S} s, G = ${G_S} s)`, () => {
  it("(a) A killed (agent, plugin, dockerd; the writer keeps running): B gets the volume by itself with every acknowledged line; A's later fsyncs fail; A never takes it back", async () => {
    const w = await startWriter(a, 'kill');
    const idA = await instanceId(a);
    const faultAt = Date.now();
    await Promise.all([a.killAgent('SIGKILL'), a.killPlugin('SIGKILL'), a.killDocker('SIGKILL')]);
    const t = await takeOverOnB(w, faultAt);
    const n = await expectTakeover(w, t);

    // A's writer runs on: its writes and fsyncs fail from the takeover on.
    await waitFor("A's writer to log a failed write or fsync", () => writerErrors(w).includes('failed'), {
      timeoutMs: 10_000,
      intervalMs: 100,
    });
    const settled = acked(w).length;
    await sleep(1_500);
    expect(acked(w).length).toBe(settled);
    expectAckedIn(w, n);
    await watchANeverTakesBack(w, idA);

    // A's daemons restarted (same era): the restarted dockerd ends the stale writer, the agent removes
    // the stale mount and takes nothing back.
    await a.startStopped();
    await expectAStaysOff(w, idA, t.copy, 15_000);
  });

  it('(b) A partitioned (everything keeps running): A stops its writer and unmounts before B takes over; healed, A has no stale mount and does not re-attach', async () => {
    const w = await startWriter(a, 'part');
    const idA = await instanceId(a);
    const seen: { stoppedAt?: number; unmountedAt?: number; takenAt?: number } = {};
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        const now = Date.now();
        if (seen.stoppedAt === undefined && !(await containerRunning(a, w.container))) seen.stoppedAt = now;
        if (seen.unmountedAt === undefined && (await mountIdsAt(a, w.pathOnA)).length === 0) seen.unmountedAt = now;
        const holder = poolAttachedTo(w.datasetId);
        if (seen.takenAt === undefined && holder !== idA) seen.takenAt = now;
        await sleep(100);
      }
    })();
    const faultAt = Date.now();
    await a.disconnect();
    let t: Takeover;
    try {
      t = await takeOverOnB(w, faultAt);
    } finally {
      watching = false;
      await watcher;
    }
    const n = await expectTakeover(w, t);
    expectAckedIn(w, n);
    const rel = (x: number | undefined): string => (x === undefined ? 'never' : `+${x - faultAt} ms`);
    const fenced = `A's writer stopped ${rel(seen.stoppedAt)}, volume unmounted on A ${rel(seen.unmountedAt)}, pool record left A ${rel(seen.takenAt)} after the partition`;
    const fenceLog = (): string => fencingLines(a);
    if (seen.takenAt === undefined) throw new Error(`${fenced}: no takeover seen`);
    if (seen.stoppedAt === undefined || seen.stoppedAt >= seen.takenAt)
      throw new Error(`A's container still ran at the takeover: ${fenced}\n${fenceLog()}`);
    if (seen.unmountedAt === undefined || seen.unmountedAt >= seen.takenAt)
      throw new Error(`A still had the volume mounted at the takeover: ${fenced}\n${fenceLog()}`);
    expect(seen.unmountedAt - faultAt).toBeLessThan(T_S * 1_000); // F = T/2, plus detection slack
    expect(seen.stoppedAt - faultAt).toBeLessThan(T_S * 1_000);

    await a.reconnect(); // (afterEach heals A too, if anything above failed)
    await expectAStaysOff(w, idA, t.copy, T_S * 1_000 + 10_000);
    expect(await containerRunning(a, w.container)).toBe(false);
  });

  it('(c) A powered off: B takes over with every acknowledged line; powered on (new era), A has no mount of the volume and does not re-attach', async () => {
    const w = await startWriter(a, 'power');
    const idA = await instanceId(a);
    const faultAt = Date.now();
    await a.powerOff();
    const t = await takeOverOnB(w, faultAt);
    expectAckedIn(w, await expectTakeover(w, t));

    await a.powerOn();
    await expectAStaysOff(w, idA, t.copy, 10_000);
  });

  it('(d) dockerd SIGKILLed on A and restarted (it kills the container without an Unmount): the lease goes, and `docker run` on B works at once', async () => {
    const w = await startWriter(a, 'dockerd');
    expect((await cluster.client.listLeases()).some((l) => l.dataset_id === w.datasetId)).toBe(true);
    const unmountsBefore = unmountCalls(a, w.volume);
    expect(unmountsBefore).toBeGreaterThan(0); // Docker's copy-up cycle at the writer's start: the log is read right
    await a.killDocker('SIGKILL');
    await a.startDocker();
    await waitFor(
      `the restarted dockerd on A to end ${w.container}`,
      async () => !(await containerRunning(a, w.container)),
      { timeoutMs: 20_000, intervalMs: 200 },
    );
    await waitFor(
      `the lease of ${w.volume} to be released`,
      async () => !(await cluster.client.listLeases()).some((l) => l.dataset_id === w.datasetId),
      { timeoutMs: LEASE_RELEASE_MS, intervalMs: 200, context: () => logTail(a, 'plugin.log') },
    );
    expect(unmountCalls(a, w.volume)).toBe(unmountsBefore); // released by reconciliation: Docker sent no Unmount
    const t0 = Date.now();
    const r = await b.docker(['run', '--rm', ...volumeArgs(w.volume), TINY_IMAGE, 'sh', '-c', 'tail -n 1 /data/log'], {
      check: false,
      timeoutMs: 60_000,
    });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(Number(r.stdout.trim())).toBeGreaterThanOrEqual(Math.max(...acked(w)));
  });

  it('(d) plugin SIGKILLed on A, the container stopped while it is down, plugin restarted: the lease goes', async () => {
    const w = await startWriter(a, 'plugin');
    await a.killPlugin('SIGKILL');
    // Docker's Unmount finds no plugin: it retries for ~15 s (1+2+4+8 s), gives up, and only then does `docker stop` return.
    await a.docker(['stop', '-t', '1', w.container], { timeoutMs: 60_000 });
    const unmountsBefore = unmountCalls(a, w.volume);
    await a.startPlugin();
    await waitFor(
      `the lease of ${w.volume} to be released`,
      async () => !(await cluster.client.listLeases()).some((l) => l.dataset_id === w.datasetId),
      { timeoutMs: LEASE_RELEASE_MS, intervalMs: 200, context: () => logTail(a, 'plugin.log') },
    );
    expect(unmountCalls(a, w.volume)).toBe(unmountsBefore); // released by reconciliation: Docker sent no Unmount
    const r = await b.docker(['run', '--rm', ...volumeArgs(w.volume), TINY_IMAGE, 'true'], {
      check: false,
      timeoutMs: 60_000,
    });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  });
});

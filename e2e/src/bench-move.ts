/**
 * Move-latency benchmark on the simulated cluster:
 *   node e2e/dist/bench-move.js --out <json> [--runs 30] [--failover-runs 3] [--node-timeout 3] [--only api,docker,raw,failover]
 *     [--warmup N] [--agent-b DIST [--agent-a DIST] | --control-b DIST [--control-a DIST]] [--ab-block N]
 * Measures, medians over --runs moves each:
 * - apiMove: POST /v1/configuration/datasets/:id {primary} → mounted on the other host
 *   (unmount+detach there, attach+mount here; observed by polling the state API every 25 ms);
 * - dockerRunMove: `docker run --rm -v vol:/data:nocopy tiny true` on the host that does not hold vol;
 * - dockerRunNoVolume / dockerRunLocalVolume: the same run without a Flocker volume, for reference;
 * - rawSequence: umount + losetup -d on A, then losetup + mount on B, run by hand in the same cluster
 *   (each half in one nsenter'ed shell) — the floor any orchestration adds to;
 * - failover: from SIGKILL of the holder's agent and dockerd to the volume mounted on the other host
 *   (dominated by the control service's --node-timeout).
 * Needs root.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  agentFromDist,
  defaultCommands,
  latencyStats as stats,
  startCluster,
  TEST_DATASET_SIZE,
  TINY_IMAGE,
  VOLUME_DRIVER,
  waitForMountedOn,
  type Cluster,
  type ClusterHost,
  type LatencyStats as Stats,
} from './cluster';
import { z } from 'zod';
import { applyClusterDelta, isClusterDelta, type ClusterSnapshot, type FlockerClient } from '@flocker/api';
import { errorMessage } from '@flocker/runtime';
import { cpuMsOfThreads } from './trace-move';
import { controlFromDist, parseOptions, timed } from './abMove';

const SCENARIOS = ['api', 'docker', 'raw', 'failover'] as const;
type Scenario = (typeof SCENARIOS)[number];

interface Args {
  out: string;
  runs: number;
  failoverRuns: number;
  nodeTimeout: number;
  /** The scenarios to run (--only: a quicker A/B of one of them); all by default. */
  only: ReadonlySet<Scenario>;
  /** How the API move's end is seen (--waiter): see apiMoves. */
  waiter: Waiter;
  /**
   * --warmup N (even; default 0): N untimed API moves (and N untimed rounds of the `docker run` scenarios) before the
   * timed ones. Session 12: the first moves after the processes start run while V8 still compiles their code (the
   * control service spent ~15% of its CPU in V8's compiler threads over its first 100 moves); a service that has run
   * for a while is warm. The default keeps the published figure (a cold start) comparable with earlier sessions.
   */
  warmup: number;
  /**
   * --agent-b DIR: an A/B of the API move between this build's dataset agent (A) and the one in DIR (B, a copy
   * of packages/dataset-agent/dist, say of an older commit): both hosts' agents are restarted with A or B every
   * --ab-block moves (an even number: the volume ends where it started), alternately, in one cluster, so that
   * both meet the same load. Only the API move runs.
   */
  agentB?: string;
  /**
   * --agent-a DIR: A runs the dataset agent in DIR instead of this build's (with --agent-b): in a work tree others
   * rebuild meanwhile, both sides then stay the builds asked for.
   */
  agentA?: string;
  /**
   * --control-b DIR (issue 23, session 12): the same A/B for the control service: DIR is a copy of
   * packages/control-api/dist (say of an older commit), run with this repo's node_modules; the control service is
   * restarted with A or B every --ab-block moves, and its CPU per move is measured per block (/proc). --control-a DIR:
   * A runs that copy instead of this build's.
   */
  controlB?: string;
  controlA?: string;
  abBlock: number;
}

const WAITERS = ['watch', 'longpoll', 'both'] as const;
type Waiter = (typeof WAITERS)[number];

function parseArgs(argv: string[]): Args {
  const args: Args = {
    out: 'bench-move.json',
    runs: 30,
    failoverRuns: 3,
    nodeTimeout: 3,
    only: new Set(SCENARIOS),
    waiter: 'longpoll',
    abBlock: 2,
    warmup: 0,
  };
  const usage = `bench-move.js --out <json> [--runs N] [--failover-runs N] [--node-timeout S] [--only ${SCENARIOS.join(',')}] [--waiter ${WAITERS.join('|')}] [--warmup N] [--agent-b DIST [--agent-a DIST] | --control-b DIST [--control-a DIST]] [--ab-block N]`;
  parseOptions(
    argv,
    {
      '--out': (v) => (args.out = v),
      '--runs': (v) => (args.runs = Number(v)),
      '--failover-runs': (v) => (args.failoverRuns = Number(v)),
      '--node-timeout': (v) => (args.nodeTimeout = Number(v)),
      '--agent-b': (v) => (args.agentB = path.resolve(v)),
      '--agent-a': (v) => (args.agentA = path.resolve(v)),
      '--control-b': (v) => (args.controlB = path.resolve(v)),
      '--control-a': (v) => (args.controlA = path.resolve(v)),
      '--ab-block': (v) => (args.abBlock = Number(v)),
      '--warmup': (v) => (args.warmup = Number(v)),
      '--waiter': (v) => {
        if (!(WAITERS as readonly string[]).includes(v)) throw new Error(`--waiter: one of ${WAITERS.join(', ')}`);
        args.waiter = v as Waiter;
      },
      '--only': (v) => {
        const only = v.split(',');
        const unknown = only.filter((x) => !(SCENARIOS as readonly string[]).includes(x));
        if (unknown.length > 0)
          throw new Error(`--only: unknown scenario(s) ${unknown.join(', ')}; known: ${SCENARIOS.join(', ')}`);
        args.only = new Set(only as Scenario[]);
      },
    },
    usage,
  );
  if (!(args.runs >= 1 && args.failoverRuns >= 0 && args.nodeTimeout > 0)) throw new Error('bad numeric option');
  if (!(args.abBlock >= 2 && args.abBlock % 2 === 0)) throw new Error('--ab-block: an even number of moves');
  if (!(args.warmup >= 0 && args.warmup % 2 === 0)) throw new Error('--warmup: an even number of moves');
  return args;
}

function median(xs: readonly number[]): number {
  const s = xs.filter((x) => Number.isFinite(x)).sort((x, y) => x - y);
  if (s.length === 0) return NaN;
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/**
 * An API move slower than this is explained on stderr from the agents' and plugins' logs (session 16: about one move
 * in a few hundred took 0.7–0.9 s under other tests' load, in both builds, and the logs were gone with the cluster).
 */
const SLOW_MOVE_MS = 200;

/** A log line: at debug level with a sub-ms `t` (epoch ms), else the ISO timestamp (ms). */
const LogLine = z.looseObject({ message: z.string(), timestamp: z.string(), t: z.string().optional() });

/** The lines of a JSON-lines log within [from, to] (epoch ms), as "ms since `from` who: message {fields}". */
function logLinesIn(text: string, who: string, from: number, to: number): Array<{ t: number; line: string }> {
  const out: Array<{ t: number; line: string }> = [];
  for (const raw of text.split('\n')) {
    if (!raw.startsWith('{')) continue;
    let json: unknown;
    try {
      json = JSON.parse(raw);
    } catch {
      continue;
    }
    const parsed = LogLine.safeParse(json);
    if (!parsed.success) continue;
    const { message, timestamp, t: hr, service: _s, ...rest } = parsed.data;
    const t = hr !== undefined ? Number(hr) : Date.parse(timestamp);
    if (!(t >= from && t <= to)) continue;
    out.push({ t, line: `${(t - from).toFixed(1)} ${who}: ${message} ${JSON.stringify(rest)}`.slice(0, 260) });
  }
  return out;
}

/**
 * Times an API move; when slow, writes the agents' and plugins' log lines of its window to stderr (at the bench's
 * info level: each action's durationMs, warnings such as a failure's backoff; FLOCKER_LOG_LEVEL=debug for every step).
 * No hosts: not explained (the moves not timed).
 */
async function timedMove(hosts: readonly ClusterHost[], f: () => Promise<unknown>): Promise<number> {
  const from = Date.now();
  const t = await timed(f);
  if (t > SLOW_MOVE_MS && hosts.length > 0) {
    // Lines are written asynchronously: those of the move's last steps may land just after it.
    await new Promise((r) => setTimeout(r, 50));
    const to = Date.now();
    const lines = hosts
      .flatMap((h) =>
        (['agent', 'plugin'] as const).flatMap((what) => {
          const file = path.join(h.layout.logDir, `${what}.log`);
          return logLinesIn(
            fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '',
            `${h.name} ${what}`,
            from - 1,
            to,
          );
        }),
      )
      .sort((x, y) => x.t - y.t);
    process.stderr.write(
      `slow move (${t.toFixed(1)} ms), its log lines (ms since the POST):\n${lines.map((l) => `  ${l.line}\n`).join('')}`,
    );
  }
  return t;
}

/**
 * One node's view as the streaming watch shows it (FlockerClient.watchCluster: what a user waiting for a
 * dataset on that node can follow, with no request per change), kept open for the whole benchmark.
 */
class ViewWatch {
  private view: ClusterSnapshot | undefined;
  private readonly changed = new Set<() => void>();
  private readonly stop = new AbortController();
  private readonly done: Promise<void>;

  constructor(client: FlockerClient, node: string) {
    this.done = (async () => {
      for await (const answer of client.watchCluster(node, undefined, { signal: this.stop.signal })) {
        const view = isClusterDelta(answer)
          ? this.view !== undefined
            ? applyClusterDelta(this.view, answer)
            : undefined
          : answer;
        if (view === undefined) throw new Error(`a delta of node ${node}'s view that does not apply`);
        this.view = view;
        for (const f of this.changed) f();
      }
    })().catch((e: unknown) => {
      if (!this.stop.signal.aborted) throw e;
    });
  }

  /** Resolves once the view shows `dataset` mounted on `node`. */
  mounted(dataset: string, node: string, timeoutMs = 30_000): Promise<void> {
    const holds = (): boolean =>
      this.view?.nodes.some(
        (n) =>
          n.uuid === node &&
          n.alive &&
          n.manifestations.some((m) => m.dataset_id === dataset && m.status === 'mounted'),
      ) === true;
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.changed.delete(check);
        reject(new Error(`dataset ${dataset} not mounted on ${node} within ${timeoutMs} ms (watch)`));
      }, timeoutMs);
      const check = (): void => {
        if (!holds()) return;
        clearTimeout(timer);
        this.changed.delete(check);
        resolve();
      };
      this.changed.add(check);
      check();
    });
  }

  async close(): Promise<void> {
    this.stop.abort();
    await this.done;
  }
}

/**
 * API moves back to back, A→B then B→A, each once the state shows the last one's old holder let go (onlyMountedOn,
 * not timed). The end (mounted on the new primary, per the control service) is seen
 * as a user would: `watch`, the new primary's view on the streaming watch, open before the POST (no request
 * after it); `longpoll`, the whole cluster's long-poll (waitForMountedOn: one request per change); `both`:
 * the two alternately, in pairs of moves (their difference is the waiter's own cost).
 */
async function apiMoves(
  cluster: Cluster,
  a: ClusterHost,
  b: ClusterHost,
  runs: number,
  waiter: Waiter,
  warmup = 0,
): Promise<{ watch: number[]; longpoll: number[] }> {
  const d = await cluster.client.createDataset({
    primary: a.requireNodeUuid(),
    maximum_size: TEST_DATASET_SIZE,
    metadata: { name: 'bench-api' },
  });
  await waitForMountedOn(cluster.client, d.dataset_id, a.requireNodeUuid());
  const watches = new Map([a, b].map((h) => [h.requireNodeUuid(), new ViewWatch(cluster.client, h.requireNodeUuid())]));
  const out = { watch: [] as number[], longpoll: [] as number[] };
  try {
    for (let i = -warmup; i < runs; i++) {
      const to = (i % 2 === 0 ? b : a).requireNodeUuid();
      await onlyMountedOn(cluster.client, d.dataset_id, (i % 2 === 0 ? a : b).requireNodeUuid());
      const how: Exclude<Waiter, 'both'> =
        waiter !== 'both' ? waiter : Math.floor(i / 2) % 2 === 0 ? 'watch' : 'longpoll';
      const t = await timedMove(i >= 0 ? [a, b] : [], async () => {
        const seen = how === 'watch' ? watches.get(to)?.mounted(d.dataset_id, to) : undefined;
        await cluster.client.updateDataset(d.dataset_id, { primary: to });
        await (seen ?? waitForMountedOn(cluster.client, d.dataset_id, to));
      });
      if (i >= 0) out[how].push(t);
    }
  } finally {
    for (const w of watches.values()) await w.close();
  }
  return out;
}

/**
 * Until the cluster's state shows the dataset mounted on `holder` and on no other node (not timed). A move is
 * seen done when the new holder reports the mount; the old holder's report of its release can land after that
 * (the new holder saw the release in the pool, not in that report), and a move back started before it lands
 * would be seen done at once, on the stale report.
 */
async function onlyMountedOn(client: FlockerClient, datasetId: string, holder: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  let since: string | undefined;
  while (Date.now() < deadline) {
    const snap = await client.waitForCluster(since, Math.max(0, Math.min(10_000, deadline - Date.now())));
    since = snap.generation;
    const on = snap.nodes
      .filter((n) => n.alive && n.manifestations.some((m) => m.dataset_id === datasetId && m.status === 'mounted'))
      .map((n) => n.uuid);
    if (on.length === 1 && on[0] === holder) return;
  }
  throw new Error(`dataset ${datasetId} not mounted on ${holder} alone within 30 s`);
}

/** Which build the hosts' dataset agents (--agent-b) or the control service (--control-b) run: this one (A) or B. */
const agentBuild: { current: 'A' | 'B' } = { current: 'A' };

/**
 * The A/B of --agent-b (or --control-b): blocks of `block` API moves (A→B, B→A, ...), the agents of both hosts (the
 * control service) restarted with the build of the block before it (SIGTERM, started again, two moves not timed).
 * `cpu`: the control service's CPU per move of each block (ms, its threads' schedstat).
 */
async function abMoves(
  cluster: Cluster,
  a: ClusterHost,
  b: ClusterHost,
  runs: number,
  block: number,
  restartControl = false,
): Promise<{ A: number[]; B: number[]; pairs: number[]; cpu: { A: number[]; B: number[]; pairs: number[] } }> {
  const d = await cluster.client.createDataset({
    primary: a.requireNodeUuid(),
    maximum_size: TEST_DATASET_SIZE,
    metadata: { name: 'bench-ab' },
  });
  await waitForMountedOn(cluster.client, d.dataset_id, a.requireNodeUuid());
  const out = { A: [] as number[], B: [] as number[], pairs: [] as number[] };
  const cpu = { A: [] as number[], B: [] as number[], pairs: [] as number[] };
  const blocks: Array<{ build: 'A' | 'B'; times: number[]; cpu: number }> = [];
  for (let blockNo = 0; out.A.length < runs || out.B.length < runs; blockNo++) {
    // A B B A A B ...: neither build always goes first after the other. Every block starts with fresh agents.
    const build = Math.floor((blockNo + 1) / 2) % 2 === 0 ? 'A' : 'B';
    agentBuild.current = build;
    if (restartControl) {
      await cluster.killControl('SIGTERM');
      await cluster.startControl();
    } else {
      for (const h of [a, b]) await h.killAgent('SIGTERM');
      for (const h of [a, b]) await h.startAgent();
    }
    await waitForMountedOn(cluster.client, d.dataset_id, a.requireNodeUuid());
    const controlPid = cluster.controlPid();
    let cpuBefore = 0;
    // The first moves after a start wait on the agents' first looks and contact: two moves not timed.
    const times: number[] = [];
    for (let i = -2; i < block; i++) {
      if (i === 0 && controlPid !== undefined) cpuBefore = cpuMsOfThreads(controlPid);
      const to = (i % 2 === 0 ? b : a).requireNodeUuid();
      await onlyMountedOn(cluster.client, d.dataset_id, (i % 2 === 0 ? a : b).requireNodeUuid());
      const t = await timedMove(i >= 0 ? [a, b] : [], async () => {
        await cluster.client.updateDataset(d.dataset_id, { primary: to });
        await waitForMountedOn(cluster.client, d.dataset_id, to);
      });
      if (i >= 0) times.push(t);
    }
    const blockCpu = controlPid === undefined ? NaN : (cpuMsOfThreads(controlPid) - cpuBefore) / block;
    out[build].push(...times);
    cpu[build].push(blockCpu);
    blocks.push({ build, times, cpu: blockCpu });
    process.stderr.write(
      `block ${blockNo} ${build}: ${times.map((t) => t.toFixed(1)).join(' ')}; control CPU ${blockCpu.toFixed(1)} ms/move\n`,
    );
  }
  // Blocks 2k and 2k+1 are one A and one B (A B B A A B ...): the moves at the same place in them are a pair
  // (same direction, same number of moves since the restart).
  for (let k = 0; k + 1 < blocks.length; k += 2) {
    const [x, y] = [blocks[k]!, blocks[k + 1]!];
    const [ta, tb] = x.build === 'A' ? [x.times, y.times] : [y.times, x.times];
    for (let i = 0; i < Math.min(ta.length, tb.length); i++) out.pairs.push(tb[i]! - ta[i]!);
    cpu.pairs.push(x.build === 'A' ? y.cpu - x.cpu : x.cpu - y.cpu);
  }
  return { ...out, cpu };
}

/**
 * The three `docker run` scenarios interleaved, run i on B for even i and on A for odd i (so the Flocker
 * volume, last used on the other host, moves each time): on a shared machine whose load drifts, runs of
 * one scenario in a block would each meet another load. The `local` volume is made on both hosts first.
 */
async function dockerRuns(
  a: ClusterHost,
  b: ClusterHost,
  runs: number,
  flockerVolume: string[],
  warmup = 0,
): Promise<{ move: number[]; none: number[]; local: number[] }> {
  const scenarios = { move: flockerVolume, none: [], local: ['-v', 'bench-local:/data'] };
  for (const h of [a, b]) await h.docker(['run', '--rm', ...scenarios.local, TINY_IMAGE, 'true']);
  const out = { move: [] as number[], none: [] as number[], local: [] as number[] };
  for (let i = -warmup; i < runs; i++) {
    const on = i % 2 === 0 ? b : a;
    for (const k of ['move', 'none', 'local'] as const) {
      const t = await timed(() => on.docker(['run', '--rm', ...scenarios[k], TINY_IMAGE, 'true']));
      if (i >= 0) out[k].push(t);
    }
  }
  return out;
}

/** The same work by hand: umount + detach on one host, attach + mount on the other. */
async function rawSequence(cluster: Cluster, a: ClusterHost, b: ClusterHost, runs: number): Promise<number[]> {
  const image = path.join(cluster.baseDir, 'bench-raw.img');
  fs.writeFileSync(image, '');
  fs.truncateSync(image, TEST_DATASET_SIZE);
  const mnt = (h: ClusterHost): string => path.join(h.layout.dir, 'raw-mnt');
  for (const h of [a, b]) fs.mkdirSync(mnt(h), { recursive: true });
  const attachMount = (h: ClusterHost): Promise<unknown> =>
    h.exec(['sh', '-ec', 'dev=$(losetup --find --show "$1"); mount -t ext4 "$dev" "$2"', 'sh', image, mnt(h)]);
  const unmountDetach = (h: ClusterHost): Promise<unknown> =>
    h.exec(['sh', '-ec', 'dev=$(findmnt -n -o SOURCE "$2"); umount "$2"; losetup -d "$dev"', 'sh', image, mnt(h)]);
  await a.exec(['mkfs.ext4', '-q', '-E', 'lazy_itable_init=1,lazy_journal_init=1', image]);
  await attachMount(a);
  const out: number[] = [];
  for (let i = 0; i < runs; i++) {
    const [from, to] = i % 2 === 0 ? [a, b] : [b, a];
    out.push(
      await timed(async () => {
        await unmountDetach(from);
        await attachMount(to);
      }),
    );
  }
  await unmountDetach(runs % 2 === 0 ? a : b);
  return out;
}

async function failovers(cluster: Cluster, a: ClusterHost, b: ClusterHost, runs: number): Promise<number[]> {
  const d = await cluster.client.createDataset({
    primary: a.requireNodeUuid(),
    maximum_size: TEST_DATASET_SIZE,
    metadata: { name: 'bench-failover' },
  });
  await waitForMountedOn(cluster.client, d.dataset_id, a.requireNodeUuid());
  const out: number[] = [];
  for (let i = 0; i < runs; i++) {
    const [dead, live] = i % 2 === 0 ? [a, b] : [b, a];
    out.push(
      await timed(async () => {
        await Promise.all([dead.killAgent('SIGKILL'), dead.killDocker('SIGKILL')]);
        await cluster.client.updateDataset(d.dataset_id, { primary: live.requireNodeUuid() });
        await waitForMountedOn(cluster.client, d.dataset_id, live.requireNodeUuid(), 120_000);
      }),
    );
    await dead.startAgent();
    await dead.startDocker();
  }
  return out;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const t0 = Date.now();
  // With Docker also for --only api: its plugins follow the cluster too (each change is pushed to them).
  const agentB = args.agentB;
  const agentFromB = agentB !== undefined ? agentFromDist(agentB) : undefined;
  const agentFromA = args.agentA !== undefined ? agentFromDist(args.agentA) : defaultCommands.agent;
  const controlB = args.controlB;
  const controlFromB = controlB !== undefined ? controlFromDist(controlB) : undefined;
  const controlFromA = args.controlA !== undefined ? controlFromDist(args.controlA) : defaultCommands.control;
  const cluster = await startCluster({
    hosts: 2,
    withDocker: true,
    nodeTimeoutSeconds: args.nodeTimeout,
    ...(agentFromB !== undefined
      ? {
          commands: {
            agent: (o: { config: string }) => (agentBuild.current === 'A' ? agentFromA(o) : agentFromB(o)),
          },
        }
      : controlFromB !== undefined
        ? {
            commands: {
              control: (o: Parameters<typeof defaultCommands.control>[0]) =>
                agentBuild.current === 'A' ? controlFromA(o) : controlFromB(o),
            },
          }
        : {}),
  });
  const startMs = Date.now() - t0;
  try {
    const [a, b] = cluster.hosts as [ClusterHost, ClusterHost];
    if (agentB !== undefined || controlB !== undefined) {
      const what = agentB !== undefined ? 'agents' : 'control service';
      const [buildA, buildB] = agentB !== undefined ? [args.agentA, agentB] : [args.controlA, controlB];
      const ab = await abMoves(cluster, a, b, args.runs, args.abBlock, controlB !== undefined);
      const [sa, sb, sp] = [stats(ab.A), stats(ab.B), stats(ab.pairs)];
      const faster = ab.pairs.filter((x) => x < 0).length;
      const [ca, cb, cp] = [median(ab.cpu.A), median(ab.cpu.B), median(ab.cpu.pairs)];
      const cpuSlower = ab.cpu.pairs.filter((x) => x > 0).length;
      console.log(
        [
          `A/B of the API move (POST primary until mounted, seen on the cluster's long-poll), blocks of ${args.abBlock} moves, ${what} restarted between blocks; A: ${buildA ?? 'this build'}, B: ${buildB}.`,
          '',
          '| build | median (ms) | p99 (ms) | n | control service CPU per move, median of blocks (ms) |',
          '|---|---|---|---|---|',
          `| A${buildA !== undefined ? '' : ' (this build)'} | ${sa.median_ms} | ${sa.p99_ms} | ${sa.n} | ${ca.toFixed(2)} |`,
          `| B | ${sb.median_ms} | ${sb.p99_ms} | ${sb.n} | ${cb.toFixed(2)} |`,
          '',
          `Paired (B − A, the moves at the same place in adjacent blocks): median ${sp.median_ms} ms over ${sp.n} pairs; B slower in ${ab.pairs.length - faster}/${ab.pairs.length}.`,
          `Control service CPU per move, paired blocks (B − A): median ${cp.toFixed(2)} ms over ${ab.cpu.pairs.length} block pairs; B more in ${cpuSlower}/${ab.cpu.pairs.length}.`,
        ].join('\n'),
      );
      fs.writeFileSync(
        args.out,
        JSON.stringify(
          {
            date: new Date().toISOString(),
            ...(agentB !== undefined ? { agentA: args.agentA, agentB } : { controlA: args.controlA, controlB }),
            A: sa,
            B: sb,
            pairs: sp,
            controlCpuMsPerMove: { A: ca, B: cb, pairedMedian: cp, blocks: ab.cpu },
          },
          null,
          2,
        ) + '\n',
      );
      return;
    }
    const on = (k: Scenario): boolean => args.only.has(k);
    const warm = ['-v', `bench-docker:/data:nocopy`, `--volume-driver=${VOLUME_DRIVER}`];
    if (on('docker')) await a.docker(['run', '--rm', ...warm, TINY_IMAGE, 'true']); // creates the volume on A
    const api = on('api')
      ? await apiMoves(cluster, a, b, args.runs, args.waiter, args.warmup)
      : { watch: [], longpoll: [] };
    const apiMove = stats(args.waiter === 'longpoll' ? api.longpoll : api.watch);
    const apiMoveLongPoll = stats(args.waiter === 'both' ? api.longpoll : []);
    const runs = on('docker')
      ? await dockerRuns(a, b, args.runs, warm, args.warmup)
      : { move: [], none: [], local: [] };
    const result = {
      date: new Date().toISOString(),
      machine: { cpus: os.cpus().length, kernel: os.release(), node: process.version },
      runs: args.runs,
      warmup: args.warmup,
      scenarios: SCENARIOS.filter(on),
      clusterStartMs: startMs,
      apiWaiter: args.waiter === 'both' ? 'watch' : args.waiter,
      apiMove,
      ...(apiMoveLongPoll.n > 0 ? { apiMoveLongPoll } : {}),
      dockerRunMove: stats(runs.move),
      dockerRunNoVolume: stats(runs.none),
      dockerRunLocalVolume: stats(runs.local),
      rawSequence: stats(on('raw') ? await rawSequence(cluster, a, b, args.runs) : []),
      failover: {
        nodeTimeoutSeconds: args.nodeTimeout,
        ...stats(on('failover') ? await failovers(cluster, a, b, args.failoverRuns) : []),
      },
    };
    fs.writeFileSync(args.out, JSON.stringify(result, null, 2) + '\n');
    const row = (k: string, s: Stats): string[] =>
      s.n > 0 ? [`| ${k} | ${s.median_ms} | ${s.p99_ms} | ${s.n} |`] : [];
    const ratio = (a: Stats, b: Stats): string => (a.median_ms / b.median_ms).toFixed(2);
    const ratios = [
      ...(on('api') && on('raw')
        ? [`API move / raw = **${ratio(result.apiMove, result.rawSequence)}** (target ≤ 2, issue 23)`]
        : []),
      ...(on('docker')
        ? [
            `docker run move / local volume = **${ratio(result.dockerRunMove, result.dockerRunLocalVolume)}** (target ≤ 1.1, issue 23)`,
          ]
        : []),
    ];
    console.log(
      [
        `Two simulated hosts (own network + mount namespaces, dockerd, agent, plugin), loopback pool shared; ${args.runs} moves each; the three \`docker run\` scenarios interleaved.`,
        '',
        '| measurement | median (ms) | p99 (ms) | n |',
        '|---|---|---|---|',
        ...row(
          `API move A→B (POST primary until mounted on B; seen on ${args.waiter === 'longpoll' ? "the cluster's long-poll" : "B's view, streamed"})`,
          result.apiMove,
        ),
        ...row("API move, seen on the cluster's long-poll instead", apiMoveLongPoll),
        ...row('raw sequence: umount + losetup -d on A, losetup + mount on B', result.rawSequence),
        ...row('`docker run` on B of a volume idle on A (moves it)', result.dockerRunMove),
        ...row('`docker run` with a `local` volume', result.dockerRunLocalVolume),
        ...row('`docker run`, no volume', result.dockerRunNoVolume),
        ...row(`host death → volume mounted on B (node timeout ${args.nodeTimeout} s)`, result.failover),
        ...(ratios.length > 0 ? ['', `Ratios (medians): ${ratios.join('; ')}.`] : []),
      ].join('\n'),
    );
    console.error(`written to ${args.out}`);
  } finally {
    const t1 = Date.now();
    await cluster.stop();
    console.error(`cluster start ${startMs} ms, stop ${Date.now() - t1} ms`);
  }
}

main().catch((err: unknown) => {
  console.error(errorMessage(err));
  process.exit(1);
});

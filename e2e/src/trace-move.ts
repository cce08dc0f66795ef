/**
 * Trace of `docker run` on host B of a Flocker volume idle on host A (issue 23): the move
 * it makes, end to end. Two simulated hosts (the multihost harness), agents and plugins at
 * debug level (each log line with a sub-ms wall clock `t`); the merged timeline of A's and
 * B's plugin and agent, ms from the `docker run`:
 *
 *   node e2e/dist/trace-move.js [--runs 3] [--idle 1500] [--api] [--warmup 0] [--cpu-prof DIR] [--agent-dist DIR]
 *     [--control-dist DIR]
 *
 * --api: the benchmark's API move instead (POST a new primary, then wait on the long-poll
 * until the control service shows it mounted there and its one-dataset state read confirms it,
 * as bench-move's apiMove does), with the
 * waiter's own events (POST answered, each long-poll answer) in the timeline. At the end, the CPU
 * time each process (with its children: the agents' helpers) spent over the moves, per move.
 * --warmup N (even): N moves first, neither traced nor counted (session 12: the first moves after the processes
 * start cost far more CPU, V8 still compiling their code).
 *
 * After each move's timeline, its critical path step by step (movePath), and at the end each
 * step's median and minimum over the moves (the minimum: the step's cost where the shared
 * machine's load did not stretch it). Needs root. docs/performance.md reads the move's
 * critical path off its output.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import type { FlockerClient } from '@flocker/api';
import {
  agentFromDist,
  defaultCommands,
  startCluster,
  TEST_DATASET_SIZE,
  TINY_IMAGE,
  VOLUME_DRIVER,
  waitForMountedOn,
  type ClusterHost,
} from './cluster';
import { controlFromDist } from './abMove';
import { procStat } from './cluster/processes';
import { tracedLines, type TraceEvent } from './trace-docker-run';

const now = (): number => performance.timeOrigin + performance.now();

function log(h: ClusterHost, name: string): string {
  const file = path.join(h.layout.logDir, name);
  return fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
}

/**
 * The control service's log lines within [from, to]: its audit line of each request and the lease hand-over's, stamped
 * by their ISO `timestamp` (ms: the control service logs no sub-ms `t`; long-polls and reports are not audited).
 */
function controlLines(dir: string, from: number, to: number): TraceEvent[] {
  const file = path.join(dir, 'control.log');
  if (!fs.existsSync(file)) return [];
  const out: TraceEvent[] = [];
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    if (!line.startsWith('{')) continue;
    let j: Record<string, unknown>;
    try {
      j = JSON.parse(line) as Record<string, unknown>;
    } catch {
      continue;
    }
    const t = Date.parse(String(j.timestamp));
    if (!(t >= from && t <= to)) continue;
    const { timestamp: _t, level: _l, service: _s, message, ...rest } = j;
    out.push({ t, who: 'control', what: `${String(message)} ${JSON.stringify(rest)}` });
  }
  return out;
}

/** A point on a move's critical path: the first event at or after the previous point that matches. */
interface PathPoint {
  readonly name: string;
  readonly who: 'from agent' | 'to agent' | 'to plugin' | 'docker' | 'harness';
  readonly what: RegExp;
}

/** The storage steps of a move and the agents' work around them, from the old primary's news of it. */
const AGENT_PATH: readonly PathPoint[] = [
  { name: 'old primary: new configuration', who: 'from agent', what: /^cluster changed .*"configChanged":true/ },
  { name: 'old primary: look, unmount starts', who: 'from agent', what: /^action start .*"kind":"unmount"/ },
  { name: 'old primary: unmount done', who: 'from agent', what: /^action done .*"kind":"unmount"/ },
  { name: 'old primary: device look, detach starts', who: 'from agent', what: /^action start .*"kind":"detach"/ },
  { name: 'old primary: detach done', who: 'from agent', what: /^action done .*"kind":"detach"/ },
  // Its release as the new primary learns of it: the pool watch (often before the detach is done: the record is
  // written first) or the old primary's report.
  { name: 'new primary: release seen (worker started)', who: 'to agent', what: /^move start .*"trigger":"released"/ },
  // On the pool watch the attach is decided on the view (no look); on a report, after a look.
  { name: 'new primary: attach starts', who: 'to agent', what: /^action start .*"kind":"attach"/ },
  { name: 'new primary: attach done', who: 'to agent', what: /^action done .*"kind":"attach"/ },
  { name: 'new primary: device look, mount starts', who: 'to agent', what: /^action start .*"kind":"mount"/ },
  { name: 'new primary: mount done, reported', who: 'to agent', what: /^reporting .*"manifestations":[1-9]/ },
];

/** The critical path of a `docker run` moving a volume from host `from` to host `to`, in order. */
const MOVE_PATH: readonly PathPoint[] = [
  { name: 'Mount: primary change + lease sent', who: 'to plugin', what: /^moving volume to this node/ },
  ...AGENT_PATH,
  { name: 'Mount answered', who: 'to plugin', what: /^plugin call .*VolumeDriver\.Mount/ },
  { name: 'docker run returned', who: 'docker', what: /^docker run returned/ },
];

/** The critical path of the benchmark's API move (--api). */
const API_PATH: readonly PathPoint[] = [
  { name: 'POST of the new primary sent', who: 'harness', what: /^POST primary/ },
  ...AGENT_PATH,
  { name: 'new primary: report answered', who: 'to agent', what: /^reported / },
  { name: 'waiter: mounted seen', who: 'harness', what: /^waiter: mounted/ },
  { name: 'waiter: confirmed in the state read', who: 'harness', what: /^waiter: confirmed/ },
];

/**
 * Each point's time (ms from t0), undefined where not found. A point is searched from the latest
 * earlier point of the same process (the first point for the others): the new primary may log
 * its attach before the old one logs its detach done (it learns of the detach from the pool).
 */
export function movePath(
  events: readonly TraceEvent[],
  from: string,
  to: string,
  t0: number,
  points: readonly PathPoint[] = MOVE_PATH,
): Array<number | undefined> {
  const whoOf = (p: PathPoint): string =>
    p.who === 'docker' || p.who === 'harness'
      ? p.who
      : `${p.who.startsWith('from') ? from : to} ${p.who.split(' ')[1] ?? ''}`;
  const out: Array<number | undefined> = [];
  const lastOf = new Map<string, number>();
  for (const p of points) {
    const who = whoOf(p);
    const since = lastOf.get(who) ?? (out[0] !== undefined ? out[0] + t0 : -Infinity);
    const e = events.find((x) => x.t >= since && x.who === who && p.what.test(x.what));
    out.push(e === undefined ? undefined : e.t - t0);
    if (e !== undefined) lastOf.set(who, e.t);
  }
  return out;
}

/** CPU time (ms) of a process and its descendants, live and reaped, from /proc (clock ticks: 10 ms steps). */
export function cpuMsOfTree(pid: number): number {
  const ticks = (p: number): number => {
    const f = procStat(p);
    // utime, stime, cutime, cstime: fields 14-17 of stat(5), 12-15 after the state.
    return f === undefined ? 0 : [11, 12, 13, 14].reduce((sum, i) => sum + Number(f[i] ?? 0), 0);
  };
  const children = (p: number): number[] => {
    try {
      return fs
        .readdirSync(`/proc/${p}/task`)
        .flatMap((t) => fs.readFileSync(`/proc/${p}/task/${t}/children`, 'utf8').trim().split(/\s+/))
        .filter((x) => x !== '')
        .map(Number);
    } catch {
      return [];
    }
  };
  let total = 0;
  const todo = [pid];
  for (let p = todo.pop(); p !== undefined; p = todo.pop()) {
    total += ticks(p);
    todo.push(...children(p));
  }
  return total * 10;
}

/**
 * CPU time (ms) of one process's threads so far, from /proc/PID/task/TID/schedstat (nanoseconds on a CPU, not 10 ms
 * ticks): precise enough for a few moves; threads that ended are not counted (a control service's are its own).
 */
export function cpuMsOfThreads(pid: number): number {
  let ns = 0;
  try {
    for (const t of fs.readdirSync(`/proc/${pid}/task`)) {
      try {
        ns += Number(fs.readFileSync(`/proc/${pid}/task/${t}/schedstat`, 'utf8').split(' ')[0] ?? 0);
      } catch {
        // the thread ended meanwhile
      }
    }
  } catch {
    return NaN;
  }
  return ns / 1e6;
}

/** waitForMountedOn's long-poll loop, telling each answer (the trace stamps them). */
async function waitMounted(
  client: FlockerClient,
  datasetId: string,
  nodeUuid: string,
  answered: (generation: string, what: string) => void,
): Promise<void> {
  const deadline = Date.now() + 30_000;
  let since: string | undefined;
  while (Date.now() < deadline) {
    const snapshot = await client.waitForCluster(since, Math.max(0, Math.min(10_000, deadline - Date.now())));
    since = snapshot.generation;
    const node = snapshot.nodes.find((n) => n.uuid === nodeUuid && n.alive);
    const mounted = node?.manifestations.some((x) => x.dataset_id === datasetId && x.status === 'mounted') === true;
    answered(snapshot.generation, mounted ? 'mounted' : 'long-poll answered');
    // As waitForMountedOn (and the benchmark): only a "mounted" the control service shows too (the stale rule).
    if (mounted) {
      if ((await client.shownMountedOn(datasetId, nodeUuid)) !== undefined) {
        answered(snapshot.generation, 'confirmed');
        return;
      }
      answered(snapshot.generation, 'hidden by the state read');
    }
  }
  throw new Error(`dataset ${datasetId} not mounted on ${nodeUuid} within 30 s`);
}

function stepRows(paths: ReadonlyArray<ReadonlyArray<number | undefined>>, points: readonly PathPoint[]): string {
  const rows = [
    '| step (ms since the previous point; < 0: logged ahead of it) | median | min | n |',
    '|---|---:|---:|---:|',
  ];
  for (let i = 1; i < points.length; i++) {
    const d = paths.flatMap((p) => {
      const [a, b] = [p[i - 1], p[i]];
      return a !== undefined && b !== undefined ? [b - a] : [];
    });
    const sorted = [...d].sort((x, y) => x - y);
    const median = sorted.length === 0 ? NaN : (sorted[(sorted.length - 1) >> 1]! + sorted[sorted.length >> 1]!) / 2;
    rows.push(`| ${points[i]!.name} | ${median.toFixed(1)} | ${(sorted[0] ?? NaN).toFixed(1)} | ${d.length} |`);
  }
  return rows.join('\n') + '\n';
}

async function main(): Promise<void> {
  const runsAt = process.argv.indexOf('--runs');
  const runs = runsAt > 0 ? Number(process.argv[runsAt + 1]) : 3;
  // The pause before each run (the benchmark's runs follow each other at once: --idle 0).
  const idleAt = process.argv.indexOf('--idle');
  const idleMs = idleAt > 0 ? Number(process.argv[idleAt + 1]) : 1_500;
  const api = process.argv.includes('--api');
  const points = api ? API_PATH : MOVE_PATH;
  process.env.FLOCKER_LOG_LEVEL = 'debug';
  // --cpu-prof DIR: the agents and the control service write V8 CPU profiles there when they stop.
  const profAt = process.argv.indexOf('--cpu-prof');
  const profDir = profAt > 0 ? path.resolve(process.argv[profAt + 1] ?? '.') : undefined;
  const profiled = (argv: string[]): string[] =>
    profDir === undefined
      ? argv
      : argv.flatMap((x) => (x === process.execPath ? [x, '--cpu-prof', `--cpu-prof-dir=${profDir}`] : [x]));
  // --agent-dist DIR: the agents run another build's dataset-agent dist (a copy outside the repo, say).
  const distAt = process.argv.indexOf('--agent-dist');
  const agentDist = distAt > 0 ? path.resolve(process.argv[distAt + 1] ?? '.') : undefined;
  const agentCommand = agentDist === undefined ? defaultCommands.agent : agentFromDist(agentDist);
  // --control-dist DIR: the control service runs a copy of another build's control-api dist (traces of two builds
  // taken in turn compare a step of theirs at the same load).
  const controlAt = process.argv.indexOf('--control-dist');
  const controlDist = controlAt > 0 ? path.resolve(process.argv[controlAt + 1] ?? '.') : undefined;
  const controlCommand = controlDist === undefined ? defaultCommands.control : controlFromDist(controlDist);
  const cluster = await startCluster({
    hosts: 2,
    withDocker: true,
    ...(profDir !== undefined || agentDist !== undefined || controlDist !== undefined
      ? {
          commands: {
            agent: (o: { config: string }) => profiled(agentCommand(o)),
            control: (o: Parameters<typeof defaultCommands.control>[0]) => profiled(controlCommand(o)),
          },
        }
      : {}),
  });
  try {
    const [a, b] = cluster.hosts as [ClusterHost, ClusterHost];
    const vol = ['-v', 'trace-move:/data:nocopy', `--volume-driver=${VOLUME_DRIVER}`];
    let datasetId = '';
    if (api) {
      const d = await cluster.client.createDataset({
        primary: a.requireNodeUuid(),
        maximum_size: TEST_DATASET_SIZE,
        metadata: { name: 'trace-move' },
      });
      datasetId = d.dataset_id;
      await waitForMountedOn(cluster.client, datasetId, a.requireNodeUuid());
    } else await a.docker(['run', '--rm', ...vol, TINY_IMAGE, 'true']); // made on A
    // --warmup N: the same moves first, untimed (an even number: the volume ends where it started).
    const warmAt = process.argv.indexOf('--warmup');
    const warmup = warmAt > 0 ? Number(process.argv[warmAt + 1]) : 0;
    if (!(warmup >= 0 && warmup % 2 === 0)) throw new Error('--warmup: an even number of moves');
    for (let i = 0; i < warmup; i++) {
      const to = i % 2 === 0 ? b : a;
      if (api) {
        await cluster.client.updateDataset(datasetId, { primary: to.requireNodeUuid() });
        await waitMounted(cluster.client, datasetId, to.requireNodeUuid(), () => undefined);
      } else await to.docker(['run', '--rm', ...vol, TINY_IMAGE, 'true']);
    }
    const paths: Array<Array<number | undefined>> = [];
    const pids: Array<[string, number | undefined]> = [
      ['control service', cluster.controlPid()],
      ...[a, b].flatMap((h): Array<[string, number | undefined]> => [
        [`${h.name} agent`, h.agentPid()],
        [`${h.name} plugin`, h.pluginPid()],
      ]),
    ];
    const cpuBefore = pids.map(([, pid]) => (pid === undefined ? 0 : cpuMsOfTree(pid)));
    const selfBefore = process.cpuUsage();
    for (let i = 0; i < runs; i++) {
      const [from, to] = i % 2 === 0 ? [a, b] : [b, a];
      await new Promise((r) => setTimeout(r, idleMs));
      const t0 = now();
      const harness: TraceEvent[] = [];
      if (api) {
        harness.push({ t: t0, who: 'harness', what: `POST primary ${to.name} (mounted on ${from.name})` });
        await cluster.client.updateDataset(datasetId, { primary: to.requireNodeUuid() });
        harness.push({ t: now(), who: 'harness', what: 'POST answered' });
        await waitMounted(cluster.client, datasetId, to.requireNodeUuid(), (generation, what) =>
          harness.push({ t: now(), who: 'harness', what: `waiter: ${what} ${generation}` }),
        );
      } else await to.docker(['run', '--rm', ...vol, TINY_IMAGE, 'true']);
      const t1 = now();
      const events: TraceEvent[] = [
        ...harness,
        ...(api
          ? []
          : [
              { t: t0, who: 'docker', what: `docker run on ${to.name} (volume on ${from.name})` },
              { t: t1, who: 'docker', what: 'docker run returned' },
            ]),
        ...tracedLines(log(from, 'plugin.log'), `${from.name} plugin`, t0 - 1, t1),
        ...tracedLines(log(from, 'agent.log'), `${from.name} agent`, t0 - 1, t1),
        ...tracedLines(log(to, 'plugin.log'), `${to.name} plugin`, t0 - 1, t1),
        ...tracedLines(log(to, 'agent.log'), `${to.name} agent`, t0 - 1, t1),
        ...controlLines(cluster.layout.controlDir, t0 - 1, t1),
      ].sort((x, y) => x.t - y.t);
      process.stdout.write(
        `\n### move ${i + 1}: ${from.name} → ${to.name}\n\n| ms | process | event |\n|---:|---|---|\n`,
      );
      for (const e of events)
        process.stdout.write(
          `| ${(e.t - t0).toFixed(1)} | ${e.who} | ${e.what.replace(/\|/g, '\\|').slice(0, 260)} |\n`,
        );
      const path = movePath(events, from.name, to.name, t0, points);
      paths.push(path);
      process.stdout.write(`\nCritical path: ${path.map((t) => (t === undefined ? '?' : t.toFixed(1))).join(' → ')}\n`);
    }
    process.stdout.write(`\n### the critical path over ${runs} moves\n\n${stepRows(paths, points)}`);
    const self = process.cpuUsage(selfBefore);
    const cpuRows = pids.map(
      ([name, pid], i) => [name, pid === undefined ? NaN : cpuMsOfTree(pid) - cpuBefore[i]!] as const,
    );
    cpuRows.push(['this harness (waiter)', (self.user + self.system) / 1000]);
    process.stdout.write(
      `\n### CPU per move (ms; idle pauses included)\n\n| process | CPU ms per move |\n|---|---:|\n${cpuRows
        .map(([name, ms]) => `| ${name} | ${(ms / runs).toFixed(1)} |`)
        .join('\n')}\n`,
    );
  } finally {
    // A profile is written at a clean exit only (the teardown kills with SIGKILL).
    if (profDir !== undefined) {
      for (const h of cluster.hosts) await h.killAgent('SIGTERM');
      await cluster.killControl('SIGTERM');
    }
    await cluster.stop();
  }
}

if (require.main === module) {
  main().catch((err: unknown) => {
    process.stderr.write(`trace failed: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  });
}

/**
 * Trace of one `docker run` with a new Flocker volume, and of its `docker volume rm`, end to
 * end (issue 23); then `docker run` with an existing volume, `docker volume create` + at once
 * `docker volume rm`, and `docker volume rm` of an idle volume, each beside the same with a
 * `local` volume. The plugin and the dataset agent log at debug level, each line with a
 * sub-ms wall clock `t`; an observer long-polls the control service and stamps each
 * generation it publishes (what the control service did, seen from outside: no edit of it).
 * The merged timeline, ms from the `docker run`:
 *
 *   node e2e/dist/trace-docker-run.js [--runs 3]
 *
 * As the benchmark does, each new volume and each create + rm pair starts once the agent's pool holds 2 spares of the
 * plugin's 10 GiB default again (waited for untimed; the title says how long), and a spare make that overlaps a
 * timeline shows at its start ("spare make started"), so a refill meeting a command can be seen (issue 23).
 *
 * With --pairs N it then runs N interleaved pairs (alternating which goes first) of the benchmark's `docker run` with a
 * new volume and `docker volume create` + at once `docker volume rm`, with Flocker and with the benchmark's no-op
 * plugin (its call log on), and splits each command at the plugin calls Docker makes: CLI start → first call, inside
 * the plugin's answers, Docker's own time between the calls, last answer → CLI back; the medians of each side and of
 * the paired differences say where the milliseconds above the floor go (issue 23). With --agent-stopped each pair also
 * runs the create + rm with the agent SIGSTOPped from before the create to after the rm, and with the `local` driver:
 * what rm would cost if none of the agent's work on the new volume overlapped it (session 12).
 *
 * Needs root and dockerd (the FlockerDockerStack of the Docker e2e tests). docs/performance.md
 * reads the critical path off its output.
 */
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import type { ClusterSnapshot } from '@flocker/api';
import { jsonLines } from '@flocker/runtime/testing';
import { z } from 'zod';
import { procStat } from './cluster/processes';
import { FlockerDockerStack, TINY_IMAGE } from './docker';

const now = (): number => performance.timeOrigin + performance.now();

/** A log line with a `t` (the agent and the plugin at debug level). */
const TracedLine = z.looseObject({ t: z.string(), message: z.string() });

export interface TraceEvent {
  t: number;
  who: string;
  what: string;
}

/** The lines of a JSON-lines log stamped with `t` within [from, to]; others (no `t`, not JSON) skipped. */
export function tracedLines(text: string, who: string, from: number, to: number): TraceEvent[] {
  const events: TraceEvent[] = [];
  for (const line of jsonLines(text, TracedLine)) {
    const t = Number(line.t);
    if (!(t >= from && t <= to)) continue;
    const { t: _t, message, level: _l, timestamp: _ts, service: _s, ...rest } = line;
    events.push({ t, who, what: `${message} ${JSON.stringify(rest)}` });
  }
  return events;
}

const PluginCallLine = z.looseObject({ t: z.string(), message: z.string(), call: z.string(), duration_ms: z.number() });

/**
 * The time spent inside the plugin's answers to Docker within [from, to], per call (`plugin call` and `plugin call
 * failed` lines at debug level): what Docker waited for the plugin itself, as against its own work between calls.
 * E.g. "Get 4× 1.2, Create 1× 5.1, Mount 2× 62.8, Unmount 2× 1.0; in all 70.1 ms".
 */
export function pluginCallTotals(text: string, from: number, to: number): string {
  const totals = new Map<string, { n: number; ms: number }>();
  for (const line of jsonLines(text, PluginCallLine)) {
    if (!line.message.startsWith('plugin call')) continue;
    const t = Number(line.t);
    if (!(t >= from && t <= to)) continue;
    const call = line.call.replace(/^\/(VolumeDriver|Plugin)\./, '');
    const sum = totals.get(call) ?? { n: 0, ms: 0 };
    totals.set(call, { n: sum.n + 1, ms: sum.ms + line.duration_ms });
  }
  const all = [...totals.values()].reduce((a, b) => a + b.ms, 0);
  const parts = [...totals].map(([call, { n, ms }]) => `${call} ${n}× ${ms.toFixed(1)}`);
  return `${parts.join(', ') || 'no call'}; in all ${all.toFixed(1)} ms`;
}

/** One command split at the plugin calls Docker made for it (ms; see commandSplit). */
export interface CommandSplit {
  calls: number;
  /** From the command's start to the first call's arrival: the CLI and dockerd before they ask the plugin. */
  before: number;
  /** Inside the plugin's answers, summed. */
  plugin: number;
  /** Docker's own time between the first call's arrival and the last call's answer, the plugin's answers taken out. */
  docker: number;
  /** From the last answer to the command's end: dockerd's work after it, and the CLI's exit. */
  after: number;
  total: number;
}

/**
 * The command timed over [from, to] split at the `plugin call` lines (Flocker's plugin at debug level, or the no-op
 * plugin's --log) whose call arrived (`t` − duration) and was answered within it; undefined when it holds none.
 */
export function commandSplit(text: string, from: number, to: number): CommandSplit | undefined {
  const calls = [...jsonLines(text, PluginCallLine)]
    .filter((l) => l.message.startsWith('plugin call'))
    .map((l) => ({ answered: Number(l.t), arrived: Number(l.t) - l.duration_ms, ms: l.duration_ms }))
    .filter((c) => c.arrived >= from && c.answered <= to);
  if (calls.length === 0) return undefined;
  const first = Math.min(...calls.map((c) => c.arrived));
  const last = Math.max(...calls.map((c) => c.answered));
  const plugin = calls.reduce((a, c) => a + c.ms, 0);
  return {
    calls: calls.length,
    before: first - from,
    plugin,
    docker: last - first - plugin,
    after: to - last,
    total: to - from,
  };
}

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length === 0 ? NaN : s.length % 2 === 1 ? (s[m] ?? NaN) : ((s[m - 1] ?? NaN) + (s[m] ?? NaN)) / 2;
};

/** One plugin call Docker made within a command: its name, and its gap (ms) since the previous answer or the start. */
export interface CallGap {
  call: string;
  /** From the command's start (first call) or the previous call's answer to this call's arrival: Docker's time. */
  gap: number;
  /** Inside the plugin's answer. */
  ms: number;
}

/**
 * The command timed over [from, to] as its plugin calls in order, each with Docker's time before it, and the time
 * after the last answer (`after`); undefined when it holds no call. Two commands with the same call sequence (the same
 * Docker path) compare gap by gap: where a plugin's work, done after its answer, slows Docker's next step.
 */
export function callGaps(text: string, from: number, to: number): { calls: CallGap[]; after: number } | undefined {
  const calls = [...jsonLines(text, PluginCallLine)]
    .filter((l) => l.message.startsWith('plugin call'))
    .map((l) => ({
      call: l.call.replace(/^\/(VolumeDriver|Plugin)\./, ''),
      answered: Number(l.t),
      arrived: Number(l.t) - l.duration_ms,
      ms: l.duration_ms,
    }))
    .filter((c) => c.arrived >= from && c.answered <= to)
    .sort((a, b) => a.arrived - b.arrived);
  const last = calls.at(-1);
  if (last === undefined) return undefined;
  let prev = from;
  const gaps = calls.map((c) => {
    const g = { call: c.call, gap: c.arrived - prev, ms: c.ms };
    prev = c.answered;
    return g;
  });
  return { calls: gaps, after: to - last.answered };
}

/**
 * The markdown table of paired call sequences (floor vs Flocker) whose calls are the same in the same order: for each
 * call, Docker's gap before it and the answer's time, medians per side and of the paired differences.
 */
export function gapTable(
  title: string,
  pairs: ReadonlyArray<{ floor?: ReturnType<typeof callGaps>; flocker?: ReturnType<typeof callGaps> }>,
  labels: { floor: string; flocker: string } = { floor: 'no-op', flocker: 'Flocker' },
): string {
  const same = pairs.filter(
    (p): p is { floor: NonNullable<typeof p.floor>; flocker: NonNullable<typeof p.flocker> } =>
      p.floor !== undefined &&
      p.flocker !== undefined &&
      p.floor.calls.map((c) => c.call).join() === p.flocker.calls.map((c) => c.call).join(),
  );
  const first = same[0];
  if (first === undefined) return `\n### ${title}: no pair with the same calls on both sides\n`;
  const f = (x: number) => x.toFixed(1);
  const row = (label: string, pick: (s: { calls: CallGap[]; after: number }) => number) =>
    `| ${label} | ${f(median(same.map((p) => pick(p.floor))))} | ${f(median(same.map((p) => pick(p.flocker))))} | ${f(
      median(same.map((p) => pick(p.flocker) - pick(p.floor))),
    )} |`;
  const rows = first.flocker.calls.flatMap((c, i) => [
    row(`Docker before ${c.call} #${i + 1}`, (s) => s.calls[i]?.gap ?? NaN),
    row(`${c.call} #${i + 1} answered`, (s) => s.calls[i]?.ms ?? NaN),
  ]);
  const total = (s: { calls: CallGap[]; after: number }) => s.calls.reduce((a, c) => a + c.gap + c.ms, 0) + s.after;
  return [
    `\n### ${title}: ${same.length} of ${pairs.length} pairs with the same calls, medians (ms)\n`,
    `| step | ${labels.floor} | ${labels.flocker} | median of ${labels.flocker} − ${labels.floor} |`,
    '|---|---:|---:|---:|',
    ...rows,
    row('last answer → CLI back', (s) => s.after),
    row('whole command', total),
    '',
  ].join('\n');
}

const SEGMENTS = ['before', 'plugin', 'docker', 'after', 'total'] as const;
const SEGMENT_LABELS: Readonly<Record<(typeof SEGMENTS)[number], string>> = {
  before: 'CLI start → first plugin call',
  plugin: "inside the plugin's answers",
  docker: "Docker's own time between the calls",
  after: 'last answer → CLI back',
  total: 'whole command',
};

/**
 * The markdown table of paired splits: each segment's median for the floor and for Flocker, and the median of the
 * paired differences (Flocker − floor, pair i with pair i; a pair missing a side is left out).
 */
export function splitTable(
  title: string,
  pairs: ReadonlyArray<{ floor?: CommandSplit; flocker?: CommandSplit }>,
  labels: { floor: string; flocker: string } = { floor: 'no-op plugin', flocker: 'Flocker' },
): string {
  const whole = pairs.filter(
    (p): p is { floor: CommandSplit; flocker: CommandSplit } => p.floor !== undefined && p.flocker !== undefined,
  );
  const f = (x: number) => x.toFixed(1);
  const rows = SEGMENTS.map((k) => {
    const floor = median(whole.map((p) => p.floor[k]));
    const flocker = median(whole.map((p) => p.flocker[k]));
    const diff = median(whole.map((p) => p.flocker[k] - p.floor[k]));
    return `| ${SEGMENT_LABELS[k]} | ${f(floor)} | ${f(flocker)} | ${f(diff)} |`;
  });
  return [
    `\n### ${title}: ${whole.length} pairs, medians (ms)\n`,
    `| segment | ${labels.floor} | ${labels.flocker} | median of ${labels.flocker} − ${labels.floor} |`,
    '|---|---:|---:|---:|',
    ...rows,
    '',
  ].join('\n');
}

const SpareMadeLine = z.looseObject({ t: z.string(), message: z.literal('spare volume made'), durationMs: z.number() });

/** One line of mean CPU per run and process, for each side (`sums`: ms summed over `runs` runs). */
export function cpuLine(what: string, sums: Record<string, { runs: number; ms: Record<string, number> }>): string {
  const sides = Object.entries(sums).map(
    ([side, c]) =>
      `${side}: ${Object.entries(c.ms)
        .map(([k, v]) => `${k} ${(v / Math.max(1, c.runs)).toFixed(1)}`)
        .join(', ')}`,
  );
  return `\nCPU per ${what} (ms, mean): ${sides.join('; ')}\n`;
}

/**
 * The agent's spare makes that overlap [from, to], as events at their start: its `spare volume made` line (debug)
 * comes at the end of a make, with its duration. A refill's truncate and mkfs on the disk of the control service's
 * log is what can slow a command beside it (issue 23).
 */
export function spareMakes(text: string, from: number, to: number): TraceEvent[] {
  const events: TraceEvent[] = [];
  for (const line of jsonLines(text, SpareMadeLine)) {
    const end = Number(line.t);
    const start = end - line.durationMs;
    if (!(start <= to && end >= from)) continue;
    events.push({ t: start, who: 'agent', what: `spare make started (took ${line.durationMs.toFixed(1)} ms)` });
  }
  return events;
}

const GiB = 1024 ** 3;

/**
 * Waits (untimed, up to 10 s) until the stack's pool holds `count` ready spares of `size` bytes, as the benchmark
 * does before its timed runs; says how long it waited, for the timeline's title.
 */
async function waitForSpares(root: string, count = 2, size = 10 * GiB): Promise<string> {
  const dir = path.join(root, 'pool', 'spares');
  const full = (): boolean =>
    (fs.existsSync(dir) ? fs.readdirSync(dir) : [])
      .filter((n) => /^[0-9a-f-]{36}\.img$/.test(n))
      .filter((n) => fs.statSync(path.join(dir, n), { throwIfNoEntry: false })?.size === size).length >= count;
  const t0 = now();
  while (!full() && now() - t0 < 10_000) await new Promise((r) => setTimeout(r, 20));
  return full() ? `pool full, waited ${(now() - t0).toFixed(0)} ms` : `pool NOT full after 10 s`;
}

const USAGE = `usage: node e2e/dist/trace-docker-run.js [--runs N] [--pairs P [--agent-stopped] [--held]]

Starts its own dockerd, control service, dataset agent and plugin (debug logs) in a temp root, then prints the merged
timeline (ms) of N docker runs with a new Flocker volume and their docker volume rm, N docker runs with an existing
volume (beside a local one), N docker volume create + at once docker volume rm, and N rm of an idle volume.
With --pairs P, then P interleaved pairs, Flocker and the no-op plugin (the floor), of a docker run with a new volume
and a create + at once rm, each command split at its plugin calls (medians, and of the paired differences), and of a
docker run with an existing volume, compared call by call (Docker's gap before each call, each answer).
With --agent-stopped, each pair also runs the create + rm with the agent SIGSTOPped throughout (the most that taking the
agent's work off rm could give) and with the local driver. With --held, the existing-volume pairs have a third side: a
second Flocker volume another container keeps in use throughout (its runs take and let go no lease).
Needs root. FLOCKER_TRACE_LOGS=DIR keeps the plugin and agent logs; FLOCKER_TRACE_JSON=FILE writes every pair's
splits (JSON). Default N: 3 (0: the pairs only); P: 0.
`;

/** What a snapshot says of the volume \`name\`: its dataset and where it stands on the node. */
function volumeStatus(s: ClusterSnapshot, name: string): string {
  const ds = s.datasets.filter((d) => d.metadata.name === name);
  if (ds.length === 0) return 'no dataset';
  return ds
    .map((d) => {
      const m = s.nodes.flatMap((n) => n.manifestations).find((x) => x.dataset_id === d.dataset_id);
      const lease = s.leases.some((l) => l.dataset_id === d.dataset_id) ? ' leased' : '';
      return `${d.dataset_id.slice(0, 8)}${d.deleted ? ' deleted' : ''}${lease} ${m?.status ?? 'no manifestation'}`;
    })
    .join('; ');
}

/** Waits (untimed, up to 10 s) until the pool holds at most `max` volumes: the agent's destroys are done. */
async function waitForVolumes(root: string, max: number): Promise<void> {
  const dir = path.join(root, 'pool', 'volumes');
  const few = (): boolean =>
    (fs.existsSync(dir) ? fs.readdirSync(dir) : []).filter((n) => n.endsWith('.img')).length <= max;
  for (const t0 = now(); !few() && now() - t0 < 10_000;) await new Promise((r) => setTimeout(r, 20));
}

/**
 * `pairs` interleaved pairs, Flocker and the benchmark's no-op plugin (its call log on), of the benchmark's two
 * commands that miss their targets: `docker run` with a new volume, and `docker volume rm` right after `docker volume
 * create`; each split at its plugin calls (commandSplit), printed as medians and paired differences. As the benchmark,
 * each timed command starts with the pool full and the destroys done (waited for untimed, on both sides).
 */
async function floorPairs(
  stack: FlockerDockerStack,
  pairs: number,
  agentStopped: boolean,
  held: boolean,
): Promise<void> {
  const noopDriver = `flocker-trace-noop-${process.pid}`;
  const socket = `/run/docker/plugins/${noopDriver}.sock`;
  const noopLog = path.join(stack.root, 'noop-calls.log');
  const script = path.join(
    path.dirname(require.resolve('@flocker/volume-plugin/package.json')),
    'dist',
    'bench',
    'noopPlugin.js',
  );
  const child = spawn(
    process.execPath,
    [script, '--socket', socket, '--root', path.join(stack.root, 'noop'), '--log', noopLog],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  try {
    await new Promise<void>((resolve, reject) => {
      child.once('exit', (code) => reject(new Error(`the no-op plugin exited (${code}) before it listened`)));
      child.stdout.once('data', () => resolve());
    });
    const drivers = { floor: noopDriver, flocker: stack.driver } as const;
    const log = (side: keyof typeof drivers) =>
      side === 'floor' ? fs.readFileSync(noopLog, 'utf8') : stack.plugin.log();
    const runs: Array<{ floor?: CommandSplit; flocker?: CommandSplit }> = [];
    const rms: Array<{ floor?: CommandSplit; flocker?: CommandSplit }> = [];
    type Gaps = ReturnType<typeof callGaps>;
    const existing: Array<{ floor?: Gaps; flocker?: Gaps; held?: Gaps }> = [];
    // Each side's existing volume: the no-op's made here, Flocker's the stack's trace-existing (mounted here, let go);
    // with --held also a second Flocker volume that another container keeps in use throughout, so its runs take and let
    // go no lease (the Mount of a volume already used here only counts the container).
    const existingSides = { floor: noopDriver, flocker: stack.driver, held: stack.driver } as const;
    const existingVolume = {
      floor: 'pair-floor-existing',
      flocker: 'trace-existing',
      held: 'trace-existing-held',
    } as const;
    await stack.docker(['volume', 'create', '-d', noopDriver, existingVolume.floor]);
    // CPU of each process over each side's runs (ms; the control service runs in this process):
    // whose work a side adds, though not when. /proc counts in ticks (10 ms): only sums over many runs mean anything.
    const tickMs = 1000 / (Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100);
    const cpuOf = (pid: number | undefined): number => {
      const f = pid === undefined ? undefined : procStat(pid);
      return f === undefined ? 0 : (Number(f[11]) + Number(f[12])) * tickMs;
    };
    const cpuNow = (): Record<string, number> => {
      const self = process.cpuUsage();
      return {
        'control service + this tool': (self.user + self.system) / 1000,
        agent: cpuOf(stack.agent.pid),
        plugin: cpuOf(stack.plugin.pid),
        dockerd: cpuOf(stack.dockerd.pid()),
      };
    };
    const cpu: Record<string, { runs: number; ms: Record<string, number> }> = {};
    /** The new-volume runs' and the create + rm pairs' CPU, per side (from the command's start to 20 ms after its end). */
    const cpuNew: typeof cpu = {};
    const cpuCreateRm: typeof cpu = {};
    const addCpu = (into: typeof cpu, side: string, c0: Record<string, number>, c1: Record<string, number>) => {
      const sum = (into[side] ??= { runs: 0, ms: {} });
      sum.runs++;
      for (const [k, v] of Object.entries(c1)) sum.ms[k] = (sum.ms[k] ?? 0) + v - (c0[k] ?? 0);
    };
    const runExisting = async (side: keyof typeof existingSides, counted = true) => {
      const args = ['run', '--rm', '--network', 'none', '-v', `${existingVolume[side]}:/data`];
      const c0 = cpuNow();
      const t0 = now();
      await stack.docker([...args, '--volume-driver', existingSides[side], TINY_IMAGE, 'true']);
      const t1 = now();
      await new Promise((r) => setTimeout(r, 20));
      if (counted) addCpu(cpu, side, c0, cpuNow());
      return callGaps(log(side === 'floor' ? 'floor' : 'flocker'), t0, t1);
    };
    const existingOrder: Array<keyof typeof existingSides> = held ? ['floor', 'flocker', 'held'] : ['floor', 'flocker'];
    let holder: string | undefined;
    if (held) {
      const args = ['run', '-d', '--network', 'none', '-v', `${existingVolume.held}:/data`];
      holder = (await stack.docker([...args, '--volume-driver', stack.driver, TINY_IMAGE, 'sleep', '100000'])).stdout;
    }
    for (const side of existingOrder) await runExisting(side, false); // Untimed: each volume's first Mount here.
    // trace-existing is the stack's Flocker volume left from above; a side's new volume lives until its turn's end.
    const settled = async (volumes: number) => {
      await waitForSpares(stack.root);
      await waitForVolumes(stack.root, volumes + (held ? 1 : 0)); // --held: trace-existing-held too
    };
    const timedSplit = async (side: keyof typeof drivers, args: string[]) => {
      const t0 = now();
      await stack.docker(args);
      const t1 = now();
      // The no-op's log line is written just after its answer went out.
      await new Promise((r) => setTimeout(r, 20));
      return commandSplit(log(side), t0, t1);
    };
    // --agent-stopped: the same create + rm with the agent SIGSTOPped from before the create to after the rm (the
    // most a lazier agent could take off rm: none of its claim, mount, report or teardown overlaps it), and the
    // `local` driver's rm, each pair.
    const stoppedRms: Array<{ floor?: CommandSplit; flocker?: CommandSplit }> = [];
    const localRms: number[] = [];
    const agentStoppedRm = async (i: number): Promise<CommandSplit | undefined> => {
      const cr = `pair-stopped-cr-${i}`;
      await settled(2);
      const agent = stack.agent.pid;
      if (agent === undefined) throw new Error('the agent has no pid');
      process.kill(agent, 'SIGSTOP');
      try {
        await stack.docker(['volume', 'create', '-d', stack.driver, cr]);
        return await timedSplit('flocker', ['volume', 'rm', cr]);
      } finally {
        process.kill(agent, 'SIGCONT');
      }
    };
    const localRm = async (i: number): Promise<number> => {
      const cr = `pair-local-cr-${i}`;
      await settled(2);
      await stack.docker(['volume', 'create', cr]);
      const t0 = now();
      await stack.docker(['volume', 'rm', cr]);
      return now() - t0;
    };
    /** The agent-stopped create + rm (its split returned) and then the local one (its time kept). */
    const stoppedAndLocal = async (i: number): Promise<CommandSplit | undefined> => {
      const stopped = await agentStoppedRm(i);
      localRms.push(await localRm(i));
      return stopped;
    };
    for (let i = 0; i < pairs; i++) {
      const run: { floor?: CommandSplit; flocker?: CommandSplit } = {};
      const rm: { floor?: CommandSplit; flocker?: CommandSplit } = {};
      const order: Array<keyof typeof drivers> = i % 2 === 0 ? ['floor', 'flocker'] : ['flocker', 'floor'];
      // Before the two sides in half the pairs, after them in the other half.
      const stoppedFirst = agentStopped && i % 4 < 2;
      const stoppedBefore = stoppedFirst ? await stoppedAndLocal(i) : undefined;
      for (const side of order) {
        const driver = drivers[side];
        const vol = `pair-${side}-new-${i}`;
        await settled(1);
        const n0 = cpuNow();
        run[side] = await timedSplit(side, [
          'run',
          '--rm',
          '--network',
          'none',
          '-v',
          `${vol}:/data`,
          '--volume-driver',
          driver,
          TINY_IMAGE,
          'true',
        ]);
        addCpu(cpuNew, side, n0, cpuNow());
        const cr = `pair-${side}-cr-${i}`;
        await settled(2);
        const r0 = cpuNow();
        await stack.docker(['volume', 'create', '-d', driver, cr]);
        rm[side] = await timedSplit(side, ['volume', 'rm', cr]);
        addCpu(cpuCreateRm, side, r0, cpuNow());
        await stack.docker(['volume', 'rm', vol], { check: false });
      }
      const ex: (typeof existing)[number] = {};
      // Each side first, second (and third) in turn.
      const k = i % existingOrder.length;
      for (const side of [...existingOrder.slice(k), ...existingOrder.slice(0, k)]) {
        await settled(1);
        ex[side] = await runExisting(side);
      }
      existing.push(ex);
      if (agentStopped)
        stoppedRms.push({ floor: stoppedFirst ? stoppedBefore : await stoppedAndLocal(i), flocker: rm.flocker });
      runs.push(run);
      rms.push(rm);
    }
    // Every pair's splits, for A/B runs of two builds that pair across runs (FLOCKER_TRACE_JSON=FILE).
    const json = process.env.FLOCKER_TRACE_JSON;
    if (json !== undefined) fs.writeFileSync(json, JSON.stringify({ runs, rms, stoppedRms, localRms, existing }));
    process.stdout.write(splitTable('docker run with a new volume, split at the plugin calls', runs));
    process.stdout.write(
      splitTable('docker volume rm right after docker volume create, split at the plugin calls', rms),
    );
    if (holder !== undefined) await stack.docker(['rm', '-f', holder.trim()]);
    process.stdout.write(gapTable('docker run with an existing volume, gap by gap', existing));
    process.stdout.write(cpuLine('existing-volume run (from its start to 20 ms after its end)', cpu));
    process.stdout.write(cpuLine('new-volume run (from its start to 20 ms after its end)', cpuNew));
    process.stdout.write(cpuLine('create + rm (create start to 20 ms after the rm)', cpuCreateRm));
    if (held) {
      process.stdout.write(
        gapTable(
          'the same, Flocker volume held by another container (no lease taken or let go)',
          existing.map((e) => ({ floor: e.floor, flocker: e.held })),
          { floor: 'no-op plugin', flocker: 'Flocker held' },
        ),
      );
      process.stdout.write(
        gapTable(
          'the same, Flocker: the lease taken and let go vs held',
          existing.map((e) => ({ floor: e.held, flocker: e.flocker })),
          { floor: 'Flocker held', flocker: 'Flocker' },
        ),
      );
    }
    if (agentStopped) {
      process.stdout.write(
        splitTable('docker volume rm right after docker volume create, the agent stopped vs running', stoppedRms, {
          floor: 'agent stopped',
          flocker: 'agent running',
        }),
      );
      const totals = (xs: ReadonlyArray<{ floor?: CommandSplit }>) =>
        xs.flatMap((x) => (x.floor === undefined ? [] : [x.floor.total]));
      const loc = median(localRms);
      const ratio = (xs: number[]) => `${median(xs).toFixed(1)} ms, ${(median(xs) / loc).toFixed(3)}×`;
      process.stdout.write(
        `\nrm after create, whole command medians: local ${loc.toFixed(1)} ms; no-op ${ratio(totals(rms))}; ` +
          `Flocker ${ratio(rms.flatMap((r) => (r.flocker === undefined ? [] : [r.flocker.total])))}; ` +
          `Flocker, agent stopped ${ratio(totals(stoppedRms))}\n`,
      );
    }
  } finally {
    child.kill('SIGTERM');
    fs.rmSync(socket, { force: true });
  }
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(USAGE);
    return;
  }
  const numberAt = (flag: string, fallback: number): { at: number; n: number } => {
    const at = args.indexOf(flag);
    return { at, n: at >= 0 ? Number(args[at + 1]) : fallback };
  };
  const { at: runsAt, n: runs } = numberAt('--runs', 3);
  const { at: pairsAt, n: pairs } = numberAt('--pairs', 0);
  const stoppedAt = args.indexOf('--agent-stopped');
  const agentStopped = stoppedAt >= 0;
  const heldAt = args.indexOf('--held');
  const held = heldAt >= 0;
  const known = new Set([runsAt, runsAt + 1, pairsAt, pairsAt + 1, stoppedAt, heldAt].filter((i) => i >= 0));
  const unknown = args.filter((_, i) => !known.has(i));
  if (![runs, pairs].every((n) => Number.isInteger(n) && n >= 0) || unknown.length > 0) {
    process.stderr.write(USAGE);
    process.exit(2);
  }
  const stack = await FlockerDockerStack.start({ driver: `flocker-trace-${process.pid}`, logLevel: 'debug' });
  const observed: TraceEvent[] = [];
  let watched = '';
  const stop = new AbortController();
  const observer = (async () => {
    let since: string | undefined;
    while (!stop.signal.aborted) {
      const s = await stack.client.waitForCluster(since, 2_000).catch(() => undefined);
      if (s === undefined) continue;
      if (s.generation !== since && watched !== '')
        observed.push({ t: now(), who: 'control', what: `published ${s.generation}: ${volumeStatus(s, watched)}` });
      since = s.generation;
    }
  })();
  const docker = (args: string[]) => stack.docker(args);
  /** The merged timeline of [t0, t1 + 500 ms], in ms from t0. */
  const printTimeline = (title: string, steps: TraceEvent[], t0: number, t1: number): void => {
    const events = [
      ...steps,
      ...observed.filter((e) => e.t >= t0 - 1 && e.t <= t1 + 500),
      ...tracedLines(stack.plugin.log(), 'plugin', t0 - 1, t1 + 500),
      ...tracedLines(stack.agent.log(), 'agent', t0 - 1, t1 + 500),
      ...spareMakes(stack.agent.log(), t0 - 1, t1 + 500),
    ].sort((a, b) => a.t - b.t);
    process.stdout.write(`\n### ${title}\n\n| ms | process | event |\n|---:|---|---|\n`);
    for (const e of events)
      process.stdout.write(`| ${(e.t - t0).toFixed(1)} | ${e.who} | ${e.what.replace(/\|/g, '\\|').slice(0, 300)} |\n`);
    process.stdout.write(
      `\nInside the plugin's answers over this timeline (ms): ${pluginCallTotals(stack.plugin.log(), t0 - 1, t1 + 500)}\n`,
    );
  };
  try {
    await docker(['run', '--rm', '--network', 'none', TINY_IMAGE, 'true']);
    await docker([
      'run',
      '--rm',
      '--network',
      'none',
      '-v',
      'trace-warm:/data',
      '--volume-driver',
      stack.driver,
      TINY_IMAGE,
      'true',
    ]);
    await docker(['volume', 'rm', 'trace-warm']);
    for (let i = 0; i < runs; i++) {
      const vol = `trace-new-${i}`;
      watched = vol;
      await new Promise((r) => setTimeout(r, 300));
      const pool = await waitForSpares(stack.root);
      const steps: TraceEvent[] = [];
      const t0 = now();
      steps.push({ t: t0, who: 'docker', what: `docker run -v ${vol}:/data --volume-driver … true` });
      await docker([
        'run',
        '--rm',
        '--network',
        'none',
        '-v',
        `${vol}:/data`,
        '--volume-driver',
        stack.driver,
        TINY_IMAGE,
        'true',
      ]);
      steps.push({ t: now(), who: 'docker', what: 'docker run returned' });
      await new Promise((r) => setTimeout(r, 300));
      steps.push({ t: now(), who: 'docker', what: `docker volume rm ${vol}` });
      await docker(['volume', 'rm', vol]);
      const t1 = now();
      steps.push({ t: t1, who: 'docker', what: 'docker volume rm returned' });
      await new Promise((r) => setTimeout(r, 500));
      printTimeline(`run ${i + 1}: ${vol} (${pool})`, steps, t0, t1);
    }
    // `docker run` with an EXISTING volume (the benchmark's flocker_existing), each after one with a `local` volume:
    // Docker calls Get, Mount, Unmount (copy-up), Mount, and at exit Unmount; the lease is taken and let go each run.
    await docker(['run', '--rm', '--network', 'none', '-v', 'trace-local:/data', TINY_IMAGE, 'true']);
    await docker([
      'run',
      '--rm',
      '--network',
      'none',
      '-v',
      'trace-existing:/data',
      '--volume-driver',
      stack.driver,
      TINY_IMAGE,
      'true',
    ]);
    const existing: Array<{ local: number; flocker: number }> = [];
    for (let i = 0; i < runs; i++) {
      watched = 'trace-existing';
      await new Promise((r) => setTimeout(r, 300));
      const l0 = now();
      await docker(['run', '--rm', '--network', 'none', '-v', 'trace-local:/data', TINY_IMAGE, 'true']);
      const local = now() - l0;
      await new Promise((r) => setTimeout(r, 300));
      const steps: TraceEvent[] = [];
      const t0 = now();
      steps.push({ t: t0, who: 'docker', what: 'docker run -v trace-existing:/data --volume-driver … true' });
      await docker([
        'run',
        '--rm',
        '--network',
        'none',
        '-v',
        'trace-existing:/data',
        '--volume-driver',
        stack.driver,
        TINY_IMAGE,
        'true',
      ]);
      const t1 = now();
      steps.push({ t: t1, who: 'docker', what: 'docker run returned' });
      existing.push({ local, flocker: t1 - t0 });
      await new Promise((r) => setTimeout(r, 500));
      printTimeline(
        `existing ${i + 1}: trace-existing (same run with a local volume: ${local.toFixed(1)} ms)`,
        steps,
        t0,
        t1,
      );
    }
    process.stdout.write(
      `\nexisting volume, ms (local / flocker): ${existing.map((e) => `${e.local.toFixed(0)}/${e.flocker.toFixed(0)}`).join(', ')}\n`,
    );
    // The benchmark's other pair: `docker volume create` then at once `docker volume rm` (the agent still making it).
    for (let i = 0; i < runs; i++) {
      const vol = `trace-cr-${i}`;
      watched = vol;
      await new Promise((r) => setTimeout(r, 300));
      const pool = await waitForSpares(stack.root);
      const steps: TraceEvent[] = [];
      const t0 = now();
      steps.push({ t: t0, who: 'docker', what: `docker volume create -d … ${vol}` });
      await docker(['volume', 'create', '-d', stack.driver, vol]);
      steps.push({ t: now(), who: 'docker', what: `docker volume create returned; docker volume rm ${vol}` });
      const r0 = now();
      await docker(['volume', 'rm', vol]);
      const t1 = now();
      steps.push({ t: t1, who: 'docker', what: 'docker volume rm returned' });
      // The same pair with the `local` driver, for comparison.
      await docker(['volume', 'create', `${vol}-local`]);
      const l0 = now();
      await docker(['volume', 'rm', `${vol}-local`]);
      const local = now() - l0;
      await new Promise((r) => setTimeout(r, 500));
      printTimeline(
        `create + rm ${i + 1}: ${vol} (rm ${(t1 - r0).toFixed(1)} ms; local rm ${local.toFixed(1)} ms; ${pool})`,
        steps,
        t0,
        t1,
      );
    }
    // `docker volume rm` of a volume made a while ago (the agent idle, its spares refilled), each after a `local` one:
    // what rm costs without the agent's work on the volume overlapping it.
    for (let i = 0; i < runs; i++) {
      const vol = `trace-idle-${i}`;
      watched = vol;
      await docker(['volume', 'create', '-d', stack.driver, vol]);
      await docker(['volume', 'create', `${vol}-local`]);
      await new Promise((r) => setTimeout(r, 4_000));
      const l0 = now();
      await docker(['volume', 'rm', `${vol}-local`]);
      const local = now() - l0;
      await new Promise((r) => setTimeout(r, 300));
      const steps: TraceEvent[] = [];
      const t0 = now();
      steps.push({ t: t0, who: 'docker', what: `docker volume rm ${vol}` });
      await docker(['volume', 'rm', vol]);
      const t1 = now();
      steps.push({ t: t1, who: 'docker', what: 'docker volume rm returned' });
      await new Promise((r) => setTimeout(r, 500));
      printTimeline(
        `rm of an idle volume ${i + 1}: ${vol} (rm ${(t1 - t0).toFixed(1)} ms; local rm ${local.toFixed(1)} ms)`,
        steps,
        t0,
        t1,
      );
    }
    if (pairs > 0) {
      // The pairs print no timeline: the observer's whole-cluster long-poll, answered at every change, would only add
      // its CPU (in this process, beside the control service's) to Flocker's side.
      stop.abort();
      await observer;
      await floorPairs(stack, pairs, agentStopped, held);
    }
    const keep = process.env.FLOCKER_TRACE_LOGS;
    if (keep !== undefined) {
      fs.mkdirSync(keep, { recursive: true });
      fs.writeFileSync(path.join(keep, 'plugin.log'), stack.plugin.log());
      fs.writeFileSync(path.join(keep, 'agent.log'), stack.agent.log());
    }
  } finally {
    stop.abort();
    await observer;
    await stack.close();
  }
}

if (require.main === module) {
  main().catch((err: unknown) => {
    process.stderr.write(`trace failed: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  });
}

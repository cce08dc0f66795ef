/**
 * Interleaved A/B of two whole builds (issue 23): each side is a checkout's own stack — its control service (in this
 * process, from that checkout's dist), dataset agent, Docker plugin and dockerd — started side by side; each pair runs
 * `docker run` with a new volume of Docker's local driver and of Flocker on A, then on B (the order alternates). Where
 * abBench swaps only the plugin, this also compares the control service's and the agent's part (a bisect over
 * commits that touch all three).
 *
 *   node packages/volume-plugin/dist/bench/abStacks.js --a /tmp/clone-a [--b /tmp/clone-b] --pairs 50 [--out ab.json]
 *
 * Each checkout built (`npx tsc -b`); B defaults to this one. Besides the wall times (medians, the median of paired
 * B − A), each run's CPU by process is measured from the start of the run to 300 ms after it (what the run set off:
 * pushes, reports): this process (both control services; the other side's idles), the side's agent, plugin and
 * dockerd, from /proc/PID/task/N/schedstat (ns, every thread). CPU is much less disturbed by other load on the host
 * than wall time: a cost added in our processes shows there as a paired difference even on a busy host. And from
 * each plugin's log, the durations of its Create and first Mount of each new volume, paired by round: our part of
 * the run's critical path.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { z } from 'zod';
import { jsonLines } from '@flocker/runtime/testing';
import { paired, pairedTable, type Paired } from './abBench';
import { summarise, timed, waitForSpares, waitForVolumes } from './bench';

/** What the A/B uses of a checkout's e2e docker helpers (required by path: another build's), checked when loaded. */
const SideStackShape = z.looseObject({
  driver: z.string(),
  root: z.string(),
  docker: z.custom<(args: readonly string[], opts?: { check?: boolean }) => Promise<unknown>>(
    (v) => typeof v === 'function',
  ),
  close: z.custom<() => Promise<void>>((v) => typeof v === 'function'),
  agent: z.looseObject({ pid: z.number().optional() }),
  plugin: z.looseObject({ pid: z.number().optional() }),
  dockerd: z.looseObject({ pid: z.custom<() => number | undefined>((v) => typeof v === 'function') }),
});
type SideStack = z.infer<typeof SideStackShape>;
/** Checked, and kept as it is: parsing would copy it without its prototype (close(), dockerd's methods). */
const SideStack = z.custom<SideStack>((v) => SideStackShape.safeParse(v).success, 'a started FlockerDockerStack');
const SideHelpers = z.object({
  FlockerDockerStack: z.custom<{ start(opts?: { driver?: string }): Promise<unknown> }>(
    (v) => typeof v === 'function' && typeof (v as { start?: unknown }).start === 'function',
    'FlockerDockerStack with a static start()',
  ),
  TINY_IMAGE: z.string(),
});

function loadSide(checkout: string): z.infer<typeof SideHelpers> {
  // Another checkout's build, found at run time: no import statement can name it.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const loaded: unknown = require(path.join(path.resolve(checkout), 'e2e', 'dist', 'docker', 'index.js'));
  return SideHelpers.parse(loaded);
}

/** CPU time (ms) a process has run, all its threads: the sum of /proc/PID/task/N/schedstat's first field (ns). */
export function runTimeMs(pid: number | undefined, proc = '/proc'): number {
  if (pid === undefined) return NaN;
  try {
    let ns = 0;
    const tasks = path.join(proc, String(pid), 'task');
    for (const t of fs.readdirSync(tasks)) {
      // A thread that ended between the listing and the read: its time is gone from the total either way.
      const line = fs.readFileSync(path.join(tasks, t, 'schedstat'), { encoding: 'utf8', flag: 'r' });
      ns += Number(line.split(' ')[0]);
    }
    return ns / 1e6;
  } catch {
    return NaN;
  }
}

/** Mean of the paired differences (B − A) and its standard error; NaN pairs left out. */
export function pairedMean(a: readonly number[], b: readonly number[]): { mean: number; se: number; n: number } {
  const d: number[] = [];
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    const x = (b[i] ?? NaN) - (a[i] ?? NaN);
    if (Number.isFinite(x)) d.push(x);
  }
  const n = d.length;
  const mean = n > 0 ? d.reduce((s, x) => s + x, 0) / n : NaN;
  const sd = n > 1 ? Math.sqrt(d.reduce((s, x) => s + (x - mean) ** 2, 0) / (n - 1)) : NaN;
  const r = (x: number) => Math.round(x * 10) / 10;
  return { mean: r(mean), se: r(sd / Math.sqrt(n)), n };
}

const COMPONENTS = ['control', 'agent', 'plugin', 'dockerd'] as const;

/** A plugin log line of one call (FlockerVolumeBackend's 'plugin call', info level), as far as read here. */
const PluginCallLine = z.looseObject({
  message: z.literal('plugin call'),
  call: z.string(),
  duration_ms: z.number(),
  request: z.looseObject({ Name: z.string().optional() }).nullish(),
});

/**
 * From a plugin's log: by round i, the durations (ms) of the first Create and the first Mount of volume `${prefix}i`
 * — the plugin's part of a new volume's `docker run` (Create: the control service's create; the first Mount: the
 * lease and the agent's claim, attach, mount and report). Pure.
 */
export function newVolumeCallsByRound(log: string, prefix: string): Map<number, { create?: number; mount?: number }> {
  const out = new Map<number, { create?: number; mount?: number }>();
  for (const line of jsonLines(log, PluginCallLine, '"plugin call"')) {
    const name = line.request?.Name;
    if (name === undefined || !name.startsWith(prefix)) continue;
    const round = Number(name.slice(prefix.length));
    if (!Number.isInteger(round)) continue;
    const entry = out.get(round) ?? {};
    if (line.call.endsWith('.Create')) entry.create ??= line.duration_ms;
    if (line.call.endsWith('.Mount')) entry.mount ??= line.duration_ms;
    out.set(round, entry);
  }
  return out;
}

async function main(): Promise<void> {
  const argv = await yargs(hideBin(process.argv))
    .option('a', { type: 'string', demandOption: true, describe: 'checkout A (built)' })
    .option('b', {
      type: 'string',
      default: path.resolve(__dirname, '..', '..', '..', '..'),
      describe: 'checkout B (built); default this one',
    })
    .option('pairs', { type: 'number', default: 40, describe: 'A/B pairs (at least 10)' })
    .option('out', { type: 'string', describe: 'where to write the JSON results' })
    .option('logs', { type: 'string', describe: "copy each side's plugin and agent logs here (a/, b/)" })
    .option('scenarios', {
      type: 'string',
      array: true,
      choices: ['new', 'rm'] as const,
      default: ['new'],
      describe:
        "new: docker run of a new volume; rm: the benchmark's docker volume rm right after docker volume create",
    })
    .strict()
    .parseAsync();
  const pairs = Math.max(10, argv.pairs);
  const wanted = z.array(z.enum(['new', 'rm'])).parse(argv.scenarios);
  const sides = { a: loadSide(argv.a), b: loadSide(argv.b) };
  const names = ['a', 'b'] as const;
  const stacks: Partial<Record<'a' | 'b', SideStack>> = {};
  const wall: Record<string, number[]> = {};
  const cpu: Record<string, number[]> = {};
  const calls: Partial<Record<'a' | 'b', Map<number, { create?: number; mount?: number }>>> = {};
  const push = (into: Record<string, number[]>, k: string, v: number) => (into[k] ??= []).push(v);
  const stackOf = (s: 'a' | 'b'): SideStack => {
    const st = stacks[s];
    if (st === undefined) throw new Error(`stack ${s} not started`);
    return st;
  };
  const cpuNow = (s: 'a' | 'b'): Record<(typeof COMPONENTS)[number], number> => {
    const st = stackOf(s);
    return {
      control: runTimeMs(process.pid),
      agent: runTimeMs(st.agent.pid),
      plugin: runTimeMs(st.plugin.pid),
      dockerd: runTimeMs(st.dockerd.pid()),
    };
  };
  try {
    for (const s of names)
      stacks[s] = SideStack.parse(await sides[s].FlockerDockerStack.start({ driver: `flocker-${s}-${process.pid}` }));
    const run = (s: 'a' | 'b', vol: string, flocker: boolean) =>
      stackOf(s).docker([
        'run',
        '--rm',
        '--network',
        'none',
        '-v',
        `${vol}:/data`,
        ...(flocker ? ['--volume-driver', stackOf(s).driver] : []),
        sides[s].TINY_IMAGE,
        'true',
      ]);
    // Untimed before each run, as in bench.ts: the side's spares full, its removed volumes destroyed.
    const settled = async (s: 'a' | 'b') => {
      await waitForSpares(path.join(stackOf(s).root, 'pool'), 2, 10 * 1024 ** 3);
      await waitForVolumes(path.join(stackOf(s).root, 'pool'), 1);
    };
    /** `untimed` runs after the side settled, inside the CPU window, before the timed run. */
    const measured = async (
      s: 'a' | 'b',
      scenario: string,
      timedRun: () => Promise<unknown>,
      untimed?: () => Promise<unknown>,
    ) => {
      await settled(s);
      const before = cpuNow(s);
      await untimed?.();
      push(wall, `${s}_${scenario}`, await timed(timedRun));
      await new Promise((r) => setTimeout(r, 300));
      const after = cpuNow(s);
      for (const c of COMPONENTS) push(cpu, `${s}_${scenario}_${c}`, after[c] - before[c]);
    };
    /** As bench.ts: `docker volume create` (untimed; its CPU counted) then at once `docker volume rm`, timed. */
    const createRm = (s: 'a' | 'b', scenario: string, vol: string, flocker: boolean) =>
      measured(
        s,
        scenario,
        () => stackOf(s).docker(['volume', 'rm', vol]),
        () => stackOf(s).docker(['volume', 'create', ...(flocker ? ['-d', stackOf(s).driver] : []), vol]),
      );
    const want = new Set(wanted);
    // Warm up each side: Docker, the plugin, the spares' size class (learned from the first new volume).
    for (const s of names) {
      await stackOf(s).docker(['run', '--rm', '--network', 'none', sides[s].TINY_IMAGE, 'true']);
      await run(s, 'flocker-warm', true);
    }
    for (let i = 0; i < pairs; i++) {
      const order = i % 2 === 1 ? (['b', 'a'] as const) : (['a', 'b'] as const);
      for (const s of order) {
        if (want.has('new')) {
          await measured(s, 'local_new', () => run(s, `local-new-${i}`, false));
          await measured(s, 'flocker_new', () => run(s, `flocker-new-${i}`, true));
        }
        if (want.has('rm')) {
          await createRm(s, 'local_rm', `local-cr-${i}`, false);
          await createRm(s, 'flocker_rm', `flocker-cr-${i}`, true);
        }
      }
      if (want.has('new'))
        for (const s of order)
          await stackOf(s).docker(['volume', 'rm', `local-new-${i}`, `flocker-new-${i}`], { check: false });
    }
  } finally {
    for (const s of names) {
      const st = stacks[s];
      if (st === undefined) continue;
      try {
        calls[s] = newVolumeCallsByRound(fs.readFileSync(path.join(st.root, 'plugin.log'), 'utf8'), 'flocker-new-');
      } catch {
        // No log (a failed start): no call durations.
      }
      if (argv.logs !== undefined) {
        fs.mkdirSync(path.join(argv.logs, s), { recursive: true });
        for (const f of ['plugin.log', 'agent.log'])
          fs.cpSync(path.join(st.root, f), path.join(argv.logs, s, f), { force: true });
      }
      await st.close();
    }
  }
  const scenarios = [
    ...(wanted.includes('new') ? ['local_new', 'flocker_new'] : []),
    ...(wanted.includes('rm') ? ['local_rm', 'flocker_rm'] : []),
  ];
  const results: Record<string, Paired> = Object.fromEntries(
    scenarios.map((k) => [k, paired(wall[`a_${k}`] ?? [], wall[`b_${k}`] ?? [])]),
  );
  const ratio = (s: 'a' | 'b', what: 'new' | 'rm') =>
    Math.round(
      (summarise(wall[`${s}_flocker_${what}`] ?? []).median_ms /
        summarise(wall[`${s}_local_${what}`] ?? []).median_ms) *
        1000,
    ) / 1000;
  const cpuRows = scenarios.flatMap((k) =>
    COMPONENTS.map((c) => {
      const a = cpu[`a_${k}_${c}`] ?? [];
      const b = cpu[`b_${k}_${c}`] ?? [];
      const mean = (v: readonly number[]) => Math.round((v.reduce((s, x) => s + x, 0) / v.length) * 10) / 10;
      return { scenario: k, process: c, a_mean_ms: mean(a), b_mean_ms: mean(b), b_minus_a: pairedMean(a, b) };
    }),
  );
  const rounds = Array.from({ length: pairs }, (_, i) => i);
  const callOf = (s: 'a' | 'b', k: 'create' | 'mount', i: number) => calls[s]?.get(i)?.[k] ?? NaN;
  const callRows = (['create', 'mount'] as const).map((k) => {
    const a = rounds.map((i) => callOf('a', k, i));
    const b = rounds.map((i) => callOf('b', k, i));
    return {
      call: k === 'create' ? 'Create' : 'first Mount',
      a_median_ms: summarise(a.filter(Number.isFinite)).median_ms,
      b_median_ms: summarise(b.filter(Number.isFinite)).median_ms,
      b_minus_a: pairedMean(a, b),
    };
  });
  const report = {
    a: argv.a,
    b: argv.b,
    pairs,
    results,
    ratio: Object.fromEntries(wanted.map((w) => [w, { a: ratio('a', w), b: ratio('b', w) }])),
    cpu: cpuRows,
    plugin_calls: callRows,
    wall,
  };
  if (argv.out !== undefined)
    fs.writeFileSync(argv.out, JSON.stringify({ ...report, raw_cpu_ms: cpu }, null, 2) + '\n');
  const lines = [
    `Whole-stack A/B, ${pairs} interleaved pairs (ms): A = ${argv.a}, B = ${argv.b}`,
    '',
    ...pairedTable(results),
    '',
    ...wanted.map((w) => `flocker_${w} / local_${w}: A ${report.ratio[w]?.a ?? NaN}, B ${report.ratio[w]?.b ?? NaN}`),
    '',
    '| CPU per run (ms), run + 300 ms | A mean | B mean | B − A (mean ± s.e.) |',
    '|---|---|---|---|',
    ...cpuRows.map(
      (r) =>
        `| ${r.scenario} ${r.process} | ${r.a_mean_ms} | ${r.b_mean_ms} | ${r.b_minus_a.mean} ± ${r.b_minus_a.se} |`,
    ),
    '',
    "| the plugin's call (flocker_new, ms) | A median | B median | B − A (mean ± s.e.) |",
    '|---|---|---|---|',
    ...callRows.map(
      (r) => `| ${r.call} | ${r.a_median_ms} | ${r.b_median_ms} | ${r.b_minus_a.mean} ± ${r.b_minus_a.se} |`,
    ),
    '',
  ];
  process.stdout.write(lines.join('\n'));
}

if (require.main === module) {
  main().catch((err: unknown) => {
    process.stderr.write(`A/B bench failed: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  });
}

/**
 * Trace of `docker run` on host B of a Flocker volume idle on host A (issue 23): the move
 * it makes, end to end. Two simulated hosts (the multihost harness), agents and plugins at
 * debug level (each log line with a sub-ms wall clock `t`); the merged timeline of A's and
 * B's plugin and agent, ms from the `docker run`:
 *
 *   node e2e/dist/trace-move.js [--runs 3] [--idle 1500]
 *
 * After each move's timeline, its critical path step by step (movePath), and at the end each
 * step's median and minimum over the moves (the minimum: the step's cost where the shared
 * machine's load did not stretch it). Needs root. docs/performance.md reads the move's
 * critical path off its output.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { startCluster, TINY_IMAGE, VOLUME_DRIVER, type ClusterHost } from './cluster';
import { tracedLines, type TraceEvent } from './trace-docker-run';

const now = (): number => performance.timeOrigin + performance.now();

function log(h: ClusterHost, name: string): string {
  const file = path.join(h.layout.logDir, name);
  return fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
}

/** A point on a move's critical path: the first event at or after the previous point that matches. */
interface PathPoint {
  readonly name: string;
  readonly who: 'from agent' | 'to agent' | 'to plugin' | 'docker';
  readonly what: RegExp;
}

/** The critical path of a move from host `from` to host `to`, in order. */
const MOVE_PATH: readonly PathPoint[] = [
  { name: 'Mount: primary change + lease sent', who: 'to plugin', what: /^moving volume to this node/ },
  { name: 'old primary: new configuration', who: 'from agent', what: /^cluster changed .*"configChanged":true/ },
  { name: 'old primary: look, unmount starts', who: 'from agent', what: /^action start .*"kind":"unmount"/ },
  { name: 'old primary: unmount done', who: 'from agent', what: /^action done .*"kind":"unmount"/ },
  { name: 'old primary: device look, detach starts', who: 'from agent', what: /^action start .*"kind":"detach"/ },
  { name: 'old primary: detach done', who: 'from agent', what: /^action done .*"kind":"detach"/ },
  { name: 'new primary: attach starts (after its look)', who: 'to agent', what: /^action start .*"kind":"attach"/ },
  { name: 'new primary: attach done', who: 'to agent', what: /^action done .*"kind":"attach"/ },
  { name: 'new primary: device look, mount starts', who: 'to agent', what: /^action start .*"kind":"mount"/ },
  { name: 'new primary: mount done, reported', who: 'to agent', what: /^reporting .*"manifestations":[1-9]/ },
  { name: 'Mount answered', who: 'to plugin', what: /^plugin call .*VolumeDriver\.Mount/ },
  { name: 'docker run returned', who: 'docker', what: /^docker run returned/ },
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
): Array<number | undefined> {
  const whoOf = (p: PathPoint): string =>
    p.who === 'docker' ? 'docker' : `${p.who.startsWith('from') ? from : to} ${p.who.split(' ')[1] ?? ''}`;
  const out: Array<number | undefined> = [];
  const lastOf = new Map<string, number>();
  for (const p of MOVE_PATH) {
    const who = whoOf(p);
    const since = lastOf.get(who) ?? (out[0] !== undefined ? out[0] + t0 : -Infinity);
    const e = events.find((x) => x.t >= since && x.who === who && p.what.test(x.what));
    out.push(e === undefined ? undefined : e.t - t0);
    if (e !== undefined) lastOf.set(who, e.t);
  }
  return out;
}

function stepRows(paths: ReadonlyArray<ReadonlyArray<number | undefined>>): string {
  const rows = [
    '| step (ms since the previous point; < 0: logged ahead of it) | median | min | n |',
    '|---|---:|---:|---:|',
  ];
  for (let i = 1; i < MOVE_PATH.length; i++) {
    const d = paths.flatMap((p) => {
      const [a, b] = [p[i - 1], p[i]];
      return a !== undefined && b !== undefined ? [b - a] : [];
    });
    const sorted = [...d].sort((x, y) => x - y);
    const median = sorted.length === 0 ? NaN : (sorted[(sorted.length - 1) >> 1]! + sorted[sorted.length >> 1]!) / 2;
    rows.push(`| ${MOVE_PATH[i]!.name} | ${median.toFixed(1)} | ${(sorted[0] ?? NaN).toFixed(1)} | ${d.length} |`);
  }
  return rows.join('\n') + '\n';
}

async function main(): Promise<void> {
  const runsAt = process.argv.indexOf('--runs');
  const runs = runsAt > 0 ? Number(process.argv[runsAt + 1]) : 3;
  // The pause before each run (the benchmark's runs follow each other at once: --idle 0).
  const idleAt = process.argv.indexOf('--idle');
  const idleMs = idleAt > 0 ? Number(process.argv[idleAt + 1]) : 1_500;
  process.env.FLOCKER_LOG_LEVEL = 'debug';
  const cluster = await startCluster({ hosts: 2, withDocker: true });
  try {
    const [a, b] = cluster.hosts as [ClusterHost, ClusterHost];
    const vol = ['-v', 'trace-move:/data:nocopy', `--volume-driver=${VOLUME_DRIVER}`];
    await a.docker(['run', '--rm', ...vol, TINY_IMAGE, 'true']); // made on A
    const paths: Array<Array<number | undefined>> = [];
    for (let i = 0; i < runs; i++) {
      const [from, to] = i % 2 === 0 ? [a, b] : [b, a];
      await new Promise((r) => setTimeout(r, idleMs));
      const t0 = now();
      await to.docker(['run', '--rm', ...vol, TINY_IMAGE, 'true']);
      const t1 = now();
      const events: TraceEvent[] = [
        { t: t0, who: 'docker', what: `docker run on ${to.name} (volume on ${from.name})` },
        { t: t1, who: 'docker', what: 'docker run returned' },
        ...tracedLines(log(from, 'plugin.log'), `${from.name} plugin`, t0 - 1, t1),
        ...tracedLines(log(from, 'agent.log'), `${from.name} agent`, t0 - 1, t1),
        ...tracedLines(log(to, 'plugin.log'), `${to.name} plugin`, t0 - 1, t1),
        ...tracedLines(log(to, 'agent.log'), `${to.name} agent`, t0 - 1, t1),
      ].sort((x, y) => x.t - y.t);
      process.stdout.write(
        `\n### move ${i + 1}: ${from.name} → ${to.name}\n\n| ms | process | event |\n|---:|---|---|\n`,
      );
      for (const e of events)
        process.stdout.write(
          `| ${(e.t - t0).toFixed(1)} | ${e.who} | ${e.what.replace(/\|/g, '\\|').slice(0, 260)} |\n`,
        );
      const path = movePath(events, from.name, to.name, t0);
      paths.push(path);
      process.stdout.write(`\nCritical path: ${path.map((t) => (t === undefined ? '?' : t.toFixed(1))).join(' → ')}\n`);
    }
    process.stdout.write(`\n### the critical path over ${runs} moves\n\n${stepRows(paths)}`);
  } finally {
    await cluster.stop();
  }
}

if (require.main === module) {
  main().catch((err: unknown) => {
    process.stderr.write(`trace failed: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  });
}

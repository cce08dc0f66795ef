/**
 * Trace of `docker run` on host B of a Flocker volume idle on host A (issue 23): the move
 * it makes, end to end. Two simulated hosts (the multihost harness), agents and plugins at
 * debug level (each log line with a sub-ms wall clock `t`); the merged timeline of A's and
 * B's plugin and agent, ms from the `docker run`:
 *
 *   node e2e/dist/trace-move.js [--runs 3] [--idle 1500]
 *
 * Needs root. docs/performance.md reads the move's critical path off its output.
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
    }
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

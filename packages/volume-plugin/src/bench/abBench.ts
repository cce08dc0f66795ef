/**
 * Interleaved A/B of two builds of the Docker plugin on ONE stack (issue 23): same dockerd, agent, control
 * service and load for both. B is this build (the stack's own plugin); A is another build's dist directory
 * (say a copy of dist/ taken before a change), started beside it as a second plugin of the same node under
 * its own driver name and state directory. Each pair runs, in alternating order, A then B (or B then A):
 * `docker run` with a new volume, with an existing one, and `docker volume create` + `docker volume rm`, and the
 * `docker volume rm` of the new volume its `docker run` used (rm_used: Flocker's lease kept idle there).
 * With --floor each round also runs the same with the `local` driver and the no-op plugin (noopPlugin.ts).
 *
 *   cp -r packages/volume-plugin/dist /tmp/plugin-a   # before the change
 *   node packages/volume-plugin/dist/bench/abBench.js --a /tmp/plugin-a --pairs 30 [--floor] --out ab.json
 *
 * Prints medians per side and the median of the paired differences (B − A), and how often B was faster.
 *
 * With --direct the pairs skip Docker and call each plugin's socket as Docker does: Create then at once Mount of a new
 * volume (timed from Create's call to Mount's answer: the plugin's and the agent's part of a new volume, without
 * dockerd's noise), then Unmount and Remove (Remove timed alone, on a volume mounted and let go), and the first Mount
 * of an existing volume mounted here and let go (Docker's first Mount of `docker run -v existing`: the lease and the
 * stale-mount check), its Unmount untimed.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { z } from 'zod';
import { callPlugin } from '../testing/callPlugin';
import { loadHelpers, startNoopPlugin, summarise, timed, waitForSpares, waitForVolumes, type Stack } from './bench';

/** What the A/B uses of the stack beyond the bench's Stack, checked at run time. */
const StackExtras = z.looseObject({
  agentConfig: z.string(),
  nodeUuid: z.string(),
  dockerd: z.looseObject({ socket: z.string() }),
});

/** The paired comparison of one scenario: medians of each side and of B − A, and how often B was faster. */
export interface Paired {
  pairs: number;
  a_median_ms: number;
  b_median_ms: number;
  diff_median_ms: number;
  b_faster: number;
}

export function paired(a: readonly number[], b: readonly number[]): Paired {
  const n = Math.min(a.length, b.length);
  const diffs = Array.from({ length: n }, (_, i) => (b[i] ?? NaN) - (a[i] ?? NaN));
  return {
    pairs: n,
    a_median_ms: summarise(a.slice(0, n)).median_ms,
    b_median_ms: summarise(b.slice(0, n)).median_ms,
    diff_median_ms: summarise(diffs).median_ms,
    b_faster: diffs.filter((d) => d < 0).length,
  };
}

/** The markdown table of paired comparisons by scenario (header, separator, one row each). */
export function pairedTable(results: Record<string, Paired>): string[] {
  return [
    '| scenario | A median | B median | median of B − A | B faster |',
    '|---|---|---|---|---|',
    ...Object.entries(results).map(
      ([s, r]) => `| ${s} | ${r.a_median_ms} | ${r.b_median_ms} | ${r.diff_median_ms} | ${r.b_faster}/${r.pairs} |`,
    ),
  ];
}

/** Starts another build's plugin (its dist/main.js) beside the stack's, as the same node, on its own socket. */
async function startPluginA(
  dist: string,
  driver: string,
  stack: z.infer<typeof StackExtras> & { root: string },
): Promise<{ stop(): void }> {
  const socket = `/run/docker/plugins/${driver}.sock`;
  const stateDir = path.join(stack.root, 'plugin-a');
  fs.mkdirSync(stateDir, { recursive: true });
  const log = fs.openSync(path.join(stack.root, 'plugin-a.log'), 'a');
  const repo = path.resolve(__dirname, '..', '..', '..', '..');
  const child = spawn(
    process.execPath,
    [
      path.join(dist, 'main.js'),
      '--agent-config',
      stack.agentConfig,
      '--socket',
      socket,
      '--docker-socket',
      stack.dockerd.socket,
      '--state-dir',
      stateDir,
      '--node-uuid',
      stack.nodeUuid,
      '--mount-timeout',
      '60',
    ],
    {
      stdio: ['ignore', log, log],
      // A copy outside the repository finds the workspace's packages and dependencies here.
      env: {
        ...process.env,
        NODE_PATH: [path.join(repo, 'node_modules'), path.join(repo, 'packages', 'volume-plugin', 'node_modules')].join(
          path.delimiter,
        ),
      },
    },
  );
  for (const t0 = Date.now(); ; await new Promise((r) => setTimeout(r, 50))) {
    if (child.exitCode !== null) throw new Error(`plugin A exited (${child.exitCode}); see ${stack.root}/plugin-a.log`);
    if (Date.now() - t0 > 30_000) throw new Error('plugin A did not answer within 30 s');
    if (fs.existsSync(socket) && (await callPlugin(socket, '/Plugin.Activate').catch(() => undefined))?.status === 200)
      break;
  }
  return {
    stop() {
      child.kill('SIGTERM');
      fs.rmSync(socket, { force: true });
    },
  };
}

async function main(): Promise<void> {
  const argv = await yargs(hideBin(process.argv))
    .option('a', { type: 'string', demandOption: true, describe: "build A: a copy of the plugin's dist directory" })
    .option('pairs', { type: 'number', default: 30, describe: 'A/B pairs per scenario (at least 20)' })
    .option('floor', { type: 'boolean', default: false, describe: 'also run local and the no-op plugin each round' })
    .option('out', { type: 'string', describe: 'where to write the JSON results' })
    .option('logs', { type: 'string', describe: "copy both plugins' and the agent's logs here before cleaning up" })
    .option('direct', {
      type: 'boolean',
      default: false,
      describe: "call the plugins' sockets, not docker (no --floor)",
    })
    .strict()
    .parseAsync();
  const pairs = Math.max(20, argv.pairs);
  const { FlockerDockerStack, TINY_IMAGE } = loadHelpers();
  const stack: Stack = await FlockerDockerStack.start({ driver: `flocker-b-${process.pid}` });
  const driverA = `flocker-a-${process.pid}`;
  const noopDriver = `flocker-noop-${process.pid}`;
  const samples: Record<string, number[]> = {};
  const push = (k: string, v: number) => (samples[k] ??= []).push(v);
  let pluginA: { stop(): void } | undefined;
  let noop: { stop(): void } | undefined;
  try {
    pluginA = await startPluginA(argv.a, driverA, { ...StackExtras.parse(stack), root: stack.root });
    if (argv.floor)
      noop = await startNoopPlugin(`/run/docker/plugins/${noopDriver}.sock`, path.join(stack.root, 'noop'));
    const sides: Record<string, string | undefined> = {
      a: driverA,
      b: stack.driver,
      ...(argv.floor ? { local: undefined, noop: noopDriver } : {}),
    };
    const run = (vol: string, driver?: string) =>
      stack.docker([
        'run',
        '--rm',
        '--network',
        'none',
        '-v',
        `${vol}:/data`,
        ...(driver ? ['--volume-driver', driver] : []),
        TINY_IMAGE,
        'true',
      ]);
    // Untimed before each timed run: the pool's spares are full, and the agent has destroyed the Flocker volumes
    // removed before (it does so after `docker volume rm` returns): else that lands on whichever run comes next,
    // and the order of the sides decides who pays. `volumes`: the Flocker volumes that exist at that point.
    const settled = async <T>(f: () => Promise<T>, volumes: number): Promise<T> => {
      await waitForSpares(path.join(stack.root, 'pool'), 2, 10 * 1024 ** 3);
      await waitForVolumes(path.join(stack.root, 'pool'), volumes);
      return f();
    };
    const existing = 2; // a-existing and b-existing (with --direct: a-direct-existing and b-direct-existing)
    if (argv.direct) {
      const sockets: Record<string, string> = {
        a: `/run/docker/plugins/${driverA}.sock`,
        b: `/run/docker/plugins/${stack.driver}.sock`,
      };
      const call = async (side: string, what: string, body: object) => {
        const r = await callPlugin(sockets[side] ?? '', `/VolumeDriver.${what}`, body);
        const err = (r.body as { Err?: string } | undefined)?.Err;
        if (r.status !== 200 || (err !== undefined && err !== '')) throw new Error(`${side} ${what}: ${String(err)}`);
      };
      // Each side's existing volume: made and mounted here once by its agent, let go.
      for (const side of ['a', 'b']) {
        const Name = `${side}-direct-existing`;
        await call(side, 'Create', { Name, Opts: {} });
        await call(side, 'Mount', { Name, ID: 'warm' });
        await call(side, 'Unmount', { Name, ID: 'warm' });
      }
      for (let i = 0; i < pairs; i++) {
        for (const side of i % 2 === 1 ? ['b', 'a'] : ['a', 'b']) {
          const Name = `${side}-direct-${i}`;
          await settled(async () => undefined, existing);
          push(
            `${side}_new`,
            await timed(async () => {
              await call(side, 'Create', { Name, Opts: {} });
              await call(side, 'Mount', { Name, ID: 'bench' });
            }),
          );
          await call(side, 'Unmount', { Name, ID: 'bench' });
          push(`${side}_rm`, await timed(() => call(side, 'Remove', { Name })));
          const Existing = { Name: `${side}-direct-existing`, ID: `bench-${i}` };
          await settled(async () => undefined, existing);
          push(`${side}_existing`, await timed(() => call(side, 'Mount', Existing)));
          await call(side, 'Unmount', Existing);
        }
      }
    } else {
      await stack.docker(['run', '--rm', '--network', 'none', TINY_IMAGE, 'true']);
      for (const [side, driver] of Object.entries(sides)) await run(`${side}-existing`, driver);
      for (let i = 0; i < pairs; i++) {
        // Alternate which side goes first, so a drift within a round does not favour one.
        const order = Object.keys(sides);
        if (i % 2 === 1) order.reverse();
        for (const side of order) {
          const driver = sides[side];
          const flocker = side === 'a' || side === 'b' ? 1 : 0;
          push(`${side}_new`, await settled(() => timed(() => run(`${side}-new-${i}`, driver)), existing));
          push(
            `${side}_existing`,
            await settled(() => timed(() => run(`${side}-existing`, driver)), existing + flocker),
          );
          const name = `${side}-cr-${i}`;
          await settled(
            () => stack.docker(['volume', 'create', ...(driver ? ['-d', driver] : []), name]),
            existing + flocker,
          );
          push(`${side}_rm`, await timed(() => stack.docker(['volume', 'rm', name])));
          // The rm of the volume its `docker run` used a moment ago (Flocker: its lease kept idle here).
          push(`${side}_rm_used`, await timed(() => stack.docker(['volume', 'rm', `${side}-new-${i}`])));
        }
      }
    }
  } finally {
    pluginA?.stop();
    if (argv.logs) {
      fs.mkdirSync(argv.logs, { recursive: true });
      for (const f of ['plugin-a.log', 'plugin.log', 'agent.log'])
        fs.cpSync(path.join(stack.root, f), path.join(argv.logs, f), { force: true });
    }
    await stack.close();
    noop?.stop();
  }
  const scenarios = argv.direct ? ['new', 'existing', 'rm'] : ['new', 'existing', 'rm', 'rm_used'];
  const results = Object.fromEntries(
    scenarios.map((s) => [s, paired(samples[`a_${s}`] ?? [], samples[`b_${s}`] ?? [])]),
  );
  const floor = argv.floor
    ? Object.fromEntries(
        scenarios.map((s) => [
          s,
          Object.fromEntries(['local', 'noop', 'a', 'b'].map((k) => [k, summarise(samples[`${k}_${s}`] ?? [])])),
        ]),
      )
    : undefined;
  if (argv.out) fs.writeFileSync(argv.out, JSON.stringify({ pairs, results, floor, raw_ms: samples }, null, 2) + '\n');
  const lines = [
    `A/B, ${pairs} interleaved pairs (ms): A = ${argv.a}, B = this build`,
    '',
    ...pairedTable(results),
    '',
  ];
  if (floor) {
    lines.push('| scenario | local | no-op plugin | A | B |', '|---|---|---|---|---|');
    for (const [s, r] of Object.entries(floor))
      lines.push(`| ${s} | ${r.local?.median_ms} | ${r.noop?.median_ms} | ${r.a?.median_ms} | ${r.b?.median_ms} |`);
    lines.push('');
  }
  process.stdout.write(lines.join('\n'));
}

if (require.main === module) {
  main().catch((err: unknown) => {
    process.stderr.write(`A/B bench failed: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  });
}

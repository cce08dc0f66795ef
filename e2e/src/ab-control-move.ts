/**
 * A/B of `docker run` on the host that does not hold a Flocker volume (the run moves it there through the lease
 * hand-over, the plugins keeping idle leases), between two control-api builds, in one cluster (issue 23; session 22,
 * helper LEASE-G: the requester's grant in the holder's release commit):
 *   node e2e/dist/ab-control-move.js --control-a DIR --control-b DIR [--pairs 20] [--block 4] [--out ab.json]
 * DIR: a copy of packages/control-api/dist (run with this repo's node_modules), so that both sides stay the builds
 * asked for while others rebuild the work tree. Blocks of --block runs (even: the volume ends where it started)
 * alternate A B B A A B ..., the control service restarted with the block's build, both nodes seen reporting again,
 * and two runs not timed after each start; each timed move run is followed on the same host by a run with a `local`
 * volume (the reference, met at the same load). Runs at the same place in adjacent A and B blocks are a pair.
 * Needs root. (ab-move-mount.ts does the same for two plugin builds.)
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import {
  defaultCommands,
  latencyStats as stats,
  REPO_ROOT,
  startCluster,
  TINY_IMAGE,
  VOLUME_DRIVER,
  type ClusterHost,
} from './cluster';

interface Args {
  controlA: string;
  controlB: string;
  pairs: number;
  block: number;
  out: string;
}

function parseArgs(argv: string[]): Args {
  let controlA: string | undefined;
  let controlB: string | undefined;
  const args = { pairs: 20, block: 4, out: 'ab-control-move.json' };
  for (let i = 0; i < argv.length; i += 2) {
    const [k, v] = [argv[i], argv[i + 1]];
    if (v === undefined) throw new Error(`${k} needs a value`);
    if (k === '--control-a') controlA = path.resolve(v);
    else if (k === '--control-b') controlB = path.resolve(v);
    else if (k === '--pairs') args.pairs = Number(v);
    else if (k === '--block') args.block = Number(v);
    else if (k === '--out') args.out = v;
    else throw new Error(`unknown option ${k}`);
  }
  if (controlA === undefined || controlB === undefined)
    throw new Error('--control-a DIR and --control-b DIR are needed');
  if (!(args.block > 0 && args.block % 2 === 0)) throw new Error('--block must be a positive even number');
  return { ...args, controlA, controlB };
}

/** The control service as a copied control-api dist runs it, with this repo's modules (as bench-move's). */
function controlFromDist(dist: string): typeof defaultCommands.control {
  return (settings) => {
    const argv = defaultCommands.control(settings);
    const main = argv.findIndex((x) => x.endsWith(path.join('packages', 'control-api', 'dist', 'main.js')));
    if (main < 0) throw new Error('controlFromDist: no control-api main.js in the default command');
    return [
      'env',
      `NODE_PATH=${path.join(REPO_ROOT, 'node_modules')}`,
      ...argv.slice(1, main),
      path.join(dist, 'main.js'),
      ...argv.slice(main + 1),
    ];
  };
}

async function timed(f: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await f();
  return performance.now() - t0;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const build: { current: 'A' | 'B' } = { current: 'A' };
  const [fromA, fromB] = [controlFromDist(args.controlA), controlFromDist(args.controlB)];
  // The plugins log each Mount's timing at debug level (read per block below).
  process.env.FLOCKER_LOG_LEVEL = 'debug';
  const mounts = { A: [] as Array<{ lease: number; wait: number }>, B: [] as Array<{ lease: number; wait: number }> };
  const cluster = await startCluster({
    hosts: 2,
    withDocker: true,
    commands: { control: (o) => (build.current === 'A' ? fromA(o) : fromB(o)) },
  });
  try {
    const [a, b] = cluster.hosts as [ClusterHost, ClusterHost];
    const vol = ['-v', 'ab-move:/data:nocopy', `--volume-driver=${VOLUME_DRIVER}`];
    const local = ['-v', 'ab-local:/data'];
    const run = (h: ClusterHost, v: string[]) => h.docker(['run', '--rm', ...v, TINY_IMAGE, 'true']);
    for (const h of [a, b]) await run(h, local);
    await run(a, vol); // creates the volume on A
    const blocks: Array<{ build: 'A' | 'B'; move: number[]; local: number[] }> = [];
    const blocksNeeded = 2 * Math.ceil(args.pairs / args.block);
    for (let blockNo = 0; blockNo < blocksNeeded; blockNo++) {
      build.current = Math.floor((blockNo + 1) / 2) % 2 === 0 ? 'A' : 'B';
      await cluster.killControl('SIGTERM');
      await cluster.startControl();
      // Both nodes reported to this start (a holder not reported since is not asked: its lease refuses at once).
      const deadline = Date.now() + 60_000;
      const alive = async (): Promise<number> =>
        (await cluster.client.waitForCluster(undefined, 0)).nodes.filter((n) => n.alive && n.version !== undefined)
          .length;
      while ((await alive().catch(() => 0)) < 2) {
        if (Date.now() > deadline) throw new Error('the nodes did not report after the restart');
        await new Promise((r) => setTimeout(r, 100));
      }
      const block = { build: build.current, move: [] as number[], local: [] as number[] };
      // Run i on B for even i (the volume, on A, moves there), on A for odd i; the first two not timed.
      for (let i = -2; i < args.block; i++) {
        const on = i % 2 === 0 ? b : a;
        const t = await timed(() => run(on, vol));
        const l = await timed(() => run(on, local));
        if (i < 0) continue;
        block.move.push(t);
        block.local.push(l);
      }
      blocks.push(block);
      // The plugins' own timing of each moving Mount (debug level): the lease (the hand-over, on the Mount's path)
      // and the wait for the mount after it; this block's lines only (the logs are emptied).
      for (const h of [a, b]) {
        const log = path.join(h.layout.logDir, 'plugin.log');
        const lines = fs.readFileSync(log, 'utf8').split('\n');
        fs.writeFileSync(log, '');
        for (const line of lines.filter((l) => l.includes('"mount timing"') && l.includes('"ab-move"'))) {
          const lease = /"lease_ms":([0-9.]+)/.exec(line)?.[1];
          const wait = /"wait_ms":([0-9.]+)/.exec(line)?.[1];
          if (line.includes('"lease":"acquired"') && lease !== undefined && wait !== undefined)
            mounts[block.build].push({ lease: Number(lease), wait: Number(wait) });
        }
      }
      process.stderr.write(
        `block ${blockNo} ${block.build}: move ${block.move.map((x) => x.toFixed(0)).join(' ')} | local ${block.local.map((x) => x.toFixed(0)).join(' ')}\n`,
      );
    }
    const of = (k: 'A' | 'B', m: 'move' | 'local') => blocks.filter((x) => x.build === k).flatMap((x) => x[m]);
    const pairs: number[] = [];
    const ratioPairs: number[] = [];
    for (let k = 0; k + 1 < blocks.length; k += 2) {
      const [x, y] = [blocks[k]!, blocks[k + 1]!];
      const [ba, bb] = x.build === 'A' ? [x, y] : [y, x];
      for (let i = 0; i < Math.min(ba.move.length, bb.move.length); i++) {
        pairs.push(bb.move[i]! - ba.move[i]!);
        ratioPairs.push(1000 * (bb.move[i]! / bb.local[i]! - ba.move[i]! / ba.local[i]!));
      }
    }
    const result = {
      date: new Date().toISOString(),
      controlA: args.controlA,
      controlB: args.controlB,
      block: args.block,
      A: { move: stats(of('A', 'move')), local: stats(of('A', 'local')) },
      B: { move: stats(of('B', 'move')), local: stats(of('B', 'local')) },
      pairs: stats(pairs),
      /** Per pair, B's move/local minus A's, times 1000. */
      ratioPairsX1000: stats(ratioPairs),
      bSlower: pairs.filter((x) => x > 0).length,
      /** The moving Mounts' lease step (the hand-over) and wait for the mount, as the plugin timed them. */
      mountLease: { A: stats(mounts.A.map((m) => m.lease)), B: stats(mounts.B.map((m) => m.lease)) },
      mountWait: { A: stats(mounts.A.map((m) => m.wait)), B: stats(mounts.B.map((m) => m.wait)) },
      raw: blocks,
    };
    fs.writeFileSync(args.out, JSON.stringify(result, null, 2) + '\n');
    const ratio = (k: 'A' | 'B') => (result[k].move.median_ms / result[k].local.median_ms).toFixed(3);
    console.log(
      [
        `A/B of \`docker run\` moving a volume (blocks of ${args.block}, control service restarted per block); A: ${args.controlA}, B: ${args.controlB}.`,
        '',
        '| build | move median (ms) | local median (ms) | move / local | n |',
        '|---|---|---|---|---|',
        `| A | ${result.A.move.median_ms} | ${result.A.local.median_ms} | ${ratio('A')} | ${result.A.move.n} |`,
        `| B | ${result.B.move.median_ms} | ${result.B.local.median_ms} | ${ratio('B')} | ${result.B.move.n} |`,
        '',
        `Moving Mounts as the plugin timed them (median, ms): lease (the hand-over) A ${result.mountLease.A.median_ms}, B ${result.mountLease.B.median_ms}; wait for the mount after it A ${result.mountWait.A.median_ms}, B ${result.mountWait.B.median_ms} (n ${mounts.A.length}, ${mounts.B.length}).`,
        '',
        `Paired (B − A): move median ${result.pairs.median_ms} ms over ${pairs.length} pairs, B slower in ${result.bSlower}/${pairs.length}; move/local ratio paired median ${(result.ratioPairsX1000.median_ms / 1000).toFixed(3)}.`,
      ].join('\n'),
    );
  } finally {
    await cluster.stop();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});

/**
 * The A/B loop of `docker run` moving a Flocker volume between two hosts, shared by the A/B tools of two builds
 * (ab-move-mount.ts: two volume-plugin builds; ab-control-move.ts: two control-api builds), and what they share with
 * bench-move.ts: option parsing, a control service run from a copied dist, timing.
 *
 * Blocks of `block` runs (even: the volume ends where it started) alternate A B B A A B ..., each begun by the tool's
 * restart of the block's build and two runs not timed; each timed move run is followed on the same host by a run with
 * a `local` volume (the issue's reference, met at the same load). Runs at the same place in adjacent A and B blocks
 * are a pair (same host and direction, same number of runs since the start).
 */
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import {
  type ClusterHost,
  defaultCommands,
  latencyStats as stats,
  REPO_ROOT,
  TINY_IMAGE,
  VOLUME_DRIVER,
} from './cluster';

/**
 * Reads `--name value` pairs: each name's handler takes its value; a name without a value, or one with no handler, is
 * an error (`usage` appended to the latter).
 */
export function parseOptions(argv: readonly string[], handlers: Record<string, (v: string) => void>, usage = ''): void {
  for (let i = 0; i < argv.length; i += 2) {
    const [k, v] = [argv[i] as string, argv[i + 1]];
    if (v === undefined) throw new Error(`${k} needs a value`);
    const handle = handlers[k];
    if (handle === undefined) throw new Error(`unknown option ${k}${usage !== '' ? `; usage: ${usage}` : ''}`);
    handle(v);
  }
}

/** The options of an A/B tool: the two builds' dist copies, and the loop's size. */
export interface AbOptions {
  a: string;
  b: string;
  pairs: number;
  block: number;
  out: string;
}

/**
 * `--<kind>-a DIR --<kind>-b DIR [--pairs 20] [--block 4] [--out <out>]` and the tool's own `extra` options.
 */
export function parseAbOptions(
  argv: readonly string[],
  kind: string,
  out: string,
  extra: Record<string, (v: string) => void> = {},
): AbOptions {
  let a: string | undefined;
  let b: string | undefined;
  const args = { pairs: 20, block: 4, out };
  parseOptions(argv, {
    [`--${kind}-a`]: (v) => (a = path.resolve(v)),
    [`--${kind}-b`]: (v) => (b = path.resolve(v)),
    '--pairs': (v) => (args.pairs = Number(v)),
    '--block': (v) => (args.block = Number(v)),
    '--out': (v) => (args.out = v),
    ...extra,
  });
  if (a === undefined || b === undefined) throw new Error(`--${kind}-a DIR and --${kind}-b DIR are needed`);
  if (!(args.block > 0 && args.block % 2 === 0)) throw new Error('--block must be a positive even number');
  return { ...args, a, b };
}

/** The control service as a copied control-api dist runs it, with this repo's modules. */
export function controlFromDist(dist: string): typeof defaultCommands.control {
  return (settings) => {
    const argv = defaultCommands.control(settings);
    const main = argv.findIndex((x) => x.endsWith(path.join('packages', 'control-api', 'dist', 'main.js')));
    if (main < 0) throw new Error('controlFromDist: no control-api main.js in the default command');
    // `env K=V ... node ...`: NODE_PATH joins the other variables.
    return [
      'env',
      `NODE_PATH=${path.join(REPO_ROOT, 'node_modules')}`,
      ...argv.slice(1, main),
      path.join(dist, 'main.js'),
      ...argv.slice(main + 1),
    ];
  };
}

/** How long `f` takes (ms). */
export async function timed(f: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await f();
  return performance.now() - t0;
}

export type Build = 'A' | 'B';

/** One block's timed runs. */
export interface MoveBlock {
  build: Build;
  move: number[];
  local: number[];
}

/** The moved volume's and the reference volume's `docker run` options. */
export const MOVED_VOLUME = ['-v', 'ab-move:/data:nocopy', `--volume-driver=${VOLUME_DRIVER}`];
export const LOCAL_VOLUME = ['-v', 'ab-local:/data'];

/** `docker run --rm` of the tiny image with `volume` on host `h`. */
export const runWith = (h: ClusterHost, volume: string[]) => h.docker(['run', '--rm', ...volume, TINY_IMAGE, 'true']);

/**
 * The loop over hosts `a` (where the volume starts) and `b`: `build.current` set to each block's build before
 * `restart` (which restarts what the tool compares, as that build), `afterBlock` after its runs (the tool's logs).
 * The local volume is made on both hosts first; `prepare` runs after that (the moved volume may be made there).
 */
export async function abMoveBlocks(options: {
  hosts: readonly [ClusterHost, ClusterHost];
  ab: AbOptions;
  build: { current: Build };
  prepare?: () => Promise<void>;
  restart: (blockNo: number) => Promise<void>;
  afterBlock?: (block: MoveBlock, blockNo: number) => void;
}): Promise<MoveBlock[]> {
  const [a, b] = options.hosts;
  for (const h of [a, b]) await runWith(h, LOCAL_VOLUME);
  await options.prepare?.();
  const blocks: MoveBlock[] = [];
  const blocksNeeded = 2 * Math.ceil(options.ab.pairs / options.ab.block);
  for (let blockNo = 0; blockNo < blocksNeeded; blockNo++) {
    options.build.current = Math.floor((blockNo + 1) / 2) % 2 === 0 ? 'A' : 'B';
    await options.restart(blockNo);
    const block: MoveBlock = { build: options.build.current, move: [], local: [] };
    // Run i on B for even i (the volume, on A, moves there), on A for odd i; the first two not timed.
    for (let i = -2; i < options.ab.block; i++) {
      const on = i % 2 === 0 ? b : a;
      const t = await timed(() => runWith(on, MOVED_VOLUME));
      const l = await timed(() => runWith(on, LOCAL_VOLUME));
      if (i < 0) continue;
      block.move.push(t);
      block.local.push(l);
    }
    blocks.push(block);
    options.afterBlock?.(block, blockNo);
    process.stderr.write(
      `block ${blockNo} ${block.build}: move ${block.move.map((x) => x.toFixed(0)).join(' ')} | local ${block.local.map((x) => x.toFixed(0)).join(' ')}\n`,
    );
  }
  return blocks;
}

/** Each build's moves and local runs, and the pairs' B − A (ms) and move/local ratio differences. */
export function abSummary(blocks: readonly MoveBlock[]) {
  const of = (k: Build, m: 'move' | 'local') => blocks.filter((x) => x.build === k).flatMap((x) => x[m]);
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
  return {
    A: { move: stats(of('A', 'move')), local: stats(of('A', 'local')) },
    B: { move: stats(of('B', 'move')), local: stats(of('B', 'local')) },
    pairs: stats(pairs),
    /** Per pair, B's move/local minus A's, times 1000. */
    ratioPairsX1000: stats(ratioPairs),
    bSlower: pairs.filter((x) => x > 0).length,
    pairCount: pairs.length,
  };
}

/** The summary's table (after `title`), then `middle` lines, then the paired line. */
export function abReport(title: string, s: ReturnType<typeof abSummary>, middle: readonly string[] = []): string {
  const ratio = (k: Build) => (s[k].move.median_ms / s[k].local.median_ms).toFixed(3);
  return [
    title,
    '',
    '| build | move median (ms) | local median (ms) | move / local | n |',
    '|---|---|---|---|---|',
    `| A | ${s.A.move.median_ms} | ${s.A.local.median_ms} | ${ratio('A')} | ${s.A.move.n} |`,
    `| B | ${s.B.move.median_ms} | ${s.B.local.median_ms} | ${ratio('B')} | ${s.B.move.n} |`,
    '',
    ...middle,
    `Paired (B − A): move median ${s.pairs.median_ms} ms over ${s.pairCount} pairs, B slower in ${s.bSlower}/${s.pairCount}; move/local ratio paired median ${(s.ratioPairsX1000.median_ms / 1000).toFixed(3)}.`,
  ].join('\n');
}

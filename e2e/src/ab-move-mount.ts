/**
 * A/B of `docker run` on the host that does not hold a Flocker volume (the run moves it there), between two
 * volume-plugin builds, in one cluster (issue 23; session 11, helper E2):
 *   node e2e/dist/ab-move-mount.js --plugin-a DIR --plugin-b DIR [--pairs 20] [--block 4] [--out ab.json]
 *     [--debug-plugin true]
 * DIR: a copy of packages/volume-plugin/dist (run with this repo's node_modules), so that both sides stay the
 * builds asked for while others rebuild the work tree. Blocks of --block runs (even: the volume ends where it
 * started) alternate A B B A A B ..., both hosts' plugins restarted with the block's build and two runs not timed
 * after each start; each timed move run is followed on the same host by a run with a `local` volume (the issue's
 * reference, met at the same load). Runs at the same place in adjacent A and B blocks are a pair (same host and
 * direction, same number of runs since the start). --debug-plugin: the plugins log at debug level, and the Mounts
 * answered by the kernel's table or the snapshot (first_mount_seen_by of 'mount timing') are counted per build (a
 * check, not for timing: debug logging costs). Needs root.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import {
  REPO_ROOT,
  latencyStats as stats,
  startCluster,
  TINY_IMAGE,
  VOLUME_DRIVER,
  type ClusterHost,
  type ComponentCommands,
} from './cluster';

interface Args {
  pluginA: string;
  pluginB: string;
  pairs: number;
  block: number;
  out: string;
  debugPlugin: boolean;
}

function parseArgs(argv: string[]): Args {
  let pluginA: string | undefined;
  let pluginB: string | undefined;
  const args = { pairs: 20, block: 4, out: 'ab-move-mount.json', debugPlugin: false };
  for (let i = 0; i < argv.length; i += 2) {
    const [k, v] = [argv[i], argv[i + 1]];
    if (v === undefined) throw new Error(`${k} needs a value`);
    if (k === '--plugin-a') pluginA = path.resolve(v);
    else if (k === '--plugin-b') pluginB = path.resolve(v);
    else if (k === '--pairs') args.pairs = Number(v);
    else if (k === '--block') args.block = Number(v);
    else if (k === '--out') args.out = v;
    else if (k === '--debug-plugin') args.debugPlugin = v === 'true';
    else throw new Error(`unknown option ${k}`);
  }
  if (pluginA === undefined || pluginB === undefined) throw new Error('--plugin-a DIR and --plugin-b DIR are needed');
  if (!(args.block > 0 && args.block % 2 === 0)) throw new Error('--block must be a positive even number');
  return { ...args, pluginA, pluginB };
}

/** The plugin as a copied dist runs it, with this repo's modules. */
function pluginFromDist(dist: string, debug: boolean): ComponentCommands['plugin'] {
  return ({ agentConfig, socket, dockerSocket }) => [
    'env',
    `NODE_PATH=${path.join(REPO_ROOT, 'node_modules')}`,
    ...(debug ? ['FLOCKER_LOG_LEVEL=debug'] : []),
    process.execPath,
    path.join(dist, 'main.js'),
    '--agent-config',
    agentConfig,
    '--socket',
    socket,
    '--docker-socket',
    dockerSocket,
  ];
}

async function timed(f: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await f();
  return performance.now() - t0;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const build: { current: 'A' | 'B' } = { current: 'A' };
  const [fromA, fromB] = [
    pluginFromDist(args.pluginA, args.debugPlugin),
    pluginFromDist(args.pluginB, args.debugPlugin),
  ];
  /** With --debug-plugin: how each build's move Mounts were answered. */
  const seenBy = { A: { kernel: 0, snapshot: 0, other: 0 }, B: { kernel: 0, snapshot: 0, other: 0 } };
  /** With --debug-plugin: each build's Mount calls of the moved volume, as the plugin timed them (ms). */
  const mountCalls = { A: [] as number[], B: [] as number[] };
  const cluster = await startCluster({
    hosts: 2,
    withDocker: true,
    commands: { plugin: (o) => (build.current === 'A' ? fromA(o) : fromB(o)) },
  });
  try {
    const [a, b] = cluster.hosts as [ClusterHost, ClusterHost];
    const vol = ['-v', 'ab-move:/data:nocopy', `--volume-driver=${VOLUME_DRIVER}`];
    const local = ['-v', 'ab-local:/data'];
    const run = (h: ClusterHost, v: string[]) => h.docker(['run', '--rm', ...v, TINY_IMAGE, 'true']);
    for (const h of [a, b]) await run(h, local);
    const blocks: Array<{ build: 'A' | 'B'; move: number[]; local: number[] }> = [];
    const blocksNeeded = 2 * Math.ceil(args.pairs / args.block);
    for (let blockNo = 0; blockNo < blocksNeeded; blockNo++) {
      build.current = Math.floor((blockNo + 1) / 2) % 2 === 0 ? 'A' : 'B';
      for (const h of [a, b]) await h.killPlugin('SIGTERM');
      for (const h of [a, b]) await h.startPlugin();
      if (blockNo === 0) await run(a, vol); // creates the volume on A
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
      if (args.debugPlugin) {
        for (const h of [a, b]) {
          const log = path.join(h.layout.logDir, 'plugin.log');
          const lines = fs.readFileSync(log, 'utf8').split('\n');
          fs.writeFileSync(log, ''); // this block's lines only, next time
          if (process.env.AB_KEEP_LOGS !== undefined)
            fs.writeFileSync(
              path.join(process.env.AB_KEEP_LOGS, `${blockNo}-${block.build}-${h.name}.log`),
              lines.join('\n'),
            );
          for (const line of lines.filter((l) => l.includes('"mount timing"') && l.includes('"ab-move"'))) {
            const by = /"first_mount_seen_by":"(kernel|snapshot)"/.exec(line)?.[1];
            seenBy[block.build][by === 'kernel' || by === 'snapshot' ? by : 'other']++;
          }
          for (const line of lines.filter((l) => l.includes('"plugin call"') && l.includes('VolumeDriver.Mount'))) {
            const ms = /"duration_ms":([0-9.]+)/.exec(line)?.[1];
            if (line.includes('ab-move') && ms !== undefined) mountCalls[block.build].push(Number(ms));
          }
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
      pluginA: args.pluginA,
      pluginB: args.pluginB,
      block: args.block,
      A: { move: stats(of('A', 'move')), local: stats(of('A', 'local')) },
      B: { move: stats(of('B', 'move')), local: stats(of('B', 'local')) },
      pairs: stats(pairs),
      /** Per pair, B's move/local minus A's, times 1000. */
      ratioPairsX1000: stats(ratioPairs),
      bSlower: pairs.filter((x) => x > 0).length,
      ...(args.debugPlugin ? { seenBy, mountCalls: { A: stats(mountCalls.A), B: stats(mountCalls.B) } } : {}),
      raw: blocks,
    };
    fs.writeFileSync(args.out, JSON.stringify(result, null, 2) + '\n');
    const ratio = (k: 'A' | 'B') => (result[k].move.median_ms / result[k].local.median_ms).toFixed(3);
    console.log(
      [
        `A/B of \`docker run\` moving a volume (blocks of ${args.block}, plugins restarted per block); A: ${args.pluginA}, B: ${args.pluginB}.`,
        '',
        '| build | move median (ms) | local median (ms) | move / local | n |',
        '|---|---|---|---|---|',
        `| A | ${result.A.move.median_ms} | ${result.A.local.median_ms} | ${ratio('A')} | ${result.A.move.n} |`,
        `| B | ${result.B.move.median_ms} | ${result.B.local.median_ms} | ${ratio('B')} | ${result.B.move.n} |`,
        '',
        ...(args.debugPlugin
          ? [
              `Mounts answered by (A, B): ${JSON.stringify(seenBy)}; Mount calls of the moved volume as the plugin timed them, median A ${stats(mountCalls.A).median_ms} ms (n ${mountCalls.A.length}), B ${stats(mountCalls.B).median_ms} ms (n ${mountCalls.B.length}).`,
              '',
            ]
          : []),
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

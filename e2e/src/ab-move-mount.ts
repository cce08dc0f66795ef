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
 * check, not for timing: debug logging costs). Needs root. (The loop: abMove.ts.)
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { abMoveBlocks, abReport, abSummary, type Build, MOVED_VOLUME, parseAbOptions, runWith } from './abMove';
import { REPO_ROOT, latencyStats as stats, startCluster, type ClusterHost, type ComponentCommands } from './cluster';

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

async function main(): Promise<void> {
  let debugPlugin = false;
  const args = parseAbOptions(process.argv.slice(2), 'plugin', 'ab-move-mount.json', {
    '--debug-plugin': (v) => (debugPlugin = v === 'true'),
  });
  const build: { current: Build } = { current: 'A' };
  const [fromA, fromB] = [pluginFromDist(args.a, debugPlugin), pluginFromDist(args.b, debugPlugin)];
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
    const blocks = await abMoveBlocks({
      hosts: [a, b],
      ab: args,
      build,
      restart: async (blockNo) => {
        for (const h of [a, b]) await h.killPlugin('SIGTERM');
        for (const h of [a, b]) await h.startPlugin();
        if (blockNo === 0) await runWith(a, MOVED_VOLUME); // creates the volume on A
      },
      afterBlock: (block, blockNo) => {
        if (!debugPlugin) return;
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
      },
    });
    const s = abSummary(blocks);
    const result = {
      date: new Date().toISOString(),
      pluginA: args.a,
      pluginB: args.b,
      block: args.block,
      A: s.A,
      B: s.B,
      pairs: s.pairs,
      /** Per pair, B's move/local minus A's, times 1000. */
      ratioPairsX1000: s.ratioPairsX1000,
      bSlower: s.bSlower,
      ...(debugPlugin ? { seenBy, mountCalls: { A: stats(mountCalls.A), B: stats(mountCalls.B) } } : {}),
      raw: blocks,
    };
    fs.writeFileSync(args.out, JSON.stringify(result, null, 2) + '\n');
    console.log(
      abReport(
        `A/B of \`docker run\` moving a volume (blocks of ${args.block}, plugins restarted per block); A: ${args.a}, B: ${args.b}.`,
        s,
        debugPlugin
          ? [
              `Mounts answered by (A, B): ${JSON.stringify(seenBy)}; Mount calls of the moved volume as the plugin timed them, median A ${stats(mountCalls.A).median_ms} ms (n ${mountCalls.A.length}), B ${stats(mountCalls.B).median_ms} ms (n ${mountCalls.B.length}).`,
              '',
            ]
          : [],
      ),
    );
  } finally {
    await cluster.stop();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});

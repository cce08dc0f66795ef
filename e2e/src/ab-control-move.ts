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
 * Needs root. (ab-move-mount.ts does the same for two plugin builds; the loop: abMove.ts.)
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  abMoveBlocks,
  abReport,
  abSummary,
  type Build,
  controlFromDist,
  MOVED_VOLUME,
  parseAbOptions,
  runWith,
} from './abMove';
import { latencyStats as stats, startCluster, type ClusterHost } from './cluster';

async function main(): Promise<void> {
  const args = parseAbOptions(process.argv.slice(2), 'control', 'ab-control-move.json');
  const build: { current: Build } = { current: 'A' };
  const [fromA, fromB] = [controlFromDist(args.a), controlFromDist(args.b)];
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
    const blocks = await abMoveBlocks({
      hosts: [a, b],
      ab: args,
      build,
      prepare: async () => {
        await runWith(a, MOVED_VOLUME); // creates the volume on A
      },
      restart: async () => {
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
      },
      // The plugins' own timing of each moving Mount (debug level): the lease (the hand-over, on the Mount's path)
      // and the wait for the mount after it; this block's lines only (the logs are emptied).
      afterBlock: (block) => {
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
      },
    });
    const s = abSummary(blocks);
    const result = {
      date: new Date().toISOString(),
      controlA: args.a,
      controlB: args.b,
      block: args.block,
      A: s.A,
      B: s.B,
      pairs: s.pairs,
      /** Per pair, B's move/local minus A's, times 1000. */
      ratioPairsX1000: s.ratioPairsX1000,
      bSlower: s.bSlower,
      /** The moving Mounts' lease step (the hand-over) and wait for the mount, as the plugin timed them. */
      mountLease: { A: stats(mounts.A.map((m) => m.lease)), B: stats(mounts.B.map((m) => m.lease)) },
      mountWait: { A: stats(mounts.A.map((m) => m.wait)), B: stats(mounts.B.map((m) => m.wait)) },
      raw: blocks,
    };
    fs.writeFileSync(args.out, JSON.stringify(result, null, 2) + '\n');
    console.log(
      abReport(
        `A/B of \`docker run\` moving a volume (blocks of ${args.block}, control service restarted per block); A: ${args.a}, B: ${args.b}.`,
        s,
        [
          `Moving Mounts as the plugin timed them (median, ms): lease (the hand-over) A ${result.mountLease.A.median_ms}, B ${result.mountLease.B.median_ms}; wait for the mount after it A ${result.mountWait.A.median_ms}, B ${result.mountWait.B.median_ms} (n ${mounts.A.length}, ${mounts.B.length}).`,
          '',
        ],
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

/**
 * A/B of the dataset agent's CPU per operation (issue 23, session 12): two agent builds on one 2-host cluster
 * (no Docker), restarted with A or B every block (A B B A ...), so that both meet the same load. Per block it
 * measures both agents' CPU (their threads' schedstat, ns) over `--block` operations after two untimed ones, and
 * each operation's time:
 *
 *   node e2e/dist/ab-agent-cpu.js --agent-b DIST [--agent-a DIST] [--op move|create-delete] [--pairs 20] [--block 4]
 *
 * `move`: the API move (POST primary, until the control service shows it mounted there). `create-delete`: a
 * dataset created on host a until mounted there, then deleted until no node reports it: the agent's claim, mount,
 * report, unmount and destroy of a volume of its own (what `docker volume create` + `rm` ask of it).
 * DIST is a copy of packages/dataset-agent/dist (say of an older commit, built in a git worktree), run with this
 * repo's node_modules. `--prof DIR` runs build A's agents with --cpu-prof into DIR (a profile of the warm agent).
 */
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import type { FlockerClient } from '@flocker/api';
import {
  agentFromDist,
  defaultCommands,
  startCluster,
  TEST_DATASET_SIZE,
  waitForMountedOn,
  type Cluster,
  type ClusterHost,
} from './cluster';
import { cpuMsOfThreads } from './trace-move';

type Op = 'move' | 'create-delete';

interface Args {
  agentA?: string;
  agentB: string;
  op: Op;
  pairs: number;
  block: number;
  prof?: string;
  /** --require FILE: build A's agents preload FILE (a diagnostic hook, e.g. one that counts spawns). */
  preload?: string;
}

function parseArgs(argv: string[]): Args {
  let agentA: string | undefined;
  let agentB: string | undefined;
  let prof: string | undefined;
  let preload: string | undefined;
  let op: Op = 'move';
  let pairs = 20;
  let block = 4;
  for (let i = 0; i < argv.length; i += 2) {
    const [k, v] = [argv[i], argv[i + 1]];
    if (v === undefined) throw new Error(`${k} needs a value`);
    if (k === '--agent-a') agentA = path.resolve(v);
    else if (k === '--agent-b') agentB = path.resolve(v);
    else if (k === '--prof') prof = path.resolve(v);
    else if (k === '--require') preload = path.resolve(v);
    else if (k === '--pairs') pairs = Number(v);
    else if (k === '--block') block = Number(v);
    else if (k === '--op' && (v === 'move' || v === 'create-delete')) op = v;
    else
      throw new Error(
        'usage: ab-agent-cpu.js --agent-b DIST [--agent-a DIST] [--op move|create-delete] [--pairs N] [--block N] [--prof DIR] [--require FILE]',
      );
  }
  if (agentB === undefined) throw new Error('--agent-b DIST is needed');
  if (!(pairs >= 1 && block >= 2 && block % 2 === 0)) throw new Error('--pairs >= 1, --block even >= 2');
  return {
    agentB,
    op,
    pairs,
    block,
    ...(agentA !== undefined ? { agentA } : {}),
    ...(prof !== undefined ? { prof } : {}),
    ...(preload !== undefined ? { preload } : {}),
  };
}

const median = (xs: readonly number[]): number => {
  const s = xs.filter(Number.isFinite).sort((x, y) => x - y);
  const m = s.length >> 1;
  return s.length === 0 ? NaN : s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

/** Waits until no live node reports `datasetId` (long-poll). */
async function waitGoneEverywhere(client: FlockerClient, datasetId: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  let since: string | undefined;
  while (Date.now() < deadline) {
    const s = await client.waitForCluster(since, 5_000);
    since = s.generation;
    if (!s.nodes.some((n) => n.manifestations.some((m) => m.dataset_id === datasetId))) return;
  }
  throw new Error(`dataset ${datasetId} still reported after 30 s`);
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const build: { current: 'A' | 'B' } = { current: 'A' };
  const fromA = args.agentA !== undefined ? agentFromDist(args.agentA) : defaultCommands.agent;
  const fromB = agentFromDist(args.agentB);
  const profiled = (o: { config: string }): string[] => {
    const argv = fromA(o);
    const node = argv.indexOf(process.execPath);
    const flags = [
      ...(args.prof !== undefined ? ['--cpu-prof', '--cpu-prof-interval=250', `--cpu-prof-dir=${args.prof}`] : []),
      ...(args.preload !== undefined ? ['--require', args.preload] : []),
      // A2_NODE_FLAGS: more node flags for build A's agents (diagnostics, e.g. --perf-basic-prof for perf).
      ...(process.env.A2_NODE_FLAGS ?? '').split(' ').filter((f) => f !== ''),
    ];
    return [...argv.slice(0, node + 1), ...flags, ...argv.slice(node + 1)];
  };
  const cluster: Cluster = await startCluster({
    hosts: 2,
    // A2_BASEDIR: keep the cluster's directory (its agents' logs) there.
    ...(process.env.A2_BASEDIR !== undefined ? { baseDir: process.env.A2_BASEDIR } : {}),
    commands: {
      agent: (o) =>
        build.current === 'B'
          ? fromB(o)
          : args.prof !== undefined || args.preload !== undefined || process.env.A2_NODE_FLAGS !== undefined
            ? profiled(o)
            : fromA(o),
    },
  });
  try {
    const [a, b] = cluster.hosts as [ClusterHost, ClusterHost];
    const [ua, ub] = [a.requireNodeUuid(), b.requireNodeUuid()];
    const client = cluster.client;
    const moving =
      args.op === 'move'
        ? await client.createDataset({ primary: ua, maximum_size: TEST_DATASET_SIZE, metadata: { name: 'ab-cpu' } })
        : undefined;
    if (moving !== undefined) await waitForMountedOn(client, moving.dataset_id, ua);
    let at = ua;
    const op = async (): Promise<number> => {
      const t0 = performance.now();
      if (moving !== undefined) {
        at = at === ua ? ub : ua;
        await client.updateDataset(moving.dataset_id, { primary: at });
        await waitForMountedOn(client, moving.dataset_id, at);
      } else {
        const d = await client.createDataset({ primary: ua, maximum_size: TEST_DATASET_SIZE });
        await waitForMountedOn(client, d.dataset_id, ua);
        await client.deleteDataset(d.dataset_id);
        await waitGoneEverywhere(client, d.dataset_id);
      }
      return performance.now() - t0;
    };
    const blocks: Array<{ build: 'A' | 'B'; times: number[]; cpu: number }> = [];
    for (let n = 0; n < args.pairs * 2; n++) {
      build.current = Math.floor((n + 1) / 2) % 2 === 0 ? 'A' : 'B';
      for (const h of [a, b]) await h.killAgent('SIGTERM');
      for (const h of [a, b]) await h.startAgent();
      if (moving !== undefined) await waitForMountedOn(client, moving.dataset_id, at);
      for (let i = 0; i < 2; i++) await op();
      const pids = [a.agentPid() ?? NaN, b.agentPid() ?? NaN];
      const cpu0 = pids.map(cpuMsOfThreads);
      const times: number[] = [];
      for (let i = 0; i < args.block; i++) times.push(await op());
      const each = pids.map((p, i) => (cpuMsOfThreads(p) - cpu0[i]!) / args.block);
      const cpu = each[0]! + each[1]!;
      blocks.push({ build: build.current, times, cpu });
      process.stderr.write(
        `block ${n} ${build.current}: op median ${median(times).toFixed(1)} ms; agents' CPU ${cpu.toFixed(2)} ms/op (a ${each[0]!.toFixed(2)}, b ${each[1]!.toFixed(2)})\n`,
      );
    }
    const pairs = { time: [] as number[], cpu: [] as number[] };
    const side = { A: { time: [] as number[], cpu: [] as number[] }, B: { time: [] as number[], cpu: [] as number[] } };
    for (const x of blocks) {
      side[x.build].time.push(...x.times);
      side[x.build].cpu.push(x.cpu);
    }
    for (let k = 0; k + 1 < blocks.length; k += 2) {
      const [x, y] = [blocks[k]!, blocks[k + 1]!];
      const [ba, bb] = x.build === 'A' ? [x, y] : [y, x];
      pairs.cpu.push(bb.cpu - ba.cpu);
      pairs.time.push(median(bb.times) - median(ba.times));
    }
    const f = (v: number): string => v.toFixed(2);
    console.log(
      [
        `A/B of the dataset agents' CPU per ${args.op} (both agents, schedstat), ${args.pairs} block pairs of ${args.block} ops; A: ${args.agentA ?? 'this build'}, B: ${args.agentB}.`,
        '',
        '| build | op median (ms) | agents CPU per op, median of blocks (ms) |',
        '|---|---|---|',
        `| A | ${f(median(side.A.time))} | ${f(median(side.A.cpu))} |`,
        `| B | ${f(median(side.B.time))} | ${f(median(side.B.cpu))} |`,
        '',
        `Paired blocks (B − A): CPU ${f(median(pairs.cpu))} ms/op, B more in ${pairs.cpu.filter((x) => x > 0).length}/${pairs.cpu.length}; op time (block medians) ${f(median(pairs.time))} ms, B slower in ${pairs.time.filter((x) => x > 0).length}/${pairs.time.length}.`,
      ].join('\n'),
    );
  } finally {
    await cluster.stop();
  }
}

if (require.main === module) {
  main().catch((e: unknown) => {
    console.error(e);
    process.exit(1);
  });
}

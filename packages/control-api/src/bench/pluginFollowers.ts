/**
 * K plugin-like followers of the whole cluster (issue 23, session 13): what each change costs the
 * control service and each follower, with the followers long-polling whole snapshots (the plugin
 * before session 13: `GET /v1/agent/cluster?since=G`) or watching the whole cluster by deltas
 * (`GET /v1/agent/cluster/watch?whole=true`). One control service (this build) seeded with D
 * datasets over N nodes; blocks of C dataset moves, the two modes in ABBA order on the same service.
 * Per block: the service's CPU per change (/proc utime+stime), bytes received per change per
 * follower, and the time until every follower had the change. Followers count bytes and read the
 * generation only (no parse: the bench process is not a plugin); what a plugin spends parsing an
 * answer is measured apart (zod, as ClusterWatcher's client parses it).
 *   node packages/control-api/dist/bench/pluginFollowers.js [--datasets 10000] [--followers 100]
 */
import { Agent, request } from 'node:http';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { applyClusterDelta, ClusterDelta, ClusterSnapshot, FlockerClient } from '@flocker/api';
import { pooled, startServer, stopServer } from './harness';
import { syntheticReport } from './reports';

type Mode = 'poll' | 'watch';

interface Follower {
  generation: string | undefined;
  bytes: number;
  stop(): void;
}

const GENERATION = /"generation":"([^"]+)"/;
const agent = new Agent({ keepAlive: true, maxSockets: Infinity });

/** A whole-cluster long-poller: each answer read whole, its generation taken from its head. */
function poller(url: string): Follower {
  const f: Follower = { generation: undefined, bytes: 0, stop: () => undefined };
  let stopped = false;
  let current: ReturnType<typeof request> | undefined;
  const once = (): void => {
    if (stopped) return;
    const q = f.generation === undefined ? 'timeout_ms=0' : `since=${f.generation}&timeout_ms=25000`;
    current = request(`${url}/v1/agent/cluster?${q}`, { agent }, (res) => {
      let head = '';
      res.on('data', (c: Buffer) => {
        f.bytes += c.length;
        if (head.length < 200) head += c.toString('utf8', 0, Math.min(c.length, 200));
      });
      res.on('end', () => {
        f.generation = GENERATION.exec(head)?.[1] ?? f.generation;
        once();
      });
    });
    current.on('error', () => {
      if (!stopped) setTimeout(once, 100);
    });
    current.end();
  };
  f.stop = () => {
    stopped = true;
    current?.destroy();
  };
  once();
  return f;
}

/** A whole-cluster watcher: each line's generation taken from its head. */
function watcher(url: string): Follower {
  const f: Follower = { generation: undefined, bytes: 0, stop: () => undefined };
  /** The start of the line being read: its generation is in its head (each chunk searched once). */
  let head = '';
  const req = request(`${url}/v1/agent/cluster/watch?whole=true`, { agent }, (res) => {
    res.setEncoding('utf8');
    res.on('data', (c: string) => {
      f.bytes += Buffer.byteLength(c);
      let start = 0;
      for (let nl = c.indexOf('\n'); nl >= 0; nl = c.indexOf('\n', start)) {
        if (head.length < 300) head += c.slice(start, Math.min(nl, start + 300 - head.length));
        if (head !== '') f.generation = GENERATION.exec(head)?.[1] ?? f.generation;
        head = '';
        start = nl + 1;
      }
      if (head.length < 300) head += c.slice(start, start + 300 - head.length);
    });
  });
  req.on('error', () => undefined);
  req.end();
  f.stop = () => req.destroy();
  return f;
}

/** The process's CPU so far (user + system), in ms. */
function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
  // utime and stime are fields 14 and 15 of stat (11 and 12 after the command); clock ticks of 10 ms.
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

async function until(what: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (!what()) {
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 2));
  }
  return true;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : ((s[(s.length - 1) >> 1] as number) + (s[s.length >> 1] as number)) / 2;
};
const r1 = (x: number): number => Math.round(x * 10) / 10;

async function main(): Promise<void> {
  const o = await yargs(hideBin(process.argv))
    .option('datasets', { type: 'number', default: 10_000 })
    .option('nodes', { type: 'number', default: 100 })
    .option('followers', { type: 'number', default: 100 })
    .option('changes', { type: 'number', default: 20, describe: 'Dataset moves per block' })
    .option('rounds', { type: 'number', default: 2, describe: 'ABBA rounds (each: watch, poll, poll, watch)' })
    .strict()
    .parse();
  const dir = mkdtempSync(path.join(tmpdir(), 'plugin-followers-'));
  const { child, url } = await startServer(dir, []);
  const pid = child.pid as number;
  try {
    const client = new FlockerClient({ baseUrl: url, timeoutMs: 60_000 });
    const nodes = Array.from({ length: o.nodes }, () => randomUUID());
    const owned = nodes.map(() => [] as string[]);
    await pooled(
      [...nodes.keys()],
      32,
      async (i) => void (await client.reportNodeState(syntheticReport(i, nodes[i] as string, []))),
    );
    const t0 = performance.now();
    const ids: string[] = [];
    /** Each dataset's primary (node index), so each move is to another node. */
    const primaryOf = new Map<string, number>();
    await pooled(
      Array.from({ length: o.datasets }, (_, k) => k),
      64,
      async (k) => {
        const id = randomUUID();
        await client.createDataset({
          primary: nodes[k % o.nodes] as string,
          dataset_id: id,
          metadata: { name: `vol-${k}` },
        });
        owned[k % o.nodes]?.push(id);
        ids.push(id);
        primaryOf.set(id, k % o.nodes);
      },
    );
    await pooled(
      [...nodes.keys()],
      32,
      async (i) => void (await client.reportNodeState(syntheticReport(i, nodes[i] as string, owned[i] ?? []))),
    );
    const snapshotBytes = Buffer.byteLength(JSON.stringify(await client.waitForCluster(undefined, 0)));
    console.log(
      `seeded ${o.datasets} datasets over ${o.nodes} nodes in ${r1((performance.now() - t0) / 1000)} s; whole snapshot ${r1(snapshotBytes / 1e6)} MB`,
    );

    let move = 0;
    const moveOne = async (): Promise<void> => {
      const id = ids[move++ % ids.length] as string;
      const to = ((primaryOf.get(id) ?? 0) + 1) % o.nodes;
      primaryOf.set(id, to);
      await client.updateDataset(id, { primary: nodes[to] });
    };
    // What a plugin spends on one answer: the whole snapshot parsed (JSON + zod), or a move's delta parsed and merged.
    const wholeBody = JSON.stringify(await client.waitForCluster(undefined, 0));
    let held = ClusterSnapshot.parse(JSON.parse(wholeBody));
    const parseWhole: number[] = [];
    for (let i = 0; i < 5; i++) {
      const t = performance.now();
      ClusterSnapshot.parse(JSON.parse(wholeBody));
      parseWhole.push(performance.now() - t);
    }
    const parseDelta: number[] = [];
    for (let i = 0; i < 5; i++) {
      await moveOne();
      const answer = await client.waitForClusterDelta(held.generation, 0, undefined);
      const line = JSON.stringify(answer);
      const t = performance.now();
      const merged = applyClusterDelta(held, ClusterDelta.parse(JSON.parse(line)));
      parseDelta.push(performance.now() - t);
      if (merged === undefined) throw new Error('the delta does not merge');
      held = merged;
    }
    console.log(
      `a plugin's parse per change: whole snapshot ${r1(median(parseWhole))} ms (JSON + zod), delta ${Math.round(median(parseDelta) * 1000) / 1000} ms (JSON + zod + merge)`,
    );

    const block = async (
      mode: Mode,
    ): Promise<{ cpuPerChange: number; bytesPerChangePerFollower: number; fanout: number }> => {
      const followers = Array.from({ length: o.followers }, () => (mode === 'poll' ? poller(url) : watcher(url)));
      if (!(await until(() => followers.every((f) => f.generation !== undefined), 120_000)))
        throw new Error(`${mode}: followers did not all get a first answer`);
      await new Promise((r) => setTimeout(r, 300));
      const bytes0 = followers.reduce((n, f) => n + f.bytes, 0);
      const cpu0 = cpuMs(pid);
      const fanouts: number[] = [];
      for (let c = 0; c < o.changes; c++) {
        const before = followers.map((f) => f.generation);
        const t = performance.now();
        await moveOne();
        if (!(await until(() => followers.every((f, i) => f.generation !== before[i]), 60_000)))
          throw new Error(`${mode}: a change did not reach every follower`);
        fanouts.push(performance.now() - t);
      }
      const cpu = cpuMs(pid) - cpu0;
      const bytes = followers.reduce((n, f) => n + f.bytes, 0) - bytes0;
      for (const f of followers) f.stop();
      await new Promise((r) => setTimeout(r, 500));
      return {
        cpuPerChange: cpu / o.changes,
        bytesPerChangePerFollower: bytes / o.changes / o.followers,
        fanout: median(fanouts),
      };
    };
    const results: Record<Mode, Array<Awaited<ReturnType<typeof block>>>> = { poll: [], watch: [] };
    for (let r = 0; r < o.rounds; r++) {
      for (const mode of ['watch', 'poll', 'poll', 'watch'] as const) {
        const res = await block(mode);
        results[mode].push(res);
        console.log(
          `round ${r + 1} ${mode}: service CPU ${r1(res.cpuPerChange)} ms/change, ${r1(res.bytesPerChangePerFollower / 1024)} KiB/change/follower, all followers had it after ${r1(res.fanout)} ms (median)`,
        );
      }
    }
    console.log(
      `\n${o.followers} whole-cluster followers, ${o.datasets} datasets, ${o.nodes} nodes, ${o.changes} moves per block:`,
    );
    console.log('| mode | service CPU ms/change (median of blocks) | KiB/change/follower | fan-out ms |');
    console.log('|---|---|---|---|');
    for (const mode of ['poll', 'watch'] as const) {
      const rs = results[mode];
      console.log(
        `| ${mode} | ${r1(median(rs.map((x) => x.cpuPerChange)))} | ${r1(median(rs.map((x) => x.bytesPerChangePerFollower)) / 1024)} | ${r1(median(rs.map((x) => x.fanout)))} |`,
      );
    }
  } finally {
    await stopServer(child);
    agent.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});

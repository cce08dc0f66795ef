/**
 * The service's own cost of a change reaching every watching agent (issue 23): N raw watches (`GET
 * /v1/agent/cluster/watch`), read by plain sockets that only look for the delta's bytes — none of the simulated
 * agents' JSON and schema parsing, which in the scale bench costs the 2 shared cores ~2.5x what the service spends
 * (session 24) — then a configured snapshot (a change in every view), timed until the last socket has its line.
 * Per fan-out: that wall time, the service's main-thread CPU and run-queue wait meanwhile, and this process's CPU.
 * `--dist-b`: another build's control-api dist, run in alternating rounds with this one (A/B in one run, same load).
 *
 *   node dist/bench/watchFanout.js --agents 10000 --fanouts 5 --rounds 3 [--dist-b /tmp/other/packages/control-api/dist]
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { FlockerClient } from '@flocker/api';
import { pooled, startServer, stopServer } from './harness';
import { syntheticReport } from './reports';

/** A thread's CPU time and run-queue wait so far (ms), from /proc/<pid>/task/<tid>/schedstat. */
function sched(pid: number, tid = pid): { cpu: number; wait: number } {
  const [cpu, wait] = readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ').map(Number);
  return { cpu: (cpu ?? NaN) / 1e6, wait: (wait ?? NaN) / 1e6 };
}

interface FanoutSample {
  variant: string;
  wall_ms: number;
  server_cpu_ms: number;
  server_runq_ms: number;
  readers_cpu_ms: number;
}

const DELTA = Buffer.from('"delta":true');

/** N watches on raw sockets; `armed` marks when each next receives a delta line. */
class Watchers {
  private readonly sockets: Socket[] = [];
  private reachedAt = new Map<number, number>();
  private armed = false;
  private ready = 0;

  static async open(url: string, nodes: readonly string[]): Promise<Watchers> {
    const w = new Watchers();
    const { hostname, port } = new URL(url);
    await pooled([...nodes.keys()], 256, async (i) => {
      await new Promise<void>((resolve, reject) => {
        const s = connect({ host: hostname, port: Number(port) });
        let first = true;
        s.once('error', reject);
        s.on('data', (chunk: Buffer) => {
          if (first) {
            first = false;
            w.ready++;
            resolve();
          }
          if (w.armed && !w.reachedAt.has(i) && chunk.includes(DELTA)) w.reachedAt.set(i, performance.now());
        });
        s.write(`GET /v1/agent/cluster/watch?node=${nodes[i] as string} HTTP/1.1\r\nHost: ${hostname}\r\n\r\n`);
        w.sockets.push(s);
      });
    });
    return w;
  }

  arm(): void {
    this.reachedAt = new Map();
    this.armed = true;
  }

  /** Resolves with when the last watcher had its delta (performance.now()), or NaN at the deadline. */
  async allReached(deadlineMs: number): Promise<number> {
    const until = performance.now() + deadlineMs;
    while (this.reachedAt.size < this.sockets.length && performance.now() < until)
      await new Promise((r) => setTimeout(r, 5));
    this.armed = false;
    return this.reachedAt.size < this.sockets.length ? NaN : Math.max(...this.reachedAt.values());
  }

  close(): void {
    for (const s of this.sockets) s.destroy();
  }
}

async function round(variant: string, dist: string | undefined, o: Options): Promise<FanoutSample[]> {
  const dir = mkdtempSync(path.join(tmpdir(), 'watch-fanout-'));
  const server = await startServer(dir, [], ['--max-connections', String(o.agents + 1000)], dist);
  const out: FanoutSample[] = [];
  try {
    const client = new FlockerClient({ baseUrl: server.url, timeoutMs: 120_000 });
    const nodes = Array.from({ length: o.agents }, () => randomUUID());
    const datasets = nodes.map(() => [] as string[]);
    await pooled(
      [...nodes.keys()],
      64,
      async (i) => void (await client.reportNodeState(syntheticReport(i, nodes[i] as string, []))),
    );
    // Each node the primary of `perAgent` datasets, mounted there (a view as in the scale bench, smaller).
    await pooled([...Array(o.agents * o.perAgent).keys()], 64, async (k) => {
      const i = k % o.agents;
      const d = await client.createDataset({ primary: nodes[i] as string });
      datasets[i]?.push(d.dataset_id);
    });
    await pooled(
      [...nodes.keys()],
      64,
      async (i) => void (await client.reportNodeState(syntheticReport(i, nodes[i] as string, datasets[i] ?? []))),
    );
    const some = datasets[0]?.[0] ?? (await client.createDataset({ primary: nodes[0] as string })).dataset_id;
    const watchers = await Watchers.open(server.url, nodes);
    try {
      await new Promise((r) => setTimeout(r, 1000));
      const pid = server.child.pid as number;
      for (let f = 0; f < o.fanouts; f++) {
        watchers.arm();
        const s0 = sched(pid);
        const r0 = process.cpuUsage();
        const t0 = performance.now();
        await client.createSnapshot({ dataset_id: some });
        const last = await watchers.allReached(30_000);
        const s1 = sched(pid);
        const r1 = process.cpuUsage(r0);
        const sample: FanoutSample = {
          variant,
          wall_ms: Math.round(last - t0),
          server_cpu_ms: Math.round(s1.cpu - s0.cpu),
          server_runq_ms: Math.round(s1.wait - s0.wait),
          readers_cpu_ms: Math.round((r1.user + r1.system) / 1000),
        };
        out.push(sample);
        process.stderr.write(`${JSON.stringify(sample)}\n`);
        await new Promise((r) => setTimeout(r, 500));
      }
    } finally {
      watchers.close();
    }
  } finally {
    await stopServer(server.child);
    rmSync(dir, { recursive: true, force: true });
  }
  return out;
}

interface Options {
  agents: number;
  perAgent: number;
  fanouts: number;
}

const median = (xs: number[]): number => {
  const s = xs.filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
  return s.length === 0 ? NaN : (s[Math.floor((s.length - 1) / 2)] as number);
};

async function main(): Promise<void> {
  const argv = await yargs(hideBin(process.argv))
    .option('agents', { type: 'number', default: 10_000 })
    .option('datasets-per-agent', { type: 'number', default: 1 })
    .option('fanouts', { type: 'number', default: 5, describe: 'Fan-outs per round' })
    .option('rounds', {
      type: 'number',
      default: 1,
      describe: 'Rounds (each variant once per round, alternating first)',
    })
    .option('dist-b', { type: 'string', describe: "Another build's control-api dist, run in alternating rounds" })
    .strict()
    .parse();
  const o: Options = { agents: argv.agents, perAgent: argv['datasets-per-agent'], fanouts: argv.fanouts };
  const variants: [string, string | undefined][] = [['A', undefined]];
  if (argv['dist-b'] !== undefined) variants.push(['B', path.resolve(argv['dist-b'])]);
  const all: FanoutSample[] = [];
  for (let r = 0; r < argv.rounds; r++)
    for (const [name, dist] of r % 2 === 0 ? variants : [...variants].reverse())
      all.push(...(await round(name, dist, o)));
  for (const [name] of variants) {
    const mine = all.filter((s) => s.variant === name);
    const of = (k: keyof Omit<FanoutSample, 'variant'>): string =>
      `${median(mine.map((s) => s[k]))} (${mine.map((s) => s[k]).join(' ')})`;
    process.stdout.write(
      `${name}: ${o.agents} watches, fan-out wall ms median ${of('wall_ms')}; service main thread CPU ms ${of('server_cpu_ms')}; ` +
        `its run-queue wait ms ${of('server_runq_ms')}; readers' CPU ms ${of('readers_cpu_ms')}\n`,
    );
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`watchFanout failed: ${String(err)}\n`);
    process.exit(1);
  },
);

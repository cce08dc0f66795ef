/**
 * Failover benchmark on the simulated cluster (issue 16):
 *   node e2e/dist/bench-failover.js --out <json> [--failover-runs 10] [--node-timeout 3] [--lease-grace 1]
 * A container on one host holds a Flocker volume (so that host holds its lease). Then that host
 * - is killed: its agent, plugin and dockerd SIGKILLed (the container keeps running), or
 * - is partitioned: its network link goes down, every process keeps running;
 * and `docker run --rm -v VOL:/data --volume-driver=flocker tiny true` is tried on the other host
 * every 200 ms (no operator action: no lease DELETE, no API move) until it succeeds.
 * Measured: from the fault to that first success. Bound: T + G + 2 s (T = --node-timeout,
 * G = --lease-grace of the control service). Between runs the faulty host comes back (reboot
 * after a kill, heal after a partition) and the next run faults the other host, so the volume
 * goes back and forth. Prints a markdown section; needs root.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import { randomUUID } from 'node:crypto';
import {
  latencyStats,
  sleep,
  startCluster,
  TINY_IMAGE,
  VOLUME_DRIVER,
  waitFor,
  type Cluster,
  type ClusterHost,
  type LatencyStats,
} from './cluster';
import { errorMessage } from '@flocker/runtime';

interface Args {
  out: string;
  failoverRuns: number;
  nodeTimeout: number;
  leaseGrace: number;
}

const USAGE = 'usage: bench-failover.js --out <json> [--failover-runs N] [--node-timeout S] [--lease-grace S]';

export function parseArgs(argv: readonly string[]): Args {
  const args: Args = { out: 'bench-failover.json', failoverRuns: 10, nodeTimeout: 3, leaseGrace: 1 };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    const v = argv[i + 1];
    if (v === undefined) throw new Error(`${k} needs a value; ${USAGE}`);
    if (k === '--out') args.out = v;
    else if (k === '--failover-runs') args.failoverRuns = Number(v);
    else if (k === '--node-timeout') args.nodeTimeout = Number(v);
    else if (k === '--lease-grace') args.leaseGrace = Number(v);
    else throw new Error(`unknown option ${k}; ${USAGE}`);
    i++;
  }
  if (!(
    Number.isInteger(args.failoverRuns) &&
    args.failoverRuns >= 1 &&
    args.nodeTimeout > 0 &&
    args.leaseGrace >= 0
  )) {
    throw new Error(`bad numeric option; ${USAGE}`);
  }
  return args;
}

type Fault = 'kill' | 'partition';

interface Sample {
  ms: number;
  attempts: number;
}

const RETRY_MS = 200;

/** Until the control service counts the host alive and its agent is not fenced any more. */
async function waitHealthy(cluster: Cluster, host: ClusterHost): Promise<void> {
  await waitFor(
    `host ${host.name} alive and unfenced`,
    async () => {
      const snapshot = await cluster.client.waitForCluster(undefined, 0);
      const node = snapshot.nodes.find((n) => n.uuid === host.nodeUuid());
      return node !== undefined && node.alive && node.fencing?.state !== 'fenced';
    },
    { timeoutMs: 60_000, intervalMs: 100 },
  );
}

async function oneFailover(
  cluster: Cluster,
  fault: Fault,
  from: ClusterHost,
  to: ClusterHost,
  volume: string,
  timeoutMs: number,
): Promise<Sample> {
  const holder = `holder-${randomUUID().slice(0, 8)}`;
  const vol = ['-v', `${volume}:/data`, `--volume-driver=${VOLUME_DRIVER}`];
  // Returns once the container runs, i.e. after the plugin's Mount took the lease.
  await from.docker(['run', '-d', '--name', holder, '--init', ...vol, TINY_IMAGE, 'sleep', '3600']);
  if (fault === 'kill') {
    await Promise.all([from.killAgent('SIGKILL'), from.killPlugin('SIGKILL'), from.killDocker('SIGKILL')]);
  } else {
    await from.disconnect();
  }
  const t0 = performance.now();
  let attempts = 0;
  let ms: number;
  try {
    for (;;) {
      attempts++;
      const r = await to.docker(['run', '--rm', ...vol, TINY_IMAGE, 'true'], { check: false, timeoutMs: 150_000 });
      ms = performance.now() - t0;
      if (r.code === 0) break;
      if (ms > timeoutMs)
        throw new Error(
          `${fault} of ${from.name}: docker run on ${to.name} still fails after ${Math.round(ms)} ms: ${r.stderr.trim()}`,
        );
      await sleep(RETRY_MS);
    }
  } finally {
    // Bring the faulty host back for the next run (the other direction).
    if (fault === 'kill') await from.reboot();
    else await from.reconnect();
    await waitHealthy(cluster, from);
    await from.docker(['rm', '-f', holder], { check: false });
  }
  return { ms, attempts };
}

async function failovers(cluster: Cluster, fault: Fault, runs: number, timeoutMs: number): Promise<Sample[]> {
  const [a, b] = cluster.hosts as [ClusterHost, ClusterHost];
  const volume = `bench-${fault}-${randomUUID().slice(0, 8)}`;
  const out: Sample[] = [];
  for (let i = 0; i < runs; i++) {
    const [from, to] = i % 2 === 0 ? [a, b] : [b, a];
    const s = await oneFailover(cluster, fault, from, to, volume, timeoutMs);
    console.error(
      `${fault} ${i + 1}/${runs}: ${from.name} → ${to.name} ${Math.round(s.ms)} ms (${s.attempts} docker run attempts)`,
    );
    out.push(s);
  }
  return out;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const boundMs = (args.nodeTimeout + args.leaseGrace + 2) * 1_000;
  const cluster = await startCluster({
    hosts: 2,
    withDocker: true,
    nodeTimeoutSeconds: args.nodeTimeout,
    leaseGraceSeconds: args.leaseGrace,
  });
  try {
    const timeoutMs = boundMs + 60_000;
    const kill = await failovers(cluster, 'kill', args.failoverRuns, timeoutMs);
    const partition = await failovers(cluster, 'partition', args.failoverRuns, timeoutMs);
    const summarize = (samples: Sample[]): LatencyStats & { within_bound: number; attempts: number[] } => ({
      ...latencyStats(samples.map((s) => s.ms)),
      within_bound: samples.filter((s) => s.ms <= boundMs).length,
      attempts: samples.map((s) => s.attempts),
    });
    const result = {
      date: new Date().toISOString(),
      machine: { cpus: os.cpus().length, kernel: os.release(), node: process.version },
      nodeTimeoutSeconds: args.nodeTimeout,
      leaseGraceSeconds: args.leaseGrace,
      boundMs,
      kill: summarize(kill),
      partition: summarize(partition),
    };
    fs.writeFileSync(args.out, JSON.stringify(result, null, 2) + '\n');
    const row = (label: string, s: ReturnType<typeof summarize>): string =>
      `| ${label} | ${s.median_ms} | ${s.p99_ms} | ${s.max_ms} | ${boundMs} | ${s.within_bound}/${s.n} ${s.within_bound === s.n ? '(met)' : '(**missed**)'} |`;
    console.log(
      [
        `Two simulated hosts; control service \`--node-timeout ${args.nodeTimeout} --lease-grace ${args.leaseGrace}\` ` +
          `(T = ${args.nodeTimeout} s, G = ${args.leaseGrace} s); ${args.failoverRuns} runs each, alternating hosts.`,
        'A container holds a Flocker volume on one host; that host is killed (agent, plugin and dockerd SIGKILLed; the container runs on) or partitioned (link down; everything runs on).',
        `Measured: from the fault to the first \`docker run --rm -v VOL:/data --volume-driver=flocker\` on the other host that succeeds (tried every ${RETRY_MS} ms; no operator action).`,
        '',
        '| fault | median (ms) | p99 (ms) | max (ms) | bound T + G + 2 s (ms) | runs within bound |',
        '|---|---|---|---|---|---|',
        row('host killed → volume usable on the other host', result.kill),
        row('host partitioned → volume usable on the other host', result.partition),
      ].join('\n'),
    );
    console.error(`written to ${args.out}`);
  } finally {
    await cluster.stop();
  }
}

if (require.main === module) {
  main().catch((err: unknown) => {
    console.error(errorMessage(err));
    process.exit(1);
  });
}

/**
 * The control plane at scale (issue 23): 1,000 / 5,000 / 10,000 simulated agents with 10 datasets
 * each, on the file store and on etcd (3 members, several control replicas). Per size: read
 * latency (one node's agent view, and the whole lists), create latency, the fan-out of one change
 * to every agent, the control services' peak RSS. On etcd it runs twice: every agent and client on
 * one replica, then spread round-robin over the replicas (each answering from its own watch).
 * Prints a markdown section, writes JSON (--out) and a chart (--svg).
 *   node packages/control-api/dist/bench/scaleBench.js [--sizes 1000,5000,10000] [--stores file,etcd]
 */
import { type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { PerformanceObserver } from 'node:perf_hooks';
import { Etcd3, type Namespace } from 'etcd3';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { FlockerApiError, FlockerClient, type NodeReport } from '@flocker/api';
import { errorMessage } from '@flocker/runtime';
import { WATCH_HEARTBEAT_MS } from '../agentWatch';
import { EtcdTestCluster } from '../testing/etcdCluster';
import { type AbRound, abSummary, parseVariant, type Variant } from './abVariant';
import { startFloor } from './floorServer';
import { AgentFleet } from './agents';
import { idleCpu, type Probed, probeWindow, threadsWindow } from './probe';
import { pooled, rssMiB, startServer, stats, type Stats, stopServer, timed } from './harness';
import { syntheticReport } from './reports';
import { type ChartPanel, scaleChartSvg } from './scaleChart';
import { mark as threadMark, spentSince } from './threadClock';

const TARGETS = { read_p99_ms: 20, create_p99_ms: 10, fanout_ms: 500, rss_mib: 1024 };

interface PhaseResult {
  /** 'file' | 'etcd, 1 replica serving' | 'etcd, spread over N replicas' */
  config: string;
  agents: number;
  datasets: number;
  replicas_serving: number;
  seed_seconds: number;
  create_no_polls: Stats;
  create_back_to_back_polling: Stats;
  create_during_fanout: Stats;
  /**
   * etcd only: the transaction a create commits (compare head, put head and a log record), sent straight to
   * the same etcd cluster by the bench, one after each timed create: the commit's floor on this host under
   * the same load. Absent in runs from before it was measured (or with --no-etcd-floor).
   */
  etcd_floor_no_polls?: Stats;
  etcd_floor_watching?: Stats;
  read_node_view: Stats;
  /** `GET /v1/configuration/datasets/<id>`: one dataset's configuration (absent in runs from before the route). */
  read_one_dataset?: Stats;
  read_all_datasets: Stats;
  read_all_states: Stats;
  /**
   * The whole lists' first read on each serving replica (it builds the list), the reads after those, and the floor
   * (bench/floorServer: the same bytes sent from one prebuilt Buffer by a plain Node server, read the same way in the
   * same rounds). Absent in runs from before the floor was measured (or with --no-list-floor).
   */
  read_lists_first_ms?: { datasets: number[]; states: number[] };
  read_all_datasets_after_first?: Stats;
  read_all_states_after_first?: Stats;
  read_all_datasets_floor?: Stats;
  read_all_states_floor?: Stats;
  /**
   * Both whole lists read with If-None-Match of their current ETag (a poller of an unchanged list, as
   * FlockerClient reads it): 304 without a body. Absent in runs from before conditional reads.
   */
  read_lists_unchanged?: Stats;
  /** Of those, answers that were not 304 (the list changed between the HEAD and the GET). */
  lists_unchanged_misses?: number;
  /** Bytes of the whole lists' bodies (plain JSON); absent in runs from before they were recorded. */
  all_datasets_bytes?: number;
  all_states_bytes?: number;
  /** A change every agent's view holds (a configured snapshot): until the last agent had it. */
  fanout_ms: number[];
  fanout_median_ms: number;
  fanout_reached_min: number;
  /**
   * The configured snapshots each fan-out's line carried (a snapshot change sends every agent the whole list): 1, each
   * fan-out starts from none (older runs: the list grew, the spread phase's lines carried more; absent in the oldest).
   */
  fanout_line_snapshots?: number[];
  /** A dataset created for one node: until that node's agent had it, and how many agents woke. */
  targeted_ms: number[];
  targeted_median_ms: number;
  targeted_woken_max: number;
  agent_poll_errors: number;
  agent_poll_error_kinds?: Record<string, number>;
  agent_answers: { deltas: number; full: number };
  /** Reads that failed and were retried (not in the latencies). */
  read_failures: number;
  read_failure?: string;
  /** Taken from an earlier run's JSON (--merge). */
  merged_from?: string;
  /** Highest RSS of any serving replica during the phase (sampled every 250 ms), and its VmHWM. */
  rss_peak_mib: number;
  hwm_mib: number;
}

interface Options {
  perAgent: number;
  replicas: number;
  samples: number;
  listSamples: number;
  fanouts: number;
  workers: number;
  channel: AgentChannel;
  nodeArgs: string[];
  /** Servers run with serverProbe (armed around the timed creates) and etcd's disk figures are read around them. */
  probe: boolean;
  /** Only the timed creates (no reads, lists or fan-outs): for probing them. */
  createsOnly: boolean;
  /** Creates timed while the agents watch (50: the table's figure is the slowest of them). */
  watchedCreates: number;
  /** The simulated agents' threads' nice value (AgentFleet.nice). */
  agentsNice: number;
  /** On etcd, each timed create is followed by one bare commit transaction (EtcdFloor). */
  etcdFloor: boolean;
  /** The whole lists are also read from bench/floorServer in the same rounds. */
  listFloor: boolean;
  /** --ab: two variants timed in alternating rounds instead of the creates while agents watch. */
  ab?: { variants: [Variant, Variant]; pairs: number; roundMs: number };
  log: (msg: string) => void;
}

type AgentChannel = 'watch' | 'delta' | 'full';

/** This (the measuring) thread's GC pauses so far: a slow sample is told apart from the bench's own collection. */
const benchGc = { ms: 0 };
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) benchGc.ms += e.duration;
}).observe({ entryTypes: ['gc'] });

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Samples the peak RSS of some processes (VmHWM is the process's whole life; this is one phase). */
class RssSampler {
  private peak = 0;
  private readonly timer: NodeJS.Timeout;
  constructor(private readonly pids: number[]) {
    this.timer = setInterval(() => this.sample(), 250);
  }
  private sample(): void {
    for (const pid of this.pids) this.peak = Math.max(this.peak, rssOf(pid).rss);
  }
  stop(): { peak: number; hwm: number } {
    clearInterval(this.timer);
    this.sample();
    return { peak: this.peak, hwm: Math.max(...this.pids.map((p) => rssOf(p).hwm)) };
  }
}

/** Seeding retries what a real agent or client retries: 503 (etcd slow or its client's circuit breaker open). */
let seedRetries = 0;
async function seedRetry<T>(fn: () => Promise<T>): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (!(err instanceof FlockerApiError) || attempt >= 30) throw err;
      if (err.status !== 503) throw err;
      seedRetries++;
      await sleep(Math.min(2000, 100 * 2 ** Math.min(attempt, 4)));
    }
  }
}

/** rssMiB, or NaN for a process that is gone. */
function rssOf(pid: number): { rss: number; hwm: number } {
  try {
    return rssMiB(pid);
  } catch {
    return { rss: NaN, hwm: NaN };
  }
}

/**
 * A read timed; a failed one (a reset connection on a loaded machine) is counted, not fatal:
 * retried after 100 ms, at most 5 times.
 */
async function timedRead(
  url: string,
  init: RequestInit,
  failures: { n: number; last: string },
  size?: { bytes: number },
): Promise<number> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await timed(async () => {
        const res = await fetch(url, init);
        if (!res.ok) throw new Error(`HTTP ${res.status}`);
        await res.text();
        if (size !== undefined) size.bytes = Number(res.headers.get('content-length') ?? NaN);
      });
    } catch (err) {
      failures.n++;
      failures.last = `${String(err)}${err instanceof Error && err.cause !== undefined ? ` (${errorMessage(err.cause)})` : ''}`;
      if (attempt >= 4) throw err;
      await sleep(100);
    }
  }
}

/** A log record as large as a create's (one `dataset` op: ~200 bytes). */
const FLOOR_RECORD = JSON.stringify({
  prev: 0,
  record: {
    version: 0,
    ops: [
      {
        op: 'dataset',
        value: { dataset_id: randomUUID(), primary: randomUUID(), metadata: {}, deleted: false, maximum_size: null },
      },
    ],
  },
});

/**
 * The etcd floor of a create: the transaction EtcdConfigurationStore commits for one (compare head's
 * mod_revision, put head and a log record), sent by the bench straight to the same cluster under its own
 * prefix, through the same client library and host choice. Timed one after each create, its tail is
 * what etcd itself costs on this host at that moment.
 */
class EtcdFloor {
  private revision = 0;
  private version = 0;
  private constructor(
    private readonly client: Etcd3,
    private readonly ns: Namespace,
  ) {}

  static async open(endpoints: string[]): Promise<EtcdFloor> {
    const client = new Etcd3({ hosts: endpoints });
    const floor = new EtcdFloor(client, client.namespace(`/floor-${randomUUID()}/`));
    await floor.ns.put('head').value('{}').exec();
    floor.revision = Number((await floor.ns.get('head').exec()).kvs[0]?.mod_revision ?? 0);
    return floor;
  }

  /** One commit, timed (ms). */
  async commit(): Promise<number> {
    const version = ++this.version;
    const started = performance.now();
    const res = await this.ns
      .if('head', 'Mod', '==', this.revision)
      .then(
        this.ns.put('head').value(JSON.stringify({ version, commit: randomUUID() })),
        this.ns.put(`log/${String(version).padStart(16, '0')}`).value(FLOOR_RECORD),
      )
      .commit();
    const ms = performance.now() - started;
    if (!res.succeeded) throw new Error('etcd floor: head changed under the bench');
    this.revision = Number(res.header.revision);
    return ms;
  }

  close(): void {
    this.client.close();
  }
}

/** Creates one after another, timed; the slow ones (over the target) logged with when they came in the series. */
async function timedCreates(
  client: FlockerClient,
  nodes: readonly string[],
  count: number,
  what: string,
  o: Options,
  probed: Probed,
  floor?: { etcd: EtcdFloor; out: number[] },
): Promise<number[]> {
  const window = await probeWindow(o.probe, probed, o.log);
  const out: number[] = [];
  const t0 = performance.now();
  const slow: string[] = [];
  for (let i = 0; i < count; i++) {
    const at = performance.now() - t0;
    const m = threadMark();
    const ms = await timed(() => client.createDataset({ primary: nodes[i % nodes.length] as string }));
    out.push(ms);
    const spent = o.probe ? ` client ${JSON.stringify(spentSince(m))}` : '';
    // etcd's commit of the same transaction right after: a slow create next to a fast floor was slow for its own reasons.
    const floorMs = floor !== undefined ? await floor.etcd.commit() : undefined;
    if (floor !== undefined && floorMs !== undefined) floor.out.push(floorMs);
    // The wall clock too: to be matched with the server's --trace-gc or a probe's timestamps; with
    // --probe, where this (the measuring) thread's time went meanwhile.
    if (ms >= TARGETS.create_p99_ms)
      slow.push(
        `#${i} at +${Math.round(at)} ms (${new Date(performance.timeOrigin + t0 + at).toISOString().slice(11, 23)}): ${ms.toFixed(1)} ms` +
          (floorMs !== undefined ? ` (etcd floor next ${floorMs.toFixed(1)} ms)` : '') +
          spent,
      );
  }
  await window.end(what);
  // On the monotonic clock that --cpu-prof stamps its samples with: the profiles' window of these creates.
  const endUs = process.hrtime.bigint() / 1000n;
  const startUs = endUs - BigInt(Math.round((performance.now() - t0) * 1000));
  o.log(`${what}: ${count} creates, monotonic us ${startUs}..${endUs}`);
  if (slow.length > 0) o.log(`${what}: creates over ${TARGETS.create_p99_ms} ms: ${slow.join(', ')}`);
  if (floor !== undefined) {
    const over = (xs: number[]): number => xs.filter((x) => x >= TARGETS.create_p99_ms).length;
    o.log(
      `${what}: over ${TARGETS.create_p99_ms} ms: creates ${over(out)} of ${out.length}, etcd floor ${over(floor.out)} of ` +
        `${floor.out.length}; floor ${JSON.stringify(stats(floor.out))}`,
    );
  }
  return out;
}

/**
 * --ab: creates back to back in rounds of `roundMs` (a heartbeat period and a little more, so each
 * round meets one tick), the two variants alternating (ABAB…: a variant without heartbeats never runs
 * two rounds in a row, which would pass the agents' idle timeout), on the same service, agents and load.
 * Logs per variant the pooled p50/p99, the median of the rounds' p99s and of their creates over the
 * target, and in how many pairs the second variant's p99 was lower. Returns every create's latency.
 */
async function abCreates(
  client: FlockerClient,
  nodes: readonly string[],
  fleet: AgentFleet,
  variantFile: string,
  what: string,
  o: Options & { ab: NonNullable<Options['ab']> },
): Promise<number[]> {
  const { variants, pairs, roundMs } = o.ab;
  const rounds: [AbRound[], AbRound[]] = [[], []];
  const failedBefore = await fleet.errors();
  let next = 0;
  for (let p = 0; p < pairs; p++) {
    for (const v of [0, 1] as const) {
      const variant: Variant = variants[v];
      // Renamed into place: the service never reads half a file.
      writeFileSync(`${variantFile}.new`, JSON.stringify({ slice: variant.slice, beat: variant.beat }));
      renameSync(`${variantFile}.new`, variantFile);
      fleet.nice(variant.nice ?? o.agentsNice);
      // The service's preload reads the file every 50 ms.
      await sleep(150);
      const out: number[] = [];
      const t0 = performance.now();
      while (performance.now() - t0 < roundMs)
        out.push(await timed(() => client.createDataset({ primary: nodes[next++ % nodes.length] as string })));
      rounds[v].push(out);
    }
  }
  const summary0 = abSummary(rounds, variants, TARGETS.create_p99_ms);
  // A variant starving the agents shows here: watches cut for silence (WATCH_IDLE) and reconnected.
  const failed = await fleet.errors();
  const kinds = Object.entries(failed.errorKinds)
    .map(([k, n]) => [k, n - (failedBefore.errorKinds[k] ?? 0)] as const)
    .filter(([, n]) => n > 0);
  const summary =
    `${what}, A/B in ${pairs} pairs of ${roundMs} ms rounds: ${summary0}; agents' failed watches meanwhile ` +
    `${failed.errors - failedBefore.errors}${kinds.length > 0 ? ` ${JSON.stringify(Object.fromEntries(kinds))}` : ''}`;
  o.log(summary);
  process.stdout.write(`\n${summary}\n`);
  return rounds[1].flat();
}

function median(xs: number[]): number {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  return s.length === 0 ? NaN : (s[Math.floor(s.length / 2)] as number);
}

async function runSize(store: 'file' | 'etcd', agentCount: number, o: Options): Promise<PhaseResult[]> {
  const etcd = store === 'etcd' ? await EtcdTestCluster.start() : undefined;
  // After etcd: a cluster that fails to start leaves no directory behind.
  const dir = mkdtempSync(path.join(tmpdir(), 'flocker-scale-'));
  // --ab: the services' preload (bench/watchVariant) follows this file.
  const variantFile = path.join(dir, 'watch-variant.json');
  if (o.ab !== undefined) {
    writeFileSync(variantFile, '{}');
    process.env['FLOCKER_BENCH_WATCH_VARIANT'] = variantFile;
  }
  const storeArgs =
    etcd === undefined
      ? []
      : ['--store', 'etcd', '--etcd-endpoints', etcd.endpoints.join(','), '--etcd-prefix', `/scale-${randomUUID()}`];
  const servers: { child: ChildProcess; url: string }[] = [];
  let etcdFloor: EtcdFloor | undefined;
  try {
    const replicas = etcd === undefined ? 1 : o.replicas;
    for (let r = 0; r < replicas; r++) {
      const d = path.join(dir, `r${r}`);
      // Every agent holds a connection: past the default 10,000 the measuring client would be refused.
      const limit = ['--max-connections', String(agentCount + 1000)];
      const server = await startServer(mkdtempSync(`${d}-`), o.nodeArgs, [...storeArgs, ...limit]);
      // A service dying mid-run shows as the bench's requests failing: say how it ended.
      server.child.once('exit', (code, signal) =>
        o.log(`control service ${r} (pid ${server.child.pid}) exited: ${code ?? signal}`),
      );
      servers.push(server);
    }
    const urls = servers.map((s) => s.url);
    const clients = urls.map((baseUrl) => new FlockerClient({ baseUrl, timeoutMs: 120_000 }));
    const first = clients[0] as FlockerClient;
    const nodes = Array.from({ length: agentCount }, () => randomUUID());
    const datasetCount = agentCount * o.perAgent;
    // Ids chosen here: a create retried after a 503 that had committed answers 409, not a second dataset.
    const ids = Array.from({ length: datasetCount }, () => randomUUID());
    const owned = nodes.map(() => [] as string[]);
    const report = (i: number): NodeReport => syntheticReport(i, nodes[i] as string, owned[i] ?? []);
    const seedStart = performance.now();
    o.log(`${store} ${agentCount}: registering nodes`);
    await pooled([...nodes.keys()], 64, async (i) => void (await seedRetry(() => first.reportNodeState(report(i)))));
    o.log(`${store} ${agentCount}: creating ${datasetCount} datasets`);
    await pooled(
      Array.from({ length: datasetCount }, (_, k) => k),
      64,
      async (k) => {
        const i = k % agentCount;
        const id = ids[k] as string;
        // A 409 after a retry: the first attempt had committed (its id is fresh, nothing else holds it).
        await seedRetry(() =>
          first.createDataset({ primary: nodes[i] as string, dataset_id: id, metadata: { name: `vol-${k}` } }),
        ).catch((err: unknown) => {
          if (!(err instanceof FlockerApiError && err.status === 409)) throw err;
        });
        owned[i]?.push(id);
      },
    );
    o.log(`${store} ${agentCount}: nodes report their manifestations`);
    await pooled([...nodes.keys()], 64, async (i) => void (await seedRetry(() => first.reportNodeState(report(i)))));
    const seedSeconds = Math.round((performance.now() - seedStart) / 100) / 10;
    // Every replica has caught up when its configuration tag is the writer's.
    const tagOf = async (c: FlockerClient): Promise<string> =>
      (await c.waitForCluster(undefined, 0, { node: nodes[0] as string })).configuration_tag;
    const want = await tagOf(first);
    for (const c of clients.slice(1)) {
      const until = Date.now() + 120_000;
      while ((await tagOf(c)) !== want && Date.now() < until) await sleep(200);
    }

    o.log(`${store} ${agentCount}: creates without long-polls`);
    const probed: Probed = {
      servers: servers.map((s) => s.child),
      etcd: etcd?.endpoints ?? [],
      ...(etcd !== undefined ? { etcdDir: etcd.dir } : {}),
    };
    etcdFloor = etcd !== undefined && o.etcdFloor ? await EtcdFloor.open(etcd.endpoints) : undefined;
    const floorNoPolls: number[] = [];
    const createNoPolls = await timedCreates(
      first,
      nodes,
      o.samples,
      `${store} ${agentCount} no polls`,
      o,
      probed,
      etcdFloor !== undefined ? { etcd: etcdFloor, out: floorNoPolls } : undefined,
    );

    const phases: { config: string; serving: number }[] =
      etcd === undefined
        ? [{ config: 'file', serving: 1 }]
        : [
            { config: 'etcd, 1 replica serving', serving: 1 },
            // --replicas 1: the one phase, not twice.
            ...(replicas > 1 ? [{ config: `etcd, spread over ${replicas} replicas`, serving: replicas }] : []),
          ];
    const results: PhaseResult[] = [];
    for (const phase of phases) {
      if (phase.serving > servers.length) continue;
      const serving = servers.slice(0, phase.serving);
      const sampler = new RssSampler(serving.map((s) => s.child.pid as number));
      o.log(`${store} ${agentCount} (${phase.config}): starting agents`);
      const fleet = await AgentFleet.start(
        nodes.map((node, i) => ({ node, url: serving[i % serving.length]?.url as string })),
        {
          workers: o.workers,
          delta: o.channel === 'delta',
          watch: o.channel === 'watch',
          fanoutDeadlineMs: Math.max(10_000, agentCount * 2),
          nice: o.agentsNice,
        },
      );
      try {
        await sleep(1000);
        // --creates-only: none of the reads and fan-outs, straight to the creates while agents watch.
        const reads = o.createsOnly ? 0 : o.samples;
        const listReads = o.createsOnly ? 0 : o.listSamples;
        const fanoutRuns = o.createsOnly ? 0 : o.fanouts;
        // Readers are spread like the agents: request i goes to replica i mod serving.
        const reader = (i: number): string => serving[i % serving.length]?.url as string;
        o.log(`${store} ${agentCount} (${phase.config}): reads`);
        const nodeView: number[] = [];
        const readFailures = { n: 0, last: '' };
        for (let i = 0; i < reads; i++) {
          const node = nodes[(i * 7919) % agentCount] as string;
          nodeView.push(await timedRead(`${reader(i)}/v1/agent/cluster?node=${node}&timeout_ms=0`, {}, readFailures));
        }
        const oneDataset: number[] = [];
        for (let i = 0; i < reads; i++) {
          const id = ids[(i * 7919) % datasetCount] as string;
          oneDataset.push(await timedRead(`${reader(i)}/v1/configuration/datasets/${id}`, {}, readFailures));
        }
        const allDatasets: number[] = [];
        const allStates: number[] = [];
        const datasetsSize = { bytes: 0 };
        const statesSize = { bytes: 0 };
        // The floor (floorServer: the same bytes from one prebuilt Buffer, a plain Node server), read the same way in
        // the same rounds, once each serving replica's first reads built its lists: what the bytes alone cost here.
        const floorDatasets: number[] = [];
        const floorStates: number[] = [];
        let floorServer: { kill: () => void; url: string } | undefined;
        // Plain JSON, as FlockerClient and the CLI read it (a browser's gzip is smaller to send).
        const plain = { headers: { 'accept-encoding': 'identity' } };
        try {
          for (let i = 0; i < listReads; i++) {
            const service = async (): Promise<void> => {
              allDatasets.push(
                await timedRead(`${reader(i)}/v1/configuration/datasets`, plain, readFailures, datasetsSize),
              );
              allStates.push(await timedRead(`${reader(i)}/v1/state/datasets`, plain, readFailures, statesSize));
            };
            const floor = async (url: string): Promise<void> => {
              floorDatasets.push(await timedRead(`${url}/v1/configuration/datasets`, plain, readFailures));
              floorStates.push(await timedRead(`${url}/v1/state/datasets`, plain, readFailures));
            };
            // Each side first in turn.
            if (floorServer !== undefined && i % 2 === 1) await floor(floorServer.url);
            await service();
            if (floorServer !== undefined && i % 2 === 0) await floor(floorServer.url);
            if (i === phase.serving - 1 && i < listReads - 1 && o.listFloor) floorServer = await startFloor(reader(0));
          }
        } finally {
          floorServer?.kill();
        }
        // In order: the p99 of 20 is their max, and whether it is the first read (the list's build) or a later one
        // (a heartbeat tick, a GC) tells what to fix.
        o.log(
          `${store} ${agentCount} (${phase.config}): whole-list reads in order, ms: all datasets ` +
            `${allDatasets.map((x) => x.toFixed(1)).join(' ')}; all states ${allStates.map((x) => x.toFixed(1)).join(' ')}`,
        );
        // A poller of an unchanged list: If-None-Match with the list's current ETag gets a 304 and no body.
        const unchanged: number[] = [];
        let unchangedMisses = 0;
        // With --probe the services say where a slow one's time went; this thread's GC pauses are noted beside it.
        const conditionalWindow = await probeWindow(
          o.probe,
          { ...probed, servers: serving.map((s) => s.child) },
          o.log,
        );
        const slowUnchanged: string[] = [];
        for (let i = 0; i < listReads; i++) {
          for (const list of ['/v1/configuration/datasets', '/v1/state/datasets']) {
            const url = `${reader(i)}${list}`;
            const etag = (await fetch(url, { method: 'HEAD' })).headers.get('etag') ?? '';
            const gcBefore = benchGc.ms;
            const at = new Date().toISOString().slice(11, 23);
            const thread = threadMark();
            const ms = await timed(async () => {
              const res = await fetch(url, { headers: { 'if-none-match': etag } });
              await res.arrayBuffer();
              if (res.status !== 304) unchangedMisses++;
            });
            unchanged.push(ms);
            if (ms >= 5)
              slowUnchanged.push(
                `#${unchanged.length - 1} ${list} at ${at}: ${ms.toFixed(1)} ms (bench GC ${(benchGc.ms - gcBefore).toFixed(1)} ms, bench thread ${JSON.stringify(spentSince(thread))})`,
              );
          }
        }
        await conditionalWindow.end(`${store} ${agentCount} (${phase.config}) conditional reads`);
        o.log(
          `${store} ${agentCount} (${phase.config}): conditional reads in order, ms: ${unchanged.map((x) => x.toFixed(1)).join(' ')}` +
            (slowUnchanged.length > 0 ? `; 5 ms or more: ${slowUnchanged.join(', ')}` : ''),
        );
        o.log(`${store} ${agentCount} (${phase.config}): fan-out x${o.fanouts}`);
        const fanouts: number[] = [];
        const duringFanout: number[] = [];
        let reachedMin = agentCount;
        let errors = 0;
        let errorKinds: Record<string, number> = {};
        let answers = { deltas: 0, full: 0 };
        const someDataset = owned[0]?.[0] as string;
        // A snapshot change's line carries the whole configured list, ~20 ms of CPU per extra snapshot per 10,000
        // agents: each timed fan-out starts from none (untimed: the earlier ones deleted, purged, and the last agent
        // has seen it), so every phase and store times the same one-snapshot line. The service purges a deleted
        // snapshot on a report once no alive node reports it: node 0 says its backend holds none, sent here first
        // (a change of its report) so that the same report later changes nothing but the purge.
        const noSnapshots: NodeReport = { ...report(0), snapshots: [] };
        if (fanoutRuns > 0) await first.reportNodeState(noSnapshots);
        const clearSnapshots = async (): Promise<void> => {
          const before = await first.listSnapshots();
          if (before.length === 0) return;
          // One change per wait: an agent is reached by any newer answer, so the wait is for one commit.
          const reached: number[] = [];
          for (const s of before.filter((x) => x.deleted !== true)) {
            reached.push((await fleet.fanout(async () => void (await first.deleteSnapshot(s.snapshot_id)))).reached);
          }
          reached.push((await fleet.fanout(async () => void (await first.reportNodeState(noSnapshots)))).reached);
          const left = (await first.listSnapshots()).length;
          if (left > 0 || reached.some((n) => n < agentCount)) {
            o.log(
              `clearing ${before.length} snapshots: ${left} left, agents reached ${reached.join(' ')} of ${agentCount}`,
            );
          }
        };
        const lineSnapshots: number[] = [];
        for (let f = 0; f < fanoutRuns; f++) {
          await clearSnapshots();
          await sleep(500);
          // Every view holds the configured snapshots: one more reaches every agent.
          let t0 = NaN;
          // With --probe: the services' account of the window (their own fan-out time, GC, event loop) and each busy
          // thread's CPU and run-queue wait, the service's and the simulated agents' (who the fan-out waited for).
          // Every replica, serving or not (server<i> is replica i): on etcd a replica with no agents still takes each
          // change from its watch and indexes it, on the same 2 cores.
          const serversWindow = await probeWindow(o.probe, probed, o.log);
          const threads = o.probe ? threadsWindow(probed) : undefined;
          const fan = await fleet.fanout(async () => {
            t0 = performance.timeOrigin + performance.now();
            duringFanout.push(await timed(() => first.createSnapshot({ dataset_id: someDataset })));
          });
          const spent = threads?.end();
          await serversWindow.end(`fan-out ${f}`);
          fanouts.push(fan.reached === agentCount ? Math.round(fan.lastAt - t0) : NaN);
          // On the monotonic clock that --cpu-prof stamps its samples with: the profiles' fan-out windows.
          const endUs = process.hrtime.bigint() / 1000n;
          const startUs = endUs - BigInt(Math.round((performance.timeOrigin + performance.now() - t0) * 1000));
          lineSnapshots.push((await first.listSnapshots()).length);
          o.log(
            `fan-out ${f}: ${fanouts[f]} ms, monotonic us ${startUs}..${endUs} (${lineSnapshots[f]} snapshots a line)`,
          );
          if (spent !== undefined) o.log(`fan-out ${f}, from arming to the last agent's answer: ${spent}`);
          reachedMin = Math.min(reachedMin, fan.reached);
          await sleep(500);
        }
        o.log(`${store} ${agentCount} (${phase.config}): a dataset for one node x${o.fanouts}`);
        const targeted: number[] = [];
        let wokenMax = 0;
        for (let f = 0; f < fanoutRuns; f++) {
          const node = nodes[(f * 7919 + 1) % agentCount] as string;
          let t0 = NaN;
          const fan = await fleet.fanout(
            async () => {
              t0 = performance.timeOrigin + performance.now();
              await first.createDataset({ primary: node });
            },
            { nodes: [node], settleMs: 300 },
          );
          targeted.push(Math.round(fan.watchedAt - t0));
          wokenMax = Math.max(wokenMax, fan.reached);
          errors = fan.errors;
          errorKinds = fan.errorKinds;
          answers = { deltas: fan.deltas, full: fan.full };
          await sleep(300);
        }
        // What the idle watches cost (the heartbeat ticks) and who pays it, before the creates meet it.
        if (o.probe) await idleCpu(probed, 4_000, o.log);
        o.log(`${store} ${agentCount} (${phase.config}): creates back to back while agents poll`);
        const watching = `${store} ${agentCount} (${phase.config}) agents watching`;
        const floorWatching: number[] = [];
        const busy =
          o.ab !== undefined
            ? await abCreates(first, nodes, fleet, variantFile, watching, { ...o, ab: o.ab })
            : await timedCreates(
                first,
                nodes,
                o.watchedCreates,
                watching,
                o,
                probed,
                etcdFloor !== undefined ? { etcd: etcdFloor, out: floorWatching } : undefined,
              );
        const mem = sampler.stop();
        results.push({
          config: phase.config,
          agents: agentCount,
          datasets: datasetCount,
          replicas_serving: phase.serving,
          seed_seconds: seedSeconds,
          create_no_polls: stats(createNoPolls),
          create_back_to_back_polling: stats(busy),
          create_during_fanout: stats(duringFanout),
          ...(floorNoPolls.length > 0 ? { etcd_floor_no_polls: stats(floorNoPolls) } : {}),
          ...(floorWatching.length > 0 ? { etcd_floor_watching: stats(floorWatching) } : {}),
          read_node_view: stats(nodeView),
          read_one_dataset: stats(oneDataset),
          read_all_datasets: stats(allDatasets),
          read_all_states: stats(allStates),
          ...(floorDatasets.length > 0
            ? {
                read_lists_first_ms: {
                  datasets: allDatasets.slice(0, phase.serving),
                  states: allStates.slice(0, phase.serving),
                },
                read_all_datasets_after_first: stats(allDatasets.slice(phase.serving)),
                read_all_states_after_first: stats(allStates.slice(phase.serving)),
                read_all_datasets_floor: stats(floorDatasets),
                read_all_states_floor: stats(floorStates),
              }
            : {}),
          read_lists_unchanged: stats(unchanged),
          lists_unchanged_misses: unchangedMisses,
          all_datasets_bytes: datasetsSize.bytes,
          all_states_bytes: statesSize.bytes,
          fanout_ms: fanouts,
          fanout_median_ms: median(fanouts),
          fanout_reached_min: reachedMin,
          fanout_line_snapshots: lineSnapshots,
          targeted_ms: targeted,
          targeted_median_ms: median(targeted),
          targeted_woken_max: wokenMax,
          agent_poll_errors: errors,
          agent_poll_error_kinds: errorKinds,
          agent_answers: answers,
          read_failures: readFailures.n,
          ...(readFailures.n > 0 ? { read_failure: readFailures.last } : {}),
          rss_peak_mib: mem.peak,
          hwm_mib: mem.hwm,
        });
        o.log(`${store} ${agentCount} (${phase.config}): ${JSON.stringify(results[results.length - 1])}`);
      } finally {
        sampler.stop();
        await fleet.stop();
      }
      await sleep(1000);
    }
    return results;
  } finally {
    etcdFloor?.close();
    await Promise.all(servers.map((s) => stopServer(s.child)));
    await etcd?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

const pq = (s: Stats): string => `${s.p50_ms} / ${s.p99_ms}`;
/** The etcd floor measured beside a cell's creates, if it was. */
const floorOf = (s: Stats | undefined): string => (s === undefined ? '' : ` (etcd floor ${pq(s)})`);
const mark = (v: number, limit: number): string => (Number.isFinite(v) && v < limit ? `${v}` : `**${v}**`);

/** A whole list's cell beyond its p50 / p99: the first read(s), the reads after, and the floor of the same bytes. */
const againstFloor = (first: number[] | undefined, after: Stats | undefined, floor: Stats | undefined): string =>
  first === undefined || after === undefined || floor === undefined
    ? ''
    : ` (first read ${first.map((x) => Math.round(x * 10) / 10).join(', ')} ms; after it ${after.p50_ms} / ${after.p99_ms}, ` +
      `floor ${floor.p50_ms} / ${floor.p99_ms})`;

/** The markdown section: one row per configuration and size. */
export function scaleMarkdown(
  results: PhaseResult[],
  o: { perAgent: number; workers: number; fanouts: number; channel: AgentChannel },
): string {
  const head =
    "| store | agents / datasets | one node's view p50 / p99 | one dataset p50 / p99 | all datasets p50 / p99 | " +
    'all states p50 / p99 | unchanged list, If-None-Match (304) p50 / p99 | ' +
    'create p50 / p99 (no polls) | create p50 / p99 (back to back, agents polling) | one change to every agent | ' +
    'a dataset for one node: its agent has it / agents woken | RSS peak |\n' +
    '|---|---|---|---|---|---|---|---|---|---|---|---|\n';
  const list = (xs: number[]): string => xs.map((x) => (Number.isFinite(x) ? x : '-')).join(', ');
  const rows = results.map((r, i) => {
    const fan = Number.isFinite(r.fanout_median_ms)
      ? `${mark(r.fanout_median_ms, TARGETS.fanout_ms)} ms (${list(r.fanout_ms)})`
      : `**${r.fanout_reached_min} of ${r.agents} reached** (${list(r.fanout_ms)} ms)`;
    // The creates without polls are measured once per size, before the etcd phases.
    const prev = results[i - 1];
    const sameCreates =
      prev !== undefined &&
      prev.agents === r.agents &&
      JSON.stringify(prev.create_no_polls) === JSON.stringify(r.create_no_polls);
    return (
      `| ${r.config} | ${r.agents.toLocaleString('en')} / ${r.datasets.toLocaleString('en')} ` +
      `| ${r.read_node_view.p50_ms} / ${mark(r.read_node_view.p99_ms, TARGETS.read_p99_ms)} ms ` +
      (r.read_one_dataset === undefined
        ? '| - '
        : `| ${r.read_one_dataset.p50_ms} / ${mark(r.read_one_dataset.p99_ms, TARGETS.read_p99_ms)} ms `) +
      `| ${pq(r.read_all_datasets)} ms${againstFloor(r.read_lists_first_ms?.datasets, r.read_all_datasets_after_first, r.read_all_datasets_floor)} ` +
      `| ${pq(r.read_all_states)} ms${againstFloor(r.read_lists_first_ms?.states, r.read_all_states_after_first, r.read_all_states_floor)} ` +
      (r.read_lists_unchanged === undefined
        ? '| - '
        : `| ${r.read_lists_unchanged.p50_ms} / ${mark(r.read_lists_unchanged.p99_ms, TARGETS.read_p99_ms)} ms ` +
          (r.lists_unchanged_misses ? `(${r.lists_unchanged_misses} not 304) ` : '')) +
      (sameCreates
        ? '| (as above) '
        : `| ${r.create_no_polls.p50_ms} / ${mark(r.create_no_polls.p99_ms, TARGETS.create_p99_ms)} ms${floorOf(r.etcd_floor_no_polls)} `) +
      `| ${pq(r.create_back_to_back_polling)} ms${floorOf(r.etcd_floor_watching)} | ${fan} ` +
      `| ${r.targeted_median_ms} ms / ${r.targeted_woken_max} | ${mark(r.rss_peak_mib, TARGETS.rss_mib)} MiB |`
    );
  });
  const channel =
    o.channel === 'watch'
      ? 'holds one streaming watch of it (`GET /v1/agent/cluster/watch?node=&since=`: a line per change, each delta merged into the view it holds)'
      : o.channel === 'delta'
        ? 'long-polls it for per-node deltas (`GET /v1/agent/cluster?node=&since=&delta=true`, merged into the view it holds)'
        : 'long-polls it (`GET /v1/agent/cluster?node=&since=`, the whole node view each answer)';
  return (
    `\n${o.perAgent} datasets per simulated agent; agents in ${o.workers} worker threads, each reads its node's view, ` +
    `then ${channel} over a kept-alive connection. ` +
    "**One node's view** is that agent view read in full (`?node=&timeout_ms=0`); **one dataset** is " +
    "`GET /v1/configuration/datasets/<id>`, one dataset's configuration; **all datasets** / **all states** are the whole lists " +
    '`GET /v1/configuration/datasets` and `/v1/state/datasets`. **One change to every agent**: a configured ' +
    "snapshot (every node's view holds them; the earlier ones deleted first, untimed, so each change's line carries " +
    "one snapshot in every phase), until the last agent's poll answered it (median of " +
    `${o.fanouts}, each listed). **A dataset for one node**: created with that node as primary, until its agent ` +
    'has it, and how many agents woke for it (a change wakes only the nodes whose view it touches). ' +
    'etcd: 3 members; "1 replica serving" puts every agent and reader on one control replica, "spread" ' +
    'puts them round-robin on the replicas (each answers from its own etcd watch; writes go through the first). ' +
    'RSS: the highest of the serving replicas during the phase. ' +
    '**All datasets** / **all states**: the p50 / p99 of every read; in brackets the first read on each serving replica ' +
    '(it builds the list: p99 of 20 is their maximum), the p50 / p99 of the reads after it, and the **floor**: the same ' +
    'bytes sent from one prebuilt Buffer by a plain Node server (another process, no agents), read the same way in the ' +
    'same rounds: what the bytes alone cost on this host, which a read of the service cannot go below. ' +
    "**etcd floor**: after each timed create on etcd the bench commits the same transaction straight to etcd (compare head, put head and a log record) and times it: etcd's own share of a create on this host under the same load (its p99 over 10 ms: the target is out of a create's reach in that run). " +
    `Targets (issue 23): read p99 < ${TARGETS.read_p99_ms} ms, create p99 < ${TARGETS.create_p99_ms} ms, ` +
    `fan-out < ${TARGETS.fanout_ms} ms, RSS < 1 GiB; a miss is in bold.\n\n` +
    head +
    rows.join('\n') +
    listSizes(results) +
    '\n\n![Control plane at scale](docs/bench-scale.svg)\n'
  );
}

/** What a whole list weighs, from the largest size measured: its cost is these bytes, copied per read. */
function listSizes(results: PhaseResult[]): string {
  const r = [...results]
    .filter((x) => Number.isFinite(x.all_datasets_bytes) && (x.all_datasets_bytes ?? 0) > 0)
    .sort((a, b) => b.datasets - a.datasets)[0];
  if (r === undefined) return '';
  const mb = (b: number): string => (b / 1e6).toFixed(1);
  const per = (b: number): number => Math.round(b / r.datasets);
  const d = r.all_datasets_bytes as number;
  const st = r.all_states_bytes ?? NaN;
  return (
    `\n\nWhole lists at ${r.datasets.toLocaleString('en')} datasets (plain JSON): all datasets ${mb(d)} MB ` +
    `(${per(d)} B per dataset), all states ${mb(st)} MB (${per(st)} B per dataset).`
  );
}

export function scaleChart(results: PhaseResult[]): string {
  const configs = [...new Set(results.map((r) => r.config))];
  const colors = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728'];
  const series = (value: (r: PhaseResult) => number) =>
    configs.map((c, i) => ({
      label: c,
      color: colors[i % colors.length] as string,
      points: results.filter((r) => r.config === c).map((r) => [r.agents, value(r)] as [number, number]),
    }));
  const panels: ChartPanel[] = [
    {
      title: "one node's view p99",
      unit: 'ms',
      target: TARGETS.read_p99_ms,
      series: series((r) => r.read_node_view.p99_ms),
    },
    { title: 'all datasets p99', unit: 'ms', series: series((r) => r.read_all_datasets.p99_ms) },
    {
      title: 'create p99 (no polls)',
      unit: 'ms',
      target: TARGETS.create_p99_ms,
      series: series((r) => r.create_no_polls.p99_ms),
    },
    {
      title: 'one change to every agent',
      unit: 'ms',
      target: TARGETS.fanout_ms,
      series: series((r) => r.fanout_median_ms),
    },
    { title: 'RSS peak', unit: 'MiB', target: TARGETS.rss_mib, series: series((r) => r.rss_peak_mib) },
    { title: 'a dataset for one node: its agent has it', unit: 'ms', series: series((r) => r.targeted_median_ms) },
  ];
  return scaleChartSvg('Control plane at scale: 10 datasets per agent', panels);
}

async function main(): Promise<void> {
  const argv = await yargs(hideBin(process.argv))
    .option('out', { type: 'string', describe: 'Write the results as JSON here' })
    .option('measure', {
      type: 'boolean',
      default: true,
      describe: '--no-measure: only write the table and chart of the --merge files',
    })
    .option('merge', {
      type: 'string',
      array: true,
      default: [] as string[],
      describe: "Also show these earlier runs' results (JSON of --out) for sizes and stores this run did not measure",
    })
    .option('svg', { type: 'string', describe: 'Write the chart here (e.g. docs/bench-scale.svg)' })
    .option('sizes', {
      type: 'string',
      default: '1000,5000,10000',
      describe: 'Simulated agents per run, comma-separated',
    })
    .option('stores', { type: 'string', default: 'file,etcd', describe: 'file, etcd or both' })
    .option('datasets-per-agent', { type: 'number', default: 10 })
    .option('replicas', {
      type: 'number',
      default: 2,
      describe: 'Control replicas on etcd (the spread phase uses all)',
    })
    .option('samples', { type: 'number', default: 200, describe: 'Requests per small-read and create measurement' })
    .option('list-samples', { type: 'number', default: 20, describe: 'Requests per whole-list read (MBs each)' })
    .option('fanouts', { type: 'number', default: 3, describe: 'Fan-out measurements per phase' })
    .option('agent-channel', {
      type: 'string',
      default: 'watch',
      choices: ['watch', 'delta', 'full'],
      describe:
        "watch: one streaming watch per agent (a line per change); delta: long-polls for per-node deltas; full: long-polls, each answer the node's whole view",
    })
    .option('workers', { type: 'number', default: 2, describe: 'Worker threads simulating the agents' })
    .option('server-node-arg', { type: 'string', array: true, default: [] as string[] })
    .option('probe', {
      type: 'boolean',
      default: false,
      describe:
        "Where slow creates' time went: the servers run with bench/serverProbe (slow requests and etcd calls, GC, run-queue wait), etcd's fsync/round-trip histograms are read around the creates",
    })
    .option('watched-creates', {
      type: 'number',
      describe: 'Creates timed while the agents watch (default the smaller of --samples and 50)',
    })
    .option('agents-nice', {
      type: 'number',
      default: 0,
      describe: "The simulated agents' threads' nice value (they stand for agents on other machines)",
    })
    .option('ab', {
      type: 'string',
      array: true,
      describe:
        'Two variants, e.g. --ab slice=500 slice=64,nice=10: the creates while agents watch are timed in alternating rounds of each (service heartbeat slice, agents nice)',
    })
    .option('ab-pairs', { type: 'number', default: 20, describe: 'Pairs of --ab rounds' })
    .option('ab-round-ms', {
      type: 'number',
      default: WATCH_HEARTBEAT_MS + 200,
      describe: 'Length of an --ab round (at least a heartbeat period: each round meets a tick)',
    })
    .option('list-floor', {
      type: 'boolean',
      default: true,
      describe:
        'Read a plain server sending the whole lists from one prebuilt Buffer in the same rounds (their floor); --no-list-floor: the service only',
    })
    .option('etcd-floor', {
      type: 'boolean',
      default: true,
      describe:
        "On etcd, time one bare commit transaction after each timed create (etcd's own floor); --no-etcd-floor: creates only",
    })
    .option('creates-only', {
      type: 'boolean',
      default: false,
      describe: 'Skip the reads, lists and fan-outs: seed, then the timed creates (for probing them)',
    })
    .strict()
    .help()
    .parse();
  const sizes = argv.sizes.split(',').map((s) => Number(s.trim()));
  const stores = argv.stores.split(',').map((s) => s.trim());
  if (sizes.some((n) => !Number.isInteger(n) || n < 1))
    throw new Error(`--sizes: "${argv.sizes}" is not a list of counts`);
  if (stores.some((s) => s !== 'file' && s !== 'etcd')) throw new Error(`--stores: "${argv.stores}" (file, etcd)`);
  if (argv.ab !== undefined && argv.ab.length !== 2) throw new Error('--ab takes two variants');
  const ab =
    argv.ab === undefined
      ? undefined
      : {
          variants: [parseVariant(argv.ab[0] as string), parseVariant(argv.ab[1] as string)] as [Variant, Variant],
          pairs: Math.max(1, argv['ab-pairs']),
          roundMs: argv['ab-round-ms'],
        };
  const o: Options = {
    perAgent: argv['datasets-per-agent'],
    replicas: Math.max(1, argv.replicas),
    samples: argv.samples,
    listSamples: argv['list-samples'],
    fanouts: Math.max(1, argv.fanouts),
    workers: Math.max(1, argv.workers),
    channel: argv['agent-channel'] as AgentChannel,
    nodeArgs: [
      ...argv['server-node-arg'],
      ...(argv.probe ? ['--require', path.join(__dirname, 'serverProbe.js')] : []),
      ...(ab !== undefined ? ['--require', path.join(__dirname, 'watchVariant.js')] : []),
    ],
    agentsNice: argv['agents-nice'],
    etcdFloor: argv['etcd-floor'],
    listFloor: argv['list-floor'],
    ...(ab !== undefined ? { ab } : {}),
    probe: argv.probe,
    createsOnly: argv['creates-only'],
    watchedCreates: argv['watched-creates'] ?? Math.min(argv.samples, 50),
    // Each line with the monotonic clock --cpu-prof stamps its samples with (us): a phase's window in a profile.
    log: (msg) =>
      void process.stderr.write(
        `bench: ${new Date().toISOString().slice(11, 19)} [${process.hrtime.bigint() / 1000n}] ${msg}\n`,
      ),
  };
  const results: PhaseResult[] = [];
  const started = performance.now();
  const failed: string[] = [];
  for (const store of argv.measure ? (stores as ('file' | 'etcd')[]) : [])
    for (const n of sizes) {
      // One size failing (e.g. the machine out of memory) still leaves the others' figures.
      try {
        results.push(...(await runSize(store, n, o)));
      } catch (err) {
        o.log(
          `${store} ${n} failed: ${String(err)}${err instanceof Error && err.cause !== undefined ? ` (${errorMessage(err.cause)})` : ''}`,
        );
        failed.push(`${store} at ${n} agents (${String(err)})`);
      }
    }
  for (const file of argv.merge) {
    const earlier = (JSON.parse(readFileSync(file, 'utf8')) as { results: PhaseResult[] }).results;
    for (const r of earlier)
      if (!results.some((x) => x.config === r.config && x.agents === r.agents))
        results.push({ ...r, merged_from: file });
  }
  if (seedRetries > 0) o.log(`seeding retried ${seedRetries} requests answered 503`);
  // Rows by configuration, then size.
  const order = [...new Set(['file', ...results.map((r) => r.config)])];
  results.sort((a, b) => order.indexOf(a.config) - order.indexOf(b.config) || a.agents - b.agents);
  process.stdout.write(scaleMarkdown(results, o));
  if (failed.length > 0) process.stdout.write(`\nFailed: ${failed.join('; ')}.\n`);
  if (argv.measure)
    process.stdout.write(
      `\nWhole run: ${Math.round((performance.now() - started) / 1000)} s (sizes ${sizes.join(', ')}).\n`,
    );
  if (argv.out !== undefined)
    writeFileSync(argv.out, `${JSON.stringify({ targets: TARGETS, sizes, stores, results }, null, 2)}\n`);
  if (argv.svg !== undefined) writeFileSync(argv.svg, scaleChart(results));
  if (failed.length > 0) process.exitCode = 1;
}

main().then(
  () => process.exit(process.exitCode ?? 0),
  (err: unknown) => {
    process.stderr.write(`bench failed: ${String(err)}\n`);
    process.exit(1);
  },
);

/**
 * The whole lists at scale (issue 23): GET /v1/configuration/datasets and /v1/state/datasets
 * with 100,000 datasets on 10,000 nodes, flocker-control as a child process (file store seeded
 * directly, nodes reported once). Per round, interleaved so that every variant sees the same
 * load: a plain full read, a conditional read that gets 304, a gzipped read (unpacked by the
 * client), a full read right after a change (the cached body rebuilt), and FlockerClient's
 * listDatasets with and without its conditional read.
 *   node packages/control-api/dist/bench/listBench.js [--datasets 100000 --nodes 10000 --rounds 20]
 * `--rebuild` times, in this process, only the service's work for the first read after a change
 * (old: a fresh join of every fragment; new: the patched segments / per-report bytes), interleaved.
 * `--floor` times the first read of each list after the service started (it builds the list; with `--against`, on
 * both builds; after every node's view was read once, as the scale bench's agents do), then
 * full reads of the service against the floor: a plain Node HTTP server (a child process) sending
 * the same bytes from one prebuilt Buffer, read by the same client in the same rounds, each way:
 * fetch + text() (as the scale bench reads), fetch + JSON.parse, and node:http with the bytes only
 * drained (time to first and to last byte: what the server and the wire cost, no decoding).
 */
import { randomUUID } from 'node:crypto';
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, get } from 'node:http';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { type DatasetConfiguration, FlockerClient, type NodeReport } from '@flocker/api';
import { CONFIGURATION_FILE, encodeConfiguration } from '../ConfigurationStore';
import { emptyConfiguration } from '../configuration';
import { DatasetStateList, datasetStateJson, type ReportedNode } from '../clusterState';
import { jsonOf } from '../json';
import { JoinedList } from '../listBodies';
import { PersistentMap } from '../PersistentMap';
import { LIST_PATHS, startFloor } from './floorServer';
import { pooled, startServer, stats, type Stats, stopServer, timed } from './harness';
import { syntheticReport } from './reports';

interface Read {
  ms: number;
  status: number;
  bytes: number;
  encoding: string;
  etag: string;
}

/** One GET through fetch, the body read whole (and unpacked, when gzipped) as text. */
async function read(url: string, headers: Record<string, string>): Promise<Read> {
  let status = 0;
  let bytes = 0;
  let encoding = '';
  let etag = '';
  const ms = await timed(async () => {
    const res = await fetch(url, { headers });
    status = res.status;
    await res.text();
    bytes = Number(res.headers.get('content-length') ?? 0);
    encoding = res.headers.get('content-encoding') ?? 'identity';
    etag = res.headers.get('etag') ?? '';
  });
  if (status !== 200 && status !== 304) throw new Error(`GET ${url}: HTTP ${status}`);
  return { ms, status, bytes, encoding, etag };
}

/** Old and new work per change, interleaved, in process: the bytes of both lists after one write / one report. */
function rebuild(datasetCount: number, nodeCount: number, rounds: number): void {
  const nodes = Array.from({ length: nodeCount }, () => randomUUID());
  let map = PersistentMap.from(new Map<string, DatasetConfiguration>());
  const owned: string[][] = nodes.map(() => []);
  for (let k = 0; k < datasetCount; k++) {
    const id = randomUUID();
    map = map.set(id, {
      dataset_id: id,
      primary: nodes[k % nodeCount] as string,
      metadata: { name: `vol-${k}` },
      deleted: false,
    });
    owned[k % nodeCount]?.push(id);
  }
  const reportOf = (i: number, extraSize = 0): ReportedNode => ({
    lastSeen: Date.now(),
    report: syntheticReport(i, nodes[i] as string, owned[i] ?? [], extraSize),
  });
  const alive = nodes.map((_, i) => reportOf(i));
  const list = new JoinedList<DatasetConfiguration>();
  const oldFragments = new WeakMap<ReportedNode['report'], readonly string[]>();
  const states = new DatasetStateList();
  // Warm both: every fragment made once, as the service has them.
  list.of(map);
  Buffer.from(`[${Array.from(map.values(), jsonOf).join(',')}]`);
  states.body(alive);
  Buffer.from(datasetStateJson(alive, oldFragments));
  const samples: Record<string, number[]> = {};
  const time = (name: string, fn: () => { length: number }): void => {
    const t = performance.now();
    const bytes = fn().length;
    (samples[name] ??= []).push(performance.now() - t);
    if (bytes === 0) throw new Error('empty');
  };
  for (let r = 0; r < rounds; r++) {
    const id = randomUUID();
    map = map.set(id, { dataset_id: id, primary: nodes[r % nodeCount] as string, metadata: {}, deleted: false });
    const first = r % 2 === 0;
    const runs: [string, () => { length: number }][] = [
      ['datasets: fresh join (old)', () => Buffer.from(`[${Array.from(map.values(), jsonOf).join(',')}]`)],
      ['datasets: patched (new)', () => list.of(map)],
    ];
    for (const [name, fn] of first ? runs : runs.reverse()) time(name, fn);
    const i = (r * 7919) % nodeCount;
    alive[i] = reportOf(i, r + 1);
    const stateRuns: [string, () => { length: number }][] = [
      ['states: fresh join (old)', () => Buffer.from(datasetStateJson(alive, oldFragments))],
      ['states: per-report bytes, indexed (new)', () => states.body(alive)],
    ];
    for (const [name, fn] of first ? stateRuns : stateRuns.reverse()) time(name, fn);
  }
  const table: Record<string, Stats> = {};
  for (const [name, xs] of Object.entries(samples)) table[name] = stats(xs);
  process.stdout.write(`${JSON.stringify({ datasets: datasetCount, nodes: nodeCount, rounds, table }, null, 2)}\n`);
}

/** One GET through node:http, the bytes drained and counted (no decoding): ms to the first and to the last byte. */
function drained(url: string, agent: Agent): Promise<{ firstMs: number; lastMs: number; bytes: number }> {
  const t = performance.now();
  return new Promise((resolve, reject) => {
    get(url, { agent }, (res) => {
      let firstMs = NaN;
      let bytes = 0;
      res.on('data', (c: Buffer) => {
        if (bytes === 0) firstMs = performance.now() - t;
        bytes += c.length;
      });
      res.on('end', () =>
        res.statusCode === 200
          ? resolve({ firstMs, lastMs: performance.now() - t, bytes })
          : reject(new Error(`GET ${url}: HTTP ${res.statusCode}`)),
      );
      res.on('error', reject);
    }).on('error', reject);
  });
}

/**
 * The service vs the floor (see the header), interleaved per round; before that, the first read of each list after the
 * start, on this service and on `others` (e.g. --against's build), once every node's view was read (as the scale
 * bench's agents do before its reads: that serialises every dataset, not the states).
 */
async function floor(
  url: string,
  rounds: number,
  nodes: readonly string[],
  others: readonly { label: string; url: string }[] = [],
): Promise<{ table: Record<string, Stats>; sizes: Record<string, number> }> {
  const samples: Record<string, number[]> = {};
  const add = (name: string, ms: number): void => void (samples[name] ??= []).push(ms);
  const sizes: Record<string, number> = {};
  const agent = new Agent({ keepAlive: true });
  for (const side of [{ label: 'service', url }, ...others]) {
    await pooled(nodes, 16, async (node) => {
      const res = await fetch(`${side.url}/v1/agent/cluster?node=${node}&timeout_ms=0`);
      await res.arrayBuffer();
    });
    // Nothing has read the lists yet: each first read builds its list.
    for (const [name, p] of Object.entries(LIST_PATHS)) {
      const first = await drained(`${side.url}${p}`, agent);
      add(`${side.label}: ${name} first read after start (builds it), drained`, first.lastMs);
      sizes[name] = first.bytes;
    }
  }
  const floorServer = await startFloor(url);
  try {
    const sides = [{ label: 'service', url }, ...others, { label: 'floor', url: floorServer.url }];
    for (const side of sides) for (const p of Object.values(LIST_PATHS)) await drained(`${side.url}${p}`, agent);
    for (let round = 0; round < rounds; round++) {
      // Each side first, middle and last in turn.
      for (const side of [...sides.slice(round % sides.length), ...sides.slice(0, round % sides.length)]) {
        for (const [name, p] of Object.entries(LIST_PATHS)) {
          const u = `${side.url}${p}`;
          const raw = await drained(u, agent);
          if (raw.bytes !== sizes[name]) throw new Error(`${u}: ${raw.bytes} bytes, not ${sizes[name]}`);
          add(`${side.label}: ${name}, node:http drained: first byte`, raw.firstMs);
          add(`${side.label}: ${name}, node:http drained: last byte`, raw.lastMs);
          add(`${side.label}: ${name}, fetch + text()`, await timed(async () => (await fetch(u)).text()));
          add(`${side.label}: ${name}, fetch + JSON.parse`, await timed(async () => (await fetch(u)).json()));
        }
      }
      process.stderr.write(`round ${round + 1}/${rounds}\n`);
    }
  } finally {
    floorServer.kill();
    agent.destroy();
  }
  const table: Record<string, Stats> = {};
  for (const [name, xs] of Object.entries(samples)) table[name] = stats(xs);
  return { table, sizes };
}

async function main(): Promise<void> {
  const argv = await yargs(hideBin(process.argv))
    .option('datasets', { type: 'number', default: 100_000 })
    .option('nodes', { type: 'number', default: 10_000 })
    .option('rounds', { type: 'number', default: 20, describe: 'Samples per variant (interleaved)' })
    .option('compress', { type: 'boolean', default: true, describe: 'Run the service with --compress-lists' })
    .option('client', { type: 'boolean', default: true, describe: 'Also time FlockerClient.listDatasets' })
    .option('rebuild', { type: 'boolean', default: false, describe: 'Only the per-change work, in process (old/new)' })
    .option('floor', {
      type: 'boolean',
      default: false,
      describe: 'The first reads after the start, then full reads vs a plain server sending the same bytes',
    })
    .option('against', {
      type: 'string',
      describe:
        "Another build's dist (a copy of the old one): its full, 304 and after-a-change reads interleaved with these",
    })
    .strict()
    .parse();
  if (argv.rebuild) return rebuild(argv.datasets, argv.nodes, argv.rounds);
  const dir = mkdtempSync(path.join(tmpdir(), 'flocker-lists-'));
  // Random ids, as real ones are (they are most of the bytes, and what gzip cannot squeeze).
  const nodes = Array.from({ length: argv.nodes }, () => randomUUID());
  const owned: string[][] = nodes.map(() => []);
  const datasets = new Map<string, DatasetConfiguration>();
  for (let k = 0; k < argv.datasets; k++) {
    const id = randomUUID();
    const i = k % argv.nodes;
    datasets.set(id, {
      dataset_id: id,
      primary: nodes[i] as string,
      maximum_size: 67108864,
      metadata: { name: `vol-${k}` },
      deleted: false,
    });
    owned[i]?.push(id);
  }
  writeFileSync(
    path.join(dir, CONFIGURATION_FILE),
    encodeConfiguration({ ...emptyConfiguration, version: 1, datasets }),
  );
  const serverArgs = argv.compress && !argv.floor ? ['--compress-lists'] : [];
  const otherDir = argv.against !== undefined ? mkdtempSync(path.join(tmpdir(), 'flocker-lists-a-')) : undefined;
  if (otherDir !== undefined) cpSync(dir, otherDir, { recursive: true });
  const { child, url } = await startServer(dir, [], serverArgs);
  const other =
    argv.against !== undefined && otherDir !== undefined
      ? await startServer(otherDir, [], serverArgs, argv.against).catch(async (err: unknown) => {
          await stopServer(child);
          throw err;
        })
      : undefined;
  const client = new FlockerClient({ baseUrl: url });
  const otherClient = other !== undefined ? new FlockerClient({ baseUrl: other.url }) : undefined;
  const report = (i: number, extra = 0): NodeReport => syntheticReport(i, nodes[i] as string, owned[i] ?? [], extra);
  try {
    await pooled([...nodes.keys()], 32, async (i) => void (await client.reportNodeState(report(i))));
    if (argv.floor) {
      if (otherClient !== undefined)
        await pooled([...nodes.keys()], 32, async (i) => void (await otherClient.reportNodeState(report(i))));
      const others = other !== undefined ? [{ label: 'against', url: other.url }] : [];
      const { table, sizes } = await floor(url, argv.rounds, nodes, others);
      process.stdout.write(
        `${JSON.stringify({ datasets: argv.datasets, nodes: argv.nodes, rounds: argv.rounds, table, sizes }, null, 2)}\n`,
      );
      return;
    }
    if (otherClient !== undefined)
      await pooled([...nodes.keys()], 32, async (i) => void (await otherClient.reportNodeState(report(i))));
    const lists = { datasets: `${url}/v1/configuration/datasets`, states: `${url}/v1/state/datasets` };
    // A change each list shows: a new dataset, a node's manifestation sizes.
    let changes = 0;
    const change = {
      datasets: async (): Promise<void> =>
        void (await client.createDataset({ primary: nodes[changes++ % argv.nodes] as string })),
      states: async (): Promise<void> => void (await client.reportNodeState(report(changes++ % argv.nodes, changes))),
    };
    const plain = { 'accept-encoding': 'identity' };
    const samples: Record<string, number[]> = {};
    const sizes: Record<string, number> = {};
    const add = (name: string, r: Read): void => {
      (samples[name] ??= []).push(r.ms);
      sizes[`${name} (${r.encoding}, HTTP ${r.status})`] = r.bytes;
    };
    // Warm: bodies built, gzipped copies made.
    for (const u of Object.values(lists)) {
      await read(u, plain);
      await read(u, { 'accept-encoding': 'gzip' });
    }
    await new Promise((r) => setTimeout(r, 2000));
    const shared = new FlockerClient({ baseUrl: url });
    // Old and new side by side: the same reads and changes on both, in alternating order.
    const sides =
      other !== undefined && otherClient !== undefined
        ? [
            { label: 'new', url, client },
            { label: 'old', url: other.url, client: otherClient },
          ]
        : [];
    for (const side of sides) {
      await read(`${side.url}/v1/configuration/datasets`, plain);
      await read(`${side.url}/v1/state/datasets`, plain);
    }
    for (let round = 0; round < argv.rounds; round++) {
      // Each side first, middle and last in turn.
      for (const side of [...sides.slice(round % sides.length), ...sides.slice(0, round % sides.length)]) {
        for (const name of ['datasets', 'states'] as const) {
          const u = `${side.url}${name === 'datasets' ? '/v1/configuration/datasets' : '/v1/state/datasets'}`;
          const full = await read(u, plain);
          add(`${side.label}: ${name} full`, full);
          add(`${side.label}: ${name} 304`, await read(u, { ...plain, 'if-none-match': full.etag }));
          if (name === 'datasets')
            await side.client.createDataset({ primary: nodes[changes++ % argv.nodes] as string });
          else await side.client.reportNodeState(report(changes++ % argv.nodes, changes));
          add(`${side.label}: ${name} full after a change`, await read(u, plain));
          await new Promise((r) => setTimeout(r, 300));
        }
      }
      // Old/new runs time only the reads both builds answer alike.
      const only = sides.length > 0 ? [] : (Object.entries(lists) as [keyof typeof lists, string][]);
      for (const [name, u] of only) {
        const full = await read(u, plain);
        add(`${name} full`, full);
        add(`${name} 304`, await read(u, { ...plain, 'if-none-match': full.etag }));
        const gz = await read(u, { 'accept-encoding': 'gzip' });
        add(`${name} gzip`, gz);
        await change[name]();
        add(`${name} full after a change`, await read(u, plain));
        // The gzipped copy of the new body is made in the background: let it finish before the next round.
        await new Promise((r) => setTimeout(r, 300));
      }
      if (argv.client && sides.length === 0) {
        (samples['client listDatasets, unconditional'] ??= []).push(
          await timed(() => new FlockerClient({ baseUrl: url }).listDatasets()),
        );
        // The same client asks again: its If-None-Match gets a 304 and it answers from what it holds.
        await shared.listDatasets();
        (samples['client listDatasets, conditional (304)'] ??= []).push(await timed(() => shared.listDatasets()));
      }
      process.stderr.write(`round ${round + 1}/${argv.rounds}\n`);
    }
    const table: Record<string, Stats> = {};
    for (const [name, xs] of Object.entries(samples)) table[name] = stats(xs);
    process.stdout.write(
      `${JSON.stringify({ datasets: argv.datasets, nodes: argv.nodes, rounds: argv.rounds, table, sizes }, null, 2)}\n`,
    );
  } finally {
    await stopServer(child);
    if (other !== undefined) await stopServer(other.child);
    rmSync(dir, { recursive: true, force: true });
    if (otherDir !== undefined) rmSync(otherDir, { recursive: true, force: true });
  }
}

void main().catch((err: unknown) => {
  process.stderr.write(`${String(err)}\n`);
  process.exit(1);
});

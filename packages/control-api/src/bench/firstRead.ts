/**
 * The first read of a whole list after a start (issue 23), in process: the service's work for it
 * and the event loop's longest turn meanwhile (a setImmediate chain: the longest gap between two of
 * its callbacks), built in one synchronous pass (`--variant sync`, as before session 24) or across
 * turns (`--variant sliced`). One build per process (fresh reports and datasets: nothing cached);
 * run A/B interleaved from a shell loop. Prints one JSON line.
 *   node --expose-gc packages/control-api/dist/bench/firstRead.js --list states|datasets|entry --variant sync|sliced
 *     [--nodes 10000 --per-node 10] [--dist <a control-api dist: its clusterState.js and listBodies.js>]
 */
import { randomUUID } from 'node:crypto';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import type { DatasetConfiguration } from '@flocker/api';
import * as path from 'node:path';
import type { ReportedNode } from '../clusterState';
import { PersistentMap } from '../PersistentMap';
import { nextTurn, Slice } from '../slices';
import { syntheticReport } from './reports';

async function main(): Promise<void> {
  const argv = await yargs(hideBin(process.argv))
    // entry: GET /v1/state/datasets?dataset_id= (a waiter's poll) first after a start, which learns every report.
    .option('list', { choices: ['states', 'datasets', 'entry'] as const, default: 'states' as const })
    .option('variant', { choices: ['sync', 'sliced'] as const, demandOption: true })
    .option('nodes', { type: 'number', default: 10_000 })
    .option('per-node', { type: 'number', default: 10 })
    // The lists' code from another build (before/after A/B: a dist with an older clusterState.js / listBodies.js).
    .option('dist', { type: 'string', default: path.join(__dirname, '..') })
    .strict()
    .parse();
  const { DatasetStateList } = (await import(
    path.resolve(argv.dist, 'clusterState.js')
  )) as typeof import('../clusterState');
  const { JoinedList } = (await import(path.resolve(argv.dist, 'listBodies.js'))) as typeof import('../listBodies');
  const nodes = Array.from({ length: argv.nodes }, () => randomUUID());
  const owned = nodes.map(() => Array.from({ length: argv['per-node'] }, () => randomUUID()));
  let build: () => Promise<{ length: number }>;
  if (argv.list !== 'datasets') {
    const alive: ReportedNode[] = nodes.map((uuid, i) => ({
      lastSeen: Date.now(),
      report: syntheticReport(i, uuid, owned[i] ?? []),
    }));
    const list = new DatasetStateList();
    const one = owned[0]?.[0] ?? '';
    // The entry as Views.datasetStateOf / datasetStateOfSliced read it: the reports learnt (sliced or not), then it.
    if (argv.list === 'entry')
      build =
        argv.variant === 'sync'
          ? async () => list.entryOf(alive, one)
          : async () => (await list.syncSliced(alive, new Slice()), list.entryOf(alive, one));
    else build = argv.variant === 'sync' ? async () => list.body(alive) : () => list.bodySliced(alive);
  } else {
    const entries = new Map<string, DatasetConfiguration>();
    nodes.forEach((primary, i) => {
      for (const [k, id] of (owned[i] ?? []).entries())
        entries.set(id, { dataset_id: id, primary, metadata: { name: `vol-${i}-${k}` }, deleted: false });
    });
    const map = PersistentMap.from(entries);
    const list = new JoinedList<DatasetConfiguration>();
    build = argv.variant === 'sync' ? async () => list.of(map) : () => list.ofSliced(map);
  }
  // The loop's turns, timed from a chain of setImmediate callbacks running beside the build.
  let last = performance.now();
  let longest = 0;
  let turns = 0;
  let running = true;
  const long: string[] = [];
  let t0 = 0;
  const tick = (): void => {
    const t = performance.now();
    longest = Math.max(longest, t - last);
    if (t0 > 0 && t - last >= 20) long.push(`${(last - t0).toFixed(0)}+${(t - last).toFixed(0)}`);
    last = t;
    turns++;
    if (running) setImmediate(tick);
  };
  setImmediate(tick);
  // What was just made (the reports, the datasets) moved to the old space, as a running service's have been
  // (with --expose-gc): the young generation's scavenges then copy what the build makes, not the set-up.
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  gc?.();
  await nextTurn();
  await nextTurn();
  longest = 0;
  turns = 0;
  t0 = performance.now();
  const body = await build();
  const firstReadMs = performance.now() - t0;
  await nextTurn();
  running = false;
  process.stdout.write(
    `${JSON.stringify({ list: argv.list, variant: argv.variant, dist: argv.dist, nodes: argv.nodes, perNode: argv['per-node'], bytes: body.length, firstReadMs: +firstReadMs.toFixed(1), longestTurnMs: +longest.toFixed(1), turns, turnsOver20ms: long.join(' ') })}\n`,
  );
}

void main();

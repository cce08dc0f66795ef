/**
 * A move away and straight back (session 9, stale mounted): the old holder's agent unmounts for the move away,
 * but its report of that is debounced and the new holder's "mounted" can come first; moved back before that
 * report came, the dataset showed in /v1/state/datasets as mounted on its primary, at a path not mounted.
 * flocker-go waits for exactly that (primary == node, path) and hands the path to its container. Now a node's
 * "mounted" from a report received before the dataset was moved onto it is not shown until it reports again.
 * Real control service (in-process), reports sent as the agents would.
 */
import { FlockerClient } from '@flocker/api';
import { DatasetStateList, datasetStateJson } from './clusterState';
import { emptyConfiguration } from './configuration';
import { mountVerdict } from './ControlState';
import { EventRing } from './events';
import { NodeReports } from './nodeReports';
import type { ControlService } from './server';
import { A, B, C, letterReport as report, mountedManifestation as mounted } from './testing/fixtures';
import { silentLogger, startOnLoopback, configurationVersionOf, stateInList } from './testing/httpService';

let svc: ControlService;
let client: FlockerClient;

beforeEach(async () => {
  svc = await startOnLoopback();
  client = new FlockerClient({ baseUrl: svc.url });
});

afterEach(async () => {
  await svc.close();
});

const shown = (id: string) => stateInList(client, id);

it('a dataset moved back onto a node is not shown mounted there from its report before the move', async () => {
  await client.reportNodeState(report(A));
  await client.reportNodeState(report(B));
  const d = await client.createDataset({ primary: A, maximum_size: 1024 ** 3 });
  const id = d.dataset_id;
  await client.reportNodeState(report(A, { manifestations: [mounted(id, A)] }));
  expect(await shown(id)).toMatchObject({ primary: A, path: `/flocker-a/${id}` });
  await client.updateDataset(id, { primary: B });
  // B mounts and reports first; A's report of its unmount is still to come.
  await client.reportNodeState(report(B, { manifestations: [mounted(id, B)] }));
  await client.updateDataset(id, { primary: A });
  // Before: { primary: A, path: '/flocker-a/<id>' } (A's report first) — a path A has unmounted.
  expect(await shown(id)).not.toMatchObject({ primary: A });
  expect(await shown(id)).toMatchObject({ primary: B, path: `/flocker-b/${id}` });
  // A's next report, even the same as before (mounted again before it reported), is shown.
  await client.reportNodeState(report(B));
  await client.reportNodeState(report(A, { manifestations: [mounted(id, A)] }));
  expect(await shown(id)).toEqual({ dataset_id: id, primary: A, maximum_size: 1024 ** 3, path: `/flocker-a/${id}` });
});

it('other datasets of the same report, a move elsewhere and a new dataset are shown as before', async () => {
  await client.reportNodeState(report(A));
  await client.reportNodeState(report(B));
  await client.reportNodeState(report(C));
  const d1 = (await client.createDataset({ primary: A, maximum_size: 1024 ** 3 })).dataset_id;
  const d2 = (await client.createDataset({ primary: A, maximum_size: 1024 ** 3 })).dataset_id;
  await client.reportNodeState(report(A, { manifestations: [mounted(d1, A), mounted(d2, A)] }));
  await client.updateDataset(d1, { primary: B });
  await client.updateDataset(d1, { primary: A });
  expect(await shown(d1)).toBeUndefined();
  expect(await shown(d2)).toMatchObject({ primary: A, path: `/flocker-a/${d2}` });
  // Moved on to C (not the reporting node): nothing of A's is hidden any more.
  await client.updateDataset(d1, { primary: C });
  expect(await shown(d1)).toMatchObject({ primary: A, path: `/flocker-a/${d1}` });
  // A move onto a node that does not show it mounted hides nothing.
  await client.updateDataset(d2, { primary: B });
  expect(await shown(d2)).toMatchObject({ primary: A, path: `/flocker-a/${d2}` });
  const d3 = (await client.createDataset({ primary: B, maximum_size: 1024 ** 3 })).dataset_id;
  await client.reportNodeState(report(B, { manifestations: [mounted(d3, B)] }));
  expect(await shown(d3)).toMatchObject({ primary: B, path: `/flocker-b/${d3}` });
});

/** The committed configuration's version, as an agent reads it from its snapshot's tag. */
const version = () => configurationVersionOf(client);

describe('configuration_version (session 10): a report built before the move back, received after it', () => {
  it('is not shown mounted on the node the dataset moved back onto; a report built at the move back is, at once', async () => {
    await client.reportNodeState(report(A, { configuration_version: await version() }));
    await client.reportNodeState(report(B, { configuration_version: await version() }));
    const id = (await client.createDataset({ primary: A, maximum_size: 1024 ** 3 })).dataset_id;
    await client.reportNodeState(
      report(A, { manifestations: [mounted(id, A)], configuration_version: await version() }),
    );
    await client.updateDataset(id, { primary: B });
    const away = await version();
    // A's agent has the move away and is unmounting (its worker runs); a report it builds now still shows it mounted.
    const inFlight = report(A, { manifestations: [mounted(id, A)], configuration_version: away });
    await client.reportNodeState(report(B, { manifestations: [mounted(id, B)], configuration_version: away }));
    await client.updateDataset(id, { primary: A });
    const back = await version();
    expect(back).toBeGreaterThan(away);
    // ... and reaches the control service only now, milliseconds after the move back (A's kernel: unmounted).
    await client.reportNodeState(inFlight);
    // Before (session 9: any report since the move counts): { primary: A, path: '/flocker-a/<id>' }, not mounted.
    expect(await shown(id)).not.toMatchObject({ primary: A });
    expect(await shown(id)).toMatchObject({ primary: B, path: `/flocker-b/${id}` });
    // The same again (a heartbeat of that state) changes nothing: only the version counts, not a later receipt.
    await client.reportNodeState(inFlight);
    expect(await shown(id)).not.toMatchObject({ primary: A });
    // B unmounts and detaches; A, having acted on the move back, mounts and reports: shown with no further report.
    await client.reportNodeState(report(B, { configuration_version: back }));
    await client.reportNodeState(report(A, { manifestations: [mounted(id, A)], configuration_version: back }));
    expect(await shown(id)).toEqual({ dataset_id: id, primary: A, maximum_size: 1024 ** 3, path: `/flocker-a/${id}` });
    // Nothing is kept once A caught up: a later report (at a later version) is taken as it comes.
    expect(svc.state.staleMounts().size).toBe(0);
  });

  it('hides only that dataset, only on that node; a newer version or a move elsewhere ends it', async () => {
    await client.reportNodeState(report(A, { configuration_version: await version() }));
    await client.reportNodeState(report(B, { configuration_version: await version() }));
    await client.reportNodeState(report(C, { configuration_version: await version() }));
    const d1 = (await client.createDataset({ primary: A, maximum_size: 1024 ** 3 })).dataset_id;
    const d2 = (await client.createDataset({ primary: A, maximum_size: 1024 ** 3 })).dataset_id;
    await client.updateDataset(d1, { primary: B });
    const away = await version();
    await client.updateDataset(d1, { primary: A });
    const back = await version();
    // Built between the two moves (at `away`), received after the second.
    await client.reportNodeState(
      report(A, { manifestations: [mounted(d1, A), mounted(d2, A)], configuration_version: away }),
    );
    expect(await shown(d1)).toBeUndefined();
    expect(await shown(d2)).toMatchObject({ primary: A, path: `/flocker-a/${d2}` });
    // A report at a version between the two moves is still older than the move back.
    await client.reportNodeState(
      report(A, { manifestations: [mounted(d1, A), mounted(d2, A)], configuration_version: back - 1 }),
    );
    expect(await shown(d1)).toBeUndefined();
    // Moved on to C: A's "mounted" is what A holds again (shown as before: it is not where the primary is).
    await client.updateDataset(d1, { primary: C });
    expect(await shown(d1)).toMatchObject({ primary: A, path: `/flocker-a/${d1}` });
    // Moved back onto A once more: a report at a version from before that move hides it; at or after it, shown.
    await client.updateDataset(d1, { primary: A });
    const again = await version();
    expect(await shown(d1)).toBeUndefined();
    await client.reportNodeState(
      report(A, { manifestations: [mounted(d1, A), mounted(d2, A)], configuration_version: again }),
    );
    expect(await shown(d1)).toMatchObject({ primary: A, path: `/flocker-a/${d1}` });
  });

  it('a version-only report (a configuration change elsewhere) wakes no view and keeps the state lists and tags', async () => {
    await client.reportNodeState(report(A, { configuration_version: await version() }));
    await client.reportNodeState(report(B, { configuration_version: await version() }));
    const onA = (await client.createDataset({ primary: A, maximum_size: 1024 ** 3 })).dataset_id;
    await client.reportNodeState(
      report(A, { manifestations: [mounted(onA, A)], configuration_version: await version() }),
    );
    // A change elsewhere: a create on B. A's next heartbeat carries the higher version, nothing else new.
    await client.createDataset({ primary: B, maximum_size: 1024 ** 3 });
    const tags = async () =>
      Promise.all(
        ['/v1/state/datasets', '/v1/state/nodes'].map(async (p) => (await fetch(svc.url + p)).headers.get('etag')),
      );
    const before = await tags();
    const generation = svc.state.generation;
    let wakes = 0;
    const sub = svc.state.subscribeView(A, generation, () => (wakes += 1));
    const whole = svc.state.waitForChange(generation, 300).then(() => svc.state.generation);
    await client.reportNodeState(
      report(A, { manifestations: [mounted(onA, A)], configuration_version: await version() }),
    );
    await new Promise((r) => setTimeout(r, 100));
    sub.cancel();
    expect(wakes).toBe(0);
    expect(svc.state.nodeViews.changedSince(A, generation)).toBe(false);
    expect(svc.state.generation).toBe(generation);
    expect(await whole).toBe(generation); // timed out: no whole-cluster waiter woken either
    expect(await tags()).toEqual(before);
    expect(await shown(onA)).toMatchObject({ primary: A, path: `/flocker-a/${onA}` });
  });

  it('a version-only report that ends a hidden stale "mounted" shows it at once and wakes its waiters', async () => {
    await client.reportNodeState(report(A, { configuration_version: await version() }));
    await client.reportNodeState(report(B, { configuration_version: await version() }));
    const id = (await client.createDataset({ primary: A, maximum_size: 1024 ** 3 })).dataset_id;
    await client.reportNodeState(
      report(A, { manifestations: [mounted(id, A)], configuration_version: await version() }),
    );
    await client.updateDataset(id, { primary: B });
    const away = await version();
    await client.reportNodeState(report(B, { manifestations: [mounted(id, B)], configuration_version: away }));
    await client.updateDataset(id, { primary: A });
    const back = await version();
    // Built before A acted on the move back, received after it: hidden.
    await client.reportNodeState(report(A, { manifestations: [mounted(id, A)], configuration_version: away }));
    await client.reportNodeState(report(B, { configuration_version: back }));
    expect(await shown(id)).toBeUndefined();
    const generation = svc.state.generation;
    const started = Date.now();
    // A whole-cluster long-poll (flocker volumes move --wait) and one on A's view (docs/performance.md: having seen
    // D mounted on A there, it reads /v1/state/datasets, and while that hides it waits on the view again).
    const whole = svc.state.waitForChange(generation, 5_000);
    const view = svc.state.waitForChange(generation, 5_000, undefined, A);
    // A acted on the move back; its mount shows the same as before: only the version is new.
    await client.reportNodeState(report(A, { manifestations: [mounted(id, A)], configuration_version: back }));
    await Promise.all([whole, view]);
    // Woken, not ended by the waits' 5 s timeout (half of it leaves a loaded host room).
    expect(Date.now() - started).toBeLessThan(2_500);
    expect(svc.state.generation).not.toBe(generation);
    expect(await shown(id)).toEqual({ dataset_id: id, primary: A, maximum_size: 1024 ** 3, path: `/flocker-a/${id}` });
    expect(svc.state.staleMounts().size).toBe(0);
  });

  it('an agent that reports no version keeps the session-9 rule (any report after the move counts)', async () => {
    await client.reportNodeState(report(A));
    await client.reportNodeState(report(B));
    const id = (await client.createDataset({ primary: A, maximum_size: 1024 ** 3 })).dataset_id;
    await client.reportNodeState(report(A, { manifestations: [mounted(id, A)] }));
    await client.updateDataset(id, { primary: B });
    await client.updateDataset(id, { primary: A });
    expect(await shown(id)).toBeUndefined();
    await client.reportNodeState(report(A, { manifestations: [mounted(id, A)] }));
    expect(await shown(id)).toMatchObject({ primary: A, path: `/flocker-a/${id}` });
  });

  it('is never in the node states the service answers (agents one release behind parse them strictly)', async () => {
    await client.reportNodeState(report(A, { configuration_version: await version() }));
    const snap = await client.waitForCluster(undefined, 0);
    expect(snap.nodes.find((n) => n.uuid === A)).not.toHaveProperty('configuration_version');
    const view = await client.waitForCluster(undefined, 0, { node: A });
    expect(view.nodes.find((n) => n.uuid === A)).not.toHaveProperty('configuration_version');
  });
});

describe('DatasetStateList.body with hidden manifestations (pure)', () => {
  it('leaves out exactly the hidden ones, the same as datasetStateJson, with or without another report showing them', () => {
    const list = new DatasetStateList();
    const D = '11111111-1111-4111-8111-111111111111';
    const E = '22222222-2222-4222-8222-222222222222';
    const a = report(A, {
      manifestations: [mounted(D, A), mounted(E, A)],
      volumes: [{ blockdevice_id: `bd-${E}`, dataset_id: E, size: 1024 ** 3, attached_to: 'i-a' }],
    });
    const b = report(B, { manifestations: [mounted(D, B)] });
    const nodes = [
      { report: a, lastSeen: 1 },
      { report: b, lastSeen: 1 },
    ];
    const hidden = new Map([[a, new Set([D])]]);
    const ids = (json: string) =>
      (JSON.parse(json) as Array<{ dataset_id: string; primary: string }>).map((s) => `${s.dataset_id}@${s.primary}`);
    expect(ids(list.body(nodes).toString())).toEqual([`${D}@${A}`, `${E}@${A}`]);
    expect(ids(list.body(nodes, hidden).toString())).toEqual([`${E}@${A}`, `${D}@${B}`]);
    expect(list.body(nodes, hidden).toString()).toBe(datasetStateJson(nodes, new WeakMap(), hidden));
    // Hidden and shown by no other report: not listed at all; and back once nothing is hidden.
    const onlyE = new Map([[a, new Set([E])]]);
    expect(ids(list.body(nodes, onlyE).toString())).toEqual([`${D}@${A}`]);
    expect(list.body(nodes, onlyE).toString()).toBe(datasetStateJson(nodes, new WeakMap(), onlyE));
    expect(ids(list.body(nodes).toString())).toEqual([`${D}@${A}`, `${E}@${A}`]);
  });
});

describe('mountVerdict (pure)', () => {
  const then = report(A, { manifestations: [mounted('d', A)] });
  const later = report(A, { manifestations: [mounted('d', A)] });
  it('with a version: stale below the move, ended at or above it; without: stale only for the report sent before', () => {
    for (const reportThen of [undefined, then]) {
      const moved = { node: A, version: 7, ...(reportThen !== undefined ? { reportThen } : {}) };
      expect(mountVerdict(moved, then, 6)).toBe('stale');
      expect(mountVerdict(moved, later, 6)).toBe('stale');
      expect(mountVerdict(moved, then, 7)).toBe('ended');
      expect(mountVerdict(moved, later, 8)).toBe('ended');
      expect(mountVerdict(moved, later, undefined)).toBe('ended');
      expect(mountVerdict(moved, then, undefined)).toBe(reportThen === undefined ? 'ended' : 'stale');
    }
  });
});

describe('NodeReports keeps configuration_version beside the report (received here or through etcd)', () => {
  it('never in the report answered, shared as received, a new version alone moves no generation', () => {
    const n = new NodeReports({
      nodeTimeoutMs: 30_000,
      now: () => 1000,
      startedAt: 0,
      logger: silentLogger,
      events: new EventRing(),
      configuration: () => emptyConfiguration,
      onStateChange: () => undefined,
      onDeadNodesChanged: () => undefined,
    });
    const r = report(A, { manifestations: [mounted('d', A)], configuration_version: 7 });
    const shared = n.record(r, 1000);
    expect(JSON.parse(shared)).toEqual(r);
    expect(n.reportedNode(A)?.report).not.toHaveProperty('configuration_version');
    expect(JSON.parse(n.reportJson(A) ?? '{}')).not.toHaveProperty('configuration_version');
    expect(n.configurationVersion(A)).toBe(7);
    const g = n.generation;
    n.record(r, 1001);
    expect(n.generation).toBe(g); // the same again: nothing new
    const kept = n.reportedNode(A)?.report;
    // A new version alone (a configuration change anywhere): kept, but no state change, the same report object, and
    // shared as before (the JSON etcd holds, version 7), so no new write (session 10, helper J).
    expect(n.record({ ...r, configuration_version: 8 }, 1002)).toBe(shared);
    expect(n.generation).toBe(g);
    expect(n.configurationVersion(A)).toBe(8);
    expect(n.reportedNode(A)?.report).toBe(kept);
    expect(n.reportedNode(A)?.lastSeen).toBe(1002);
    // Another replica's (etcd): the same.
    n.external({ ...r, configuration_version: 9 }, 1003);
    expect(n.configurationVersion(A)).toBe(9);
    expect(JSON.parse(n.reportJson(A) ?? '{}')).not.toHaveProperty('configuration_version');
    expect(n.generation).toBe(g);
    // Anything else new: a state change, shared with its version.
    const r2 = report(A, { configuration_version: 10 });
    expect(JSON.parse(n.record(r2, 1004))).toEqual(r2);
    expect(n.generation).toBe(g + 1);
    // An older agent's report: no version (a change: another report object, the session-9 rule reads it).
    n.record(report(A), 1004);
    expect(n.generation).toBe(g + 2);
    expect(n.configurationVersion(A)).toBeUndefined();
    expect(n.record(report(A), 1005)).toBe(JSON.stringify(report(A)));
  });
});

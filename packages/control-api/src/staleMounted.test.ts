/**
 * A move away and straight back (session 9, stale mounted): the old holder's agent unmounts for the move away,
 * but its report of that is debounced and the new holder's "mounted" can come first; moved back before that
 * report came, the dataset showed in /v1/state/datasets as mounted on its primary, at a path not mounted.
 * flocker-go waits for exactly that (primary == node, path) and hands the path to its container. Now a node's
 * "mounted" from a report received before the dataset was moved onto it is not shown until it reports again.
 * Real control service (in-process), reports sent as the agents would.
 */
import { FlockerClient, type ManifestationState } from '@flocker/api';
import { DatasetStateList, datasetStateJson } from './clusterState';
import { MemoryConfigurationStore } from './ConfigurationStore';
import { type ControlService, startControlService } from './server';
import { A, B, C, letterReport as report } from './testing/fixtures';
import { silentLogger } from './testing/httpService';

let svc: ControlService;
let client: FlockerClient;

beforeEach(async () => {
  svc = await startControlService({
    port: 0,
    host: '127.0.0.1',
    store: new MemoryConfigurationStore(),
    logger: silentLogger,
  });
  client = new FlockerClient({ baseUrl: svc.url });
});

afterEach(async () => {
  await svc.close();
});

const mounted = (id: string, node: string): ManifestationState => ({
  dataset_id: id,
  blockdevice_id: `bd-${id}`,
  size: 1024 ** 3,
  status: 'mounted',
  path: `/flocker-${node.slice(0, 1)}/${id}`,
});

const shown = async (id: string) => (await client.listDatasetState()).find((s) => s.dataset_id === id);

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

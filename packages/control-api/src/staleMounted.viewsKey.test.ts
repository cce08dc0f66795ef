/**
 * The whole state list is cached per state generation and the stale "mounted" hidden (Views.datasetState). A move
 * changes no generation, so the key must say on which node a dataset is hidden, not only which dataset: a dataset
 * moved from one node to another, each showing it mounted from a report before its move, hides it on the other.
 */
import { FlockerClient } from '@flocker/api';
import type { ControlService } from './server';
import { A, B, C, letterReport as report, mountedManifestation as mounted } from './testing/fixtures';
import { startOnLoopback } from './testing/httpService';

let svc: ControlService;
let client: FlockerClient;

beforeEach(async () => {
  svc = await startOnLoopback();
  client = new FlockerClient({ baseUrl: svc.url });
});

afterEach(async () => {
  await svc.close();
});

const mountedOn = async (id: string) =>
  (await client.listDatasetState()).filter((s) => s.dataset_id === id && s.path !== undefined).map((s) => s.primary);

it('a dataset hidden on one node and then on another (no report between) is shown by the node it left', async () => {
  await client.reportNodeState(report(A));
  const id = (await client.createDataset({ primary: A, maximum_size: 1024 ** 3 })).dataset_id;
  // B and C show it mounted from before (reports built before either move below).
  await client.reportNodeState(report(B, { manifestations: [mounted(id, B)] }));
  await client.reportNodeState(report(C, { manifestations: [mounted(id, C)] }));
  await client.updateDataset(id, { primary: B });
  expect(await mountedOn(id)).toEqual([C]);
  await client.updateDataset(id, { primary: C });
  // The same dataset hidden, on C now: the body cached for B's hiding showed C's stale "mounted".
  expect(await mountedOn(id)).toEqual([B]);
});

/**
 * Review R3 (session 10, stale mounted): a replica that adopts another replica's configurations while its own commit
 * is in flight keeps only the latest (Committer.externalConfiguration). A move away and straight back committed
 * there as two versions then reaches this replica as one change in which the dataset's primary did not move, so no
 * move onto the node was noted, and the node's "mounted" from a report built before its agent acted on the move back
 * was shown. Real control service (in-process), the other replica's configurations handed in as its store would.
 */
import { FlockerClient } from '@flocker/api';
import { createDataset, updateDataset } from './configuration';
import type { ControlService } from './server';
import { A, B, letterReport as report, mountedManifestation } from './testing/fixtures';
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

const mounted = (id: string) => mountedManifestation(id, A);

it('a move away and back adopted as one change while a commit of ours is in flight is noted as a move', async () => {
  await client.reportNodeState(report(A));
  await client.reportNodeState(report(B));
  const id = (await client.createDataset({ primary: A, maximum_size: 1024 ** 3 })).dataset_id;
  const state = svc.state;
  const base = state.configuration;
  await client.reportNodeState(report(A, { manifestations: [mounted(id)], configuration_version: base.version }));
  // Another replica commits the move away (base + 1) and the move back (base + 2).
  const away = updateDataset(base, id, { primary: B }, Date.now()).config;
  const back = updateDataset(away, id, { primary: A }, Date.now()).config;
  // Our own commit in flight meanwhile (it would conflict on a shared store; this one takes it at base + 1).
  const ours = state.mutate((c, now) =>
    createDataset(c, { primary: B, maximum_size: 1024 ** 3 }, undefined, undefined, now),
  );
  state.externalConfiguration(away);
  state.externalConfiguration(back);
  await ours;
  expect(state.configuration.version).toBe(back.version);
  // A acted on the move away (base + 1): it unmounts, its report still says mounted. Not where the dataset is.
  await client.reportNodeState(report(A, { manifestations: [mounted(id)], configuration_version: away.version }));
  expect((await client.listDatasetState()).find((s) => s.dataset_id === id)?.primary).not.toBe(A);
  // Once A has acted on the move back, its "mounted" is shown.
  await client.reportNodeState(report(A, { manifestations: [mounted(id)], configuration_version: back.version }));
  expect((await client.listDatasetState()).find((s) => s.dataset_id === id)).toMatchObject({
    primary: A,
    path: `/flocker-a/${id}`,
  });
});

/**
 * The load floor (ControlState.floor) on a replica started beside a live one, under steady configuration changes:
 * the node's agent reports each new version to the live replica, which shares none of them (a version-only report
 * shows nothing there). The new replica holds the node's "mounted" until the store carries a version at its floor,
 * so version-only reports are shared at the store's refresh pace (node timeout / 4) too.
 */
import { randomUUID } from 'node:crypto';
import type { FlockerClient } from '@flocker/api';
import { etcdReplicas } from './testing/etcdReplicas';
import { A, letterReport as report, mountedManifestation } from './testing/fixtures';
import { configurationVersionOf as version } from './testing/httpService';

jest.setTimeout(60_000);
const NODE_TIMEOUT_S = 2;

const bed = etcdReplicas('all', 1);

async function replica(prefix: string): Promise<FlockerClient> {
  return (await bed.start(bed.store(prefix), { nodeTimeoutSeconds: NODE_TIMEOUT_S })).client;
}

const mounted = (id: string) => mountedManifestation(id, A);
const shownAt = async (c: FlockerClient, id: string) =>
  (await c.listDatasetState()).find((s) => s.dataset_id === id && s.path !== undefined)?.primary;

it('a replica started under steady changes shows an up-to-date node reporting to the other within a refresh', async () => {
  const prefix = `/flocker-test-${randomUUID()}/`;
  const one = await replica(prefix);
  await one.reportNodeState(report(A, { configuration_version: await version(one) }));
  const id = (await one.createDataset({ primary: A, maximum_size: 1024 ** 3 })).dataset_id;
  const reportNow = async () =>
    one.reportNodeState(report(A, { manifestations: [mounted(id)], configuration_version: await version(one) }));
  await reportNow();
  await one.createDataset({ primary: A, maximum_size: 1024 ** 3 });
  await reportNow();
  const two = await replica(prefix);
  expect(await shownAt(two, id)).toBeUndefined();
  // A change before each of A's reports: every one is version-only (before: two held A's "mounted" throughout).
  const started = Date.now();
  let shownAfter: number | undefined;
  while (shownAfter === undefined && Date.now() - started < 3 * NODE_TIMEOUT_S * 1000) {
    await one.createDataset({ primary: A, maximum_size: 1024 ** 3 });
    await reportNow();
    if ((await shownAt(two, id)) === A) shownAfter = Date.now() - started;
    await new Promise((r) => setTimeout(r, 50));
  }
  console.info(`two shows A's mounted ${String(shownAfter)} ms into the changes (refresh ${NODE_TIMEOUT_S * 250} ms)`);
  expect(shownAfter).toBeDefined();
  expect(await shownAt(one, id)).toBe(A);
});

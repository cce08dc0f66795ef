/**
 * unique_name across two control replicas sharing a real etcd: each replica checks the name against the
 * configuration it has, so creates of one name through both at once both pass their first check; the store's
 * compare-and-swap lets one commit, and the loser's create is applied again on the winner's configuration, where
 * the name is taken (409 DATASET_NAME_IN_USE). Without unique_name (Flocker v1) both are made.
 */
import { randomUUID } from 'node:crypto';
import type { FlockerClient } from '@flocker/api';
import { etcdReplicas } from '../testing/etcdReplicas';
import { nodeReport, NODE_A as A, NODE_B as B } from '../testing/httpService';
import { StoreConflict } from './conflict';

jest.setTimeout(90_000);
const bed = etcdReplicas('all', 1);

async function replica(prefix: string, store = bed.store(prefix)): Promise<FlockerClient> {
  return (await bed.start(store)).client;
}

async function eventually(check: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

it('creates of one name through both replicas at once: with unique_name one dataset, without it two', async () => {
  const prefix = `/flocker-unique-name-${randomUUID()}/`;
  const r1 = await replica(prefix);
  const r2 = await replica(prefix);
  await r1.reportNodeState(nodeReport(A));
  await r2.reportNodeState(nodeReport(B));
  for (const r of [r1, r2]) await eventually(async () => (await r.listNodes()).length === 2);
  const named = (c: FlockerClient, name: string) =>
    c.listDatasets().then((all) => all.filter((d) => !d.deleted && d.metadata['name'] === name));

  for (let round = 0; round < 5; round++) {
    const name = `race-${round}`;
    // Two creates through each replica: group-committed there, racing the other replica's commit.
    const answers = await Promise.allSettled(
      [r1, r2, r1, r2].map((r, i) =>
        r.createDataset({ primary: i % 2 === 0 ? A : B, metadata: { name }, unique_name: true }),
      ),
    );
    const made = answers.flatMap((a) => (a.status === 'fulfilled' ? [a.value.dataset_id] : []));
    expect([name, made.length]).toEqual([name, 1]);
    for (const a of answers)
      if (a.status === 'rejected') expect(a.reason).toMatchObject({ status: 409, code: 'DATASET_NAME_IN_USE' });
    for (const r of [r1, r2]) {
      await eventually(async () => (await named(r, name)).length === 1);
      expect((await named(r, name)).map((d) => d.dataset_id)).toEqual(made);
    }
  }

  // The window the opt-in closes: without it both replicas make one.
  await Promise.all([r1, r2].map((r, i) => r.createDataset({ primary: i === 0 ? A : B, metadata: { name: 'v1' } })));
  for (const r of [r1, r2]) await eventually(async () => (await named(r, 'v1')).length === 2);
});

it("the loser's create is applied again on the winner's configuration: refused there, 409 (a held commit forces it)", async () => {
  const prefix = `/flocker-unique-name-${randomUUID()}/`;
  const r1 = await replica(prefix);
  // Replica 2's commits wait at a gate, so its create is applied on a configuration without the winner's.
  const store2 = bed.store(prefix);
  const commit = store2.commit.bind(store2);
  let gate: Promise<void> | undefined;
  let held = 0;
  let conflicts = 0;
  store2.commit = async (config, base) => {
    if (gate !== undefined) {
      held += 1;
      await gate;
    }
    try {
      await commit(config, base);
    } catch (err) {
      if (err instanceof StoreConflict) conflicts += 1;
      throw err;
    }
  };
  const r2 = await replica(prefix, store2);
  await r1.reportNodeState(nodeReport(A));
  await eventually(async () => (await r2.listNodes()).length === 1);

  let open: () => void = () => undefined;
  gate = new Promise<void>((resolve) => (open = resolve));
  const loser = r2.createDataset({ primary: A, metadata: { name: 'held' }, unique_name: true });
  await eventually(async () => held === 1);
  const winner = await r1.createDataset({ primary: A, metadata: { name: 'held' }, unique_name: true });
  gate = undefined;
  open();
  await expect(loser).rejects.toMatchObject({
    status: 409,
    code: 'DATASET_NAME_IN_USE',
    description: expect.stringContaining(winner.dataset_id) as unknown,
  });
  expect(conflicts).toBeGreaterThanOrEqual(1);
  for (const r of [r1, r2]) {
    await eventually(async () => (await r.listDatasets()).some((d) => d.dataset_id === winner.dataset_id));
    expect((await r.listDatasets()).filter((d) => d.metadata['name'] === 'held')).toHaveLength(1);
  }
});

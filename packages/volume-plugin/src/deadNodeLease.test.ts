/**
 * Session 27 (DEADHOST, the CI failure of e2e review-f-control-restart-dead-host): the control service grants no lease
 * to a node it holds dead (409 NODE_DEAD; after a restart every node unheard since its start is dead at start + T).
 * A Mount on such a node waits for its node to show alive and asks again, within its deadline, instead of failing at
 * once (with move_here the refusal was taken for the move's) or of being granted a lease the dead-node sweep takes
 * back before the Mount's watch shows it. Real control service (in-process, its clocks a test clock ahead), fake agents.
 */
import { performance } from 'node:perf_hooks';
import { FlockerApiError, type FlockerClient } from '@flocker/api';
import type { ControlClient } from './FlockerVolumeBackend';
import { BackendTestBed, HOST_A, HOST_B, NODE_A, NODE_B, type FakeDatasetAgent } from './testing';

const T_SECONDS = 10;
const G_SECONDS = 2;

let skew = 0;
let bed: BackendTestBed;
let client: FlockerClient;

beforeEach(async () => {
  skew = 0;
  bed = await BackendTestBed.start('flocker-dead-node-lease-', [HOST_A, HOST_B], undefined, {
    nodeTimeoutSeconds: T_SECONDS,
    leaseGraceSeconds: G_SECONDS,
    now: () => Date.now() + skew,
    monoNow: () => performance.now() + skew,
  });
  client = bed.client;
});

afterEach(async () => {
  for (const agent of bed.agents) agent.paused = false;
  await bed.close();
});

it('a Mount on a node held dead waits for it to report, then takes the lease and the volume', async () => {
  const [agentA, agentB] = bed.agents as [FakeDatasetAgent, FakeDatasetAgent];
  const b = await bed.backend(NODE_B, { mountTimeoutMs: 60_000 });
  const id = (await client.createDataset({ primary: NODE_A, metadata: { name: 'vol1' }, maximum_size: 1 << 30 }))
    .dataset_id;
  // Both agents silent past T + G (a dead, b slow): both declared dead.
  agentA.paused = true;
  agentB.paused = true;
  skew += (T_SECONDS + G_SECONDS + 1) * 1000;
  await bed.control.state.checkLiveness();
  expect(bed.control.state.deadSince(NODE_B)).toBeDefined();
  const t = Date.now();
  let settled: string | undefined;
  const mounting = b.mount({ Name: 'vol1', ID: 'c1' });
  mounting.then(
    () => (settled = 'resolved'),
    (err: unknown) => (settled = `rejected: ${String(err)}`),
  );
  await new Promise((r) => setTimeout(r, 1_500));
  // Refused while b is dead: no lease, not moved, and the Mount still waits.
  expect(settled).toBeUndefined();
  expect(await client.listLeases()).toEqual([]);
  expect((await client.getDataset(id)).primary).toBe(NODE_A);
  // b's agent reports: the Mount takes the lease (moving the volume here) and answers once mounted.
  agentB.paused = false;
  await agentB.reportAgain();
  await expect(mounting).resolves.toEqual({ Mountpoint: `/flocker-b/${id}` });
  expect(Date.now() - t).toBeLessThan(30_000);
  expect(await client.listLeases()).toEqual([expect.objectContaining({ dataset_id: id, node_uuid: NODE_B })]);
});

it('NODE_DEAD while the snapshot shows this node alive: MOUNT_TIMEOUT with the refusal at the deadline, asks paused (review s27 F6)', async () => {
  // The lease route holds this node dead (its held report lapsed) while the views still show it alive (built before
  // the liveness check ran): past the deadline each ask was followed by no pause and the Mount never ended.
  let refused = 0;
  const refusing: ControlClient = {
    createDataset: (...a) => client.createDataset(...a),
    updateDataset: (...a) => client.updateDataset(...a),
    deleteDataset: (...a) => client.deleteDataset(...a),
    waitForCluster: (...a) => client.waitForCluster(...a),
    releaseLease: (...a) => client.releaseLease(...a),
    acquireLease: async () => {
      refused++;
      // An answer over the network (a turn of the event loop), as the real call's.
      await new Promise((r) => setImmediate(r));
      throw new FlockerApiError(409, 'NODE_DEAD', `Node ${NODE_B} was declared dead: no lease until it reports again.`);
    },
  };
  await client.createDataset({ primary: NODE_B, metadata: { name: 'vol2' }, maximum_size: 1 << 30 });
  const b = await bed.backend(NODE_B, { client: refusing, mountTimeoutMs: 1_200 });
  const t = Date.now();
  const outcome = await Promise.race([
    b.mount({ Name: 'vol2', ID: 'c1' }).then(
      () => 'mounted',
      (err: unknown) => err,
    ),
    new Promise<'still asking'>((r) => setTimeout(() => r('still asking'), 8_000).unref()),
  ]);
  expect(outcome).toMatchObject({ code: 'MOUNT_TIMEOUT', message: expect.stringContaining('was declared dead') });
  expect(Date.now() - t).toBeLessThan(8_000);
  // One ask per NODE_DEAD_RETRY_MS (500 ms) at most within the 1.2 s.
  expect(refused).toBeLessThanOrEqual(4);
});

/**
 * A deleted dataset's teardown waits for the node to settle (issue 23, deferredDestroys): not during the
 * `docker volume rm` that deleted it, at once after DESTROY_SETTLE_MS of quiet, and no later than
 * DESTROY_MAX_DEFER_MS however busy the node is.
 */
import { ManualClock } from '@flocker/runtime/testing';
import type { ClusterSnapshot } from '@flocker/api';
import { DatasetAgent } from './DatasetAgent';
import { DESTROY_MAX_DEFER_MS, DESTROY_SETTLE_MS } from './deferredDestroys';
import { TEST_NODE, testAgentOptions } from './testing/agentOptions';
import { countListings, FakeControl, FakeDriver, FakeHost } from './testing/fakes';

const MiB = 1024 * 1024;
const DS = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
const DS2 = 'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb';

let clock: ManualClock;
const eventually = async (check: () => boolean, ms = 5000): Promise<void> => {
  await clock.advanceUntil(check, ms, 5);
};

const dataset = (id: string, deleted = false): ClusterSnapshot['datasets'][number] => ({
  dataset_id: id,
  primary: TEST_NODE,
  maximum_size: 64 * MiB,
  metadata: {},
  deleted,
});

async function setup(resyncIntervalMs = 200) {
  const host = new FakeHost();
  const driver = new FakeDriver();
  clock = new ManualClock();
  const control = new FakeControl(clock);
  const agent = new DatasetAgent(testAgentOptions({ driver, hostOps: host, control, clock, resyncIntervalMs }));
  agent.start();
  control.setDatasets([dataset(DS)]);
  await eventually(() => control.last()?.manifestations.some((m) => m.status === 'mounted') === true);
  let unmounts = 0;
  const unmount = host.unmount.bind(host);
  host.unmount = async (path: string) => {
    unmounts++;
    return unmount(path);
  };
  return { host, driver, control, agent, unmounts: () => unmounts };
}

const volumesOf = (driver: FakeDriver, id: string) => [...driver.volumes.values()].filter((v) => v.datasetId === id);

describe('DatasetAgent: the teardown of a deleted dataset waits for quiet (issue 23)', () => {
  it('is not unmounted before the settle, and is destroyed right after it', async () => {
    const { driver, control, agent, unmounts } = await setup();
    const deletedAt = clock.now();
    control.setDatasets([dataset(DS, true)]);
    await clock.advance(DESTROY_SETTLE_MS - 50);
    expect(unmounts()).toBe(0);
    expect(volumesOf(driver, DS)).toHaveLength(1);
    await eventually(() => volumesOf(driver, DS).length === 0);
    expect(unmounts()).toBe(1);
    expect(clock.now() - deletedAt).toBeLessThanOrEqual(DESTROY_SETTLE_MS + 300);
    await eventually(() => (control.last()?.manifestations ?? []).length === 0);
    await agent.stop();
  });

  it('a change that only deletes takes no full look before the settle (none beside the `docker volume rm`)', async () => {
    const { driver, control, agent, unmounts } = await setup(60_000);
    await clock.advance(300); // the create's own looks done
    const listings = countListings(driver);
    control.setDatasets([dataset(DS, true)]);
    await clock.advance(DESTROY_SETTLE_MS - 50);
    expect(listings()).toBe(0);
    await eventually(() => volumesOf(driver, DS).length === 0);
    expect(unmounts()).toBe(1);
    await agent.stop();
  });

  it('is destroyed once DESTROY_MAX_DEFER_MS has passed under continuous activity', async () => {
    const { driver, control, agent, unmounts } = await setup();
    const deletedAt = clock.now();
    control.setDatasets([dataset(DS, true)]);
    // A configuration change every DESTROY_SETTLE_MS / 2 (metadata of another dataset: no work, only activity).
    let destroyedAt: number | undefined;
    for (let i = 0; destroyedAt === undefined && clock.now() - deletedAt < DESTROY_MAX_DEFER_MS + 1_000; i++) {
      control.setDatasets([dataset(DS, true), { ...dataset(DS2), primary: 'elsewhere', metadata: { n: String(i) } }]);
      await clock.advance(DESTROY_SETTLE_MS / 2);
      if (volumesOf(driver, DS).length === 0) destroyedAt = clock.now();
    }
    expect(destroyedAt).toBeDefined();
    expect(destroyedAt! - deletedAt).toBeGreaterThanOrEqual(DESTROY_MAX_DEFER_MS - DESTROY_SETTLE_MS);
    expect(destroyedAt! - deletedAt).toBeLessThanOrEqual(DESTROY_MAX_DEFER_MS + DESTROY_SETTLE_MS);
    expect(unmounts()).toBe(1);
    await agent.stop();
  });

  it('a new dataset right after the delete is mounted before the deleted one is touched', async () => {
    const { host, driver, control, agent, unmounts } = await setup();
    control.setDatasets([dataset(DS, true), dataset(DS2)]);
    await eventually(
      () => control.last()?.manifestations.some((m) => m.dataset_id === DS2 && m.status === 'mounted') === true,
    );
    expect(unmounts()).toBe(0);
    expect(volumesOf(driver, DS)).toHaveLength(1);
    await eventually(() => volumesOf(driver, DS).length === 0);
    expect(host.mounts).toHaveLength(1);
    await agent.stop();
  });

  it('a restart during the delay (no memory of it) destroys the volume after the settle', async () => {
    const { host, driver, control, agent, unmounts } = await setup();
    control.setDatasets([dataset(DS, true)]);
    await clock.advance(DESTROY_SETTLE_MS / 2);
    await agent.stop(); // as a kill: nothing of the delay is kept
    expect(volumesOf(driver, DS)).toHaveLength(1);
    const again = new DatasetAgent(testAgentOptions({ driver, hostOps: host, control, clock }));
    again.start();
    await eventually(() => volumesOf(driver, DS).length === 0);
    expect(unmounts()).toBe(1);
    await again.stop();
  });
});

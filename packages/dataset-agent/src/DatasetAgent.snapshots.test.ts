/**
 * The agent and snapshots (issue 20) on the fakes and manual time: a configured snapshot is
 * taken (frozen around it) and reported, a deleted one destroyed, a clone made from it and
 * mounted without formatting, a clone of a snapshot not ready yet retried with backoff and
 * shown as the dataset's error meanwhile.
 */
import type { ClusterSnapshot } from '@flocker/api';
import { ManualClock } from '@flocker/runtime/testing';
import { DatasetAgent } from './DatasetAgent';
import { TEST_NODE, testAgentOptions } from './testing/agentOptions';
import { FakeControl, FakeDriver, FakeHost } from './testing/fakes';

const ME = TEST_NODE;
const DS = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
const CLONE = 'cccccccc-cccc-4ccc-8ccc-cccccccccccc';
const SNAP = '5a5a5a5a-0000-4000-8000-000000000001';
const MiB = 1024 * 1024;
const dataset = { dataset_id: DS, primary: ME, maximum_size: 64 * MiB, metadata: {}, deleted: false };
const snapshot = { snapshot_id: SNAP, dataset_id: DS, metadata: {}, created_at: '2026-12-04T00:00:00.000Z' };
type Snapshots = NonNullable<ClusterSnapshot['snapshots']>;

function setup() {
  const driver = new FakeDriver();
  const host = new FakeHost();
  const clock = new ManualClock();
  const control = new FakeControl(clock);
  // A clone holds the snapshot's file system: the fake host learns it has one.
  const fromSnapshot = driver.createVolumeFromSnapshot.bind(driver);
  driver.createVolumeFromSnapshot = async (...args) => {
    const v = await fromSnapshot(...args);
    host.formatted.add(`/dev/fake/${v.blockdeviceId}`);
    return v;
  };
  const agent = new DatasetAgent(testAgentOptions({ driver, hostOps: host, control, clock }));
  const eventually = (check: () => boolean, ms = 5000): Promise<number> => clock.advanceUntil(check, ms, 5);
  return { driver, host, control, agent, eventually };
}

const mountedAt = (host: FakeHost, id: string): boolean => host.mounts.some((m) => m.mountPoint === `/flocker/${id}`);

describe('DatasetAgent and snapshots (fakes)', () => {
  it('takes a configured snapshot of its mounted dataset (frozen around it), reports it, destroys it once deleted', async () => {
    const { driver, host, control, agent, eventually } = setup();
    agent.start();
    control.setDatasets([dataset]);
    await eventually(() => mountedAt(host, DS));
    control.setSnapshots([snapshot]);
    await eventually(() => (control.last()?.snapshots ?? []).some((s) => s.snapshot_id === SNAP));
    expect(driver.snapshots.get(SNAP)).toMatchObject({ datasetId: DS, size: 64 * MiB });
    expect(host.freezeLog).toEqual([`freeze /flocker/${DS}`, `thaw /flocker/${DS}`]);
    expect(control.last()?.snapshots?.[0]).toMatchObject({ snapshot_id: SNAP, dataset_id: DS, status: 'ready' });
    control.setSnapshots([{ ...snapshot, deleted: true }] satisfies Snapshots);
    await eventually(() => driver.snapshots.size === 0 && control.last()?.snapshots?.length === 0);
    expect(host.freezeLog).toHaveLength(2); // taken once
    expect(control.last()?.errors).toEqual([]);
    await agent.stop();
  });

  it('a clone is made from the snapshot, mounted without formatting; the source can go, the clone stays', async () => {
    const { driver, host, control, agent, eventually } = setup();
    agent.start();
    control.setDatasets([dataset]);
    await eventually(() => mountedAt(host, DS));
    control.setSnapshots([snapshot]);
    await eventually(() => driver.snapshots.has(SNAP));
    const formattedBefore = new Set(host.formatted);
    control.setDatasets([dataset, { ...dataset, dataset_id: CLONE, source_snapshot_id: SNAP }]);
    await eventually(() => mountedAt(host, CLONE));
    const clone = [...driver.volumes.values()].find((v) => v.datasetId === CLONE);
    expect(driver.clonedFrom.get(clone?.blockdeviceId ?? '')).toBe(SNAP);
    // Only the clone's copied file system was added; nothing was formatted by the agent.
    expect([...host.formatted].filter((d) => !formattedBefore.has(d))).toEqual([`/dev/fake/${clone?.blockdeviceId}`]);
    control.setDatasets([
      { ...dataset, deleted: true },
      { ...dataset, dataset_id: CLONE, source_snapshot_id: SNAP },
    ]);
    await eventually(() => [...driver.volumes.values()].every((v) => v.datasetId !== DS));
    expect(driver.snapshots.has(SNAP)).toBe(true);
    expect(mountedAt(host, CLONE)).toBe(true);
    await agent.stop();
  });

  it('a clone of a snapshot not ready yet shows SNAPSHOT_NOT_READY as its error, retried with backoff until it is', async () => {
    const { driver, host, control, agent, eventually } = setup();
    driver.newSnapshotStatus = 'creating';
    agent.start();
    control.setDatasets([dataset]);
    await eventually(() => mountedAt(host, DS));
    control.setSnapshots([snapshot]);
    await eventually(() => driver.snapshots.has(SNAP));
    control.setDatasets([dataset, { ...dataset, dataset_id: CLONE, source_snapshot_id: SNAP }]);
    await eventually(() => (control.last()?.errors ?? []).some((e) => e.attempts >= 2));
    expect(control.last()?.errors[0]).toMatchObject({
      dataset_id: CLONE,
      action: 'create',
      code: 'SNAPSHOT_NOT_READY',
    });
    const taken = driver.snapshots.get(SNAP);
    if (taken !== undefined) driver.snapshots.set(SNAP, { ...taken, status: 'ready' });
    await eventually(() => mountedAt(host, CLONE) && control.last()?.errors.length === 0);
    await agent.stop();
  });
});

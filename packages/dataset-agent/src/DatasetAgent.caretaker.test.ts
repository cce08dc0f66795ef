/**
 * Deleted snapshots no live node seeing their dataset can destroy (issue 23, caretakers): the agent
 * follows its node view from the in-memory control service (testing/ViewControl, which keeps the
 * service's own caretaker rule, @flocker/api/caretaker) and destroys a deleted snapshot its backend
 * holds of a dataset outside its own view — (a) a live dataset whose primary is dead, (b) one whose live
 * primary's backend does not hold it (another pool) — as its caretaker; one its live primary holds stays
 * the primary's to destroy.
 */
import type { ClusterSnapshot, ManifestationState, NodeState } from '@flocker/api';
import { caretakerAmong } from '@flocker/api/caretaker';
import { ManualClock } from '@flocker/runtime/testing';
import { DatasetAgent } from './DatasetAgent';
import { TEST_NODE, testAgentOptions } from './testing/agentOptions';
import { FakeDriver, FakeHost } from './testing/fakes';
import { ViewControl } from './testing/ViewControl';

const MiB = 1024 * 1024;
const OTHER = '22222222-2222-4222-8222-222222222222';
const DEAD = '33333333-3333-4333-8333-333333333333';
/** Below TEST_NODE, and TEST_NODE wins DS's rendezvous against it (checked below). */
const LOW = '00000002-0000-4000-8000-000000000000';
const DS = 'aaaaaaaa-aaaa-4aaa-8aaa-000000000001';
/** Another dataset: this node its primary, LOW still holding it (a move under way). */
const DS2 = 'aaaaaaaa-aaaa-4aaa-8aaa-000000000002';
const SNAP = 'bbbbbbbb-bbbb-4bbb-8bbb-000000000001';
const AT = '2026-01-01T00:00:00.000Z';

const node = (
  uuid: string,
  alive: boolean,
  snapshots: string[] = [],
  manifestations: ManifestationState[] = [],
): NodeState => ({
  uuid,
  era: `era-${uuid}`,
  host: '10.0.0.2',
  instance_id: `i-${uuid}`,
  backend: 'fake',
  manifestations,
  errors: [],
  volumes: [],
  snapshots: snapshots.map((id) => ({
    snapshot_id: id,
    dataset_id: DS,
    size: 64 * MiB,
    created_at: AT,
    status: 'ready' as const,
    backend_id: `b-${id}`,
    source_blockdevice_id: 'vol-elsewhere',
  })),
  alive,
  last_seen: AT,
  ...(alive ? {} : { dead_since: AT }),
});

/**
 * ME's backend holds SNAP of DS (no volume of DS here); SNAP is deleted in the configuration. `moving`: ME
 * is also the primary of DS2, whose volume is still attached to LOW (LOW's manifestation), so LOW's state
 * is in ME's view while LOW's view does not have DS.
 */
async function run(
  primary: string,
  nodes: NodeState[],
  opts: { deleted?: boolean; moving?: boolean } = {},
): Promise<{ destroyed: boolean }> {
  const driver = new FakeDriver();
  if (opts.moving === true)
    driver.volumes.set('vol-ds2', { blockdeviceId: 'vol-ds2', datasetId: DS2, size: 64 * MiB, attachedTo: `i-${LOW}` });
  driver.snapshots.set(SNAP, {
    snapshotId: SNAP,
    backendId: `b-${SNAP}`,
    datasetId: DS,
    sourceBlockdeviceId: 'vol-elsewhere',
    size: 64 * MiB,
    createdAt: AT,
    status: 'ready',
  });
  const clock = new ManualClock();
  const control = new ViewControl(clock, 200);
  const agent = new DatasetAgent(testAgentOptions({ driver, hostOps: new FakeHost(), control, clock }));
  control.setNodes(nodes);
  const snapshots: NonNullable<ClusterSnapshot['snapshots']> = [
    { snapshot_id: SNAP, dataset_id: DS, metadata: {}, created_at: AT, deleted: true },
  ];
  control.setSnapshots(snapshots);
  control.setDatasets([
    { dataset_id: DS, primary, maximum_size: 64 * MiB, metadata: {}, deleted: opts.deleted === true },
    ...(opts.moving === true
      ? [{ dataset_id: DS2, primary: TEST_NODE, maximum_size: 64 * MiB, metadata: {}, deleted: false }]
      : []),
  ]);
  agent.start();
  try {
    await clock.advanceUntil(() => !driver.snapshots.has(SNAP), 5000, 5).catch(() => undefined);
    return { destroyed: !driver.snapshots.has(SNAP) };
  } finally {
    await agent.stop();
  }
}

describe('DatasetAgent as the caretaker of deleted snapshots (issue 23)', () => {
  it('(a) destroys a deleted snapshot of a live dataset whose primary is dead', async () => {
    expect(await run(DEAD, [node(DEAD, false, [SNAP]), node(OTHER, true)])).toEqual({ destroyed: true });
  });

  it("(b) destroys a deleted snapshot its backend holds and the live primary's does not (another pool)", async () => {
    expect(await run(OTHER, [node(OTHER, true)])).toEqual({ destroyed: true });
  });

  // LOW holds SNAP too (a shared pool) but will never destroy it: DS is not in its view (not its primary,
  // holder or caretaker); it is in ME's view as the holder of DS2 (a move under way).
  const ds2OnLow: ManifestationState = {
    dataset_id: DS2,
    blockdevice_id: 'vol-ds2',
    size: 64 * MiB,
    status: 'attached',
  };
  it('(a) destroys it though a lower node holding it but not seeing the dataset is in its view', async () => {
    expect(caretakerAmong(DS, [TEST_NODE, LOW])).toBe(TEST_NODE);
    const nodes = [node(DEAD, false, [SNAP]), node(LOW, true, [SNAP], [ds2OnLow])];
    expect(await run(DEAD, nodes, { moving: true })).toEqual({ destroyed: true });
  });

  it('(orphan) destroys it though a lower node holding it but not seeing the dataset is in its view', async () => {
    const nodes = [node(DEAD, false, [SNAP]), node(LOW, true, [SNAP], [ds2OnLow])];
    expect(await run(DEAD, nodes, { moving: true, deleted: true })).toEqual({ destroyed: true });
  });

  it('leaves one the live primary holds to the primary', async () => {
    expect(await run(OTHER, [node(OTHER, true, [SNAP])])).toEqual({ destroyed: false });
  });
});

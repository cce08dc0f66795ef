/**
 * Issue 23 (caretakers): a snapshot deleted while its LIVE dataset's primary is dead is in no live
 * node's view but a caretaker's (@flocker/api/caretaker: a deleted snapshot live nodes report that no
 * live node seeing its dataset does) — the agent destroys a snapshot only while deciding about its
 * dataset, so without one it stayed in the pool and the configuration for good. Two simulated hosts on
 * one shared loopback pool, real control service, agents, loop devices and network namespaces; needs root.
 */
import { randomUUID } from 'node:crypto';
import { TEST_DATASET_SIZE, waitForMountedOn } from './cluster';
import {
  sharedPoolSuite,
  snapshotImages,
  waitForDeclaredDead,
  waitForSnapshotDestroyed,
  waitForSnapshotsReady,
} from './cluster/sharedPool';

jest.setTimeout(180_000);

const suite = sharedPoolSuite();

describe('a deleted snapshot of a live dataset whose primary is dead', () => {
  it('A takes two snapshots and is killed; one is deleted: B destroys it, the dataset and the other stay', async () => {
    const { cluster, a, b } = suite();
    const d = await cluster.client.createDataset({
      primary: a.requireNodeUuid(),
      maximum_size: TEST_DATASET_SIZE,
      metadata: { name: `stranded-snap-${randomUUID().slice(0, 8)}` },
    });
    await waitForMountedOn(cluster.client, d.dataset_id, a.requireNodeUuid());
    const gone = await cluster.client.createSnapshot({ dataset_id: d.dataset_id });
    const kept = await cluster.client.createSnapshot({ dataset_id: d.dataset_id });
    await waitForSnapshotsReady(cluster, [gone.snapshot_id, kept.snapshot_id], a);

    const aUuid = a.requireNodeUuid();
    await a.killAgent('SIGKILL');
    try {
      await waitForDeclaredDead(cluster, 'A', aUuid);
      const asked = Date.now();
      await cluster.client.deleteSnapshot(gone.snapshot_id);
      await waitForSnapshotDestroyed(
        cluster,
        `B to destroy the deleted snapshot ${gone.snapshot_id} (and the control service to purge it)`,
        gone.snapshot_id,
        b,
      );
      console.log(JSON.stringify({ snapshotGoneMs: Date.now() - asked }));
      // The dataset is not deleted: it stays (A's, not moved); so does the snapshot not deleted.
      expect((await cluster.client.listDatasets()).find((x) => x.dataset_id === d.dataset_id)).toMatchObject({
        primary: aUuid,
      });
      expect(snapshotImages(cluster)).toEqual([`${kept.snapshot_id}.img`]);
    } finally {
      await a.startAgent();
    }
  });
});

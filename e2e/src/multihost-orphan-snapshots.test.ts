/**
 * Issue 23 (caretakers, with issue 20's snapshots): a dataset deleted while its primary is dead is
 * destroyed by a live node sharing the pool, its caretaker (control-api orphanViews.ts) — and so
 * are its snapshots deleted with it, which the agent destroys only while the dataset is in its view:
 * the caretaker keeps it there until the volume and those snapshots have left the pool. A snapshot
 * not deleted outlives its dataset (a clone may still be made of it). Two simulated hosts on one
 * shared loopback pool, real control service, agents, loop devices and network namespaces; needs root.
 */
import * as path from 'node:path';
import { randomUUID } from 'node:crypto';
import { TEST_DATASET_SIZE, waitForMountedOn, writeFileOn } from './cluster';
import { waitFor } from './cluster/run';
import {
  agentLog,
  logTail,
  sharedPoolSuite,
  snapshotImages,
  waitForDeclaredDead,
  waitForSnapshotDestroyed,
  waitForSnapshotsReady,
} from './cluster/sharedPool';

jest.setTimeout(180_000);

const suite = sharedPoolSuite();

describe('a deleted dataset whose primary is dead: its caretaker destroys the volume and its deleted snapshots', () => {
  it('snapshots taken on A, A killed, the dataset and a snapshot deleted: B destroys the volume and that snapshot, and one deleted after the volume is gone; the one not deleted stays', async () => {
    const { cluster, a, b } = suite();
    const d = await cluster.client.createDataset({
      primary: a.requireNodeUuid(),
      maximum_size: TEST_DATASET_SIZE,
      metadata: { name: `orphan-snap-${randomUUID().slice(0, 8)}` },
    });
    const mounted = await waitForMountedOn(cluster.client, d.dataset_id, a.requireNodeUuid());
    await writeFileOn(a, path.join(mounted, 'f'), 'written on A');
    const gone = await cluster.client.createSnapshot({ dataset_id: d.dataset_id });
    const later = await cluster.client.createSnapshot({ dataset_id: d.dataset_id });
    const kept = await cluster.client.createSnapshot({ dataset_id: d.dataset_id });
    const ids = [gone, later, kept].map((s) => s.snapshot_id);
    await waitForSnapshotsReady(cluster, ids, a);
    expect(snapshotImages(cluster).sort()).toEqual(ids.map((id) => `${id}.img`).sort());

    const aUuid = a.requireNodeUuid();
    await a.killAgent('SIGKILL');
    try {
      await waitForDeclaredDead(cluster, 'A', aUuid);
      await cluster.client.deleteDataset(d.dataset_id);
      await cluster.client.deleteSnapshot(gone.snapshot_id);
      const started = Date.now();
      // B, sharing A's pool, force-detaches the volume from dead A and destroys it, then the deleted snapshot.
      await waitFor(
        `B to destroy the volume of ${d.dataset_id}`,
        async () => {
          const nodes = (await cluster.client.waitForCluster(undefined, 0)).nodes.filter((n) => n.alive);
          return nodes.length === 1 && !(nodes[0]?.volumes ?? []).some((v) => v.dataset_id === d.dataset_id);
        },
        { timeoutMs: 60_000, intervalMs: 250, context: () => logTail(b) },
      );
      const volumeGoneMs = Date.now() - started;
      await waitForSnapshotDestroyed(
        cluster,
        `B to destroy the deleted snapshot ${gone.snapshot_id} (and the control service to purge it)`,
        gone.snapshot_id,
        b,
      );
      const snapshotGoneMs = Date.now() - started;
      // A snapshot deleted once the volume is gone (the dataset then in no view but a caretaker's).
      const asked = Date.now();
      await cluster.client.deleteSnapshot(later.snapshot_id);
      await waitForSnapshotDestroyed(
        cluster,
        `B to destroy the snapshot ${later.snapshot_id} deleted after the volume`,
        later.snapshot_id,
        b,
      );
      console.log(JSON.stringify({ volumeGoneMs, snapshotGoneMs, laterSnapshotGoneMs: Date.now() - asked }));
      // The snapshot not deleted stays, usable (a snapshot outlives its dataset).
      expect(snapshotImages(cluster)).toEqual([`${kept.snapshot_id}.img`]);
      expect((await cluster.client.listSnapshotState()).find((s) => s.snapshot_id === kept.snapshot_id)).toMatchObject({
        status: 'ready',
      });
      for (const h of [b]) expect(agentLog(h)).not.toContain('does not answer deltas');
    } finally {
      await a.startAgent();
    }
  });
});

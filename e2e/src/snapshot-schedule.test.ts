/**
 * End to end (issue 20): scheduled snapshots with retention, run by a real control service
 * (in process, with the test-only minimum interval of 1 s) for a real dataset agent on a
 * loopback pool. A volume created with `every 3s` and keep 2 gets a snapshot per slot, named
 * after the volume and the slot, marked scheduled, taken by the agent; the oldest beyond keep
 * are deleted from the configuration and the backend; a manual snapshot is never touched; the
 * schedule removed by a metadata update stops it.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  type FlockerClient,
  METADATA_SCHEDULED_KEY,
  METADATA_SNAPSHOT_KEEP_KEY,
  METADATA_SNAPSHOT_SCHEDULE_KEY,
  type SnapshotConfiguration,
} from '@flocker/api';
import { LocalAgentBed } from './localAgents';

jest.setTimeout(180_000);

const MiB = 1024 * 1024;
let bed: LocalAgentBed;
let client: FlockerClient;

beforeEach(async () => {
  bed = await LocalAgentBed.start('flocker-snapshot-schedule-e2e-', { testOnlyMinSnapshotIntervalSeconds: 1 });
  ({ client } = bed);
});
afterEach(() => bed.close());

const isScheduled = (s: SnapshotConfiguration): boolean => s.metadata[METADATA_SCHEDULED_KEY] !== undefined;

describe('scheduled snapshots with retention (real control service and agent, loopback)', () => {
  it('takes a snapshot per slot, keeps the newest N in the backend, never touches a manual one', async () => {
    bed.startAgent('a');
    await bed.waitFor('the node to report', async () => {
      if (!existsSync(join(bed.dir, 'a', 'state', 'node.json'))) return false;
      return (await client.listNodes()).some((n) => n.uuid === bed.nodeUuid('a'));
    });
    const uuid = bed.nodeUuid('a');

    // A schedule outside the grammar is refused with the reason.
    await expect(
      client.createDataset({ primary: uuid, metadata: { [METADATA_SNAPSHOT_SCHEDULE_KEY]: 'every 500ms' } }),
    ).rejects.toThrow(/not a snapshot schedule/);

    // Slots count from when the schedule is set: snapshots may be taken while the volume is still being set up.
    const scheduleSetAt = Date.now();
    const dataset = await client.createDataset({
      primary: uuid,
      maximum_size: 64 * MiB,
      metadata: { name: 'sched', [METADATA_SNAPSHOT_SCHEDULE_KEY]: 'every 3s', [METADATA_SNAPSHOT_KEEP_KEY]: '2' },
    });
    const id = dataset.dataset_id;
    const mount = join(bed.dir, 'a', 'mnt', id);
    await bed.waitFor('the volume mounted', async () =>
      (await client.listDatasetState()).some((d) => d.dataset_id === id && d.path === mount),
    );
    writeFileSync(join(mount, 'data.txt'), 'scheduled\n');
    const manual = await client.createSnapshot({ dataset_id: id, metadata: { name: 'manual-1' } });

    // Every scheduled snapshot seen in the configuration, by id (deleted ones stay listed until purged).
    const seen = new Map<string, SnapshotConfiguration>();
    await bed.waitFor(
      'five scheduled snapshots taken',
      async () => {
        for (const s of await client.listSnapshots()) if (isScheduled(s)) seen.set(s.snapshot_id, s);
        return seen.size >= 5;
      },
      60_000,
      200,
    );
    const elapsedSlots = Math.ceil((Date.now() - scheduleSetAt) / 3000) + 1;
    const scheduled = [...seen.values()];
    // One per slot: names unique, each `<volume>-<UTC slot>` of a 3 s slot, no more than the slots that passed.
    const names = scheduled.map((s) => String(s.metadata['name']));
    expect(new Set(names).size).toBe(names.length);
    for (const s of scheduled) {
      expect(s.dataset_id).toBe(id);
      expect(s.metadata[METADATA_SCHEDULED_KEY]).toBe('every 3s');
      const m = /^sched-(\d{8})T(\d{2})(\d{2})(\d{2})Z$/.exec(String(s.metadata['name']));
      expect(m).not.toBeNull();
      expect(Number(m?.[4] ?? 1) % 3).toBe(0);
    }
    expect(scheduled.length).toBeLessThanOrEqual(elapsedSlots);

    // Stop the schedule (a metadata update); keep stays in effect for what is left.
    const updated = await client.updateDataset(id, { metadata: { [METADATA_SNAPSHOT_SCHEDULE_KEY]: null } });
    expect(updated.metadata).toEqual({ name: 'sched', [METADATA_SNAPSHOT_KEEP_KEY]: '2' });

    // Converged: the configuration holds exactly keep=2 live scheduled snapshots and the manual one; the
    // backend holds exactly those (the pruned ones destroyed and purged from the configuration).
    const final = await bed.waitFor(
      'the backend to hold the newest 2 scheduled snapshots and the manual one',
      async () => {
        const configured = await client.listSnapshots();
        for (const s of configured) if (isScheduled(s)) seen.set(s.snapshot_id, s);
        const live = configured.filter((s) => s.deleted !== true);
        if (configured.length !== live.length) return false; // deletions not yet purged
        const liveScheduled = live.filter(isScheduled);
        if (liveScheduled.length !== 2) return false;
        const backend = (await client.listSnapshotState()).filter((s) => s.dataset_id === id);
        const want = [manual.snapshot_id, ...liveScheduled.map((s) => s.snapshot_id)].sort();
        const have = backend.filter((s) => s.status === 'ready').map((s) => s.snapshot_id);
        return backend.length === want.length && JSON.stringify(have.sort()) === JSON.stringify(want) && liveScheduled;
      },
      60_000,
      200,
    );
    // The two kept are the newest scheduled ones ever taken.
    const newest = [...seen.values()]
      .sort((a, b) => Date.parse(a.created_at) - Date.parse(b.created_at))
      .slice(-2)
      .map((s) => s.snapshot_id);
    expect(final.map((s) => s.snapshot_id).sort()).toEqual(newest.sort());
    expect(seen.size).toBeGreaterThanOrEqual(5);

    // Schedule off: nothing more is taken.
    const count = seen.size;
    await new Promise((resolve) => setTimeout(resolve, 4000));
    expect((await client.listSnapshots()).filter(isScheduled)).toHaveLength(2);
    expect(seen.size).toBe(count);
    expect(readFileSync(join(mount, 'data.txt'), 'utf8')).toBe('scheduled\n');
  });
});

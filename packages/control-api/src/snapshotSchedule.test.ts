/**
 * Scheduled snapshots (issue 20): the pure plan (slots, no bursts, retention that never
 * touches manual snapshots), its application to the configuration (idempotent, so a
 * second replica re-applying it takes nothing twice), the scheduler's timer on a
 * ManualClock across a restart, and the HTTP boundary (schedule set at create time,
 * changed by a metadata update, refused with a reason).
 */
import {
  CreateDatasetRequest,
  METADATA_SCHEDULED_KEY,
  METADATA_SNAPSHOT_KEEP_KEY as KEEP,
  METADATA_SNAPSHOT_SCHEDULE_KEY as SCHEDULE,
  type SnapshotSchedule,
} from '@flocker/api';
import { ManualClock } from '@flocker/runtime/testing';
import {
  type Configuration,
  createDataset,
  createSnapshot,
  deleteDataset,
  deleteSnapshot,
  emptyConfiguration,
  registerNode,
  updateDataset,
} from './configuration';
import { MemoryConfigurationStore } from './ConfigurationStore';
import { ConfigurationError } from './errors';
import {
  applySnapshotSchedules,
  nextScheduleDue,
  planSchedule,
  ScheduledDatasets,
  type ScheduledSnapshot,
} from './snapshotSchedule';
import { SCHEDULE_RETRY_MS, SnapshotScheduler } from './snapshotScheduler';
import { NODE_A as A, nodeReport, silentLogger, startOnLoopback } from './testing/httpService';
import { advanceInSteps, openOnManualClock } from './testing/scheduledState';

const D1 = '11111111-1111-4111-8111-111111111111';
const D2 = '22222222-2222-4222-8222-222222222222';
const MIN = 60_000;
const HOUR = 60 * MIN;
/** 2026-12-04T00:00:00Z: a slot start of every interval used here. */
const T0 = Date.UTC(2026, 11, 4);
const hourly: SnapshotSchedule = { text: 'hourly', intervalMs: HOUR, keep: 3 };

function taken(id: string, at: number): ScheduledSnapshot {
  return { snapshot_id: id, createdAt: at };
}

describe('planSchedule (pure)', () => {
  it('asks for the first snapshot in the current slot, named after the volume and the slot (UTC)', () => {
    const plan = planSchedule(T0 + 7 * HOUR + 12 * MIN, hourly, 'db', []);
    expect(plan).toEqual({
      create: { name: 'db-20261204T0700Z', slotStart: T0 + 7 * HOUR },
      delete: [],
      nextDue: T0 + 8 * HOUR,
    });
  });

  it('does nothing in a slot already served (a snapshot asked for at or after its start)', () => {
    expect(planSchedule(T0 + 7 * HOUR + 59 * MIN, hourly, 'db', [taken('s1', T0 + 7 * HOUR)])).toEqual({
      delete: [],
      nextDue: T0 + 8 * HOUR,
    });
  });

  it('serves a new slot from its first millisecond, and not a millisecond before', () => {
    const last = [taken('s1', T0 + 7 * HOUR + 3)];
    expect(planSchedule(T0 + 8 * HOUR - 1, hourly, 'db', last).create).toBeUndefined();
    expect(planSchedule(T0 + 8 * HOUR, hourly, 'db', last).create).toEqual({
      name: 'db-20261204T0800Z',
      slotStart: T0 + 8 * HOUR,
    });
  });

  it('after missed slots (a restart, an outage) asks for one snapshot, not one per missed slot', () => {
    const plan = planSchedule(T0 + 30 * HOUR + 5, hourly, 'db', [taken('s1', T0)]);
    expect(plan.create).toEqual({ name: 'db-20261205T0600Z', slotStart: T0 + 30 * HOUR });
    expect(plan.delete).toEqual([]);
  });

  it('deletes the oldest scheduled snapshots beyond keep, counting the one it asks for', () => {
    const three = [taken('s3', T0 + 2 * HOUR), taken('s1', T0), taken('s2', T0 + HOUR)];
    expect(planSchedule(T0 + 3 * HOUR, hourly, 'db', three).delete).toEqual(['s1']);
    // Served: exactly keep are left alone.
    expect(planSchedule(T0 + 2 * HOUR + 1, hourly, 'db', three).delete).toEqual([]);
  });

  it('prunes without taking one when keep is lowered in a served slot', () => {
    const five = [0, 1, 2, 3, 4].map((i) => taken(`s${i}`, T0 + i * HOUR));
    const plan = planSchedule(T0 + 4 * HOUR + 1, { ...hourly, keep: 2 }, 'db', five);
    expect(plan.create).toBeUndefined();
    expect(plan.delete).toEqual(['s0', 's1', 's2']);
  });

  it('keep 1 replaces the previous snapshot with the new one', () => {
    const plan = planSchedule(T0 + HOUR, { ...hourly, keep: 1 }, 'db', [taken('s0', T0)]);
    expect(plan.create?.name).toBe('db-20261204T0100Z');
    expect(plan.delete).toEqual(['s0']);
  });

  it('orders snapshots asked for at the same instant by id (the same choice on every replica)', () => {
    const tied = [taken('b', T0), taken('a', T0), taken('c', T0 + 1)];
    expect(planSchedule(T0 + HOUR, { ...hourly, keep: 1 }, 'db', tied).delete).toEqual(['a', 'b', 'c']);
  });

  it('avoids a name a manual snapshot holds (-scheduled), and skips the slot when both are taken', () => {
    const held = new Set(['db-20261204T0100Z']);
    expect(planSchedule(T0 + HOUR, hourly, 'db', [], (n) => held.has(n)).create?.name).toBe(
      'db-20261204T0100Z-scheduled',
    );
    held.add('db-20261204T0100Z-scheduled');
    expect(planSchedule(T0 + HOUR, hourly, 'db', [], (n) => held.has(n))).toEqual({
      delete: [],
      nextDue: T0 + 2 * HOUR,
    });
  });

  it('aligns other intervals to the epoch: every 15m at :00/:15/:30/:45, daily at 00:00 UTC, seconds when the slot has them', () => {
    const q = { text: 'every 15m', intervalMs: 15 * MIN, keep: 4 };
    expect(planSchedule(T0 + 7 * HOUR + 44 * MIN, q, 'v', []).create?.slotStart).toBe(T0 + 7 * HOUR + 30 * MIN);
    const d = { text: 'daily', intervalMs: 24 * HOUR, keep: 7 };
    expect(planSchedule(T0 + 23 * HOUR, d, 'v', []).create?.name).toBe('v-20261204T0000Z');
    const s = { text: 'every 2s', intervalMs: 2000, keep: 2 };
    expect(planSchedule(T0 + 7 * HOUR + 3001, s, 'v', []).create?.name).toBe('v-20261204T070002Z');
  });
});

function withDatasets(): Configuration {
  let c = registerNode(emptyConfiguration, { uuid: A, host: 'a' });
  c = createDataset(c, {
    primary: A,
    dataset_id: D1,
    metadata: { name: 'db', [SCHEDULE]: 'hourly', [KEEP]: '2' },
  }).config;
  c = createDataset(c, { primary: A, dataset_id: D2, metadata: { name: 'plain' } }).config;
  return c;
}

let ids = 0;
const newId = (): string => `00000000-0000-4000-8000-${String(++ids).padStart(12, '0')}`;

function liveScheduled(c: Configuration): string[] {
  return [...(c.snapshots?.values() ?? [])]
    .filter((s) => s.deleted !== true && s.metadata[METADATA_SCHEDULED_KEY] !== undefined)
    .map((s) => String(s.metadata['name']));
}

describe('applySnapshotSchedules (pure, on the configuration)', () => {
  it('takes one snapshot per slot of scheduled datasets only, marked with the schedule', () => {
    const applied = applySnapshotSchedules(withDatasets(), T0 + 5, undefined, newId);
    expect(applied.result).toHaveLength(1);
    const created = applied.result[0]?.created;
    expect(created?.dataset_id).toBe(D1);
    expect(created?.metadata).toEqual({ name: 'db-20261204T0000Z', [METADATA_SCHEDULED_KEY]: 'hourly' });
    expect(created?.created_at).toBe(new Date(T0 + 5).toISOString());
  });

  it('is a no-op when re-applied in the same slot: a second replica rebasing onto the first takes nothing', () => {
    const once = applySnapshotSchedules(withDatasets(), T0 + 5, undefined, newId).config;
    const again = applySnapshotSchedules(once, T0 + 30 * MIN, undefined, newId);
    expect(again.config).toBe(once);
    expect(again.result).toEqual([]);
  });

  it('prunes to keep, never counting or deleting manual snapshots or deleted ones', () => {
    let c = withDatasets();
    c = createSnapshot(c, { dataset_id: D1, metadata: { name: 'manual' } }, T0 - HOUR, newId).config;
    for (let h = 0; h < 5; h++) c = applySnapshotSchedules(c, T0 + h * HOUR + 1, undefined, newId).config;
    expect(liveScheduled(c)).toEqual(['db-20261204T0300Z', 'db-20261204T0400Z']);
    const manual = [...(c.snapshots?.values() ?? [])].find((s) => s.metadata['name'] === 'manual');
    expect(manual?.deleted).toBeUndefined();
    // A scheduled snapshot deleted by hand no longer counts: the slot is still served by time, not by it.
    const newest = [...(c.snapshots?.values() ?? [])].find((s) => s.metadata['name'] === 'db-20261204T0400Z');
    c = deleteSnapshot(c, String(newest?.snapshot_id)).config;
    expect(applySnapshotSchedules(c, T0 + 4 * HOUR + 2, undefined, newId).result).toEqual([
      expect.objectContaining({ dataset_id: D1, deleted: [] }),
    ]);
  });

  it('stops for a deleted dataset, keeping its scheduled snapshots', () => {
    let c = applySnapshotSchedules(withDatasets(), T0, undefined, newId).config;
    c = deleteDataset(c, D1, T0).config;
    expect(applySnapshotSchedules(c, T0 + 10 * HOUR, undefined, newId).config).toBe(c);
    expect(liveScheduled(c)).toEqual(['db-20261204T0000Z']);
  });

  it('follows a schedule changed or removed by a metadata update', () => {
    let c = applySnapshotSchedules(withDatasets(), T0, undefined, newId).config;
    c = updateDataset(c, D1, { metadata: { [SCHEDULE]: 'every 30m' } }, T0).config;
    expect(applySnapshotSchedules(c, T0 + 30 * MIN, undefined, newId).result[0]?.created?.metadata).toEqual({
      name: 'db-20261204T0030Z',
      [METADATA_SCHEDULED_KEY]: 'every 30m',
    });
    c = updateDataset(c, D1, { metadata: { [SCHEDULE]: null, [KEEP]: null } }, T0).config;
    expect(c.datasets.get(D1)?.metadata).toEqual({ name: 'db' });
    expect(applySnapshotSchedules(c, T0 + 10 * HOUR, undefined, newId).config).toBe(c);
  });

  it('runs a schedule below the minimum interval at the minimum', () => {
    let c = registerNode(emptyConfiguration, { uuid: A, host: 'a' });
    c = createDataset(c, { primary: A, dataset_id: D1, metadata: { [SCHEDULE]: 'every 1s' } }).config;
    c = applySnapshotSchedules(c, T0, 5 * MIN, newId).config;
    expect(applySnapshotSchedules(c, T0 + 4 * MIN, 5 * MIN, newId).config).toBe(c);
    expect(applySnapshotSchedules(c, T0 + 5 * MIN, 5 * MIN, newId).result).toHaveLength(1);
    expect(applySnapshotSchedules(c, T0 + 5 * MIN, 1000, newId).result).toHaveLength(1);
  });

  it('nextScheduleDue: now when something is due, else the earliest next slot; undefined without schedules', () => {
    const c = withDatasets();
    expect(nextScheduleDue(c, T0 + 5, MIN)).toBe(T0 + 5);
    const served = applySnapshotSchedules(c, T0 + 5, MIN, newId).config;
    expect(nextScheduleDue(served, T0 + 6, MIN)).toBe(T0 + HOUR);
    expect(nextScheduleDue(emptyConfiguration, T0, MIN)).toBeUndefined();
  });

  it('metadata updates: merge, no-op when unchanged, refused beyond the key limit', () => {
    const c = withDatasets();
    expect(updateDataset(c, D1, { metadata: { [KEEP]: '2' } }, T0).config).toBe(c);
    let many = registerNode(emptyConfiguration, { uuid: A, host: 'a' });
    const sixteen = Object.fromEntries(Array.from({ length: 16 }, (_, i) => [`k${i}`, 'v']));
    many = createDataset(many, { primary: A, dataset_id: D1, metadata: sixteen }).config;
    expect(() => updateDataset(many, D1, { metadata: { [SCHEDULE]: 'hourly' } }, T0)).toThrow(ConfigurationError);
  });
});

describe('ScheduledDatasets (the index the scheduler replans with)', () => {
  it('agrees with a scan of every dataset through creates, schedule changes, deletes and base folds', () => {
    let c = registerNode(emptyConfiguration, { uuid: A, host: 'a' });
    const index = new ScheduledDatasets();
    const scan = (config: Configuration): string[] =>
      [...config.datasets.values()]
        .filter((d) => !d.deleted && d.metadata[SCHEDULE] !== undefined)
        .map((d) => d.dataset_id)
        .sort();
    let seed = 7;
    const rand = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const id = (i: number): string => `${String(i).padStart(8, '0')}-0000-4000-8000-000000000000`;
    // Enough writes that PersistentMap folds its overlay into a new base several times (the full-diff path).
    for (let step = 0; step < 600; step++) {
      const i = rand(60);
      const d = c.datasets.get(id(i));
      const op = rand(4);
      if (d === undefined) {
        const metadata: Record<string, string> = op < 2 ? { [SCHEDULE]: 'hourly' } : { name: `v${i}` };
        c = createDataset(c, { primary: A, dataset_id: id(i), metadata }).config;
      } else if (!d.deleted && op === 0) c = deleteDataset(c, id(i), T0).config;
      else if (!d.deleted && op === 1) c = updateDataset(c, id(i), { metadata: { [SCHEDULE]: 'daily' } }, T0).config;
      if (step % 7 === 0) expect([...index.of(c.datasets)].sort()).toEqual(scan(c));
    }
    expect([...index.of(c.datasets)].sort()).toEqual(scan(c));
    expect(scan(c).length).toBeGreaterThan(0);
    // The planner reads the same datasets with and without the index.
    const fresh = new ScheduledDatasets();
    expect(nextScheduleDue(c, T0 + 5, MIN, fresh)).toBe(nextScheduleDue(c, T0 + 5, MIN));
    const ids = (() => {
      let n = 0;
      return () => `99999999-0000-4000-8000-${String(n++).padStart(12, '0')}`;
    })();
    const ids2 = (() => {
      let n = 0;
      return () => `99999999-0000-4000-8000-${String(n++).padStart(12, '0')}`;
    })();
    expect(applySnapshotSchedules(c, T0 + 5, MIN, ids, fresh).result).toEqual(
      applySnapshotSchedules(c, T0 + 5, MIN, ids2).result,
    );
  });
});

describe('SnapshotScheduler (ManualClock)', () => {
  const open = openOnManualClock;
  const advance = advanceInSteps;

  it('takes a snapshot at every due time and prunes to keep; a restart after missed slots takes one', async () => {
    const clock = new ManualClock(T0 + 30 * 1000);
    const store = new MemoryConfigurationStore();
    let state = await open(store, clock);
    await state.mutate((c) => ({ config: registerNode(c, { uuid: A, host: 'a' }), result: undefined, status: 200 }));
    await state.mutate((c) =>
      createDataset(c, { primary: A, dataset_id: D1, metadata: { name: 'db', [SCHEDULE]: 'every 5m', [KEEP]: '3' } }),
    );
    await advance(clock, MIN);
    expect(liveScheduled(state.configuration)).toEqual(['db-20261204T0000Z']);
    await advance(clock, 30 * MIN);
    expect(liveScheduled(state.configuration)).toEqual(['db-20261204T0020Z', 'db-20261204T0025Z', 'db-20261204T0030Z']);
    const total = state.configuration.snapshots?.size;
    expect(total).toBe(7);
    await state.close();
    // Down for two hours: on restart one snapshot for the current slot, the oldest beyond keep deleted.
    await clock.advance(2 * HOUR);
    state = await open(store, clock);
    await advance(clock, MIN);
    expect(liveScheduled(state.configuration)).toEqual(['db-20261204T0025Z', 'db-20261204T0030Z', 'db-20261204T0230Z']);
    expect(state.configuration.snapshots?.size).toBe(8);
    await state.close();
  });
});

describe('SnapshotScheduler on its own (ManualClock)', () => {
  it('a failed run is retried after SCHEDULE_RETRY_MS, not in a hot loop; close cancels the timer', async () => {
    const clock = new ManualClock(T0 + 1000);
    let config = withDatasets();
    let attempts = 0;
    const scheduler = new SnapshotScheduler({
      configuration: () => config,
      mutate: async (change) => {
        attempts++;
        if (attempts === 1) throw new Error('store unavailable');
        const applied = change(config, clock.now());
        config = applied.config;
        return applied;
      },
      now: () => clock.now(),
      timers: clock,
      minIntervalMs: MIN,
      logger: silentLogger,
    });
    scheduler.reschedule();
    await clock.advance(10);
    expect(attempts).toBe(1);
    await clock.advance(SCHEDULE_RETRY_MS - 100);
    expect(attempts).toBe(1);
    await clock.advance(200);
    expect(attempts).toBe(2);
    expect(liveScheduled(config)).toEqual(['db-20261204T0000Z']);
    // Served: the next run is at the next slot (an hour), nothing before.
    await clock.advance(T0 + HOUR - 100 - clock.now());
    expect(attempts).toBe(2);
    await clock.advance(200);
    expect(attempts).toBe(3);
    expect(liveScheduled(config)).toEqual(['db-20261204T0000Z', 'db-20261204T0100Z']);
    scheduler.close();
    expect(clock.pending).toBe(0);
  });
});

describe('HTTP: the schedule in dataset metadata', () => {
  async function post(url: string, body: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    return { status: res.status, json: (await res.json()) as Record<string, unknown> };
  }

  it('is validated at create and update (400 with the reason), changeable later, only those keys', async () => {
    const svc = await startOnLoopback();
    try {
      const reported = await fetch(`${svc.url}/v1/agent/nodes/${A}`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(nodeReport(A)),
      });
      expect(reported.status).toBe(200);
      const datasets = `${svc.url}/v1/configuration/datasets`;
      const bad = await post(datasets, { primary: A, metadata: { [SCHEDULE]: 'weekly' } });
      expect(bad.status).toBe(400);
      expect(bad.json['description']).toContain('"weekly" is not a snapshot schedule');
      const keep = await post(datasets, { primary: A, metadata: { [SCHEDULE]: 'hourly', [KEEP]: '0' } });
      expect(keep.status).toBe(400);
      expect(keep.json['description']).toContain('snapshot-keep must be a whole number from 1 to 1000');
      const often = await post(datasets, { primary: A, metadata: { [SCHEDULE]: 'every 1m' } });
      expect(often.status).toBe(400);
      expect(often.json['code']).toBe('SNAPSHOT_SCHEDULE_TOO_FREQUENT');
      expect(often.json['description']).toContain('minimum interval of 5m');
      const created = await post(datasets, {
        primary: A,
        dataset_id: D1,
        metadata: { name: 'db', [SCHEDULE]: 'daily' },
      });
      expect(created.status).toBe(201);
      const changed = await post(`${datasets}/${D1}`, { metadata: { [SCHEDULE]: 'every 6h', [KEEP]: '12' } });
      expect(changed.status).toBe(200);
      expect(changed.json['metadata']).toEqual({ name: 'db', [SCHEDULE]: 'every 6h', [KEEP]: '12' });
      const removed = await post(`${datasets}/${D1}`, { metadata: { [SCHEDULE]: null } });
      expect(removed.json['metadata']).toEqual({ name: 'db', [KEEP]: '12' });
      const other = await post(`${datasets}/${D1}`, { metadata: { name: 'renamed' } });
      expect(other.status).toBe(400);
      expect(other.json['description']).toContain('can change after creation');
      const tooOften = await post(`${datasets}/${D1}`, { metadata: { [SCHEDULE]: 'every 30s' } });
      expect(tooOften.status).toBe(400);
      expect(tooOften.json['code']).toBe('SNAPSHOT_SCHEDULE_TOO_FREQUENT');
    } finally {
      await svc.close();
    }
  });

  it('the test-only minimum interval lets a schedule of seconds through', async () => {
    const svc = await startOnLoopback({ testOnlyMinSnapshotIntervalSeconds: 1 });
    try {
      expect(svc.state.minSnapshotIntervalMs).toBe(1000);
      expect(CreateDatasetRequest.safeParse({ primary: A, metadata: { [SCHEDULE]: 'every 2s' } }).success).toBe(true);
    } finally {
      await svc.close();
    }
  });
});

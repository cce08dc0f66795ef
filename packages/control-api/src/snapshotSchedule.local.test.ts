/**
 * A snapshot schedule on a local dataset (issue 24): local storage's agent takes no snapshots, so a
 * schedule set while its node had not reported its backend (right after a control-service start the
 * API accepts it as for block storage) must stop asking for snapshots once the node is known to be
 * local: each would stay "requested" for ever. Not a hot loop either (nothing due "now" for ever). Nor right after a
 * start, before the node reports: the schedules of nodes not reported since are held back for a moment (the node
 * timeout, at most 30 s), else each restart added a never-taken snapshot per local dataset.
 */
import { METADATA_SNAPSHOT_KEEP_KEY as KEEP, METADATA_SNAPSHOT_SCHEDULE_KEY as SCHEDULE } from '@flocker/api';
import { ManualClock } from '@flocker/runtime/testing';
import { type Configuration, createDataset, registerNode, emptyConfiguration } from './configuration';
import { MemoryConfigurationStore } from './ConfigurationStore';
import type { BackendOf } from './localStorage';
import { applySnapshotSchedules, nextScheduleDue } from './snapshotSchedule';
import { NODE_A as A, NODE_B as B, nodeReport } from './testing/httpService';
import { advanceInSteps, openOnManualClock } from './testing/scheduledState';

const LOCAL = '11111111-1111-4111-8111-111111111111';
const BLOCK = '22222222-2222-4222-8222-222222222222';
const MIN = 60_000;
const HOUR = 60 * MIN;
const T0 = Date.UTC(2026, 11, 4);

function scheduled(): Configuration {
  let c = registerNode(emptyConfiguration, { uuid: A, host: 'a' });
  c = registerNode(c, { uuid: B, host: 'b' });
  c = createDataset(c, { primary: A, dataset_id: LOCAL, metadata: { name: 'pg', [SCHEDULE]: 'hourly' } }).config;
  c = createDataset(c, { primary: B, dataset_id: BLOCK, metadata: { name: 'db', [SCHEDULE]: 'hourly' } }).config;
  return c;
}

const aLocal: BackendOf = (node) =>
  node === A ? { kind: 'local', name: 'local-btrfs' } : node === B ? { kind: 'other', name: 'loopback' } : undefined;

const liveScheduledOf = (c: Configuration, dataset: string): number =>
  [...(c.snapshots?.values() ?? [])].filter((s) => s.dataset_id === dataset && s.deleted !== true).length;

describe('snapshot schedules of local datasets (pure)', () => {
  it('no snapshot is asked for a dataset whose primary is known to be local; block datasets as before', () => {
    const applied = applySnapshotSchedules(scheduled(), T0 + 5, MIN, undefined, undefined, {
      backendOf: aLocal,
      unknownUntil: 0,
    });
    expect(applied.result.map((a) => a.dataset_id)).toEqual([BLOCK]);
  });

  it('a node not known (not reported since the start) is held back until `unknownUntil`, then scheduled as before', () => {
    const unknown = { backendOf: () => undefined, unknownUntil: T0 + 30_000 };
    expect(applySnapshotSchedules(scheduled(), T0 + 5, MIN, undefined, undefined, unknown).result).toEqual([]);
    const after = applySnapshotSchedules(scheduled(), T0 + 30_000, MIN, undefined, undefined, unknown);
    expect(after.result.map((a) => a.dataset_id).sort()).toEqual([LOCAL, BLOCK]);
    // Held back, due when the hold ends (not "now" for ever, not skipped).
    expect(nextScheduleDue(scheduled(), T0 + 5, MIN, undefined, unknown)).toBe(T0 + 30_000);
  });

  it('a local dataset is never due (the scheduler would otherwise run again at once, for ever)', () => {
    let c = registerNode(emptyConfiguration, { uuid: A, host: 'a' });
    c = createDataset(c, { primary: A, dataset_id: LOCAL, metadata: { [SCHEDULE]: 'hourly' } }).config;
    expect(nextScheduleDue(c, T0 + 5, MIN, undefined, { backendOf: aLocal, unknownUntil: 0 })).toBeUndefined();
    expect(nextScheduleDue(c, T0 + 5, MIN, undefined, { backendOf: () => undefined, unknownUntil: 0 })).toBe(T0 + 5);
  });
});

describe('the scheduler once the node reports a local backend (ManualClock)', () => {
  it('stops taking snapshots of the local dataset; the block dataset keeps its schedule', async () => {
    const clock = new ManualClock(T0 + 30 * 1000);
    const state = await openOnManualClock(new MemoryConfigurationStore(), clock);
    try {
      await state.mutate((c) => ({ config: registerNode(c, { uuid: A, host: 'a' }), result: undefined, status: 200 }));
      await state.mutate((c) => ({ config: registerNode(c, { uuid: B, host: 'b' }), result: undefined, status: 200 }));
      // Set before A reported (as right after a restart): accepted, and run once.
      await state.mutate((c) =>
        createDataset(c, {
          primary: A,
          dataset_id: LOCAL,
          metadata: { name: 'pg', [SCHEDULE]: 'every 5m', [KEEP]: '3' },
        }),
      );
      await state.mutate((c) =>
        createDataset(c, {
          primary: B,
          dataset_id: BLOCK,
          metadata: { name: 'db', [SCHEDULE]: 'every 5m', [KEEP]: '9' },
        }),
      );
      await clock.advance(MIN);
      expect(liveScheduledOf(state.configuration, LOCAL)).toBe(1);
      await state.report(nodeReport(A, { backend: 'local-btrfs' }));
      await state.report(nodeReport(B));
      await advanceInSteps(clock, 30 * MIN);
      expect(liveScheduledOf(state.configuration, LOCAL)).toBe(1);
      expect(liveScheduledOf(state.configuration, BLOCK)).toBe(7);
    } finally {
      await state.close();
    }
  });
});

describe('a restart of the control service after a missed slot (ManualClock)', () => {
  it('asks for no snapshot of the local dataset before its node reports; the block one once its node reports', async () => {
    const clock = new ManualClock(T0 + 30 * 1000);
    const store = new MemoryConfigurationStore();
    const open = () => openOnManualClock(store, clock);
    let state = await open();
    await state.mutate((c) => ({ config: registerNode(c, { uuid: A, host: 'a' }), result: undefined, status: 200 }));
    await state.mutate((c) => ({ config: registerNode(c, { uuid: B, host: 'b' }), result: undefined, status: 200 }));
    await state.mutate((c) =>
      createDataset(c, { primary: A, dataset_id: LOCAL, metadata: { name: 'pg', [SCHEDULE]: 'every 5m' } }),
    );
    await state.mutate((c) =>
      createDataset(c, { primary: B, dataset_id: BLOCK, metadata: { name: 'db', [SCHEDULE]: 'every 5m' } }),
    );
    await state.report(nodeReport(A, { backend: 'local-btrfs' }));
    await state.report(nodeReport(B));
    await clock.advance(MIN);
    expect([liveScheduledOf(state.configuration, LOCAL), liveScheduledOf(state.configuration, BLOCK)]).toEqual([0, 1]);
    await state.close();
    // Down for an hour: slots missed. On restart nothing is due before the nodes report (A within 10 s).
    await clock.advance(HOUR);
    state = await open();
    try {
      await advanceInSteps(clock, 10_000, 10_000);
      expect(liveScheduledOf(state.configuration, LOCAL)).toBe(0);
      expect(liveScheduledOf(state.configuration, BLOCK)).toBe(1);
      await state.report(nodeReport(A, { backend: 'local-btrfs' }));
      await state.report(nodeReport(B));
      // B's first report ends its dataset's hold at once (not at the hold's end, 30 s after the start).
      await advanceInSteps(clock, 1000, 1000);
      expect(liveScheduledOf(state.configuration, BLOCK)).toBe(2);
      await advanceInSteps(clock, 3 * MIN);
      expect(liveScheduledOf(state.configuration, LOCAL)).toBe(0);
      expect(liveScheduledOf(state.configuration, BLOCK)).toBe(2);
    } finally {
      await state.close();
    }
  });
});

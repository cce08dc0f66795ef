import type { ClusterSnapshot, DatasetConfiguration, NodeState } from '@flocker/api/schemas';
import {
  deviceSize,
  realSize,
  sizeText,
  clonedFrom,
  clusterView,
  growPendingReason,
  growPendingText,
  nextScheduledAt,
  resizeProgress,
  stateText,
  volumeFilesystem,
  scheduleOf,
  volumeState,
} from './view';
import { A, actionError, attached, B, backend, D1, D2, dataset, mounted, node, snapshot } from '../testing/fixtures';

const d1 = dataset(D1, 'pgdata', A);

/** `datasets` on a cluster of node A (host `a`, as `over` says) and an idle node B (host `b`). */
const onA = (datasets: DatasetConfiguration[], over: Partial<NodeState> = {}): ClusterSnapshot =>
  snapshot({ datasets, nodes: [node(A, 'a', over), node(B, 'b')] });

describe('volumeState', () => {
  it('is creating while the backend has no volume', () => {
    expect(volumeState(snapshot({ datasets: [d1] }), d1)).toMatchObject({ state: 'creating', location: null });
  });

  it('is attaching while the volume is detached or attached to the primary', () => {
    const free = onA([d1], { volumes: [backend(D1, null)] });
    expect(volumeState(free, d1)).toMatchObject({ state: 'attaching', detail: 'attaching to a' });
    const formatting = onA([d1], { manifestations: [attached(D1)], volumes: [backend(D1, 'i-a')] });
    expect(volumeState(formatting, d1)).toMatchObject({
      state: 'attaching',
      detail: 'formatting and mounting on a',
      location: 'a',
    });
  });

  it('is mounted with its path once the primary mounted it', () => {
    const s = onA([d1], { manifestations: [mounted(D1, '/m/1')] });
    expect(volumeState(s, d1)).toMatchObject({ state: 'mounted', path: '/m/1', location: 'a' });
  });

  it('is moving while another node still holds it', () => {
    const toB = dataset(D1, 'pgdata', B);
    const s = onA([toB], { manifestations: [mounted(D1)], volumes: [backend(D1, 'i-a')] });
    expect(volumeState(s, toB)).toMatchObject({
      state: 'moving',
      detail: 'moving to b: detaching from a',
      location: 'a',
    });
    const dead = onA([toB], { alive: false, volumes: [backend(D1, 'i-a')] });
    expect(volumeState(dead, toB)).toMatchObject({ state: 'moving', detail: 'waiting for dead node a to be fenced' });
  });

  it('is an error with the reason when an action fails, the primary is dead or unknown', () => {
    const err = actionError(D1);
    const failing = onA([d1], { errors: [err] });
    expect(volumeState(failing, d1)).toMatchObject({
      state: 'error',
      detail: 'attach failed on a (3 attempts): device busy (DEVICE_BUSY)',
    });
    expect(volumeState(failing, d1).errors).toEqual([
      { host: 'a', action: 'attach', code: 'DEVICE_BUSY', message: 'device busy', attempts: 3, since: err.since },
    ]);
    const dead = onA([d1], { alive: false });
    expect(volumeState(dead, d1)).toMatchObject({ state: 'error', detail: 'node a is not alive' });
    expect(volumeState(snapshot({ datasets: [d1], nodes: [] }), d1)).toMatchObject({
      state: 'error',
      detail: `node ${A} has never reported`,
    });
  });

  it('stays mounted (with its errors listed) when a later action fails', () => {
    const err = { dataset_id: D1, action: 'resize', code: 'X', message: 'no', attempts: 1, since: 's' };
    const s = onA([d1], { manifestations: [mounted(D1)], errors: [err] });
    expect(volumeState(s, d1)).toMatchObject({ state: 'mounted' });
    expect(volumeState(s, d1).errors).toHaveLength(1);
  });

  it('is deleting once deleted', () => {
    const gone = dataset(D1, 'pgdata', A, { deleted: true });
    expect(volumeState(snapshot({ datasets: [gone] }), gone).state).toBe('deleting');
  });

  it('says why a delete is stuck (issue 17: a DEVICE_BUSY delete was invisible)', () => {
    const gone = dataset(D1, 'pgdata', A, { deleted: true });
    const busy = actionError(D1, {
      action: 'destroy',
      message: 'unmounting /flocker/x failed: target is busy',
      attempts: 4,
    });
    const s = snapshot({
      datasets: [gone],
      nodes: [
        node(A, 'a', { manifestations: [mounted(D1)], volumes: [backend(D1, 'i-a')], errors: [busy] }),
        node(B, 'b'),
      ],
    });
    expect(volumeState(s, gone)).toMatchObject({
      state: 'deleting',
      detail: 'destroy failed on a (4 attempts): unmounting /flocker/x failed: target is busy (DEVICE_BUSY)',
    });
    const v = clusterView(s).volumes[0]!;
    expect(stateText(v)).toBe(
      'deleting: destroy failed on a (4 attempts): unmounting /flocker/x failed: target is busy (DEVICE_BUSY)',
    );
  });
});

describe('stateText (the state cell of a volume row)', () => {
  const err = actionError(D1);
  it('is "error: <reason>" for a failing volume', () => {
    const s = onA([d1], { errors: [err] });
    expect(stateText(clusterView(s).volumes[0]!)).toBe(
      'error: attach failed on a (3 attempts): device busy (DEVICE_BUSY)',
    );
  });
  it('names the failing action of a volume that is otherwise fine', () => {
    const resize = { ...err, action: 'resize', code: 'BACKEND_ERROR', message: 'no space' };
    const s = onA([d1], { manifestations: [mounted(D1)], errors: [resize] });
    expect(stateText(clusterView(s).volumes[0]!)).toBe(
      'mounted; error: resize failed on a (3 attempts): no space (BACKEND_ERROR)',
    );
  });
  it('is the bare state otherwise', () => {
    const s = onA([d1], { manifestations: [mounted(D1)] });
    expect(stateText(clusterView(s).volumes[0]!)).toBe('mounted');
    const gone = dataset(D1, 'pgdata', A, { deleted: true });
    const deleting = onA([gone], { volumes: [backend(D1, null)] });
    expect(stateText(clusterView(deleting).volumes[0]!)).toBe('deleting: unmounting, detaching and destroying');
  });
});

describe('clusterView', () => {
  it('lists volumes by name with leases and first-seen times, nodes with what they hold', () => {
    const s = snapshot({
      generation: '7',
      datasets: [
        dataset(D2, 'zeta', B),
        d1,
        dataset('d3d3d3d3-0000-4000-8000-0000000000d3', 'old', A, { deleted: true }),
      ],
      leases: [{ dataset_id: D1, node_uuid: A, expires: null }],
      nodes: [node(B, 'b'), node(A, 'a', { manifestations: [mounted(D1)] })],
    });
    const v = clusterView(s, new Map([[D2, '2026-01-01T00:00:00.000Z']]));
    expect(v.generation).toBe('7');
    expect(v.volumes.map((x) => x.name)).toEqual(['pgdata', 'zeta']); // fully deleted volumes are gone
    expect(v.volumes[0]).toMatchObject({
      size: 128 * 1024 * 1024,
      primary: { uuid: A, host: 'a' },
      lease: { node_uuid: A, host: 'a', expires: null },
      first_seen: null,
    });
    expect(v.volumes[1]).toMatchObject({ first_seen: '2026-01-01T00:00:00.000Z', lease: null, state: 'creating' });
    expect(v.nodes.map((n) => n.host)).toEqual(['a', 'b']);
    expect(v.nodes[0]!.volumes).toEqual([{ dataset_id: D1, name: 'pgdata', status: 'mounted' }]);
  });

  it('keeps a deleted volume while a node still has it, and names unnamed volumes by id', () => {
    const s = snapshot({
      datasets: [dataset(D1, 'x', A, { deleted: true }), dataset(D2, 'x', A, { metadata: {} })],
      nodes: [node(A, 'a', { manifestations: [mounted(D1)] })],
    });
    const v = clusterView(s);
    expect(v.volumes.map((x) => [x.name, x.state])).toEqual([
      ['d2d2d2d2', 'creating'],
      ['x', 'deleting'],
    ]);
  });

  it('carries every snapshot, and each volume its file system and the snapshot it was cloned from', () => {
    const S1 = '51515151-0000-4000-8000-000000000001';
    const s = snapshot({
      datasets: [d1, dataset(D2, 'copy', B, { source_snapshot_id: S1, metadata: { name: 'copy', [FS]: 'xfs' } })],
      snapshots: [{ snapshot_id: S1, dataset_id: D1, metadata: { name: 'nightly' }, created_at: 't' }],
      nodes: [node(A, 'a'), node(B, 'b')],
    });
    const v = clusterView(s);
    expect(v.volumes.map((x) => x.snapshot_schedule)).toEqual([null, null]);
    expect(v.volumes.map((x) => [x.name, x.filesystem, x.cloned_from])).toEqual([
      ['copy', 'xfs', 'nightly'],
      ['pgdata', 'ext4', null],
    ]);
    expect(v.snapshots).toEqual([
      {
        snapshot_id: S1,
        name: 'nightly',
        dataset_id: D1,
        volume: 'pgdata',
        source_deleted: false,
        created_at: 't',
        state: 'requested',
        size: null,
        taken_at: null,
        reason: null,
        error: null,
        source_primary: A,
        scheduled: false,
      },
    ]);
    expect(clusterView(snapshot({ datasets: [d1] })).snapshots).toEqual([]);
  });
});

const FS = 'clusterhq:flocker:filesystem';

describe('volumeFilesystem', () => {
  it('is what the metadata says, ext4 when it says nothing', () => {
    expect(volumeFilesystem({ metadata: { [FS]: 'xfs' } })).toBe('xfs');
    expect(volumeFilesystem({ metadata: {} })).toBe('ext4');
  });
});

describe('clonedFrom', () => {
  const S1 = '51515151-0000-4000-8000-000000000001';
  const conf = { snapshot_id: S1, dataset_id: D1, metadata: {}, created_at: 't' };
  it("is null for a volume created empty, else the snapshot's name or short id (also once it is gone)", () => {
    expect(clonedFrom(snapshot(), {})).toBeNull();
    const named = snapshot({ snapshots: [{ ...conf, metadata: { name: 'nightly' } }] });
    expect(clonedFrom(named, { source_snapshot_id: S1 })).toBe('nightly');
    expect(clonedFrom(snapshot({ snapshots: [conf] }), { source_snapshot_id: S1 })).toBe('51515151');
    expect(clonedFrom(snapshot(), { source_snapshot_id: S1 })).toBe('51515151');
  });
});

describe('scheduleOf and nextScheduledAt', () => {
  const SCHED = 'clusterhq:flocker:snapshot-schedule';
  const KEEP = 'clusterhq:flocker:snapshot-keep';
  const scheduled = (id: string, at: string, over: object = {}) => ({
    snapshot_id: id,
    dataset_id: D1,
    metadata: { name: `pgdata-${id.slice(-1)}`, 'clusterhq:flocker:scheduled': 'hourly' },
    created_at: at,
    ...over,
  });
  const S = (n: number) => `51515151-0000-4000-8000-00000000000${n}`;

  it('is null without a schedule, with one the control service would not run, and for a deleted volume', () => {
    expect(scheduleOf(d1, [])).toBeNull();
    expect(scheduleOf(dataset(D1, 'pgdata', A, { metadata: { [SCHED]: 'sometimes' } }), [])).toBeNull();
    expect(scheduleOf(dataset(D1, 'pgdata', A, { metadata: { [SCHED]: 'hourly' }, deleted: true }), [])).toBeNull();
  });

  it("is the schedule, its keep (24 unless set) and the newest live scheduled snapshot's time", () => {
    const hourly = dataset(D1, 'pgdata', A, { metadata: { name: 'pgdata', [SCHED]: 'hourly' } });
    expect(scheduleOf(hourly, [])).toEqual({
      text: 'hourly',
      interval_ms: 3_600_000,
      keep: 24,
      kept: 0,
      last_at: null,
      not_run: null,
    });
    const s = snapshot({
      snapshots: [
        scheduled(S(1), '2026-12-04T06:00:00.000Z'),
        scheduled(S(2), '2026-12-04T07:00:00.000Z'),
        scheduled(S(3), '2026-12-04T08:00:00.000Z', { deleted: true }), // deleted: not counted
        { snapshot_id: S(4), dataset_id: D1, metadata: {}, created_at: '2026-12-04T09:00:00.000Z' }, // manual
        scheduled(S(5), '2026-12-04T10:00:00.000Z', { dataset_id: D2 }), // another volume's
      ],
    });
    const every = dataset(D1, 'pgdata', A, { metadata: { [SCHED]: 'every 15m', [KEEP]: '3' } });
    expect(scheduleOf(every, s.snapshots ?? [])).toEqual({
      text: 'every 15m',
      interval_ms: 900_000,
      keep: 3,
      kept: 2,
      last_at: '2026-12-04T07:00:00.000Z',
      not_run: null,
    });
  });

  it('is due at the current slot until a scheduled snapshot is asked for in it, then at the next', () => {
    const now = Date.parse('2026-12-04T07:20:00.000Z');
    const hour = 3_600_000;
    expect(nextScheduledAt({ interval_ms: hour, last_at: null }, now)).toBe(Date.parse('2026-12-04T07:00:00.000Z'));
    expect(nextScheduledAt({ interval_ms: hour, last_at: '2026-12-04T06:00:01.000Z' }, now)).toBe(
      Date.parse('2026-12-04T07:00:00.000Z'),
    );
    expect(nextScheduledAt({ interval_ms: hour, last_at: '2026-12-04T07:00:02.000Z' }, now)).toBe(
      Date.parse('2026-12-04T08:00:00.000Z'),
    );
  });
});

describe('resizeProgress', () => {
  const MiB = 1024 * 1024;
  const grown = dataset(D1, 'pgdata', A, { maximum_size: 256 * MiB });
  const holding = (size: number, on = A) =>
    snapshot({
      datasets: [grown],
      nodes: [node(A, 'a'), node(B, 'b')].map((n) =>
        n.uuid === on ? { ...n, manifestations: [{ ...mounted(D1), size }] } : n,
      ),
    });

  it('is from what the primary holds to the configured size while it is smaller', () => {
    expect(resizeProgress(holding(128 * MiB), grown)).toEqual({ from: 128 * MiB, to: 256 * MiB });
  });

  it('is null once the primary holds it that big (or bigger: backends round up)', () => {
    expect(resizeProgress(holding(256 * MiB), grown)).toBeNull();
    expect(resizeProgress(holding(1024 * MiB), grown)).toBeNull();
  });

  it('is null while it is not on its primary, for a deleted volume and without a size', () => {
    expect(resizeProgress(holding(128 * MiB, B), grown)).toBeNull(); // moving: that state says so
    expect(resizeProgress(snapshot({ datasets: [grown] }), grown)).toBeNull();
    expect(resizeProgress(holding(128 * MiB), { ...grown, deleted: true })).toBeNull();
    expect(resizeProgress(holding(128 * MiB), { ...grown, maximum_size: null })).toBeNull();
  });

  it('is part of the volume view', () => {
    expect(clusterView(holding(128 * MiB)).volumes[0]?.resizing).toEqual({ from: 128 * MiB, to: 256 * MiB });
  });
});

describe('growPendingText (TN F3: a grow that waits until the volume is unused)', () => {
  const MiB = 1024 * 1024;
  const grown = dataset(D1, 'pgdata', A, { maximum_size: 256 * MiB });
  const waiting = (leased: boolean): ClusterSnapshot => ({
    ...snapshot({
      datasets: [grown],
      nodes: [
        node(A, 'a', {
          manifestations: [{ ...mounted(D1), size: 256 * MiB, grow_pending: { reason: 'online_resize_refused' } }],
        }),
        node(B, 'b'),
      ],
    }),
    leases: leased ? [{ dataset_id: D1, node_uuid: A, expires: null, holders: ['docker'] }] : [],
  });

  it('says what it waits for and who uses the volume; the cluster view carries it', () => {
    expect(growPendingText(waiting(true), grown)).toBe(
      'grow to 256 MiB pending: grows when the volume is unmounted (in use by docker on a)',
    );
    expect(growPendingText(waiting(false), grown)).toBe(
      'grow to 256 MiB pending: grows when the volume is unmounted (no lease on it now: shortly)',
    );
    expect(clusterView(waiting(true)).volumes[0]?.grow_pending).toBe(growPendingText(waiting(true), grown));
  });

  it('growPendingReason (the CLI says it too) names every user; a node not in the snapshot by its id', () => {
    const ghost = 'c0ffee00-0000-4000-8000-000000000000';
    const s: ClusterSnapshot = {
      ...waiting(false),
      leases: [
        { dataset_id: D1, node_uuid: A, expires: null, holders: ['docker', 'csi'] },
        { dataset_id: D1, node_uuid: ghost, expires: null },
        { dataset_id: D2, node_uuid: B, expires: null, holders: ['other'] },
      ],
    };
    expect(growPendingReason(s, D1)).toBe(
      'grows when the volume is unmounted (in use by docker, csi on a; on c0ffee00)',
    );
  });

  it('is null when no grow waits', () => {
    const s = snapshot({ datasets: [grown], nodes: [node(A, 'a', { manifestations: [mounted(D1)] })] });
    expect(growPendingText(s, grown)).toBeNull();
    expect(clusterView(s).volumes[0]?.grow_pending).toBeUndefined();
  });
});

describe('a size not in whole units of the backend (s23 USER-T F8: 67108865 bytes shown as "64 MiB")', () => {
  const MiB = 1024 * 1024;
  const asked = 64 * MiB + 1;
  const d1 = dataset(D1, 'odd', A, { maximum_size: asked });
  it('shows the real size once its primary has it (rounded up to 65 MiB), and what was asked for', () => {
    const s = snapshot({
      datasets: [d1],
      nodes: [node(A, 'a', { manifestations: [{ ...mounted(D1), size: 65 * MiB }] })],
    });
    expect(clusterView(s).volumes[0]?.size).toBe(65 * MiB);
    expect(sizeText(asked, deviceSize(s, d1))).toBe(
      "65 MiB (67108865 bytes asked for, rounded up to its backend's allocation unit)",
    );
  });
  it('before it has one, and while a grow is on its way (a smaller device), the size asked for', () => {
    expect(realSize(asked, null)).toBe(asked);
    expect(realSize(128 * MiB, 64 * MiB)).toBe(128 * MiB);
    expect(sizeText(128 * MiB, 128 * MiB)).toBe('128 MiB');
    expect(sizeText(null, null)).toBe('-');
  });
});

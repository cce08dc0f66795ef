import { diffSnapshots } from './events';
import type { ClusterSnapshot } from '@flocker/api/schemas';
import { A, actionError, B, D1, D2, dataset, mounted, node, snapshot } from '../testing/fixtures';

const kinds = (e: { kind: string }[]) => e.map((x) => x.kind);

describe('diffSnapshots', () => {
  it('reports nothing for the first snapshot or an unchanged one', () => {
    const s = snapshot({ datasets: [dataset(D1, 'v', A)] });
    expect(diffSnapshots(undefined, s)).toEqual([]);
    expect(diffSnapshots(s, { ...s, generation: '2' })).toEqual([]);
  });

  it('reports a created volume with its node and size, then its mount', () => {
    const s0 = snapshot();
    const s1 = snapshot({ datasets: [dataset(D1, 'pgdata', A)] });
    expect(diffSnapshots(s0, s1)).toEqual([
      { kind: 'created', severity: 'info', message: 'Volume pgdata created on 10.0.0.1 (128 MiB)', dataset_id: D1 },
    ]);
    const s2 = snapshot({
      datasets: [dataset(D1, 'pgdata', A)],
      nodes: [node(A, '10.0.0.1', { manifestations: [mounted(D1, '/m/p')] }), node(B, '10.0.0.2')],
    });
    expect(diffSnapshots(s1, s2)).toEqual([
      {
        kind: 'mounted',
        severity: 'success',
        message: 'Volume pgdata mounted on 10.0.0.1 at /m/p',
        dataset_id: D1,
        node_uuid: A,
      },
    ]);
  });

  it('reports a move request and the mount at the destination', () => {
    const onA = snapshot({
      datasets: [dataset(D1, 'v', A)],
      nodes: [node(A, 'a', { manifestations: [mounted(D1)] }), node(B, 'b')],
    });
    const toB = snapshot({ datasets: [dataset(D1, 'v', B)], nodes: onA.nodes });
    expect(diffSnapshots(onA, toB)).toMatchObject([{ kind: 'moving', message: 'Volume v moving from a to b' }]);
    const onB = snapshot({
      datasets: [dataset(D1, 'v', B)],
      nodes: [node(A, 'a'), node(B, 'b', { manifestations: [mounted(D1)] })],
    });
    expect(diffSnapshots(toB, onB)).toMatchObject([
      { kind: 'mounted', node_uuid: B, message: expect.stringContaining('mounted on b') },
    ]);
  });

  it('reports a failure once with its reason, not again on retries', () => {
    const err = actionError(D1, { message: 'the device is busy', attempts: 1 });
    const s0 = snapshot({ datasets: [dataset(D1, 'v', A)] });
    const s1 = snapshot({ datasets: s0.datasets, nodes: [node(A, 'a', { errors: [err] }), node(B, 'b')] });
    expect(diffSnapshots(s0, s1)).toEqual([
      {
        kind: 'failed',
        severity: 'error',
        message: 'Volume v: attach failed on a: the device is busy',
        dataset_id: D1,
        node_uuid: A,
      },
    ]);
    const s2 = snapshot({
      datasets: s0.datasets,
      nodes: [node(A, 'a', { errors: [{ ...err, attempts: 5 }] }), node(B, 'b')],
    });
    expect(diffSnapshots(s1, s2)).toEqual([]);
    const nodeLevel = { action: 'list', code: 'BACKEND', message: 'backend down', attempts: 1, since: 's' };
    const s3 = snapshot({ nodes: [node(A, 'a', { errors: [nodeLevel] })] });
    expect(diffSnapshots(snapshot({ nodes: [node(A, 'a')] }), s3)).toEqual([
      { kind: 'failed', severity: 'error', message: 'list failed on a: backend down', node_uuid: A },
    ]);
  });

  it("words a local agent's refusal (action 'refuse', issue 24) as one: not 'refuse failed'", () => {
    const err = actionError(D1, {
      action: 'refuse',
      code: 'SOURCE_UNREACHABLE',
      message: 'the data is on a dead node',
    });
    const s0 = snapshot({ datasets: [dataset(D1, 'v', B)] });
    const s1 = snapshot({ datasets: s0.datasets, nodes: [node(A, 'a'), node(B, 'b', { errors: [err] })] });
    expect(diffSnapshots(s0, s1)).toMatchObject([
      { kind: 'failed', message: 'Volume v: refused on b: the data is on a dead node' },
    ]);
  });

  it("words what a node observes (a storage backend not answering since its agent started) as such: not 'observe failed'", () => {
    const seen = {
      action: 'observe',
      code: 'BACKEND_UNREACHABLE',
      message: 'its storage backend has not answered since the dataset agent started (listing volumes)',
      attempts: 0,
      since: 's',
    };
    const s1 = snapshot({ nodes: [node(A, 'a', { errors: [seen] })] });
    expect(diffSnapshots(snapshot({ nodes: [node(A, 'a')] }), s1)).toEqual([
      {
        kind: 'failed',
        severity: 'error',
        message: 'on a: its storage backend has not answered since the dataset agent started (listing volumes)',
        node_uuid: A,
      },
    ]);
  });

  it('reports deletion by flag or by disappearance, once', () => {
    const s0 = snapshot({ datasets: [dataset(D1, 'v', A)] });
    const s1 = snapshot({ datasets: [dataset(D1, 'v', A, { deleted: true })] });
    expect(kinds(diffSnapshots(s0, s1))).toEqual(['deleted']);
    expect(diffSnapshots(s1, snapshot())).toEqual([]);
    expect(diffSnapshots(s0, snapshot())).toMatchObject([{ kind: 'deleted', message: 'Volume v deleted' }]);
  });

  it('reports nodes joining, lost, back and rebooted', () => {
    const one = snapshot({ nodes: [node(A, 'a')] });
    const two = snapshot({ nodes: [node(A, 'a'), node(B, 'b')] });
    expect(diffSnapshots(one, two)).toEqual([
      { kind: 'node-joined', severity: 'info', message: 'Node b joined', node_uuid: B },
    ]);
    const lost = snapshot({ nodes: [node(A, 'a', { alive: false }), node(B, 'b')] });
    expect(diffSnapshots(two, lost)).toMatchObject([
      { kind: 'node-lost', severity: 'error', node_uuid: A, message: expect.stringMatching(/^Node a lost/) },
    ]);
    expect(diffSnapshots(lost, two)).toMatchObject([{ kind: 'node-back', message: 'Node a is back' }]);
    const rebooted = snapshot({ nodes: [node(A, 'a', { era: 'new' }), node(B, 'b')] });
    expect(kinds(diffSnapshots(two, rebooted))).toEqual(['node-rebooted']);
  });

  it('reports leases acquired, handed over and released', () => {
    const s0 = snapshot({ datasets: [dataset(D1, 'v', A)] });
    const s1 = snapshot({ datasets: s0.datasets, leases: [{ dataset_id: D1, node_uuid: A, expires: null }] });
    expect(diffSnapshots(s0, s1)).toMatchObject([{ kind: 'lease-acquired', message: 'Lease on v held by 10.0.0.1' }]);
    const s2 = snapshot({ datasets: s0.datasets, leases: [{ dataset_id: D1, node_uuid: B, expires: 10 }] });
    expect(kinds(diffSnapshots(s1, s2))).toEqual(['lease-acquired']);
    expect(diffSnapshots(s1, s0)).toMatchObject([{ kind: 'lease-released', message: 'Lease on v released' }]);
  });

  it('says a lease released while its node is dead was released because the host is dead', () => {
    const held = snapshot({
      datasets: [dataset(D1, 'v', A)],
      leases: [{ dataset_id: D1, node_uuid: A, expires: null }],
      nodes: [node(A, 'a', { alive: false, dead_since: '2026-01-01T00:00:30.000Z' }), node(B, 'b')],
    });
    const released = snapshot({ datasets: held.datasets, nodes: held.nodes });
    expect(diffSnapshots(held, released)).toEqual([
      {
        kind: 'lease-released',
        severity: 'warning',
        message: 'Lease on v released: host a dead',
        dataset_id: D1,
        node_uuid: A,
      },
    ]);
    // Same release with the node alive: an ordinary release.
    const alive = snapshot({ datasets: held.datasets, leases: held.leases });
    expect(diffSnapshots(alive, snapshot({ datasets: held.datasets }))).toEqual([
      { kind: 'lease-released', severity: 'info', message: 'Lease on v released', dataset_id: D1 },
    ]);
  });

  it('orders node events before volume events', () => {
    const s0 = snapshot({ nodes: [node(A, 'a')] });
    const s1 = snapshot({ datasets: [dataset(D1, 'v', A)], nodes: [node(A, 'a', { alive: false })] });
    expect(kinds(diffSnapshots(s0, s1))).toEqual(['node-lost', 'created']);
  });
});

describe('diffSnapshots: snapshots (issue 20)', () => {
  const S1 = '51515151-0000-4000-8000-000000000001';
  const v = dataset(D1, 'v', A);
  const conf = { snapshot_id: S1, dataset_id: D1, metadata: { name: 'nightly' }, created_at: 't' };
  const held = (status: 'creating' | 'ready' | 'error') => ({
    snapshot_id: S1,
    dataset_id: D1,
    size: 128 * 1024 * 1024,
    created_at: 't',
    status,
    backend_id: 'b',
    source_blockdevice_id: 'vol',
  });
  const at = (over: Partial<ClusterSnapshot>, status?: 'creating' | 'ready' | 'error') =>
    snapshot({
      datasets: [v],
      nodes: [node(A, 'a', status ? { snapshots: [held(status)] } : {}), node(B, 'b')],
      ...over,
    });
  const ev = { dataset_id: D1, snapshot_id: S1 };

  it('reports a snapshot requested, then taken once the backend holds it ready', () => {
    const none = at({});
    const asked = at({ snapshots: [conf] });
    expect(diffSnapshots(none, asked)).toEqual([
      { kind: 'snapshot-requested', severity: 'info', message: 'Snapshot nightly of v requested', ...ev },
    ]);
    const creating = at({ snapshots: [conf] }, 'creating');
    expect(diffSnapshots(asked, creating)).toEqual([]);
    const ready = at({ snapshots: [conf] }, 'ready');
    expect(diffSnapshots(creating, ready)).toEqual([
      { kind: 'snapshot-taken', severity: 'success', message: 'Snapshot nightly of v taken (128 MiB)', ...ev },
    ]);
    expect(diffSnapshots(ready, ready)).toEqual([]);
    // Asked for and taken between two looks: both, in order.
    expect(kinds(diffSnapshots(none, ready))).toEqual(['snapshot-requested', 'snapshot-taken']);
  });

  it('reports a failed snapshot once, and an unnamed one by its short id', () => {
    const unnamed = { ...conf, metadata: {} };
    const failed = at({ snapshots: [unnamed] }, 'error');
    expect(diffSnapshots(at({ snapshots: [unnamed] }), failed)).toEqual([
      {
        kind: 'snapshot-failed',
        severity: 'error',
        message: 'Snapshot 51515151 of v failed: the storage backend reports an error',
        ...ev,
      },
    ]);
    expect(diffSnapshots(failed, failed)).toEqual([]);
  });

  it('reports a deletion once, not the purge that follows', () => {
    const ready = at({ snapshots: [conf] }, 'ready');
    const deleted = at({ snapshots: [{ ...conf, deleted: true }] }, 'ready');
    expect(diffSnapshots(ready, deleted)).toEqual([
      { kind: 'snapshot-deleted', severity: 'info', message: 'Snapshot nightly of v deleted', ...ev },
    ]);
    expect(diffSnapshots(deleted, at({}))).toEqual([]);
  });

  it('says which snapshot a new volume was cloned from', () => {
    const s0 = at({ snapshots: [conf] }, 'ready');
    const copy = dataset(D2, 'copy', B, { source_snapshot_id: S1 });
    const s1 = at({ datasets: [v, copy], snapshots: [conf] }, 'ready');
    expect(diffSnapshots(s0, s1)).toMatchObject([
      { kind: 'created', message: 'Volume copy created on b (128 MiB) from snapshot nightly', dataset_id: D2 },
    ]);
  });
});

describe('diffSnapshots: resize (issue 20)', () => {
  const MiB = 1024 * 1024;
  const at = (size: number, held: number) =>
    snapshot({
      datasets: [dataset(D1, 'v', A, { maximum_size: size })],
      nodes: [node(A, 'a', { manifestations: [{ ...mounted(D1), size: held }] }), node(B, 'b')],
    });

  it('reports a volume asked to grow, then grown once its primary holds it that big', () => {
    expect(diffSnapshots(at(128 * MiB, 128 * MiB), at(256 * MiB, 128 * MiB))).toEqual([
      { kind: 'resizing', severity: 'info', message: 'Volume v resizing from 128 MiB to 256 MiB', dataset_id: D1 },
    ]);
    expect(diffSnapshots(at(256 * MiB, 128 * MiB), at(256 * MiB, 256 * MiB))).toEqual([
      { kind: 'resized', severity: 'success', message: 'Volume v grown to 256 MiB on a', dataset_id: D1, node_uuid: A },
    ]);
    expect(diffSnapshots(at(256 * MiB, 256 * MiB), at(256 * MiB, 256 * MiB))).toEqual([]);
  });

  it('says nothing for a size set where there was none, nor for a volume arriving at its size', () => {
    const unsized = snapshot({ datasets: [dataset(D1, 'v', A, { maximum_size: null })] });
    expect(diffSnapshots(unsized, snapshot({ datasets: [dataset(D1, 'v', A)] }))).toEqual([]);
    const none = snapshot({ datasets: [dataset(D1, 'v', A, { maximum_size: 256 * MiB })] });
    expect(kinds(diffSnapshots(none, at(256 * MiB, 256 * MiB)))).toEqual(['mounted']);
  });
});

import type { ClusterSnapshot, DatasetConfiguration, NodeState, SnapshotConfiguration } from '@flocker/api';
import { node as fixtureNode } from '@flocker/web-ui/testing';
import { destroyedPhase, resolveSnapshot, takenPhase } from './snapshots';

const D = '11111111-1111-4111-8111-111111111111';
const S1 = '51515151-0000-4000-8000-000000000001';
const S2 = '51515151-0000-4000-8000-000000000002';
const A = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';

const node = (patch: Partial<NodeState> = {}): NodeState => fixtureNode(A, 'host-a', patch);
const dataset = (patch: Partial<DatasetConfiguration> = {}): DatasetConfiguration => ({
  dataset_id: D,
  primary: A,
  maximum_size: 128,
  metadata: { name: 'pgdata' },
  deleted: false,
  ...patch,
});
const snap = (id: string, patch: Partial<SnapshotConfiguration> = {}): SnapshotConfiguration => ({
  snapshot_id: id,
  dataset_id: D,
  metadata: {},
  created_at: '2026-12-04T07:00:00Z',
  ...patch,
});
const held = (id: string, status: 'creating' | 'ready' | 'error' = 'ready') => ({
  snapshot_id: id,
  dataset_id: D,
  size: 128,
  created_at: '2026-12-04T07:00:01Z',
  status,
  backend_id: id,
  source_blockdevice_id: 'v',
});
function cluster(nodes: NodeState[], datasets = [dataset()]): ClusterSnapshot {
  return { generation: 'g', configuration_tag: 't', datasets, leases: [], nodes };
}

describe('resolveSnapshot', () => {
  const all = [snap(S1, { metadata: { name: 'nightly' } }), snap(S2), snap(S2.replace('2', '3'), { deleted: true })];
  it('finds a live snapshot by name, id (any case) or unique prefix', () => {
    expect(resolveSnapshot(all, 'nightly').snapshot_id).toBe(S1);
    expect(resolveSnapshot(all, S2.toUpperCase()).snapshot_id).toBe(S2);
    expect(resolveSnapshot(all, '51515151-0000-4000-8000-000000000002'.slice(0, 36)).snapshot_id).toBe(S2);
  });
  it('refuses an ambiguous prefix, a blank ref and an unknown or deleted one, with the exit codes scripts rely on', () => {
    expect(() => resolveSnapshot(all, '5151')).toThrow(expect.objectContaining({ exitCode: 2 }));
    expect(() => resolveSnapshot(all, ' ')).toThrow(expect.objectContaining({ exitCode: 2 }));
    expect(() => resolveSnapshot(all, 'weekly')).toThrow(
      expect.objectContaining({ exitCode: 3, message: expect.stringMatching(/no snapshot named or with id "weekly"/) }),
    );
    expect(() => resolveSnapshot(all, S2.replace('2', '3'))).toThrow(expect.objectContaining({ exitCode: 3 }));
  });
});

describe('takenPhase and destroyedPhase', () => {
  it('is done once a backend holds the snapshot (creating or ready); an error is fatal', () => {
    expect(takenPhase(cluster([node({ snapshots: [held(S1, 'creating')] })]), snap(S1))).toMatchObject({
      done: { status: 'creating' },
    });
    expect(takenPhase(cluster([node({ snapshots: [held(S1, 'error')] })]), snap(S1))).toMatchObject({ fatal: true });
  });
  it('waits on the source node, with its error for the snapshot; a dead node or deleted source is fatal', () => {
    expect(takenPhase(cluster([node()]), snap(S1))).toEqual({ step: 'taking the snapshot on host-a' });
    const err = {
      dataset_id: D,
      action: 'take_snapshot',
      code: 'BACKEND_ERROR',
      message: 'no',
      attempts: 1,
      since: 'x',
    };
    expect(takenPhase(cluster([node({ errors: [err] })]), snap(S1))).toEqual({
      step: 'taking the snapshot on host-a',
      error: 'take_snapshot failed on host-a: no (BACKEND_ERROR)',
    });
    expect(takenPhase(cluster([node({ alive: false })]), snap(S1))).toMatchObject({ fatal: true });
    expect(takenPhase(cluster([node()], [dataset({ deleted: true })]), snap(S1))).toMatchObject({ fatal: true });
  });
  it('destroy is done once no backend holds it', () => {
    expect(destroyedPhase(cluster([node({ snapshots: [held(S1)] })]), snap(S1))).toEqual({
      step: 'destroying the snapshot',
    });
    expect(destroyedPhase(cluster([node()]), snap(S1))).toEqual({ done: true });
  });
});

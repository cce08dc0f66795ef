/**
 * Helper S (session 16): a clone (source_snapshot_id) or a restore (source_backup) the API accepted
 * for a local node (right after a control-service start, before that node reported its backend:
 * control-api localStorage.ts accepts a node not known to be local) was created empty by the local
 * agent, which fills no volume from a snapshot or a backup: the user's clone or restore mounted with
 * nothing in it. The agent refuses it (NOT_ON_LOCAL_STORAGE, the API's code for the same refusal) and
 * makes nothing; a dataset with a live copy somewhere is not touched by this, nor a restore that
 * is over (restored: its volume was mounted).
 */
import type { ClusterSnapshot, DatasetConfiguration, NodeState } from '@flocker/api';
import { localActions, type LocalObservation } from './localChanges';

const ME = '11111111-1111-4111-8111-111111111111';
const D = '33333333-3333-4333-8333-333333333333';
const SNAP = '44444444-4444-4444-8444-444444444444';
const ctx = { nodeUuid: ME, mountRoot: '/flocker', defaultSize: 1000 };
const BACKUP = { target: 's3', backup_id: 'b-0001' } as unknown as NonNullable<DatasetConfiguration['source_backup']>;

const me: NodeState = {
  uuid: ME,
  era: 'e',
  host: '10.0.0.1',
  instance_id: ME,
  backend: 'local-btrfs',
  manifestations: [],
  errors: [],
  alive: true,
  last_seen: '2026-12-05T16:00:00.000Z',
};

function view(extra: Partial<DatasetConfiguration>): ClusterSnapshot {
  return {
    generation: 'i.2.1',
    configuration_tag: 'v2',
    datasets: [{ dataset_id: D, primary: ME, maximum_size: 2000, metadata: {}, deleted: false, ...extra }],
    leases: [],
    nodes: [me],
    peers: [{ uuid: ME, host: '10.0.0.1', alive: true, copies: 0, replica_of: [] }],
  };
}

const nothingHere: LocalObservation = { copies: [], moving: new Set(), retained: new Set() };
const copyHere: LocalObservation = {
  copies: [{ datasetId: D, size: 2000, mountPoints: [] }],
  moving: new Set(),
  retained: new Set(),
};

describe('a clone or restore onto a local node: refused, never created empty', () => {
  it.each([
    ['a clone (source_snapshot_id)', { source_snapshot_id: SNAP }],
    ['a restore not done (source_backup)', { source_backup: BACKUP }],
  ])('%s, nothing of it anywhere: NOT_ON_LOCAL_STORAGE, no create', (_what, extra) => {
    expect(localActions(view(extra), nothingHere, ctx)).toEqual([
      {
        kind: 'refuse',
        datasetId: D,
        code: 'NOT_ON_LOCAL_STORAGE',
        message: expect.stringMatching(/local storage.*(snapshot|backup).*not creating it empty/),
      },
    ]);
  });

  it('a plain new dataset is still created', () => {
    expect(localActions(view({}), nothingHere, ctx)).toEqual([
      { kind: 'create', datasetId: D, size: 2000, mountPath: `/flocker/${D}` },
    ]);
  });

  it('a restore that is over (restored): nothing of it anywhere is a plain create, as before', () => {
    const restored = { ...BACKUP, restored: true as const };
    expect(localActions(view({ source_backup: restored }), nothingHere, ctx)).toEqual([
      { kind: 'create', datasetId: D, size: 2000, mountPath: `/flocker/${D}` },
    ]);
  });

  it('a copy here already (made before this agent refused: mounted as any copy)', () => {
    expect(localActions(view({ source_snapshot_id: SNAP }), copyHere, ctx)).toEqual([
      { kind: 'mount', datasetId: D, mountPath: `/flocker/${D}` },
    ]);
  });
});

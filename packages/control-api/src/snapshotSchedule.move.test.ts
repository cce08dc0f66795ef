/**
 * A snapshot schedule belongs to its dataset (closing-s19 follow-up, session 20): set by the node that was its primary
 * (the Docker plugin's `-o snapshot-schedule=`), it stays when the dataset moves and keeps running for it — the new
 * primary's agent takes the snapshots, as every view carries every configured snapshot — and only the new primary or
 * an API user may change or remove it (the former primary may not). Dropping it at a move would silently stop a
 * user's snapshots; the cost (any node may clone an existing snapshot, FR19-2) is documented in the README.
 */
import { type Identity, METADATA_SCHEDULED_KEY, METADATA_SNAPSHOT_SCHEDULE_KEY as SCHEDULE } from '@flocker/api';
import { authorize, type AuthorizationFacts } from './authorization';
import { createDataset, emptyConfiguration, registerNode, updateDataset } from './configuration';
import { applySnapshotSchedules } from './snapshotSchedule';
import { NODE_A as A, NODE_B as B } from './testing/httpService';

const D1 = '11111111-1111-4111-8111-111111111111';
const T0 = Date.UTC(2026, 11, 6, 7, 0, 0);
const HOUR = 3_600_000;
let ids = 0;
const newId = (): string => `00000000-0000-4000-8000-${String(++ids).padStart(12, '0')}`;

it('stays with the dataset when it moves and keeps taking a snapshot per slot', () => {
  let c = registerNode(registerNode(emptyConfiguration, { uuid: A, host: 'a' }), { uuid: B, host: 'b' });
  c = createDataset(c, { primary: A, dataset_id: D1, metadata: { name: 'db' } }).config;
  c = updateDataset(c, D1, { metadata: { [SCHEDULE]: 'hourly' } }, T0).config;
  c = applySnapshotSchedules(c, T0 + 1, undefined, newId).config;
  c = updateDataset(c, D1, { primary: B }, T0 + 2).config;
  expect(c.datasets.get(D1)?.primary).toBe(B);
  expect(c.datasets.get(D1)?.metadata[SCHEDULE]).toBe('hourly');
  const next = applySnapshotSchedules(c, T0 + HOUR + 1, undefined, newId);
  expect(next.result.map((a) => [a.dataset_id, a.created?.metadata])).toEqual([
    [D1, { name: 'db-20261206T0800Z', [METADATA_SCHEDULED_KEY]: 'hourly' }],
  ]);
});

it('after the move only the new primary (or an API user) may change or remove it', () => {
  const facts: AuthorizationFacts = {
    leaseHolder: () => undefined,
    primaryOf: (id) => (id === D1 ? B : undefined),
    leasePinned: () => false,
  };
  const change = (who: Identity, schedule: string | null): boolean =>
    authorize(
      who,
      {
        method: 'post',
        route: '/v1/configuration/datasets/:id',
        params: { id: D1 },
        body: { metadata: { [SCHEDULE]: schedule } },
      },
      facts,
    ).allowed;
  const nodeA: Identity = { kind: 'node', uuid: A };
  const nodeB: Identity = { kind: 'node', uuid: B };
  const user: Identity = { kind: 'user', name: 'alice' };
  expect([change(nodeA, 'every 5m'), change(nodeA, null)]).toEqual([false, false]);
  expect([change(nodeB, 'daily'), change(nodeB, null), change(user, null)]).toEqual([true, true, true]);
});

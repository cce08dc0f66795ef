import { calculateLocalChanges, type LocalClusterNode, type LocalObservation } from './localChanges';

// Reviewer RV (session 16), on dd198b0: 'branchedFromMine' is taken as an accepted failover without any opt-in.
// The same lineage is what a plain move leaves when a writer on the source was missed by the release check
// (U2 finding 1): the target promoted the final snapshot F, this copy was written after F. No replica, no
// failover and no opt-in were ever on this volume, so those writes are acknowledged ones nobody gave up: they
// must be refused (TWO_LIVE_COPIES, shown to the user), not kept aside silently.
const ME = '11111111-1111-4111-8111-111111111111';
const B = '22222222-2222-4222-8222-222222222222';
const D = '33333333-3333-4333-8333-333333333333';
const ctx = { nodeUuid: ME, mountRoot: '/flocker', defaultSize: 1000 };

const node = (uuid: string, alive: boolean, copies: string[] = []): LocalClusterNode => ({
  uuid,
  host: uuid === B ? '10.0.0.2' : '10.0.0.1',
  alive,
  copies,
});

describe('a move source written after its final snapshot (RV)', () => {
  it('is refused (TWO_LIVE_COPIES), not kept aside, on a volume that never had a replica or an opt-in', () => {
    const nodes = [node(ME, true, [D]), node(B, true, [D])];
    const lineages = new Map([
      [
        D,
        new Map([
          [ME, { from: null, sameAs: null, snapshots: ['F'] }],
          [B, { from: 'F', sameAs: null, snapshots: ['F'] }],
        ]),
      ],
    ]);
    const observed: LocalObservation = {
      copies: [{ datasetId: D, size: 2000, mountPoints: [] }],
      moving: new Set(),
      lineages,
    };
    const plainMove = [{ datasetId: D, primary: B, maximumSize: 2000, deleted: false }];
    expect(calculateLocalChanges(plainMove, nodes, observed, ctx)).toEqual([
      expect.objectContaining({ kind: 'refuse', code: 'TWO_LIVE_COPIES' }),
    ]);
  });
});

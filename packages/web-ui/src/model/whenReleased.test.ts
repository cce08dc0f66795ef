/**
 * "Move when released" on the page (issue 24): the API's when_released (a local volume whose primary holds the
 * lease: copied while it stays in use, finished once released), as the CLI's `volumes move --when-released`. The
 * option is shown for volumes on local storage; a plain move refused with LEASE_HELD whose words suggest
 * when_released offers it.
 */
import { MoveVolumeBody, offersWhenReleased } from './wire';
import { movesWhenReleased } from './local';
import { clusterView } from './view';
import { A, B, D1, D2, dataset, node, snapshot } from '../testing/fixtures';

/** The control service's LEASE_HELD for a local dataset leased by its primary (configuration.ts leasedMoveRefusal). */
const SUGGESTS = `The dataset ${D1} cannot move to node ${B}: node ${A} holds a lease on it. Release the lease first, or ask for the move with when_released: true (flocker volumes move --when-released): the data is copied while it stays in use, and the move finishes once it is released.`;

describe('offersWhenReleased', () => {
  it('is the LEASE_HELD that suggests when_released, and nothing else', () => {
    expect(offersWhenReleased({ code: 'LEASE_HELD', message: SUGGESTS })).toBe(true);
    // Its other LEASE_HELD answers say why it does not apply: nothing to offer.
    expect(
      offersWhenReleased({
        code: 'LEASE_HELD',
        message: `The dataset ${D1} cannot move: node ${A} holds a lease on it. when_released applies only to local storage: node ${A}'s backend would unmount the volume from under its users. Release the lease first.`,
      }),
    ).toBe(false);
    expect(
      offersWhenReleased({ code: 'LEASE_HELD', message: 'the dataset is leased to node a: release the lease first' }),
    ).toBe(false);
    expect(offersWhenReleased({ code: 'NODE_NOT_ALIVE', message: SUGGESTS })).toBe(false);
  });
});

describe('movesWhenReleased', () => {
  it('is shown for a volume whose primary reports local storage only', () => {
    const v = clusterView(
      snapshot({
        datasets: [dataset(D1, 'pg', A), dataset(D2, 'db', B)],
        nodes: [node(A, 'a', { backend: 'local-zfs' }), node(B, 'b')],
      }),
    );
    const of = (id: string) => v.volumes.find((x) => x.dataset_id === id);
    expect(movesWhenReleased(of(D1)!, v.nodes)).toBe(true);
    expect(movesWhenReleased(of(D2)!, v.nodes)).toBe(false);
    expect(movesWhenReleased(of(D1)!, [])).toBe(false);
  });
});

describe('MoveVolumeBody', () => {
  it('takes when_released as a boolean, optional', () => {
    expect(MoveVolumeBody.parse({ node: B })).toEqual({ node: B });
    expect(MoveVolumeBody.parse({ node: B, when_released: true })).toEqual({ node: B, when_released: true });
    expect(MoveVolumeBody.safeParse({ node: B, when_released: 'yes' }).success).toBe(false);
  });
});

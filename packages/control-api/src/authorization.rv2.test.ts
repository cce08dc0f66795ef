/**
 * Review RV2 (session 16): the loss opt-ins (accept-replica-loss, accept-data-loss) are the user's decision to give
 * up writes, like pinning a lease or a move when_released: a node certificate may not set them, even on a dataset it
 * is the primary of. Set by a node, its agent would keep another node's branch aside (or start the dataset empty) and
 * the control service would record the accepted-loss marker (clusterhq:flocker:accepted-loss-from) from it.
 */
import { type Identity, METADATA_ACCEPT_DATA_LOSS_KEY, METADATA_ACCEPT_REPLICA_LOSS_KEY } from '@flocker/api';
import { authorize, type AuthorizationFacts, type AuthorizationRequest } from './authorization';

const ME = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
const MINE = '11111111-1111-4111-8111-111111111111';
const facts: AuthorizationFacts = {
  leaseHolder: () => undefined,
  primaryOf: () => ME,
  leasePinned: () => false,
};
const node: Identity = { kind: 'node', uuid: ME };
const user: Identity = { kind: 'user', name: 'alice' };
const update = (body: unknown): AuthorizationRequest => ({
  method: 'post',
  route: '/v1/configuration/datasets/:id',
  params: { id: MINE },
  body,
});

describe('the loss opt-ins are an API user’s', () => {
  for (const key of [METADATA_ACCEPT_REPLICA_LOSS_KEY, METADATA_ACCEPT_DATA_LOSS_KEY]) {
    it(`a node may not set ${key}, with or without a move to itself`, () => {
      for (const body of [{ metadata: { [key]: 'true' } }, { primary: ME, metadata: { [key]: 'true' } }]) {
        const decision = authorize(node, update(body), facts);
        expect(decision.allowed).toBe(false);
        expect(!decision.allowed && decision.description).toContain(key);
        expect(authorize(user, update(body), facts)).toEqual({ allowed: true });
      }
    });

    it(`a node may still withdraw ${key} (null) and change the snapshot schedule`, () => {
      expect(authorize(node, update({ metadata: { [key]: null } }), facts)).toEqual({ allowed: true });
      expect(authorize(node, update({ metadata: { 'clusterhq:flocker:snapshot-interval': '1h' } }), facts)).toEqual({
        allowed: true,
      });
    });
  }
});

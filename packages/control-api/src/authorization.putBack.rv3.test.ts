/**
 * Review RV3 (session 17) finding 3, of d8e5d33 (failed there, 0/1): the service's put-back rule now asks what the
 * plugin's mayPutBack asks of its snapshot (volume-plugin mountRefusal.ts): that the requesting node (the current
 * primary) holds no copy itself. A move whose promote made this node's copy the live one, with the old node's copy
 * not retired yet (it died after the promote, or refuses TWO_LIVE_COPIES), leaves the marker on the old node and the
 * old node's latest report listing a copy: a buggy plugin (or certificate) on the new primary could then move the
 * dataset to a node that does not hold the newest copy (a dead one: the volume is unavailable until pulled back).
 */
import type { Identity } from '@flocker/api';
import { authorize, type AuthorizationFacts, type AuthorizationRequest } from './authorization';

const ME = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa'; // the primary, its copy live (promoted, written since)
const OLD = 'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb'; // the marker; its last report still lists its (older) copy
const D = '11111111-1111-4111-8111-111111111111';

const facts: AuthorizationFacts = {
  leaseHolder: () => undefined,
  primaryOf: (id) => (id === D ? ME : undefined),
  leasePinned: () => false,
  dataNodeOf: (id) => (id === D ? OLD : undefined),
  holdsLocalCopy: (id, n) => id === D && (n === OLD || n === ME),
};

const node: Identity = { kind: 'node', uuid: ME };
const putBack: AuthorizationRequest = {
  method: 'post',
  route: '/v1/configuration/datasets/:id',
  params: { id: D },
  body: { primary: OLD },
  ifConfigurationMatches: 'tag-1',
};

it('refused when the requesting primary lists a copy of its own (its data is here, not only on the marked node)', () => {
  expect(authorize(node, putBack, facts)).toEqual({
    allowed: false,
    description: expect.stringMatching(new RegExp(`^node ${ME} may .*this node's own latest report lists a copy`)),
  });
  // The same facts without ME's copy: the legitimate put-back (the data only on OLD) is still allowed.
  const onlyOld: AuthorizationFacts = { ...facts, holdsLocalCopy: (id, n) => id === D && n === OLD };
  expect(authorize(node, putBack, onlyOld)).toEqual({ allowed: true });
});

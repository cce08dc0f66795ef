/**
 * Review FR (session 17) finding 6: the put-back's refusals named nodes by bare UUIDs where the service knows their
 * hosts, and the refusal for a requester holding a copy itself read as a contradiction. A refusal names a node as
 * `host <host> (node <uuid>)` when its host is known (AuthorizationFacts.hostOf), as before when not; the code stays
 * FORBIDDEN (authorizeRoute), only the text changes.
 */
import type { Identity } from '@flocker/api';
import { authorize, type AuthorizationFacts, type AuthorizationRequest } from './authorization';

const ME = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
const OLD = 'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb';
const THIRD = 'cccccccc-cccc-4ccc-8ccc-cccccccccccc';
const D = '11111111-1111-4111-8111-111111111111';
const HOSTS: Record<string, string> = { [ME]: '10.0.0.4', [OLD]: '10.0.0.5', [THIRD]: '10.0.0.6' };

const base: AuthorizationFacts = {
  leaseHolder: () => undefined,
  primaryOf: (id) => (id === D ? ME : undefined),
  leasePinned: () => false,
  dataNodeOf: (id) => (id === D ? OLD : undefined),
  holdsLocalCopy: (id, n) => id === D && n === OLD,
  hostOf: (n) => HOSTS[n],
};

const node: Identity = { kind: 'node', uuid: ME };
const putBack = (primary: string): AuthorizationRequest => ({
  method: 'post',
  route: '/v1/configuration/datasets/:id',
  params: { id: D },
  body: { primary },
  ifConfigurationMatches: 'tag-1',
});

function refusal(facts: AuthorizationFacts, to: string): string {
  const decision = authorize(node, putBack(to), facts);
  if (decision.allowed) throw new Error('expected a refusal');
  return decision.description;
}

describe('put-back refusals name hosts', () => {
  it('to a node other than the marker: both the target and the marker by host', () => {
    const text = refusal(base, THIRD);
    expect(text).toContain(`host 10.0.0.6 (node ${THIRD})`);
    expect(text).toContain(`host 10.0.0.5 (node ${OLD})`);
  });

  it('to the marker whose latest report lists no copy: the marker by host', () => {
    const text = refusal({ ...base, holdsLocalCopy: () => false }, OLD);
    expect(text).toContain(`host 10.0.0.5 (node ${OLD})'s latest report lists no copy of dataset ${D}`);
  });

  it('while a lease is held: its holder by host', () => {
    expect(refusal({ ...base, leaseHolder: () => THIRD }, OLD)).toContain(
      `host 10.0.0.6 (node ${THIRD}) holds the lease on dataset ${D}`,
    );
  });

  it('when the requester holds a copy itself: says there is nothing to put back, without contradiction', () => {
    const text = refusal({ ...base, holdsLocalCopy: (id, n) => id === D && (n === OLD || n === ME) }, OLD);
    expect(text).toBe(
      `node ${ME} may move datasets only to itself, not to host 10.0.0.5 (node ${OLD}); refused: this node's own ` +
        `latest report lists a copy of dataset ${D} (its data is here): nothing to put back.`,
    );
    expect(text).not.toContain('whose data is not here');
  });

  it('a host not known: the bare UUID, as before', () => {
    const text = refusal({ ...base, hostOf: () => undefined, holdsLocalCopy: () => false }, OLD);
    expect(text).toContain(`node ${OLD}'s latest report lists no copy`);
    expect(text).not.toContain('host ');
  });
});

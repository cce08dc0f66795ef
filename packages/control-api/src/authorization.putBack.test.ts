/**
 * A node's put-back (follow-up of 7cae1b3): a Docker Mount that gave up on a move it started makes the dataset's
 * primary the node its data is on again. A node certificate may do exactly that: from itself (the current primary)
 * to the node the data-node marker names, when that node's latest report (local storage, since the service started)
 * lists a copy of it, conditional on the configuration tag, with nothing else in the change. Everything else stays
 * as before. Review RV2 finding 4: the marker alone may be stale (a completed move's marker stays until settled);
 * and block storage is never put back (the plugin stopped doing it in 5ad82e9: it would undo a failover).
 */
import type { Identity, ManifestationState } from '@flocker/api';
import { authorize, type AuthorizationFacts, type AuthorizationRequest, reportShowsLocalCopy } from './authorization';

const ME = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
const OLD = 'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb'; // where the data is
const THIRD = 'cccccccc-cccc-4ccc-8ccc-cccccccccccc';
const LOCAL = '11111111-1111-4111-8111-111111111111'; // primary ME, marker OLD, no lease
const BLOCK = '22222222-2222-4222-8222-222222222222'; // primary ME, no marker, attached on OLD (block), no lease
const STALE = '66666666-6666-4666-8666-666666666666'; // primary ME, marker OLD, OLD's report lists no copy
const THEIRS = '33333333-3333-4333-8333-333333333333'; // primary THIRD, marker OLD
const LEASED = '44444444-4444-4444-8444-444444444444'; // primary ME, marker OLD, leased by THIRD (an administrator's)
const TAG = 'config-tag-7';

const facts: AuthorizationFacts = {
  leaseHolder: (id) => ({ [LEASED]: THIRD })[id],
  primaryOf: (id) => ({ [LOCAL]: ME, [BLOCK]: ME, [THEIRS]: THIRD, [LEASED]: ME, [STALE]: ME })[id],
  leasePinned: () => false,
  dataNodeOf: (id) => ({ [LOCAL]: OLD, [THEIRS]: OLD, [LEASED]: OLD, [STALE]: OLD })[id],
  holdsLocalCopy: (id, n) => n === OLD && [LOCAL, THEIRS, LEASED].includes(id),
};

const node: Identity = { kind: 'node', uuid: ME };
const user: Identity = { kind: 'user', name: 'alice' };

/** A dataset update, conditional on TAG unless `unconditional`. */
function update(id: string, body: unknown, unconditional?: 'unconditional'): AuthorizationRequest {
  return {
    method: 'post',
    route: '/v1/configuration/datasets/:id',
    params: { id },
    body,
    ...(unconditional === undefined ? { ifConfigurationMatches: TAG } : {}),
  };
}

describe('a node puts a dataset back where its data is', () => {
  it('allowed: from itself to the data-node marker listing a copy, conditional on the tag, primary only', () => {
    expect(authorize(node, update(LOCAL, { primary: OLD }), facts)).toEqual({ allowed: true });
  });

  it('refused to the marker when its node’s latest report lists no copy (a stale marker: RV2 finding 4)', () => {
    expect(authorize(node, update(STALE, { primary: OLD }), facts)).toEqual({
      allowed: false,
      description: expect.stringMatching(new RegExp(`^node ${ME} may .*lists no copy`)),
    });
    // Nor when the facts cannot tell (a caller that knows no reports).
    const noReports: AuthorizationFacts = {
      leaseHolder: facts.leaseHolder.bind(facts),
      primaryOf: facts.primaryOf.bind(facts),
      leasePinned: facts.leasePinned.bind(facts),
      dataNodeOf: () => OLD,
    };
    expect(authorize(node, update(LOCAL, { primary: OLD }), noReports).allowed).toBe(false);
  });

  it('refused for a block dataset, even to the node it is attached to (5ad82e9: it would undo a failover)', () => {
    expect(authorize(node, update(BLOCK, { primary: OLD }), facts).allowed).toBe(false);
  });

  it('refused when unconditional: it must have looked at the configuration it changes', () => {
    const d = authorize(node, update(LOCAL, { primary: OLD }, 'unconditional'), facts);
    expect(d).toEqual({
      allowed: false,
      description: expect.stringMatching(new RegExp(`^node ${ME} may .*X-If-Configuration-Matches`)),
    });
  });

  it('refused to any node but the one holding the data', () => {
    expect(authorize(node, update(LOCAL, { primary: THIRD }), facts).allowed).toBe(false);
    expect(authorize(node, update(BLOCK, { primary: THIRD }), facts).allowed).toBe(false);
    // A node listing a copy is not enough without the marker naming it.
    expect(authorize(node, update(LOCAL, { primary: OLD }), { ...facts, dataNodeOf: () => undefined }).allowed).toBe(
      false,
    );
  });

  it('refused when anything else changes with it', () => {
    for (const extra of [
      { maximum_size: 1073741824 },
      { maximum_size: null },
      { metadata: { 'clusterhq:flocker:snapshot-schedule': null } },
      { when_released: false },
      { when_released: true },
      { deleted: true },
    ]) {
      expect(authorize(node, update(LOCAL, { primary: OLD, ...extra }), facts).allowed).toBe(false);
    }
  });

  it('refused unless it is the current primary, or while a lease is on the dataset', () => {
    expect(authorize(node, update(THEIRS, { primary: OLD }), facts).allowed).toBe(false);
    expect(authorize(node, update(LEASED, { primary: OLD }), facts).allowed).toBe(false);
    // An unknown dataset: nothing to put back.
    expect(authorize(node, update('55555555-5555-4555-8555-555555555555', { primary: OLD }), facts).allowed).toBe(
      false,
    );
  });

  it('another node certificate may not do it for this node', () => {
    const other: Identity = { kind: 'node', uuid: THIRD };
    expect(authorize(other, update(LOCAL, { primary: OLD }), facts).allowed).toBe(false);
    // (The data's node pulling it to itself is the plain pull, allowed as before.)
    expect(
      authorize({ kind: 'node', uuid: OLD }, update(LOCAL, { primary: OLD }, 'unconditional'), facts).allowed,
    ).toBe(true);
  });

  it('a pull to itself is unchanged (no tag needed), and API users move anything as before', () => {
    expect(authorize(node, update(THEIRS, { primary: ME }, 'unconditional'), facts).allowed).toBe(true);
    expect(authorize(user, update(LOCAL, { primary: THIRD }, 'unconditional'), facts).allowed).toBe(true);
    expect(authorize(user, update(THEIRS, { primary: OLD, maximum_size: null }, 'unconditional'), facts).allowed).toBe(
      true,
    );
    expect(authorize({ kind: 'control' }, update(LOCAL, { primary: OLD }), facts).allowed).toBe(false);
  });
});

describe("where a node's latest report shows a copy on local storage (reportShowsLocalCopy)", () => {
  const m = (dataset_id: string): ManifestationState => ({
    dataset_id,
    blockdevice_id: 'b',
    size: 1,
    status: 'attached',
  });
  it('a local-backend node listing it, dead or alive (the put-back is for a dead source)', () => {
    expect(reportShowsLocalCopy({ backend: 'local-btrfs', manifestations: [m(LOCAL)] }, LOCAL)).toBe(true);
  });
  it('not a node not listing it, nor a block-backend node, nor one not heard from since the service started', () => {
    expect(reportShowsLocalCopy({ backend: 'local-btrfs', manifestations: [m(BLOCK)] }, LOCAL)).toBe(false);
    expect(reportShowsLocalCopy({ backend: 'loopback', manifestations: [m(LOCAL)] }, LOCAL)).toBe(false);
    expect(reportShowsLocalCopy(undefined, LOCAL)).toBe(false);
  });
});

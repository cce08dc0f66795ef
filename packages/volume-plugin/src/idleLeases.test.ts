import type { ClusterSnapshot } from '@flocker/api';
import {
  keepAfterLastUnmountMs,
  keptLeaseStep,
  promisedInView,
  releaseRequestOf,
  releasesOnRequest,
  snapshotFacts,
  type KeptLeaseFacts,
  type KeptLeaseStep,
} from './idleLeases';

const ME = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
const OTHER = 'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb';
const DS = '11111111-1111-4111-8111-111111111111';
const REQ = { by: OTHER, at: '2026-12-06T15:00:00.000Z' };
const NOW = 1_000_000;

/** Every combination of the facts (the injected clock before, at and after the idle time's end). */
function* allFacts(): Generator<KeptLeaseFacts> {
  for (const inUse of [false, true])
    for (const idleUntil of [undefined, NOW - 1, NOW, NOW + 1])
      for (const lease of ['ours', 'other', 'none'] as const)
        for (const requested of [undefined, REQ])
          for (const declinedAt of [undefined, REQ.at, '2026-12-06T14:00:00.000Z'])
            for (const dataset of ['here', 'elsewhere', 'deleted', 'unknown'] as const)
              for (const resized of [false, true])
                for (const unheard of [false, true])
                  yield { inUse, idleUntil, lease, requested, declinedAt, dataset, resized, unheard, now: NOW };
}

describe('keptLeaseStep (exhaustive over the facts)', () => {
  const cases = [...allFacts()].map((f) => ({ f, step: keptLeaseStep(f) }));

  it('covers every combination', () => {
    expect(cases).toHaveLength(2 * 4 * 3 * 2 * 3 * 4 * 2 * 2);
  });

  it('never lets go of a lease a container here uses, and declines only then', () => {
    for (const { f, step } of cases) {
      if (f.inUse) expect([f, step.do]).not.toEqual([f, 'release']);
      if (step.do === 'decline') expect(f.inUse).toBe(true);
    }
  });

  it('declines a request on our lease of a volume in use here once per request', () => {
    for (const { f, step } of cases.filter((c) => c.f.inUse)) {
      const expected: KeptLeaseStep =
        f.lease === 'ours' && f.requested !== undefined && f.declinedAt !== f.requested.at
          ? { do: 'decline', request: REQ }
          : { do: 'nothing' };
      expect([f, step]).toEqual([f, expected]);
    }
  });

  it('does nothing with a lease neither in use nor kept (a release under way)', () => {
    for (const { f, step } of cases.filter((c) => !c.f.inUse && c.f.idleUntil === undefined))
      expect([f, step]).toEqual([f, { do: 'nothing' }]);
  });

  it('an idle lease: asked for, gone, moved, taken, unheard, resized, or its time over → released; else kept until its time', () => {
    for (const { f, step } of cases.filter((c) => !c.f.inUse && c.f.idleUntil !== undefined)) {
      const until = f.idleUntil ?? 0;
      let expected: KeptLeaseStep;
      if (f.lease === 'ours' && f.requested !== undefined) expected = { do: 'release', why: 'requested' };
      else if (f.dataset === 'deleted' || f.dataset === 'unknown') expected = { do: 'release', why: 'gone' };
      else if (f.dataset === 'elsewhere') expected = { do: 'release', why: 'moved' };
      else if (f.lease === 'other') expected = { do: 'release', why: 'taken' };
      else if (f.unheard) expected = { do: 'release', why: 'unheard' };
      else if (f.resized) expected = { do: 'release', why: 'resized' };
      else if (NOW >= until) expected = { do: 'release', why: 'idle' };
      else expected = { do: 'keep', until };
      expect([f, step]).toEqual([f, expected]);
    }
  });

  it('a request is answered whatever the idle time left, and an earlier decline does not hold back the release', () => {
    const f: KeptLeaseFacts = {
      inUse: false,
      idleUntil: NOW + 60_000,
      lease: 'ours',
      requested: REQ,
      declinedAt: REQ.at,
      dataset: 'here',
      resized: false,
      unheard: false,
      now: NOW,
    };
    expect(keptLeaseStep(f)).toEqual({ do: 'release', why: 'requested' });
  });

  it('the idle time follows the injected clock', () => {
    const base: KeptLeaseFacts = {
      inUse: false,
      idleUntil: 60_000,
      lease: 'ours',
      requested: undefined,
      declinedAt: undefined,
      dataset: 'here',
      resized: false,
      unheard: false,
      now: 0,
    };
    expect(keptLeaseStep(base)).toEqual({ do: 'keep', until: 60_000 });
    expect(keptLeaseStep({ ...base, now: 59_999 })).toEqual({ do: 'keep', until: 60_000 });
    expect(keptLeaseStep({ ...base, now: 60_000 })).toEqual({ do: 'release', why: 'idle' });
    // A snapshot not showing the lease yet (lagging the grant) keeps it until then too.
    expect(keptLeaseStep({ ...base, lease: 'none', now: 1 })).toEqual({ do: 'keep', until: 60_000 });
  });
});

describe('snapshotFacts', () => {
  const snapshot = (over: Partial<ClusterSnapshot>): ClusterSnapshot =>
    ({ datasets: [], leases: [], nodes: [], ...over }) as unknown as ClusterSnapshot;
  const dataset = (primary: string, deleted = false) => ({
    dataset_id: DS,
    primary,
    deleted,
    metadata: {},
    maximum_size: null,
  });

  it('reads whose lease, the request on ours only, and where the dataset is', () => {
    expect(snapshotFacts(snapshot({}), ME, DS)).toEqual({ lease: 'none', requested: undefined, dataset: 'unknown' });
    const ours = { dataset_id: DS, node_uuid: ME, expires: null, release_on_request: true as const };
    expect(
      snapshotFacts(snapshot({ datasets: [dataset(ME)], leases: [{ ...ours, release_requested: REQ }] }), ME, DS),
    ).toEqual({ lease: 'ours', requested: REQ, dataset: 'here' });
    expect(
      snapshotFacts(
        snapshot({
          datasets: [dataset(OTHER)],
          leases: [{ ...ours, node_uuid: OTHER, release_requested: { by: ME, at: REQ.at } }],
        }),
        ME,
        DS,
      ),
    ).toEqual({ lease: 'other', requested: undefined, dataset: 'elsewhere' });
    expect(snapshotFacts(snapshot({ datasets: [dataset(ME, true)] }), ME, DS)).toMatchObject({
      dataset: 'deleted',
    });
  });

  it('release_on_request and release_requested as a lease shows them (absent: an older control service)', () => {
    const lease = { dataset_id: DS, node_uuid: ME, expires: null };
    expect(releasesOnRequest(lease)).toBe(false);
    expect(releasesOnRequest(undefined)).toBe(false);
    expect(releasesOnRequest({ ...lease, release_on_request: true })).toBe(true);
    expect(releaseRequestOf(lease)).toBeUndefined();
    expect(releaseRequestOf({ ...lease, release_requested: REQ })).toEqual(REQ);
  });

  it('promisedInView: our lease shown with release_on_request (a view without the members, or not ours: no)', () => {
    const lease = { dataset_id: DS, node_uuid: ME, expires: null };
    const view = (l: object) => ({ datasets: [], leases: [l], nodes: [] }) as unknown as ClusterSnapshot;
    expect(promisedInView(view({ ...lease, release_on_request: true }), ME, DS)).toBe(true);
    expect(promisedInView(view(lease), ME, DS)).toBe(false);
    expect(promisedInView(view({ ...lease, node_uuid: OTHER, release_on_request: true }), ME, DS)).toBe(false);
    expect(promisedInView(snapshot({}), ME, DS)).toBe(false);
  });
});

describe('keepAfterLastUnmountMs', () => {
  it.each([
    // idle, echoed, copy-up, grace → kept
    [60_000, true, false, 1_000, 60_000],
    [60_000, true, true, 1_000, 60_000],
    [500, true, true, 1_000, 1_000],
    [0, true, false, 1_000, 0],
    [0, true, true, 1_000, 1_000],
    // A control service that did not echo release_on_request: only the copy-up grace, as before session 21.
    [60_000, false, false, 1_000, 0],
    [60_000, false, true, 1_000, 1_000],
    [60_000, false, true, 0, 0],
    [0, false, false, 0, 0],
  ])('idle %d ms, echoed %s, copy-up %s, grace %d ms → %d ms', (idleLeaseMs, echoed, copyUp, copyUpGraceMs, kept) => {
    expect(keepAfterLastUnmountMs({ idleLeaseMs, echoed, copyUp, copyUpGraceMs })).toBe(kept);
  });
});

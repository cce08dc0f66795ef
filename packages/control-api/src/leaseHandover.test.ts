/** The lease hand-over's decisions (leaseHandover.ts), case by case; the wait over HTTP: leaseHandover.wait.test. */
import type { LeaseReleaseRequest } from '@flocker/api';
import {
  acquireLease,
  type Configuration,
  emptyConfiguration,
  leaseHolderText,
  releaseLease,
  type StoredLease,
} from './configuration';
import { ConfigurationError } from './errors';
import {
  declineReleaseRequest,
  handoverProgress,
  handoverStep,
  handoverWake,
  refusalAfterHandover,
  refusalUnheard,
  refusalUnreported,
  requestRelease,
  unchangedButLease,
} from './leaseHandover';
import { setEntry } from './PersistentMap';
import { A, B, C, D1, D2, T0 } from './testing/fixtures';
import { handoverCandidate } from './testing/handover';

const REQ: LeaseReleaseRequest = { by: B, at: new Date(T0).toISOString() };

function withLeases(...leases: StoredLease[]): Configuration {
  let map: ReadonlyMap<string, StoredLease> = new Map();
  for (const l of leases) map = setEntry(map, l.dataset_id, l);
  return { ...emptyConfiguration, version: 7, leases: map };
}

const lease = (extra: Partial<StoredLease> = {}): StoredLease => ({
  dataset_id: D1,
  node_uuid: A,
  expires_at: null,
  ...extra,
});

/** The kinds of lease both decision tables run over. */
type LeaseKind = 'none' | 'expired' | 'plain' | 'onRequest' | 'onRequestPending';
const kinds: LeaseKind[] = ['none', 'expired', 'plain', 'onRequest', 'onRequestPending'];
const leaseOf: Record<LeaseKind, StoredLease | undefined> = {
  none: undefined,
  expired: lease({ expires_at: T0 - 1, release_on_request: true }),
  plain: lease({ holders: ['csi'] }),
  onRequest: lease({ holders: ['docker'], release_on_request: true }),
  onRequestPending: lease({ release_on_request: true, release_requested: REQ }),
};

describe('handoverCandidate: which refusal asks the holder', () => {
  const rows: [LeaseKind, string, boolean, boolean][] = [];
  for (const kind of kinds)
    for (const requester of [A, B, 'api'])
      for (const dead of [false, true]) for (const hears of [true, false]) rows.push([kind, requester, dead, hears]);
  it.each(rows)('lease %s, requester %s, holder dead %s, hears requests %s', (kind, requester, dead, hears) => {
    const l = leaseOf[kind];
    const config = l === undefined ? emptyConfiguration : withLeases(l);
    const got = handoverCandidate(
      config,
      D1,
      requester,
      T0,
      (n) => dead && n === A,
      (n) => hears || n !== A,
    );
    // Only a live promise of a live holder that hears requests and is not the requester is asked for.
    const asked = (kind === 'onRequest' || kind === 'onRequestPending') && requester !== A && !dead && hears;
    expect(got).toBe(asked ? l : undefined);
  });
});

describe('handoverStep: a holder not reported since this start is waited for, not refused (right after a restart)', () => {
  const rows: [LeaseKind, string, boolean, boolean, boolean][] = [];
  for (const kind of kinds)
    for (const requester of [A, B, 'api'])
      for (const dead of [false, true])
        for (const hears of [true, false])
          for (const reported of [true, false]) rows.push([kind, requester, dead, hears, reported]);
  it.each(rows)(
    'lease %s, requester %s, holder dead %s, hears %s, reported since start %s',
    (kind, requester, dead, hears, reported) => {
      const l = leaseOf[kind];
      const config = l === undefined ? emptyConfiguration : withLeases(l);
      const step = handoverStep(
        config,
        D1,
        requester,
        T0,
        (n) => dead && n === A,
        (n) => hears || n !== A,
        (n) => reported || n !== A,
      );
      const promise = (kind === 'onRequest' || kind === 'onRequestPending') && requester !== A && !dead;
      // Asked when it hears; waited for when it cannot only for want of a report since this start; else refused.
      const want = !promise ? 'refuse' : hears ? 'ask' : reported ? 'refuse' : 'await-report';
      expect(step.do).toBe(want);
      if (step.do !== 'refuse') expect(step.lease).toBe(l);
      // Refused because the holder cannot hear (reported, older release): said so (refusalUnheard), else not.
      else expect(step.unheard).toBe(promise && !hears && reported ? l : undefined);
      // handoverCandidate: the lease asked for, as before this step (a holder unheard is never asked).
      const candidate = handoverCandidate(
        config,
        D1,
        requester,
        T0,
        (n) => dead && n === A,
        (n) => hears || n !== A,
      );
      expect(candidate).toBe(want === 'ask' ? l : undefined);
    },
  );
});

describe('refusalUnheard: the answer when the holder cannot hear a request', () => {
  it('says why it is not asked and what to do, not that it lets go when asked; other refusals as they are', () => {
    const held = new ConfigurationError('LEASE_HELD', `The dataset ${D1} is already leased by node ${A}.`);
    const err = refusalUnheard(held) as ConfigurationError;
    expect(err.code).toBe('LEASE_HELD');
    expect(err.message).toBe(
      `${held.message} Its holder's Docker plugin cannot hear a release request: its node (without certificates: any ` +
        'node) runs an older release. Upgrade it, or release the lease (flocker leases release) once no container ' +
        'there uses the volume.',
    );
    const other = new ConfigurationError('SHUTTING_DOWN', 'The control service is shutting down.');
    expect(refusalUnheard(other)).toBe(other);
  });
});

describe('refusalUnreported: the answer when the holder did not report within the wait', () => {
  const held = new ConfigurationError('LEASE_HELD', `The dataset ${D1} is already leased by node ${A}.`);
  it('says the holder has not reported since the restart, with its host, how long, and to retry', () => {
    const err = refusalUnreported(held, lease(), 5000, 'host-a') as ConfigurationError;
    expect(err.code).toBe('LEASE_HELD');
    expect(err.message).toBe(
      `${held.message} Node ${A} (host-a) has not reported since the control service restarted, so its Docker plugin ` +
        'cannot be asked to let go of the lease yet (waited 5 s). Retry once that node reports again; if its host is ' +
        'down, the control service declares it dead after the node timeout and its leases are let go of.',
    );
    expect((refusalUnreported(held, lease(), 250, undefined) as Error).message).toMatch(
      new RegExp(`^${held.message.replace(/\./g, '\\.')} Node ${A} has not reported .*\\(waited 0\\.25 s\\)`),
    );
  });
  it('another refusal is answered as it is', () => {
    const other = new ConfigurationError('CONFIGURATION_CHANGED', 'changed');
    expect(refusalUnreported(other, lease(), 5000, 'host-a')).toBe(other);
    const plain = new Error('x');
    expect(refusalUnreported(plain, lease(), 5000, 'host-a')).toBe(plain);
  });
});

describe('leaseHolderText: a lease kept on a promise reads as held, not used', () => {
  it.each([
    [lease(), `node ${A}`],
    [lease({ holders: ['csi'] }), `node ${A} (used there by csi)`],
    [lease({ holders: ['docker', 'csi'] }), `node ${A} (used there by docker, csi)`],
    [
      lease({ holders: ['docker'], release_on_request: true }),
      `node ${A} (held there by docker, kept while no container uses it)`,
    ],
    [lease({ release_on_request: true }), `node ${A}`],
  ])('%o', (l, text) => {
    expect(leaseHolderText(l)).toBe(text);
  });
});

describe('requestRelease', () => {
  const at = new Date(T0).toISOString();
  it('records the request on the promise of that holder (one version step)', () => {
    const config = withLeases(lease({ release_on_request: true }));
    const applied = requestRelease(config, D1, A, B, at, T0);
    expect(applied.result).toEqual({ by: B, at });
    expect(applied.config.version).toBe(8);
    expect(applied.config.leases.get(D1)?.release_requested).toEqual({ by: B, at });
  });
  it.each([
    ['no lease', emptyConfiguration],
    ['another holder now', withLeases(lease({ node_uuid: C, release_on_request: true }))],
    ['no promise (any more)', withLeases(lease())],
    ['expired', withLeases(lease({ expires_at: T0, release_on_request: true }))],
  ])('%s: nothing recorded, nothing changed', (_name, config) => {
    const applied = requestRelease(config, D1, A, B, at, T0);
    expect(applied.result).toBeUndefined();
    expect(applied.config).toBe(config);
  });
  it("one pending already: kept (the first asker's), nothing written", () => {
    const config = withLeases(lease({ release_on_request: true, release_requested: REQ }));
    const applied = requestRelease(config, D1, A, 'api', at, T0 + 5);
    expect(applied.result).toBe(REQ);
    expect(applied.config).toBe(config);
  });
});

describe('declineReleaseRequest', () => {
  it('clears the pending request; the promise stays', () => {
    const config = withLeases(lease({ release_on_request: true, release_requested: REQ }));
    const applied = declineReleaseRequest(config, D1, T0);
    expect(applied.config.version).toBe(8);
    expect(applied.config.leases.get(D1)).toEqual(lease({ release_on_request: true }));
    expect(applied.result).toEqual({ dataset_id: D1, node_uuid: A, expires: null, release_on_request: true });
  });
  it('naming the request it answers: clears only that one (review R1 F5); by and at each compared when given', () => {
    const config = withLeases(lease({ release_on_request: true, release_requested: REQ }));
    const newer = { by: 'api', at: new Date(Date.parse(REQ.at) + 1).toISOString() };
    expect(declineReleaseRequest(config, D1, T0, REQ).config.leases.get(D1)?.release_requested).toBeUndefined();
    // The same instant written otherwise (another offset) is the same request.
    const offset = { by: REQ.by, at: REQ.at.replace('Z', '+00:00') };
    expect(declineReleaseRequest(config, D1, T0, offset).config.leases.get(D1)?.release_requested).toBeUndefined();
    for (const other of [newer, { at: newer.at }, { by: 'api' }, { by: REQ.by, at: newer.at }]) {
      const applied = declineReleaseRequest(config, D1, T0, other);
      expect(applied.config).toBe(config);
      expect(applied.result.release_requested).toEqual(REQ);
    }
    expect(declineReleaseRequest(config, D1, T0, { by: REQ.by }).config.leases.get(D1)?.release_requested).toBe(
      undefined,
    );
  });
  it('nothing pending: the lease as it is, nothing written', () => {
    const config = withLeases(lease({ release_on_request: true }));
    const applied = declineReleaseRequest(config, D1, T0);
    expect(applied.config).toBe(config);
    expect(applied.result).toEqual({ dataset_id: D1, node_uuid: A, expires: null, release_on_request: true });
  });
  it.each([
    ['no lease', emptyConfiguration],
    ['an expired one', withLeases(lease({ expires_at: T0, release_requested: REQ, release_on_request: true }))],
  ])('%s: LEASE_NOT_FOUND', (_name, config) => {
    expect(() => declineReleaseRequest(config, D1, T0)).toThrow(
      expect.objectContaining({ code: 'LEASE_NOT_FOUND' }) as Error,
    );
  });
});

describe('handoverProgress: what a waiter reads at each change', () => {
  it.each([
    ['the lease gone (released)', emptyConfiguration, 'gone'],
    [
      'the lease expired',
      withLeases(lease({ expires_at: T0, release_on_request: true, release_requested: REQ })),
      'gone',
    ],
    ['another node holds it now', withLeases(lease({ node_uuid: C })), 'gone'],
    ['the promise withdrawn', withLeases(lease({ release_requested: REQ })), 'declined'],
    ['the request cleared (declined)', withLeases(lease({ release_on_request: true })), 'declined'],
    [
      'another request pending (ours declined in between)',
      withLeases(lease({ release_on_request: true, release_requested: { by: 'api', at: REQ.at } })),
      'declined',
    ],
    ['ours still pending', withLeases(lease({ release_on_request: true, release_requested: { ...REQ } })), 'waiting'],
  ] as const)('%s: %s', (_name, config, expected) => {
    expect(handoverProgress(config, D1, A, REQ, T0)).toBe(expected);
  });
});

describe('handoverWake: which reading ends the wait (session 22: the grant joins the release)', () => {
  it.each([
    ['committed', 'waiting', undefined],
    ['committed', 'gone', 'gone'],
    ['committed', 'declined', 'declined'],
    // Applied, not yet durable: only a release ends it, so the request applied again shares the release's commit.
    ['applied', 'waiting', undefined],
    ['applied', 'gone', 'gone'],
    ['applied', 'declined', undefined],
  ] as const)('%s, %s: %s', (on, progress, expected) => {
    expect(handoverWake(on, progress)).toBe(expected);
  });
});

describe('refusalAfterHandover: the answer once the wait ended', () => {
  const held = new ConfigurationError('LEASE_HELD', `The dataset ${D1} is already leased by node ${A}.`);
  const still = withLeases(lease({ release_on_request: true, holders: ['docker'] }));
  const host = (n: string): string | undefined => (n === A ? 'host-a' : undefined);
  it("declined: why, with the holder's host", () => {
    const err = refusalAfterHandover(held, still, D1, A, 'declined', 5000, T0, host) as ConfigurationError;
    expect(err.code).toBe('LEASE_HELD');
    expect(err.message).toBe(
      `${held.message} Its holder's Docker plugin declined to let go of it: a container on host-a uses it.`,
    );
  });
  it('timed out: how long, and what to check; a host not known is named by its node', () => {
    const err = refusalAfterHandover(held, still, D1, A, 'timeout', 5000, T0, () => undefined) as ConfigurationError;
    expect(err.message).toBe(
      `${held.message} Its holder was asked to let go of it and did not within 5 s (is the Docker plugin on node ${A} running?).`,
    );
    const short = refusalAfterHandover(held, still, D1, A, 'timeout', 250, T0, host) as ConfigurationError;
    expect(short.message).toMatch(/did not within 0\.25 s \(is the Docker plugin on host-a running\?\)/);
  });
  it.each([
    ['another error', new ConfigurationError('CONFIGURATION_CHANGED', 'changed'), still, 'declined'],
    ['the holder let go (refused by someone else now)', held, withLeases(lease({ node_uuid: C })), 'gone'],
    ['another node leases it now', held, withLeases(lease({ node_uuid: C })), 'timeout'],
    ['the lease went after the timeout', held, emptyConfiguration, 'timeout'],
  ] as const)('%s: answered as it is', (_name, refusal, config, outcome) => {
    expect(refusalAfterHandover(refusal, config, D1, A, outcome, 5000, T0, host)).toBe(refusal);
  });
});

describe('unchangedButLease: a conditional request across the hand-over', () => {
  const base = withLeases(lease({ release_on_request: true }), lease({ dataset_id: D2, node_uuid: B }));
  it('the same configuration, or only that lease changed: the condition holds', () => {
    expect(unchangedButLease(base, base, D1)).toBe(true);
    const requested = requestRelease(base, D1, A, B, REQ.at, T0).config;
    const released = releaseLease(requested, D1, T0).config;
    expect(unchangedButLease(base, released, D1)).toBe(true);
    // No containers map on one side, an empty one on the other (a configuration replayed from the log): the same.
    expect(unchangedButLease(base, { ...released, containers: new Map() }, D1)).toBe(true);
  });
  it('another lease, a dataset, a node changed: it does not', () => {
    expect(unchangedButLease(base, releaseLease(base, D2, T0).config, D1)).toBe(false);
    const dataset = { dataset_id: D1, primary: A, metadata: {}, deleted: false };
    expect(unchangedButLease(base, { ...base, datasets: setEntry(base.datasets, D1, dataset) }, D1)).toBe(false);
    const node = { uuid: C, host: 'host-c' };
    expect(unchangedButLease(base, { ...base, nodes: setEntry(base.nodes, C, node) }, D1)).toBe(false);
  });
});

describe('acquireLease and release_on_request', () => {
  const req = { dataset_id: D1, node_uuid: A, expires: null } as const;
  const onRequest = acquireLease(emptyConfiguration, { ...req, holder: 'docker', release_on_request: true }, T0);
  const pending = requestRelease(onRequest.config, D1, A, B, REQ.at, T0).config;
  const after = (config: Configuration, extra: object) =>
    acquireLease(config, { ...req, ...extra }, T0).config.leases.get(D1);
  it('a new lease: only when asked', () => {
    expect(onRequest.result.release_on_request).toBe(true);
    expect(after(emptyConfiguration, { holder: 'docker' })?.release_on_request).toBeUndefined();
  });
  it('a renewal by a holder already there keeps it and a pending request; false clears both', () => {
    expect(after(pending, { holder: 'docker' })).toMatchObject({ release_on_request: true, release_requested: REQ });
    expect(after(pending, { holder: 'docker', release_on_request: true })?.release_requested).toEqual(REQ);
    const cleared = after(pending, { holder: 'docker', release_on_request: false });
    expect(cleared?.release_on_request).toBeUndefined();
    expect(cleared?.release_requested).toBeUndefined();
  });
  it('a share added by an acquire that did not promise clears it (another holder, an unnamed acquire)', () => {
    expect(after(pending, { holder: 'csi' })?.release_on_request).toBeUndefined();
    expect(after(pending, {})?.release_on_request).toBeUndefined();
    expect(after(pending, { holder: 'csi', release_on_request: true })?.release_on_request).toBe(true);
  });
  it("a promise flags no lease another share holds without one (review R1 F3); the holder's own does", () => {
    const csi = after(emptyConfiguration, { holder: 'csi' });
    const viaCsi = acquireLease(emptyConfiguration, { ...req, holder: 'csi' }, T0).config;
    expect(csi?.release_on_request).toBeUndefined();
    expect(after(viaCsi, { holder: 'docker', release_on_request: true })?.release_on_request).toBeUndefined();
    const unnamed = acquireLease(emptyConfiguration, req, T0).config;
    expect(after(unnamed, { holder: 'docker', release_on_request: true })?.release_on_request).toBeUndefined();
    const withdrawn = acquireLease(onRequest.config, { ...req, holder: 'docker', release_on_request: false }, T0);
    expect(after(withdrawn.config, { holder: 'docker', release_on_request: true })?.release_on_request).toBe(true);
  });
  it('one holder letting go of its share keeps both for the others', () => {
    const two = acquireLease(pending, { ...req, holder: 'csi', release_on_request: true }, T0).config;
    const left = releaseLease(two, D1, T0, 'csi');
    expect(left.config.leases.get(D1)).toMatchObject({ release_on_request: true, release_requested: REQ });
    expect(left.result).toMatchObject({ remains: true, release_on_request: true, release_requested: REQ });
  });
});

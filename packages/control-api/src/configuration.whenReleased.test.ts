/**
 * A move that finishes when the volume is released (issue 24, U's item 5): `when_released: true`
 * on a dataset's update lets the primary change while the current primary holds the lease, when
 * that node reports the local backend (its agent copies while the volume stays in use and does the
 * final send only once every user there let it go). Every other case is refused as before
 * (409 LEASE_HELD), the description saying why the opt-in does not apply.
 */
import { METADATA_DATA_NODE_KEY } from '@flocker/api';
import {
  acquireLease,
  type Configuration,
  createDataset,
  emptyConfiguration,
  registerNode,
  updateDataset,
} from './configuration';
import { dataNodeRule } from './dataNode';
import { ConfigurationError } from './errors';
import { toApiError } from './httpErrors';
import { A, B, C, D1, mountedReport, T0 } from './testing/fixtures';

type Kind = 'local' | 'other' | undefined;

function nodes(): Configuration {
  let c = emptyConfiguration;
  for (const [uuid, host] of [
    [A, '10.0.0.1'],
    [B, '10.0.0.2'],
    [C, '10.0.0.3'],
  ] as const)
    c = registerNode(c, { uuid, host });
  return createDataset(c, { primary: A, dataset_id: D1, metadata: { name: 'db' } }).config;
}

/** D1 on A, leased by `holder` (no expiry). */
function leasedBy(holder: string): Configuration {
  return acquireLease(nodes(), { dataset_id: D1, node_uuid: holder, expires: null }, T0).config;
}

const backends =
  (m: Record<string, Kind>) =>
  (node: string): Kind =>
    m[node];

function refusal(fn: () => unknown): ConfigurationError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigurationError);
    expect(toApiError(err).status).toBe(409);
    return err as ConfigurationError;
  }
  throw new Error('expected a refusal');
}

describe('updateDataset with when_released', () => {
  const allLocal = backends({ [A]: 'local', [B]: 'local', [C]: 'local' });

  it('accepted: the current primary reports local and holds the lease; the lease stays with it', () => {
    const c = leasedBy(A);
    const applied = updateDataset(c, D1, { primary: B, when_released: true }, T0 + 1000, undefined, allLocal);
    expect(applied.result.primary).toBe(B);
    // The lease keeps its meaning: still A's, the data in use there until released.
    expect(applied.config.leases.get(D1)?.node_uuid).toBe(A);
    // The opt-in is a request flag, not recorded.
    expect(applied.result).not.toHaveProperty('when_released');
  });

  it('the move records the data-node marker, as every move does', () => {
    const c = leasedBy(A);
    const rule = dataNodeRule({
      reportedNode: () => undefined,
      holdersOf: (id) => (id === D1 ? [A] : undefined),
      retainersOf: () => undefined,
    });
    // The rule's own backend view: reportedNode answers nothing here (A unknown), the old primary then kept.
    const applied = updateDataset(c, D1, { primary: B, when_released: true }, T0, rule, allLocal);
    expect(applied.result.metadata).toEqual({ name: 'db', [METADATA_DATA_NODE_KEY]: A });
  });

  it('without the opt-in: LEASE_HELD as before, the description telling a local dataset how to move anyway', () => {
    const err = refusal(() => updateDataset(leasedBy(A), D1, { primary: B }, T0, undefined, allLocal));
    expect(err.code).toBe('LEASE_HELD');
    expect(err.description).toContain('Release the lease first');
    expect(err.description).toContain('when_released');
  });

  it('a block dataset without the opt-in: the v1 refusal, no mention of when_released', () => {
    const err = refusal(() =>
      updateDataset(leasedBy(A), D1, { primary: B }, T0, undefined, backends({ [A]: 'other', [B]: 'other' })),
    );
    expect(err.code).toBe('LEASE_HELD');
    expect(err.description).not.toContain('when_released');
  });

  it('refused: the current primary reports a block backend (its agent would unmount under the users)', () => {
    const err = refusal(() =>
      updateDataset(
        leasedBy(A),
        D1,
        { primary: B, when_released: true },
        T0,
        undefined,
        backends({ [A]: 'other', [B]: 'other' }),
      ),
    );
    expect(err.code).toBe('LEASE_HELD');
    expect(err.description).toContain('when_released applies only to local storage');
  });

  it('refused: the current primary has not reported since the service started (backend unknown)', () => {
    const err = refusal(() =>
      updateDataset(leasedBy(A), D1, { primary: B, when_released: true }, T0, undefined, backends({ [B]: 'local' })),
    );
    expect(err.code).toBe('LEASE_HELD');
    expect(err.description).toContain(`node ${A} has not reported since the control service started`);
  });

  it('refused: the lease is held by a third node, not the current primary', () => {
    const err = refusal(() =>
      updateDataset(leasedBy(C), D1, { primary: B, when_released: true }, T0, undefined, allLocal),
    );
    expect(err.code).toBe('LEASE_HELD');
    expect(err.description).toContain(`held by node ${C}, not by the dataset's primary ${A}`);
  });

  it('a pending move back to the lease holder (the old primary) is allowed as before: it cancels the move', () => {
    const moved = updateDataset(leasedBy(A), D1, { primary: B, when_released: true }, T0, undefined, allLocal).config;
    expect(updateDataset(moved, D1, { primary: A }, T0, undefined, allLocal).result.primary).toBe(A);
    // Onward to a third node while A still holds it: A is no longer the primary, so refused.
    const err = refusal(() => updateDataset(moved, D1, { primary: C, when_released: true }, T0, undefined, allLocal));
    expect(err.description).toContain(`held by node ${A}, not by the dataset's primary ${B}`);
  });

  it('cancelled by the lease holder pulling it back (U3 item 6): the marker names that node, the only live copy', () => {
    // Both nodes report local storage; A's report lists the live copy (B got none promoted: A holds the lease).
    const rule = dataNodeRule({
      reportedNode: (n) => ({ report: mountedReport(n, n === A ? [D1] : []), lastSeen: T0 }),
      holdersOf: (id) => (id === D1 ? [A] : undefined),
      retainersOf: () => undefined,
    });
    const moved = updateDataset(leasedBy(A), D1, { primary: B, when_released: true }, T0, rule, allLocal).config;
    expect(moved.datasets.get(D1)?.metadata[METADATA_DATA_NODE_KEY]).toBe(A);
    // A's Docker plugin (a new container there) pulls it back: A is the primary and the node the data is on. The
    // marker naming the primary itself is true (read as "the data is there") and harmless: a report does not settle
    // it (markersToSettle: nothing to wait for), the next move records one anew.
    const back = updateDataset(moved, D1, { primary: A }, T0, rule, allLocal).result;
    expect(back.primary).toBe(A);
    expect(back.metadata[METADATA_DATA_NODE_KEY]).toBe(A);
  });

  it('no lease, or the lease holder is the target: the opt-in changes nothing (a plain move)', () => {
    expect(
      updateDataset(nodes(), D1, { primary: B, when_released: true }, T0, undefined, allLocal).result.primary,
    ).toBe(B);
    expect(
      updateDataset(leasedBy(B), D1, { primary: B, when_released: true }, T0, undefined, allLocal).result.primary,
    ).toBe(B);
    // Without a change of primary it is ignored.
    const same = updateDataset(leasedBy(A), D1, { when_released: true }, T0, undefined, allLocal);
    expect(same.result.primary).toBe(A);
  });
});

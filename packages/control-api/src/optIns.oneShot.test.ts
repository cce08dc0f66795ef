/**
 * The loss opt-ins are one-shot (session 16, review U2 finding 2): accept-replica-loss given once for one failover
 * applied to every later one, so a plain `docker run` after the next primary's death promoted an old replica and
 * acknowledged writes were gone. Pure parts (dataNode.ts): what a move keeps (movedTo with replicaOptInRule), which
 * reports let the opt-ins go (optInsToSettle) and that the removal applies only to the dataset as seen
 * (settledOptIns).
 */
import {
  METADATA_ACCEPT_DATA_LOSS_KEY as DATA_LOSS,
  METADATA_ACCEPT_REPLICA_LOSS_KEY as REPLICA_LOSS,
  METADATA_DATA_NODE_KEY,
  type DatasetConfiguration,
} from '@flocker/api';
import { movedTo, optInsToSettle, replicaOptInRule, settledOptIns } from './dataNode';
import { A, B, C, D1, D2, configOf as config, mountedReport as report } from './testing/fixtures';

const ds = (id: string, primary: string, extra: Record<string, string> = {}): DatasetConfiguration => ({
  dataset_id: id,
  primary,
  metadata: { name: id.slice(0, 2), ...extra },
  deleted: false,
});
const yes = () => true;
const marker = () => A;

describe('movedTo and the loss opt-ins', () => {
  const optedIn = ds(D1, A, { [REPLICA_LOSS]: 'true', [DATA_LOSS]: 'true' });
  it('a move drops both opt-ins unless the rule says accept-replica-loss was given for leaving this primary', () => {
    expect(movedTo(optedIn, B, marker).metadata).toEqual({ name: D1.slice(0, 2), [METADATA_DATA_NODE_KEY]: A });
    expect(movedTo(optedIn, B, marker, () => true).metadata).toEqual({
      name: D1.slice(0, 2),
      [REPLICA_LOSS]: 'true',
      [METADATA_DATA_NODE_KEY]: A,
    });
  });
  it('the rule: kept only when the old primary is dead and its last report lists the live copy', () => {
    const holders =
      (...n: string[]) =>
      () =>
        new Set(n);
    const dead =
      (...n: string[]) =>
      (node: string) =>
        n.includes(node);
    expect(replicaOptInRule(holders(A), dead(A))(optedIn)).toBe(true);
    // Alive (its agent pushes the data: nothing to lose), not a holder (a move to A that never completed), unknown.
    expect(replicaOptInRule(holders(A), dead())(optedIn)).toBe(false);
    expect(replicaOptInRule(holders(B), dead(A))(optedIn)).toBe(false);
    expect(replicaOptInRule(() => undefined, dead(A))(optedIn)).toBe(false);
  });
  it('a block dataset (no marker rule) keeps its metadata as it is', () => {
    expect(movedTo(optedIn, B, () => undefined).metadata).toEqual(optedIn.metadata);
  });
});

describe('optInsToSettle', () => {
  const c = config(ds(D1, B, { [REPLICA_LOSS]: 'true' }), ds(D2, B, { [DATA_LOSS]: 'true' }));
  it('the primary reports it mounted (current): both datasets’ opt-ins go, whatever other node holds a copy', () => {
    expect(optInsToSettle(c, report(B, [D1, D2]), yes)).toEqual([
      { datasetId: D1, primary: B },
      { datasetId: D2, primary: B },
    ]);
  });
  it('kept: a "mounted" not current, not the primary, a block node, no opt-in', () => {
    expect(optInsToSettle(c, report(B, [D1]), () => false)).toEqual([]);
    expect(optInsToSettle(c, report(A, [D1]), yes)).toEqual([]);
    expect(optInsToSettle(c, report(B, [D1], 'loopback'), yes)).toEqual([]);
    expect(optInsToSettle(config(ds(D1, B)), report(B, [D1]), yes)).toEqual([]);
  });
});

describe('settledOptIns', () => {
  it('removes them only where the primary is still the one seen, in one version step; nothing: the same value', () => {
    const c = config(
      ds(D1, B, { [REPLICA_LOSS]: 'true', [DATA_LOSS]: 'true', [METADATA_DATA_NODE_KEY]: A }),
      ds(D2, C, { [REPLICA_LOSS]: 'true' }),
    );
    const applied = settledOptIns(c, [
      { datasetId: D1, primary: B },
      { datasetId: D2, primary: B }, // moved on to C since
    ]);
    expect(applied.result).toEqual([D1]);
    expect(applied.config.datasets.get(D1)?.metadata).toEqual({ name: D1.slice(0, 2), [METADATA_DATA_NODE_KEY]: A });
    expect(applied.config.datasets.get(D2)?.metadata[REPLICA_LOSS]).toBe('true');
    expect(applied.config.version).toBe(c.version + 1);
    expect(settledOptIns(applied.config, [{ datasetId: D1, primary: B }]).config).toBe(applied.config);
  });
});

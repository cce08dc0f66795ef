/**
 * NodeViewIndex.ownReportsOnlySince (issue 23): whether a node's view changed since a generation only by the node's
 * own reports as its agent sent them — what its watch need not echo (agentWatch.ts).
 */
import { createDataset } from './configuration';
import type { ControlState } from './ControlState';
import { WHOLE_CLUSTER } from './nodeViews';
import { A, B, D1, letterReport as report, mountedManifestation } from './testing/fixtures';
import { openMemoryState } from './testing/viewOracle';

/** An error its agent reports (what makes a report differ from the one before). */
const ERR = { action: 'observe', code: 'X', message: 'x', attempts: 1, since: '2026-01-01T00:00:00.000Z' };

describe('NodeViewIndex.ownReportsOnlySince', () => {
  let state: ControlState;
  beforeEach(async () => {
    state = await openMemoryState();
    await state.report(report(A));
    await state.report(report(B));
  });
  afterEach(async () => {
    await state.close();
  });
  const only = (node: string, since: string): boolean => state.nodeViews.ownReportsOnlySince(node, since);

  it("is true after the node's own reports only, in its own view alone", async () => {
    await state.mutate((c, now) => createDataset(c, { dataset_id: D1, primary: A }, undefined, undefined, now));
    await state.report(report(B, { manifestations: [mountedManifestation(D1, B)] }));
    const since = state.generation;
    // Nothing changed: nothing to say.
    expect(only(A, since)).toBe(false);
    await state.report(report(A, { manifestations: [mountedManifestation(D1, A)] }));
    await state.report(report(A, { manifestations: [{ ...mountedManifestation(D1, A), size: 2 * 1024 ** 3 }] }));
    expect(state.nodeViews.changedSince(A, since)).toBe(true);
    expect(only(A, since)).toBe(true);
    // B's view shows A's state (both hold D1): A's report is news there; and in the whole cluster's.
    expect(state.nodeViews.changedSince(B, since)).toBe(true);
    expect(only(B, since)).toBe(false);
    expect(only(WHOLE_CLUSTER, since)).toBe(false);
    // Another process's generation, or one not a generation: the index cannot say.
    expect(only(A, `other.${since.split('.').slice(1).join('.')}`)).toBe(false);
    expect(only(A, 'nonsense')).toBe(false);
  });

  it('is false once anything else changed the view since', async () => {
    const since = state.generation;
    await state.report(report(A, { errors: [ERR] }));
    expect(only(A, since)).toBe(true);
    await state.mutate((c, now) => createDataset(c, { dataset_id: D1, primary: A }, undefined, undefined, now));
    expect(only(A, since)).toBe(false);
    // From the configuration change on, only the report again.
    const after = state.generation;
    await state.report(report(A, { manifestations: [mountedManifestation(D1, A)] }));
    expect(only(A, after)).toBe(true);
  });

  it("is false for a local backend's node (its peers and namings are the service's)", async () => {
    await state.report(report(A, { backend: 'local-zfs' }));
    const since = state.generation;
    await state.report(report(A, { backend: 'local-zfs', errors: [ERR] }));
    expect(state.nodeViews.changedSince(A, since)).toBe(true);
    expect(only(A, since)).toBe(false);
  });
});

/**
 * markersToSettle / settledDataNodes (dataNode.ts): which data-node markers a local node's report lets go once a
 * move has completed, and that the removal applies only to the dataset as it was seen.
 */
import { METADATA_DATA_NODE_KEY, type DatasetConfiguration } from '@flocker/api';
import { markersToSettle, settledDataNodes } from './dataNode';
import { A, B, C, D1, D2, configOf as config, mountedReport as report } from './testing/fixtures';

const ds = (id: string, primary: string, marker?: string): DatasetConfiguration => ({
  dataset_id: id,
  primary,
  metadata: { name: id.slice(0, 2), ...(marker !== undefined ? { [METADATA_DATA_NODE_KEY]: marker } : {}) },
  deleted: false,
});
const only = (node: string) => () => new Set([node]);
const yes = () => true;

describe('markersToSettle', () => {
  const c = config(ds(D1, B, A), ds(D2, B));
  it('the primary reports it mounted, it alone holds it, the marked node reported: the marker goes', () => {
    expect(markersToSettle(c, report(B, [D1, D2]), undefined, yes, only(B), yes)).toEqual([
      { datasetId: D1, primary: B, marker: A },
    ]);
  });
  it('kept: another holder, a "mounted" not current, the marked node not heard from, a block node, not primary', () => {
    expect(markersToSettle(c, report(B, [D1]), undefined, yes, () => new Set([A, B]), yes)).toEqual([]);
    expect(markersToSettle(c, report(B, [D1]), undefined, () => false, only(B), yes)).toEqual([]);
    expect(markersToSettle(c, report(B, [D1]), undefined, yes, only(B), () => false)).toEqual([]);
    expect(markersToSettle(c, report(B, [D1], 'loopback'), undefined, yes, only(B), yes)).toEqual([]);
    expect(markersToSettle(config(ds(D1, C, A)), report(B, [D1]), undefined, yes, only(C), yes)).toEqual([]);
  });
  it('the marked node’s report no longer lists the copy: looked at, whatever the primary reported last', () => {
    expect(markersToSettle(c, report(A, []), report(A, [D1]), yes, only(B), yes)).toEqual([
      { datasetId: D1, primary: B, marker: A },
    ]);
    expect(markersToSettle(c, report(A, []), undefined, yes, only(B), yes)).toEqual([]);
  });
});

describe('settledDataNodes', () => {
  it('removes the marker only where the dataset is as seen; nothing to do: the same configuration', () => {
    const c = config(ds(D1, B, A), ds(D2, C, A));
    const applied = settledDataNodes(c, [
      { datasetId: D1, primary: B, marker: A },
      { datasetId: D2, primary: B, marker: A }, // moved on to C since
    ]);
    expect(applied.result).toEqual([D1]);
    expect(applied.config.datasets.get(D1)?.metadata).toEqual({ name: D1.slice(0, 2) });
    expect(applied.config.datasets.get(D2)?.metadata[METADATA_DATA_NODE_KEY]).toBe(A);
    expect(applied.config.version).toBe(c.version + 1);
    expect(settledDataNodes(applied.config, [{ datasetId: D1, primary: B, marker: A }]).config).toBe(applied.config);
  });
});

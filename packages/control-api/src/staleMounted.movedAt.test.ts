/**
 * Configuration.movedAt (session 11, stale mounted): the version of each dataset's last move, stamped by
 * ControlState in the change that moves it and kept by both stores through the log and the snapshot. Pure.
 */
import type { DatasetConfiguration } from '@flocker/api';
import { type Configuration, emptyConfiguration } from './configuration';
import { applyRecords, diffConfiguration } from './ConfigurationLog';
import { decodeConfiguration, encodeConfiguration } from './ConfigurationStore';
import { stampMoves } from './ControlState';
import { deleteEntry, setEntry } from './PersistentMap';
import { A, B, C, D1, D2 } from './testing/fixtures';

const dataset = (id: string, primary: string): DatasetConfiguration => ({
  dataset_id: id,
  primary,
  maximum_size: 1024 ** 3,
  deleted: false,
  metadata: {},
});

/** `config` with the datasets changed by `edit`, one version later (as a change does), stamped. */
function change(config: Configuration, edit: (c: Configuration) => Configuration['datasets']): Configuration {
  return stampMoves(config, { ...config, version: config.version + 1, datasets: edit(config) });
}

const moves = (c: Configuration) => Object.fromEntries([...(c.movedAt ?? [])].map(([id, m]) => [id, m.version]));

describe('stampMoves', () => {
  it('stamps a move from one node to another with the version of the change; not a create, not a stay', () => {
    const v1 = change(emptyConfiguration, (c) =>
      setEntry(setEntry(c.datasets, D1, dataset(D1, A)), D2, dataset(D2, A)),
    );
    expect(v1.movedAt).toBeUndefined();
    const v2 = change(v1, (c) => setEntry(c.datasets, D1, dataset(D1, B)));
    expect(moves(v2)).toEqual({ [D1]: 2 });
    // Metadata only, same primary: the stamp stays as it was.
    const v3 = change(v2, (c) => setEntry(c.datasets, D1, { ...dataset(D1, B), metadata: { x: 'y' } }));
    expect(moves(v3)).toEqual({ [D1]: 2 });
    const v4 = change(v3, (c) => setEntry(c.datasets, D1, dataset(D1, A)));
    expect(moves(v4)).toEqual({ [D1]: 4 });
    // Gone from the configuration: its stamp too.
    const v5 = change(v4, (c) => deleteEntry(c.datasets, D1));
    expect(moves(v5)).toEqual({});
  });

  it('returns the same configuration when no dataset moved (no copy for a create or a lease)', () => {
    const v1 = change(emptyConfiguration, (c) => setEntry(c.datasets, D1, dataset(D1, A)));
    const lease = { ...v1, version: 2 };
    expect(stampMoves(v1, lease)).toBe(lease);
    const create = { ...v1, version: 2, datasets: setEntry(v1.datasets, D2, dataset(D2, C)) };
    expect(stampMoves(v1, create)).toBe(create);
  });
});

describe('the stores keep movedAt', () => {
  const v1 = change(emptyConfiguration, (c) => setEntry(setEntry(c.datasets, D1, dataset(D1, A)), D2, dataset(D2, A)));
  const v2 = change(v1, (c) => setEntry(c.datasets, D1, dataset(D1, B)));
  const v3 = change(v2, (c) => setEntry(c.datasets, D1, dataset(D1, A)));

  it('in the log: a record per change carries the stamp, replayed as it was', () => {
    const records = [diffConfiguration(emptyConfiguration, v1), diffConfiguration(v1, v2), diffConfiguration(v2, v3)];
    expect(records[0]?.ops.some((o) => o.op === 'moved')).toBe(false);
    expect(records[2]?.ops).toContainEqual({ op: 'moved', value: { dataset_id: D1, version: 3 } });
    const replayed = applyRecords(emptyConfiguration, records);
    expect(moves(replayed)).toEqual({ [D1]: 3 });
    expect(replayed.datasets.get(D1)?.primary).toBe(A);
    const gone = change(v3, (c) => deleteEntry(c.datasets, D1));
    expect(diffConfiguration(v3, gone).ops).toContainEqual({ op: 'moved-delete', id: D1 });
    expect(moves(applyRecords(replayed, [diffConfiguration(v3, gone)]))).toEqual({});
  });

  it('in the snapshot: moved_at, absent when nothing moved (the document of the release before)', () => {
    const text = encodeConfiguration(v3);
    const doc = JSON.parse(text) as Record<string, unknown>;
    expect(doc['moved_at']).toEqual([{ dataset_id: D1, version: 3 }]);
    expect(moves(decodeConfiguration(doc))).toEqual({ [D1]: 3 });
    const before = JSON.parse(encodeConfiguration(v1)) as Record<string, unknown>;
    expect(Object.keys(before).sort()).toEqual(['datasets', 'format_version', 'leases', 'nodes', 'version']);
    expect(decodeConfiguration(before).movedAt).toBeUndefined();
  });
});

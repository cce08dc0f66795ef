/**
 * Review R2 (session 21), eff3e47 (TN F1): a full id another volume bears as its name is refused as ambiguous, but
 * only within one pool. `flocker volumes destroy <id>` of a volume still being deleted (run again after a first
 * destroy timed out on a busy device, or from a script/history) looks in the live volumes first, where the UUID-shaped
 * name matches: the live volume named <id> is destroyed silently, the TN F1 data loss in reverse. Failed 1/1 before
 * the fix (the first case); live and being-deleted volumes now count together for ids and id prefixes.
 */
import type { DatasetConfiguration } from '@flocker/api';
import { resolveDataset } from './cli';
import { EXIT } from './errors';

const ds = (id: string, name: string | undefined, deleted: boolean): DatasetConfiguration => ({
  dataset_id: id,
  primary: 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa',
  metadata: name ? { name } : {},
  deleted,
  maximum_size: null,
});
const V23 = 'c6fcd4ab-6141-509f-95da-52a54a496abe';
const OTHER = '62175b6d-1111-4111-8111-111111111111';

describe('a full id of a volume being deleted, borne by a live volume as its name', () => {
  it('is refused as ambiguous, not resolved to the live named volume', () => {
    const all = [ds(V23, 'v23', true), ds(OTHER, V23, false)];
    expect(() => resolveDataset(all, V23, { includeDeleted: () => true })).toThrow(
      expect.objectContaining({ exitCode: EXIT.USAGE }),
    );
  });
  it('names what picks each, and that works', () => {
    const all = [ds(V23, 'v23', true), ds(OTHER, V23, false)];
    const deleting = { includeDeleted: () => true };
    expect(() => resolveDataset(all, V23, deleting)).toThrow(
      `"${V23}" matches 2 volumes: it is the id of one and the name of another. Give "c6fcd4ab" for the volume ` +
        `with that id, or the id of the volume named "${V23}" (${OTHER})`,
    );
    expect(resolveDataset(all, 'c6fcd4ab', deleting).dataset_id).toBe(V23);
    expect(resolveDataset(all, OTHER, deleting).dataset_id).toBe(OTHER);
    // A command that does not look at volumes being deleted: the live volume's name alone.
    expect(resolveDataset(all, V23).dataset_id).toBe(OTHER);
  });
  it('refuses the full id of a live volume that a volume being deleted bears as its name', () => {
    const all = [ds(V23, 'v23', false), ds(OTHER, V23, true)];
    expect(() => resolveDataset(all, V23, { includeDeleted: () => true })).toThrow(
      expect.objectContaining({ exitCode: EXIT.USAGE, code: 'AMBIGUOUS_VOLUME' }),
    );
  });
  it('refuses an id prefix matching a live volume and one being deleted; a live namesake still wins', () => {
    const twin = 'c6fcd4ab-0000-4000-8000-000000000000';
    const all = [ds(V23, 'v23', true), ds(twin, 'web', false)];
    expect(() => resolveDataset(all, 'c6fcd4ab', { includeDeleted: () => true })).toThrow(
      `"c6fcd4ab" matches 2 volumes (ids ${twin}, ${V23}): give more of the id`,
    );
    expect(() =>
      resolveDataset([ds(V23, 'v23', true), ds(OTHER, 'c6fcd4ab', false)], 'c6fcd4ab', { includeDeleted: () => true }),
    ).toThrow(/give the id/);
    expect(
      resolveDataset([ds(V23, 'pg', true), ds(OTHER, 'pg', false)], 'pg', { includeDeleted: () => true }).dataset_id,
    ).toBe(OTHER);
  });
});

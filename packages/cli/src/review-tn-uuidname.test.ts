/**
 * Review TN (session 21), F1: a volume may be named with another volume's full id (the Docker plugin and the CLI accept
 * a UUID-shaped name), and then `flocker volumes destroy <that string>` — meant, by a Docker user, for the volume of that
 * name — destroys the other volume, whose id it is, without a word. Expected: refused as ambiguous, as a name that is
 * another volume's id prefix already is (resolveAmbiguous.test), with what picks each. Failed 1/1 before the fix.
 */
import type { DatasetConfiguration } from '@flocker/api';
import { resolveDataset } from './cli';
import { EXIT } from './errors';

const ds = (id: string, name?: string): DatasetConfiguration => ({
  dataset_id: id,
  primary: 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa',
  metadata: name ? { name } : {},
  deleted: false,
  maximum_size: null,
});
const V23 = 'c6fcd4ab-6141-509f-95da-52a54a496abe';
const NAMED = '62175b6d-d0d8-5299-a7b7-a9ac2ec8d321';

describe('a volume named with another volume’s full id', () => {
  it('is not resolved silently to the volume with that id', () => {
    const volumes = [ds(V23, 'v23'), ds(NAMED, V23)];
    expect(() => resolveDataset(volumes, V23)).toThrow(expect.objectContaining({ exitCode: EXIT.USAGE }));
    expect(() => resolveDataset(volumes, V23)).toThrow(
      `"${V23}" matches 2 volumes: it is the id of one and the name of another. Give "c6fcd4ab" for the volume ` +
        `with that id, or the id of the volume named "${V23}" (${NAMED})`,
    );
  });

  it('names a way to pick each that works', () => {
    const volumes = [ds(V23, 'v23'), ds(NAMED, V23)];
    expect(resolveDataset(volumes, 'c6fcd4ab').dataset_id).toBe(V23);
    expect(resolveDataset(volumes, NAMED).dataset_id).toBe(NAMED);
    expect(resolveDataset(volumes, 'v23').dataset_id).toBe(V23);
  });

  it('offers a longer prefix when the short one is taken by another id or a name', () => {
    const near = 'c6fcd4ab-9999-4000-8000-000000000000';
    const volumes = [ds(V23, 'v23'), ds(NAMED, V23), ds(near, 'c6fcd4ab-6')];
    expect(() => resolveDataset(volumes, V23)).toThrow(/Give "c6fcd4ab-61" for the volume with that id/);
    expect(resolveDataset(volumes, 'c6fcd4ab-61').dataset_id).toBe(V23);
  });

  it('is not ambiguous when the volume with the id bears that name itself, or the namesake is deleted', () => {
    expect(resolveDataset([ds(V23, V23)], V23).dataset_id).toBe(V23);
    expect(resolveDataset([ds(V23, 'v23'), { ...ds(NAMED, V23), deleted: true }], V23).dataset_id).toBe(V23);
  });
});

/**
 * Review R2 (session 21), R2-5: `flocker backup list --volume <full id>` took the id as it was, without the ambiguity
 * rule every other command applies (review TN F1): where a volume bears that id as its name, it listed the backups of
 * the volume with the id, while the user may mean the named one. Now resolveDataset's rule when the control service
 * answers; a full id no volume answers to (a volume long gone) and the control service away still list by the id.
 * The CLI case failed 1/1 before the fix (exit 7: the id was taken as it was and the store asked).
 */
import type { ClusterSnapshot, DatasetConfiguration, FlockerClient } from '@flocker/api';
import { node } from '@flocker/web-ui/testing';
import { backupsVolumeId } from './cli';
import { EXIT } from './errors';
import { runCli } from './testing/runCli';

const A = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
const V23 = 'c6fcd4ab-6141-509f-95da-52a54a496abe';
const NAMED = '62175b6d-d0d8-5299-a7b7-a9ac2ec8d321';
const GONE = '99999999-9999-4999-8999-999999999999';
const ds = (id: string, name: string, deleted = false): DatasetConfiguration => ({
  dataset_id: id,
  primary: A,
  metadata: { name },
  deleted,
  maximum_size: null,
});

describe('backup list --volume: which volume', () => {
  const volumes = [ds(V23, 'v23'), ds(NAMED, V23)];
  it('refuses a full id another volume bears as its name, saying what picks each', () => {
    expect(() => backupsVolumeId(volumes, V23)).toThrow(
      expect.objectContaining({ exitCode: EXIT.USAGE, code: 'AMBIGUOUS_VOLUME' }),
    );
    expect(() => backupsVolumeId(volumes, V23)).toThrow(/Give "c6fcd4ab" for the volume with that id/);
    expect(backupsVolumeId(volumes, 'c6fcd4ab')).toBe(V23);
    expect(backupsVolumeId(volumes, NAMED)).toBe(NAMED);
  });
  it('lists by name, by a deleted volume, or by the full id of a volume no longer known', () => {
    expect(backupsVolumeId(volumes, 'v23')).toBe(V23);
    expect(backupsVolumeId([ds(GONE, 'old', true)], 'old')).toBe(GONE);
    expect(backupsVolumeId(volumes, GONE.toUpperCase())).toBe(GONE);
    expect(() => backupsVolumeId(volumes, 'nope')).toThrow(expect.objectContaining({ exitCode: EXIT.NOT_FOUND }));
  });
  it('without the control service: a full id only', () => {
    expect(backupsVolumeId(undefined, V23.toUpperCase())).toBe(V23);
    expect(() => backupsVolumeId(undefined, 'v23')).toThrow(expect.objectContaining({ exitCode: EXIT.UNREACHABLE }));
  });
  it('`flocker backup list --volume <that id>` is refused before the store is read', async () => {
    const cluster: ClusterSnapshot = {
      generation: '1',
      configuration_tag: 't',
      datasets: volumes,
      leases: [],
      nodes: [node(A, '10.0.0.1', { last_seen: new Date().toISOString() })],
    };
    const client = {
      listDatasets: async () => volumes,
      waitForCluster: async () => cluster,
    } as unknown as FlockerClient;
    // The store's endpoint is a closed local port: the refusal must come first (no request is made).
    const r = await runCli(
      () => client,
      ['backup', 'list', '--from', 's3://bucket/p', '--endpoint', 'http://127.0.0.1:9', '--volume', V23],
    );
    expect(r.code).toBe(EXIT.USAGE);
    expect(r.err).toMatch(/matches 2 volumes: it is the id of one and the name of another/);
  });
});

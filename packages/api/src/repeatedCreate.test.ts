import { createdAsAsked } from './repeatedCreate';
import { CreateDatasetRequest, type DatasetConfiguration } from './schemas';

const NODE = 'aaaaaaaa-0000-4000-8000-000000000001';
const ID = 'bbbbbbbb-0000-4000-8000-000000000002';
const SNAP = 'dddddddd-0000-4000-8000-000000000004';
const SIZE = 1 << 27;

const stored = (d: Partial<DatasetConfiguration> = {}): DatasetConfiguration => ({
  dataset_id: ID,
  primary: NODE,
  maximum_size: SIZE,
  metadata: { name: 'v' },
  deleted: false,
  ...d,
});
const asked = (r: Partial<CreateDatasetRequest> = {}): CreateDatasetRequest =>
  CreateDatasetRequest.parse({ primary: NODE, dataset_id: ID, maximum_size: SIZE, metadata: { name: 'v' }, ...r });

describe('createdAsAsked: is the stored dataset the one a create makes', () => {
  it('the same dataset', () => {
    expect(createdAsAsked(asked(), stored())).toBe(true);
    expect(createdAsAsked(asked({ unique_name: true }), stored())).toBe(true);
    expect(createdAsAsked(asked({ primary: NODE.toUpperCase() }), stored())).toBe(true);
  });

  it('anything asked for that differs, or deleted, is not', () => {
    expect(createdAsAsked(asked(), stored({ deleted: true }))).toBe(false);
    expect(createdAsAsked(asked(), stored({ primary: 'cccccccc-0000-4000-8000-000000000003' }))).toBe(false);
    expect(createdAsAsked(asked(), stored({ maximum_size: SIZE * 2 }))).toBe(false);
    expect(createdAsAsked(asked(), stored({ maximum_size: undefined }))).toBe(false);
    expect(createdAsAsked(asked({ maximum_size: undefined }), stored())).toBe(false);
    expect(createdAsAsked(asked(), stored({ metadata: { name: 'v', extra: 'x' } }))).toBe(false);
    expect(createdAsAsked(asked({ metadata: undefined }), stored({ metadata: {} }))).toBe(true);
    expect(createdAsAsked(asked(), stored({ source_snapshot_id: SNAP }))).toBe(false);
  });

  it('no size asked: none stored (null and absent alike)', () => {
    expect(createdAsAsked(asked({ maximum_size: undefined }), stored({ maximum_size: undefined }))).toBe(true);
    expect(createdAsAsked(asked({ maximum_size: null }), stored({ maximum_size: null }))).toBe(true);
  });

  it("a clone: its source snapshot; its size left out is the source's", () => {
    const clone = asked({ source_snapshot_id: SNAP, maximum_size: undefined });
    expect(createdAsAsked(clone, stored({ source_snapshot_id: SNAP }))).toBe(true);
    expect(createdAsAsked(clone, stored())).toBe(false);
    const SOURCE = 'eeeeeeee-0000-4000-8000-000000000005';
    const ofDataset = asked({ source_dataset_id: SOURCE });
    const implicit = { snapshot_id: SNAP, dataset_id: SOURCE, metadata: { 'clusterhq:flocker:clone': ID } };
    expect(createdAsAsked(ofDataset, stored({ source_snapshot_id: SNAP }), implicit)).toBe(true);
    expect(createdAsAsked(ofDataset, stored(), implicit)).toBe(false);
  });

  it('a clone of a dataset is not a clone of some other snapshot (REVIEW-S26 R1)', () => {
    const SOURCE = 'eeeeeeee-0000-4000-8000-000000000005';
    const OTHER = 'cccccccc-0000-4000-8000-000000000003';
    const ofDataset = asked({ source_dataset_id: SOURCE });
    const made = stored({ source_snapshot_id: SNAP });
    const implicit = { snapshot_id: SNAP, dataset_id: SOURCE, metadata: { 'clusterhq:flocker:clone': ID } };
    // The snapshot not read back (gone, or the read failed): not shown to be this clone's.
    expect(createdAsAsked(ofDataset, made)).toBe(false);
    // An explicit snapshot of another dataset, or of the source but not made for this clone, or another snapshot.
    expect(createdAsAsked(ofDataset, made, { snapshot_id: SNAP, dataset_id: OTHER, metadata: {} })).toBe(false);
    expect(createdAsAsked(ofDataset, made, { ...implicit, dataset_id: OTHER })).toBe(false);
    expect(createdAsAsked(ofDataset, made, { ...implicit, metadata: { name: 'mine' } })).toBe(false);
    expect(createdAsAsked(ofDataset, made, { ...implicit, metadata: { 'clusterhq:flocker:clone': OTHER } })).toBe(
      false,
    );
    expect(createdAsAsked(ofDataset, made, { ...implicit, snapshot_id: OTHER })).toBe(false);
    expect(createdAsAsked(ofDataset, made, implicit)).toBe(true);
  });

  it('a restore: the backup asked for (restored since or not)', () => {
    const backup = { target: 's3://bucket/p', backup_id: `${ID}/20261207T080000000Z-${SNAP}` };
    expect(createdAsAsked(asked({ source_backup: backup }), stored({ source_backup: backup }))).toBe(true);
    expect(
      createdAsAsked(asked({ source_backup: backup }), stored({ source_backup: { ...backup, restored: true } })),
    ).toBe(true);
    expect(
      createdAsAsked(asked({ source_backup: backup }), stored({ source_backup: { ...backup, backup_id: 'other' } })),
    ).toBe(false);
    expect(createdAsAsked(asked(), stored({ source_backup: backup }))).toBe(false);
  });
});

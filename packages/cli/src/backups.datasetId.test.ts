/**
 * `flocker backup …`/`volumes create --from-backup` take "a volume name or a dataset id"; a whole dataset id is used
 * without asking the control service (backups are filed under it). What counts as one is the API's Uuid (any hex
 * 8-4-4-4-12, any case; lower-cased where used), not a pattern of the CLI's own.
 */
import { Uuid } from '@flocker/api';
import { isDatasetId } from './backups';
import { UUID_SPELLINGS as SPELLINGS } from '@flocker/api/testing';

it.each(SPELLINGS)('isDatasetId(%j) is what the API takes as a dataset id', (ref) => {
  expect(isDatasetId(ref)).toBe(Uuid.safeParse(ref).success);
});

it('upper case and non-RFC hex are dataset ids', () => {
  expect(isDatasetId('3F9A0C4E-1B2D-4C5E-8F70-9A1B2C3D4E5F')).toBe(true);
  expect(isDatasetId('11111111-1111-1111-1111-111111111111')).toBe(true);
});

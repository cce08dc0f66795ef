/**
 * `flocker backup …`/`volumes create --from-backup` take "a volume name or a dataset id"; a whole dataset id is used
 * without asking the control service (backups are filed under it). What counts as one is the API's Uuid (any hex
 * 8-4-4-4-12, any case; lower-cased where used), not a pattern of the CLI's own.
 */
import { Uuid } from '@flocker/api';
import { isDatasetId } from './backups';

const SPELLINGS = [
  '3f9a0c4e-1b2d-4c5e-8f70-9a1b2c3d4e5f',
  '11111111-1111-1111-1111-111111111111',
  '3F9A0C4E-1B2D-4C5E-8F70-9A1B2C3D4E5F',
  '00000000-0000-0000-0000-000000000000',
  '{3f9a0c4e-1b2d-4c5e-8f70-9a1b2c3d4e5f}',
  'urn:uuid:3f9a0c4e-1b2d-4c5e-8f70-9a1b2c3d4e5f',
  '3f9a0c4e1b2d4c5e8f709a1b2c3d4e5f',
  ' 3f9a0c4e-1b2d-4c5e-8f70-9a1b2c3d4e5f',
  '3f9a0c4e-1b2d-4c5e-8f70-9a1b2c3d4e5f\n',
  '3f9a0c4e-1b2d-4c5e-8f70-9a1b2c3d4e5f0',
  'g f9a0c4e-1b2d-4c5e-8f70-9a1b2c3d4e5f',
  '-'.repeat(36),
  'pgdata',
  '',
];

it.each(SPELLINGS)('isDatasetId(%j) is what the API takes as a dataset id', (ref) => {
  expect(isDatasetId(ref)).toBe(Uuid.safeParse(ref).success);
});

it('upper case and non-RFC hex are dataset ids', () => {
  expect(isDatasetId('3F9A0C4E-1B2D-4C5E-8F70-9A1B2C3D4E5F')).toBe(true);
  expect(isDatasetId('11111111-1111-1111-1111-111111111111')).toBe(true);
});

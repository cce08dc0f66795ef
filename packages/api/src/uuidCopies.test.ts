/**
 * The API's own patterns beside Uuid take exactly what it takes: canonicalId (opaque ids, lower-cased when UUIDs) and
 * volumeNames' UUID_SHAPED (a RegExp the CLI, the Docker plugin and the browser bundle test names with: an id or a
 * name). They stay patterns (a hot path; callers use .test), so this pins them to the one rule.
 */
import { canonicalId, Uuid } from './schemas';
import { UUID_SHAPED } from './volumeNames';

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
  'zzzzzzzz-1b2d-4c5e-8f70-9a1b2c3d4e5f',
  '-'.repeat(36),
  'pgdata',
  '',
];

it.each(SPELLINGS)('%j: UUID_SHAPED and canonicalId agree with Uuid', (text) => {
  const uuid = Uuid.safeParse(text);
  expect(UUID_SHAPED.test(text)).toBe(uuid.success);
  expect(canonicalId(text)).toBe(uuid.success ? uuid.data : text);
});

/**
 * Spellings of ids for the tests that pin a pattern or a check to @flocker/api's Uuid (any hex 8-4-4-4-12, any case):
 * RFC and non-RFC hex, upper case, nil, braces, urn:uuid:, no hyphens, blanks, a newline, 37 characters, non-hex,
 * 36 hyphens, a volume name, empty.
 */
export const UUID_SPELLINGS: readonly string[] = [
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
  'g f9a0c4e-1b2d-4c5e-8f70-9a1b2c3d4e5f',
  '-'.repeat(36),
  'pgdata',
  '',
];

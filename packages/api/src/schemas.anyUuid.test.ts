import { CreateDatasetRequest, Uuid } from './schemas';

// Flocker v1 took any 36-character dataset_id, and Python's uuid.UUID any hex: an id such as 1111…1111 (variant and
// version bits not RFC 4122's) was refused as "must be a UUID" while it is one (s25 USER-V F1).
describe('Uuid: any hexadecimal 8-4-4-4-12 id', () => {
  it.each(['11111111-1111-1111-1111-111111111111', 'ABCDEF01-2345-6789-0ABC-DEF012345678'])(
    '%s: taken, lower-cased',
    (id) => {
      expect(Uuid.parse(id)).toBe(id.toLowerCase());
      const r = CreateDatasetRequest.safeParse({ primary: id, dataset_id: id, maximum_size: 67108864 });
      expect(r.success && [r.data.primary, r.data.dataset_id]).toEqual([id.toLowerCase(), id.toLowerCase()]);
    },
  );
  it.each([
    '{3f9a0c4e-1b2d-4c5e-8f70-9a1b2c3d4e5f}',
    '3f9a0c4e1b2d4c5e8f709a1b2c3d4e5f',
    'urn:uuid:3f9a0c4e-1b2d-4c5e-8f70-9a1b2c3d4e5f',
    'zzzzzzzz-1111-1111-1111-111111111111',
    '3f9a0c4e-1b2d-4c5e-8f70-9a1b2c3d4e5',
  ])('%s: still not a UUID', (id) => {
    expect(Uuid.safeParse(id).error?.issues[0]?.message).toBe(
      'must be a UUID such as 3f9a0c4e-1b2d-4c5e-8f70-9a1b2c3d4e5f',
    );
  });
});

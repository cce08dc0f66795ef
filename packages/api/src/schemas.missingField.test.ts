import { CreateDatasetRequest, Uuid } from './schemas';

// A user's first POST often leaves out a required id: "must be a UUID" then reads as if a value had been sent (s23 USER-T).
describe('a missing UUID field', () => {
  it('is reported as required, not as a malformed UUID', () => {
    const r = CreateDatasetRequest.safeParse({ maximum_size: 67108864 });
    expect(r.success).toBe(false);
    expect(r.error?.issues.map((i) => `${i.path.join('.')}: ${i.message}`)).toEqual([
      'primary: required: a UUID such as 3f9a0c4e-1b2d-4c5e-8f70-9a1b2c3d4e5f',
    ]);
  });

  it('still names a malformed one as such', () => {
    const r = Uuid.safeParse('127.0.0.1');
    expect(r.error?.issues[0]?.message).toBe('must be a UUID such as 3f9a0c4e-1b2d-4c5e-8f70-9a1b2c3d4e5f');
  });
});

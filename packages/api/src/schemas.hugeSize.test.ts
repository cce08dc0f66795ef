import { CreateDatasetRequest, UpdateDatasetRequest } from './schemas';

const N = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
const issues = (r: { error?: { issues: Array<{ path: PropertyKey[]; message: string }> } }) =>
  r.error?.issues.map((i) => `${i.path.join('.')}: ${i.message}`);

// A whole number too large for the API was also called "not a whole number of bytes", beside zod's
// "Too big: expected number to be <=9007199254740991" (s25 USER-V: POST maximum_size 10133099161583616, 9 PiB).
describe('maximum_size beyond the largest size', () => {
  it.each([10133099161583616, 9007199254740992, 1e23])('%d: one issue, saying the bound in bytes and PiB', (size) => {
    for (const schema of [CreateDatasetRequest, UpdateDatasetRequest])
      expect(issues(schema.safeParse({ primary: N, maximum_size: size }))).toEqual([
        'maximum_size: must be at most 9007199254740991 bytes (8 PiB)',
      ]);
  });
  it('the largest is accepted; a fraction is still not a whole number of bytes', () => {
    expect(CreateDatasetRequest.safeParse({ primary: N, maximum_size: Number.MAX_SAFE_INTEGER }).success).toBe(true);
    expect(issues(CreateDatasetRequest.safeParse({ primary: N, maximum_size: 67108864.5 }))).toEqual([
      'maximum_size: must be a whole number of bytes',
    ]);
  });
  it('a whole number below -2^53 is under the smallest size, not over the largest', () => {
    for (const schema of [CreateDatasetRequest, UpdateDatasetRequest])
      expect(issues(schema.safeParse({ primary: N, maximum_size: -(2 ** 60) }))).toEqual([
        'maximum_size: must be at least 67108864 bytes (64 MiB)',
      ]);
  });
});

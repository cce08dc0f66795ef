import { MAX_JSON_DEPTH, rejectDeepJson } from './jsonDepth';

// The scanner itself (@flocker/api's jsonNesting) is tested in packages/api.
describe('rejectDeepJson', () => {
  it('refuses bodies deeper than the limit with a 400', () => {
    expect(() =>
      rejectDeepJson(undefined, undefined, Buffer.from('['.repeat(MAX_JSON_DEPTH) + ']'.repeat(MAX_JSON_DEPTH))),
    ).not.toThrow();
    expect(() => rejectDeepJson(undefined, undefined, Buffer.from('['.repeat(MAX_JSON_DEPTH + 1)))).toThrow(
      expect.objectContaining({ status: 400 }),
    );
  });
});

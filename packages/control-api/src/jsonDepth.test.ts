import * as fc from 'fast-check';
import { jsonDepth, MAX_JSON_DEPTH, rejectDeepJson } from './jsonDepth';

const depthOf = (v: unknown): number =>
  Array.isArray(v)
    ? 1 + Math.max(0, ...v.map(depthOf))
    : typeof v === 'object' && v !== null
      ? 1 + Math.max(0, ...Object.values(v).map(depthOf))
      : 0;

describe('jsonDepth', () => {
  it('counts nesting, not brackets inside strings', () => {
    expect(jsonDepth(Buffer.from('1'))).toBe(0);
    expect(jsonDepth(Buffer.from('{"a":[1,{"b":2}]}'))).toBe(3);
    expect(jsonDepth(Buffer.from('{"a":"[[[{{{\\"[[["}'))).toBe(1);
  });

  it('equals the depth of any JSON value', () => {
    fc.assert(fc.property(fc.jsonValue(), (v) => jsonDepth(Buffer.from(JSON.stringify(v))) === depthOf(v)));
  });

  it('refuses bodies deeper than the limit with a 400', () => {
    expect(() =>
      rejectDeepJson(undefined, undefined, Buffer.from('['.repeat(MAX_JSON_DEPTH) + ']'.repeat(MAX_JSON_DEPTH))),
    ).not.toThrow();
    expect(() => rejectDeepJson(undefined, undefined, Buffer.from('['.repeat(MAX_JSON_DEPTH + 1)))).toThrow(
      expect.objectContaining({ status: 400 }),
    );
  });
});

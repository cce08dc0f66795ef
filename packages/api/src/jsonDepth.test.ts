import * as fc from 'fast-check';
import { jsonNesting, MAX_JSON_NESTING } from './jsonDepth';

const depthOf = (v: unknown): number =>
  Array.isArray(v)
    ? 1 + Math.max(0, ...v.map(depthOf))
    : typeof v === 'object' && v !== null
      ? 1 + Math.max(0, ...Object.values(v).map(depthOf))
      : 0;

describe('jsonNesting', () => {
  it('counts nesting, not brackets inside strings', () => {
    expect(jsonNesting(Buffer.from('1'))).toBe(0);
    expect(jsonNesting(Buffer.from('{"a":[1,{"b":2}]}'))).toBe(3);
    expect(jsonNesting(Buffer.from('{"a":"[[[{{{\\"[[["}'))).toBe(1);
  });

  it('equals the depth of any JSON value', () => {
    fc.assert(fc.property(fc.jsonValue(), (v) => jsonNesting(Buffer.from(JSON.stringify(v))) === depthOf(v)));
  });

  it('stops early past the limit, without recursion on 1,000,000 levels', () => {
    const deep = Buffer.from('['.repeat(1_000_000));
    expect(jsonNesting(deep, MAX_JSON_NESTING)).toBe(MAX_JSON_NESTING + 1);
    expect(jsonNesting(deep)).toBe(1_000_000);
  });
});

/**
 * Nesting limit for JSON request bodies, checked on the raw bytes before JSON.parse:
 * anything nesting deeper than any Flocker request shape is refused before a parser,
 * validator or logger walks it (recursion there could exhaust the stack). The control
 * service's body parser applies the same limit (control-api's jsonDepth.ts).
 */
export const MAX_JSON_NESTING = 32;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_BRACKET = 0x5b;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACKET = 0x5d;
const CLOSE_BRACE = 0x7d;

/**
 * The deepest nesting of arrays and objects in JSON text (brackets inside strings do
 * not count); stops counting once past `limit`. Linear, no recursion, any bytes.
 */
export function jsonNesting(buf: Uint8Array, limit = Infinity): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < buf.length; i++) {
    const c = buf[i];
    if (inString) {
      if (c === BACKSLASH) i++;
      else if (c === QUOTE) inString = false;
    } else if (c === QUOTE) {
      inString = true;
    } else if (c === OPEN_BRACKET || c === OPEN_BRACE) {
      if (++depth > max) {
        max = depth;
        if (max > limit) return max;
      }
    } else if (c === CLOSE_BRACKET || c === CLOSE_BRACE) {
      depth--;
    }
  }
  return max;
}

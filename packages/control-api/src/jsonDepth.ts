/**
 * A nesting limit for request bodies, checked on the raw bytes before JSON.parse:
 * no API body nests deeper than a few levels, so anything deeper is refused before
 * any parser or validator walks it (recursion there could exhaust the stack).
 */
export const MAX_JSON_DEPTH = 32;

export class JsonTooDeepError extends Error {
  override readonly name = 'JsonTooDeepError';
  /** body-parser keeps a thrown error's status: a client error. */
  readonly status = 400;
  constructor(readonly limit: number) {
    super(`the JSON body nests deeper than ${limit} levels`);
  }
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_BRACKET = 0x5b;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACKET = 0x5d;
const CLOSE_BRACE = 0x7d;

/** The deepest nesting of arrays and objects in JSON text (brackets inside strings do not count); stops early past `limit`. */
export function jsonDepth(buf: Uint8Array, limit = Infinity): number {
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

/** express.json's `verify` hook: throws JsonTooDeepError (→ 400) past MAX_JSON_DEPTH. */
export function rejectDeepJson(_req: unknown, _res: unknown, buf: Buffer): void {
  if (jsonDepth(buf, MAX_JSON_DEPTH) > MAX_JSON_DEPTH) throw new JsonTooDeepError(MAX_JSON_DEPTH);
}

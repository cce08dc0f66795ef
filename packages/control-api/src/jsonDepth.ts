import { jsonNesting, MAX_JSON_NESTING } from '@flocker/api';

/**
 * A nesting limit for request bodies, checked on the raw bytes before JSON.parse:
 * no API body nests deeper than a few levels, so anything deeper is refused before
 * any parser or validator walks it (recursion there could exhaust the stack).
 */
export const MAX_JSON_DEPTH = MAX_JSON_NESTING;

export class JsonTooDeepError extends Error {
  override readonly name = 'JsonTooDeepError';
  /** body-parser keeps a thrown error's status: a client error. */
  readonly status = 400;
  constructor(readonly limit: number) {
    super(`the JSON body nests deeper than ${limit} levels`);
  }
}

/** express.json's `verify` hook (the scanner is @flocker/api's, shared with the Docker plugin): throws JsonTooDeepError (→ 400) past MAX_JSON_DEPTH. */
export function rejectDeepJson(_req: unknown, _res: unknown, buf: Buffer): void {
  if (jsonNesting(buf, MAX_JSON_DEPTH) > MAX_JSON_DEPTH) throw new JsonTooDeepError(MAX_JSON_DEPTH);
}

/** Reading any thrown value for logs and messages: code may throw anything, not only Errors. */

/** The message of an Error, or the thrown value as a string. */
export function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** The string `code` of a thrown value (our errors' stable codes, errno codes such as ENOENT), if it has one. */
export function errorCode(e: unknown): string | undefined {
  if (typeof e !== 'object' || e === null || !('code' in e)) return undefined;
  const code = e.code;
  return typeof code === 'string' && code.length > 0 ? code : undefined;
}

/** Errors of the dataset agent carry a stable code and a sentence a user can act on. */
export type AgentErrorCode =
  | 'CONFIG_NOT_FOUND'
  | 'CONFIG_UNREADABLE'
  | 'CONFIG_INVALID'
  | 'BACKEND_NOT_AVAILABLE'
  | 'IDENTITY_INVALID'
  | 'ACTION_FAILED';

export class AgentError extends Error {
  constructor(
    readonly code: AgentErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'AgentError';
  }
}

export function isAgentError(e: unknown, code?: AgentErrorCode): e is AgentError {
  return e instanceof AgentError && (code === undefined || e.code === code);
}

/** The `code` of any error (ours, StorageError, errno), or a generic one. */
export function errorCode(e: unknown): string {
  if (typeof e === 'object' && e !== null && 'code' in e) {
    const c = (e as { code: unknown }).code;
    if (typeof c === 'string' && c.length > 0) return c;
  }
  return 'UNEXPECTED';
}

export function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

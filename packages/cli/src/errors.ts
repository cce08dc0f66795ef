/** Exit codes scripts can rely on (documented in `flocker --help` and packages/cli/README.md). */
export const EXIT = {
  OK: 0,
  FAILURE: 1,
  USAGE: 2,
  NOT_FOUND: 3,
  CONFLICT: 4,
  TIMEOUT: 5,
  UNREACHABLE: 6,
  /** A certificate problem (trust, rejection, expiry, unreadable or mismatched files) or a 403: retrying will not help. */
  CREDENTIALS: 7,
  /**
   * A wait ended early: the node refuses until the user acts (local storage: TWO_LIVE_COPIES, SOURCE_UNREACHABLE),
   * so waiting out the timeout would change nothing. The move stays asked for.
   */
  REFUSED: 8,
} as const;

/** The stable `code` a CliError carries when none is given: one per exit code. */
const DEFAULT_CODES: Record<number, string> = {
  [EXIT.FAILURE]: 'FAILED',
  [EXIT.USAGE]: 'USAGE',
  [EXIT.NOT_FOUND]: 'NOT_FOUND',
  [EXIT.CONFLICT]: 'CONFLICT',
  [EXIT.TIMEOUT]: 'TIMEOUT',
  [EXIT.UNREACHABLE]: 'CONTROL_SERVICE_UNREACHABLE',
  [EXIT.CREDENTIALS]: 'CREDENTIALS',
  [EXIT.REFUSED]: 'REFUSED',
};

export class CliError extends Error {
  /** A stable, machine-readable reason (e.g. TLS_SERVER_UNTRUSTED), shown in `--json` errors. */
  readonly code: string;
  constructor(
    readonly exitCode: number,
    message: string,
    code?: string,
  ) {
    super(message);
    this.name = 'CliError';
    this.code = code ?? DEFAULT_CODES[exitCode] ?? 'FAILED';
  }
}

/** A failure as `--json` prints it (on stderr, one line, beside the same exit code). */
export function jsonError(err: CliError): string {
  return JSON.stringify({ error: { code: err.code, message: err.message, exit_code: err.exitCode } });
}

/** A warning as `--json` prints it on stderr; the command goes on. */
export function jsonWarning(code: string, message: string, details: Record<string, unknown> = {}): string {
  return JSON.stringify({ warning: { code, message, ...details } });
}

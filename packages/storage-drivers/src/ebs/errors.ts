/** Classifying errors from the EC2 API (pure). */
import { errorMessage } from '@flocker/runtime';

/** The AWS error code: the SDK puts it in `name` (and `Code` for EC2 query errors). */
export function awsErrorCode(e: unknown): string | undefined {
  if (typeof e !== 'object' || e === null) return undefined;
  const { Code, name } = e as { Code?: unknown; name?: unknown };
  if (typeof Code === 'string' && Code !== '') return Code;
  return typeof name === 'string' ? name : undefined;
}

function httpStatus(e: unknown): number | undefined {
  if (typeof e !== 'object' || e === null) return undefined;
  const status = (e as { $metadata?: { httpStatusCode?: unknown } }).$metadata?.httpStatusCode;
  return typeof status === 'number' ? status : undefined;
}

const THROTTLING = new Set([
  'RequestLimitExceeded',
  'Throttling',
  'ThrottlingException',
  'RequestThrottled',
  'RequestThrottledException',
  'TooManyRequestsException',
  'EC2ThrottledException',
]);
const SERVER_SIDE = new Set([
  'InternalError',
  'InternalFailure',
  'ServiceUnavailable',
  'Unavailable',
  'InsufficientVolumeCapacity',
]);
// Node's socket-level failures and the SDK's own timeout error names.
const NETWORK = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ETIMEDOUT',
  'EPIPE',
  'EAI_AGAIN',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'TimeoutError',
  'RequestTimeout',
  'RequestTimeoutException',
  'AbortError',
]);

/** Worth retrying: throttling, server-side faults (5xx) and network failures. */
export function isTransientAwsError(e: unknown): boolean {
  const code = awsErrorCode(e);
  if (code !== undefined && (THROTTLING.has(code) || SERVER_SIDE.has(code) || NETWORK.has(code))) return true;
  const status = httpStatus(e);
  if (status !== undefined && (status >= 500 || status === 429)) return true;
  if (typeof e === 'object' && e !== null) {
    const errno = (e as { code?: unknown }).code;
    if (typeof errno === 'string' && NETWORK.has(errno)) return true;
    // The SDK wraps socket errors; look one level down.
    const cause = (e as { cause?: unknown }).cause;
    if (cause !== undefined && cause !== e) {
      const causeCode = (cause as { code?: unknown }).code;
      if (typeof causeCode === 'string' && NETWORK.has(causeCode)) return true;
    }
  }
  return false;
}

/** The provider's own sentence, prefixed with its code. */
export function providerMessage(e: unknown): string {
  const code = awsErrorCode(e);
  const message = errorMessage(e);
  return code !== undefined && code !== 'Error' && !message.startsWith(code) ? `${code}: ${message}` : message;
}

/**
 * Readiness from named checks: each check resolves (ready) or throws (not ready, with why). Every check runs at
 * once, each within its time limit, so one hung dependency answers "not ready" instead of hanging the probe.
 */
import { errorMessage } from '@flocker/runtime';

export interface HealthCheck {
  /** Stable name, e.g. "store", "etcd", "control", "driver". */
  readonly name: string;
  readonly check: () => Promise<void> | void;
  /** Default 2 s. */
  readonly timeoutMs?: number;
}

export interface CheckResult {
  readonly name: string;
  readonly ok: boolean;
  /** Why the check failed. */
  readonly error?: string;
  readonly durationMs: number;
}

export interface Readiness {
  readonly ready: boolean;
  readonly checks: readonly CheckResult[];
  /** The names of the failed checks, in order. */
  readonly failed: readonly string[];
}

export const DEFAULT_CHECK_TIMEOUT_MS = 2_000;

async function runOne(c: HealthCheck): Promise<CheckResult> {
  const started = Date.now();
  const limit = c.timeoutMs ?? DEFAULT_CHECK_TIMEOUT_MS;
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      Promise.resolve().then(() => c.check()),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${limit} ms`)), limit);
        timer.unref();
      }),
    ]);
    return { name: c.name, ok: true, durationMs: Date.now() - started };
  } catch (e) {
    return { name: c.name, ok: false, error: errorMessage(e), durationMs: Date.now() - started };
  } finally {
    if (timer !== undefined) clearTimeout(timer);
  }
}

export async function readiness(checks: readonly HealthCheck[]): Promise<Readiness> {
  const results = await Promise.all(checks.map(runOne));
  const failed = results.filter((r) => !r.ok).map((r) => r.name);
  return { ready: failed.length === 0, checks: results, failed };
}

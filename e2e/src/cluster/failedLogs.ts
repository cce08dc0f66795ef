/**
 * Keeps the logs of a cluster whose test failed: the bed removes its base directory at stop, and with it the only
 * record of what the control service, agents and plugins did. The e2e Jest environment (testing/failureEnvironment)
 * records failures in the test's global; a cluster stopped after a failure since it started copies its logs (never
 * its pools) to /tmp/flocker-e2e-failed-<test file>-<time>/ and says where. Outside Jest (scripts/cluster.sh) nothing
 * is recorded and nothing is kept.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { ClusterLayout } from './layout';

/** The test global the environment fills (a property name, so the harness needs no import of Jest). */
export const FAILURES_GLOBAL = '__flockerE2eFailures';

export interface FailureRecord {
  /** The test file's name, without .test.js. */
  readonly file: string;
  /** The failed tests' (and hooks') names, in order. */
  readonly failures: string[];
}

function record(): FailureRecord | undefined {
  const r = (globalThis as Record<string, unknown>)[FAILURES_GLOBAL];
  return typeof r === 'object' && r !== null && Array.isArray((r as FailureRecord).failures)
    ? (r as FailureRecord)
    : undefined;
}

/** How many failures were recorded so far (0 outside Jest): a cluster's mark at its start. */
export function failuresSoFar(): number {
  return record()?.failures.length ?? 0;
}

/** Directories of a cluster that hold no logs: namespace pins, pools, mounts, Docker's data and key, keys, the image. */
const SKIPPED = new Set(['ns', 'pool', 'mnt', 'docker-data', 'docker-exec', 'etc-docker', 'pki', 'image']);
/** A state or configuration file kept beside the logs only when small (the control service's, the agents'). */
const SMALL_BYTES = 1 << 20;

/** The files of a cluster's base directory worth keeping: every log, and small JSON/YAML state and configuration. */
export function logFiles(baseDir: string): string[] {
  const out: string[] = [];
  const walk = (dir: string, depth: number): void => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) {
        if (depth < 5 && !SKIPPED.has(e.name)) walk(p, depth + 1);
      } else if (e.isFile()) {
        if (/\.log(\.\d+)?$/.test(e.name)) out.push(p);
        else if (/\.(json|ya?ml)$/.test(e.name) && fs.statSync(p).size <= SMALL_BYTES) out.push(p);
      }
    }
  };
  walk(baseDir, 0);
  return out;
}

/**
 * When a test failed since `mark` (failuresSoFar at the cluster's start): copies the cluster's logs out of its base
 * directory and answers where (also written to stderr), else undefined. Best effort: a copy that fails is reported,
 * never thrown (the teardown must go on).
 */
export function keepLogsOfFailure(layout: ClusterLayout, mark: number, now: Date = new Date()): string | undefined {
  const r = record();
  if (r === undefined || r.failures.length <= mark) return undefined;
  const stamp = now.toISOString().replace(/[:.]/g, '-');
  const dest = path.join(os.tmpdir(), `flocker-e2e-failed-${r.file}-${stamp}`);
  const copied: string[] = [];
  try {
    for (const f of logFiles(layout.baseDir)) {
      const to = path.join(dest, path.relative(layout.baseDir, f));
      fs.mkdirSync(path.dirname(to), { recursive: true });
      fs.copyFileSync(f, to);
      copied.push(to);
    }
    fs.writeFileSync(path.join(dest, 'FAILED'), `${r.failures.slice(mark).join('\n')}\n`);
  } catch (err) {
    process.stderr.write(`flocker e2e: keeping the logs of a failed test in ${dest} failed: ${String(err)}\n`);
  }
  process.stderr.write(
    `flocker e2e: ${r.failures.slice(mark).join('; ')} failed: ${copied.length} log files of its cluster kept in ${dest}\n`,
  );
  return dest;
}

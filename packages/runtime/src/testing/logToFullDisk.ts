import { spawnSync } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';

/**
 * Runs, in a child process whose stdout is /dev/full (every write fails with ENOSPC),
 * `require(modulePath)[factory]('debug')` and logs 200 long lines and a warning with the
 * logger it makes; the child exits with 42 when it got that far. A process logger must
 * never let a full disk stop the process: callers expect `{ status: 42, stderr: '' }`.
 */
export function logToFullDisk(modulePath: string, factory: string): { status: number | null; stderr: string } {
  const script = `
    const logger = require(${JSON.stringify(modulePath)})[${JSON.stringify(factory)}]('debug');
    for (let i = 0; i < 200; i++) logger.info('working', { i, pad: 'x'.repeat(500) });
    setTimeout(() => { logger.warn('still here'); setTimeout(() => process.exit(42), 50); }, 50);
  `;
  const full = openSync('/dev/full', 'w');
  try {
    const r = spawnSync(process.execPath, ['-e', script], { stdio: ['ignore', full, 'pipe'], timeout: 20_000 });
    return { status: r.status, stderr: r.stderr.toString() };
  } finally {
    closeSync(full);
  }
}

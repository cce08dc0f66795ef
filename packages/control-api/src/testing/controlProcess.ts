/** Test support: running flocker-control as a child process, and a minimal node report. */
import { type ChildProcess, spawn } from 'node:child_process';
import * as path from 'node:path';
import type { NodeReport } from '@flocker/api';

/** The compiled flocker-control entry point. */
export const CONTROL_MAIN = path.resolve(__dirname, '..', 'main.js');

/** flocker-control's argv for a test: plain HTTP on a free loopback port over `dataDir`, then `extra`. */
export function controlArgv(dataDir: string, ...extra: string[]): string[] {
  return [CONTROL_MAIN, '--port', '0', '--host', '127.0.0.1', '--data-dir', dataDir, '--insecure-http', ...extra];
}

/**
 * Starts flocker-control over `dataDir` (controlArgv, errors logged only, then `extra`) as a child process, and
 * resolves with it and its URL once it says where it listens (its first stdout line).
 */
export function startControlChild(dataDir: string, ...extra: string[]): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, controlArgv(dataDir, '--log-level', 'error', ...extra), {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const line = out.split('\n')[0];
      if (out.includes('\n') && line !== undefined)
        resolve({ child, url: (JSON.parse(line) as { listening: string }).listening });
    });
    child.once('exit', (code) => reject(new Error(`flocker-control exited early (${code})`)));
  });
}

/** kill -9 of a child, resolved once it has exited (at once if it already has). */
export function killHard(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });
}

/** A node's report with no volumes: enough for the control service to count the node alive. */
export function emptyNodeReport(uuid: string): NodeReport {
  return {
    uuid,
    era: 'era-a',
    host: '10.0.0.1',
    instance_id: 'i-a',
    backend: 'loopback',
    manifestations: [],
    errors: [],
  };
}

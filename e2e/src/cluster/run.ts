/**
 * Process execution for the harness: every command has a timeout, so a wedged
 * daemon or namespace can never hang a test run.
 */
import { spawn } from 'node:child_process';

export class ClusterError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'ClusterError';
  }
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  /** Kill the command (SIGKILL) after this many ms. Default 60 s. */
  timeoutMs?: number;
  /** Throw ClusterError(COMMAND_FAILED) on a non-zero exit. Default true. */
  check?: boolean;
  input?: string;
  env?: NodeJS.ProcessEnv;
}

export function run(argv: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const [cmd, ...args] = argv;
  if (cmd === undefined) return Promise.reject(new ClusterError('BAD_COMMAND', 'empty command line'));
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const check = opts.check ?? true;
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      env: opts.env ?? process.env,
    });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout?.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(new ClusterError('COMMAND_FAILED', `cannot run ${cmd}: ${err.message}`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const rc = code ?? 128;
      if (timedOut) {
        reject(new ClusterError('COMMAND_TIMEOUT', `${argv.join(' ')} did not finish within ${timeoutMs} ms`));
      } else if (check && rc !== 0) {
        reject(
          new ClusterError(
            'COMMAND_FAILED',
            `${argv.join(' ')} exited with ${signal ?? rc}: ${stderr.trim() || stdout.trim()}`,
          ),
        );
      } else {
        resolve({ code: rc, stdout, stderr });
      }
    });
    if (child.stdin !== null) {
      child.stdin.on('error', () => undefined); // the command may exit without reading its input
      child.stdin.end(opts.input);
    }
  });
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Polls `probe` until it returns a value other than undefined or false, or throws after
 * timeoutMs; `context` (e.g. the tail of the logs) is appended to the timeout's message.
 */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined | false> | T | undefined | false,
  {
    timeoutMs = 30_000,
    intervalMs = 50,
    context,
  }: { timeoutMs?: number; intervalMs?: number; context?: () => string } = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      const why = lastError instanceof Error ? ` (last error: ${lastError.message})` : '';
      throw new ClusterError(
        'WAIT_TIMEOUT',
        `timed out after ${timeoutMs} ms waiting for ${what}${why}${context !== undefined ? `\n${context()}` : ''}`,
      );
    }
    await sleep(intervalMs);
  }
}

import { execFile } from 'node:child_process';
import { StorageError, type StorageErrorCode } from './BlockDeviceApi';

/** The outcome of one command; a non-zero exit is a result, not an exception. */
export interface ExecResult {
  readonly exitCode: number;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs a program with an argv (never through a shell). Injected everywhere a
 * command is run so unit tests can assert the exact argv and fake the output.
 */
export type ExecFn = (file: string, args: readonly string[]) => Promise<ExecResult>;

const MAX_OUTPUT = 16 * 1024 * 1024;

/** The real thing: child_process.execFile, rejecting only when the program cannot be run at all. */
export const execFileExec: ExecFn = (file, args) =>
  new Promise((resolve, reject) => {
    execFile(file, [...args], { maxBuffer: MAX_OUTPUT, encoding: 'utf8' }, (error, stdout, stderr) => {
      if (error === null) {
        resolve({ exitCode: 0, stdout, stderr });
        return;
      }
      const code: unknown = (error as NodeJS.ErrnoException).code;
      if (typeof code === 'number') {
        resolve({ exitCode: code, stdout, stderr });
        return;
      }
      reject(
        new StorageError(
          'BACKEND_ERROR',
          `could not run ${file}: ${error.message}${code === 'ENOENT' ? ' (is it installed and on PATH?)' : ''}`,
        ),
      );
    });
  });

/** Quote one argv element for messages, so a logged command reads like a shell line. */
function quote(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}

export function formatCommand(file: string, args: readonly string[]): string {
  return [file, ...args].map(quote).join(' ');
}

/** Runs a command that must succeed; a failure becomes a StorageError carrying its stderr. */
export async function runChecked(
  exec: ExecFn,
  file: string,
  args: readonly string[],
  what: string,
  code: StorageErrorCode = 'BACKEND_ERROR',
  blockdeviceId?: string,
): Promise<string> {
  const result = await exec(file, args);
  if (result.exitCode !== 0) {
    const detail = result.stderr.trim() || result.stdout.trim() || 'no output';
    throw new StorageError(
      code,
      `${what} failed: \`${formatCommand(file, args)}\` exited with ${result.exitCode}: ${detail}`,
      blockdeviceId,
    );
  }
  return result.stdout;
}

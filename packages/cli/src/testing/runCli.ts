/** Test support for the cli's own tests: not part of the command. */
import type { FlockerClient } from '@flocker/api';
import { buildCli } from '../cli';

/** yargs' usage failures call process.exit; here that ends the command with its code. */
class Exited extends Error {
  constructor(readonly code: number) {
    super(`process.exit(${code})`);
  }
}

/**
 * Runs `flocker <argv>` in-process against the client `client()` returns (non-interactive),
 * and answers its exit code and what it printed (lines joined by newlines).
 * Call from a jest test only (process.exit is spied on while the command runs).
 */
export async function runCli(
  client: () => FlockerClient,
  argv: string[],
): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  process.exitCode = 0;
  const exit = jest.spyOn(process, 'exit').mockImplementation((c) => {
    throw new Exited(Number(c ?? 0));
  });
  let code: number;
  try {
    await buildCli(argv, { out: (t) => out.push(t), err: (t) => err.push(t), interactive: false }, client).parseAsync();
    code = Number(process.exitCode ?? 0);
  } catch (e) {
    if (!(e instanceof Exited)) throw e;
    code = e.code;
  } finally {
    exit.mockRestore();
  }
  process.exitCode = 0;
  return { code, out: out.join('\n'), err: err.join('\n') };
}

/** Removes a test directory that may hold a loopback pool with fenced (immutable) images. */
import { execFileSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';

export function removeTree(dir: string): void {
  if (!existsSync(dir)) return;
  clearImmutableUnder(dir);
  rmSync(dir, { recursive: true, force: true });
}

/**
 * Clears the immutable flag of everything under dir. A fence leaves its frozen image immutable until releaseFenced;
 * a torn-down cluster whose directory is kept (for its logs) must still be removable with a plain `rm -r`.
 */
export function clearImmutableUnder(dir: string): void {
  if (!existsSync(dir)) return;
  try {
    execFileSync('chattr', ['-R', '-f', '-i', dir], { stdio: 'ignore' });
  } catch {
    // chattr exits non-zero for files without flag support (sockets, /proc-like): the rest is done.
  }
}

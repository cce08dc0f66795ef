/** Removes a test directory that may hold a loopback pool with fenced (immutable) images. */
import { execFileSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';

export function removeTree(dir: string): void {
  if (!existsSync(dir)) return;
  try {
    // A fence leaves its frozen image immutable until releaseFenced; rm cannot unlink it.
    execFileSync('chattr', ['-R', '-f', '-i', dir], { stdio: 'ignore' });
  } catch {
    // chattr exits non-zero for files without flag support (sockets, /proc-like): the rest is done.
  }
  rmSync(dir, { recursive: true, force: true });
}

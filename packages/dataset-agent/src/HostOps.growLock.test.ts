/**
 * linuxHostOps.growUnmountedFilesystem under its lock (the offline grow, review U6 finding 2): the e2fsck or resize2fs
 * of an agent killed mid-grow lives on, and the grow of the agent started again waits for it rather than writing the
 * device at the same time. On an image file (e2fsck and resize2fs take one as well as a device).
 */
import { spawn, execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { growLockPath, linuxHostOps } from './HostOps';

const MiB = 1024 * 1024;

/** Whether nobody holds the flock(1) lock `lock` (flock -n fails at once when someone does). */
function lockFree(lock: string): boolean {
  try {
    execFileSync('flock', ['-n', lock, 'true'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

async function until(what: string, ok: () => boolean): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('the offline grow waits for a grow still running (its lock)', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'flocker-growlock-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('held by another process: the grow starts once it is let go, and then grows', async () => {
    const image = join(dir, 'fs.img');
    execFileSync('truncate', ['-s', '64M', image]);
    execFileSync('mkfs.ext4', ['-q', '-F', image]);
    execFileSync('truncate', ['-s', '128M', image]);
    const lock = growLockPath(image);
    // A tool of a killed agent: flock(1) holding the lock until this test closes its stdin (cat ends). Held for as
    // long as the test says, not for a fixed time: under load a fixed 800 ms could pass before the grow even started.
    const holder = spawn('flock', [lock, 'cat'], { stdio: ['pipe', 'ignore', 'ignore'] });
    const exited = new Promise<number | null>((resolve) => holder.on('exit', (code) => resolve(code)));
    try {
      await until('the holder to have the lock', () => !lockFree(lock));
      let grown = false;
      const grow = linuxHostOps.growUnmountedFilesystem(image).then(() => (grown = true));
      await new Promise((r) => setTimeout(r, 500));
      expect(grown).toBe(false); // waiting for the holder
      holder.stdin.end();
      expect(await exited).toBe(0);
      await grow;
    } finally {
      holder.stdin.end(); // never left holding the lock (a failed expectation above)
    }
    expect(await linuxHostOps.filesystemSize(image)).toBe(128 * MiB);
    rmSync(lock, { force: true });
    expect(existsSync(lock)).toBe(false);
  });

  it('lock paths: one per device, under /run/lock where it exists', () => {
    expect(growLockPath('/dev/loop7', '/run/lock')).toBe('/run/lock/flocker-fsgrow-_dev_loop7.lock');
    expect(growLockPath('/dev/loop7')).not.toBe(growLockPath('/dev/loop8'));
  });
});

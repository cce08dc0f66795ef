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
    // A tool of a killed agent: flock(1) holding the lock for 800 ms.
    const holder = spawn('flock', [lock, 'sleep', '0.8'], { stdio: 'ignore' });
    await new Promise((r) => setTimeout(r, 150)); // it has the lock
    const started = Date.now();
    await linuxHostOps.growUnmountedFilesystem(image);
    expect(Date.now() - started).toBeGreaterThan(500);
    expect(holder.exitCode).toBe(0);
    expect(await linuxHostOps.filesystemSize(image)).toBe(128 * MiB);
    rmSync(lock, { force: true });
    expect(existsSync(lock)).toBe(false);
  });

  it('lock paths: one per device, under /run/lock where it exists', () => {
    expect(growLockPath('/dev/loop7', '/run/lock')).toBe('/run/lock/flocker-fsgrow-_dev_loop7.lock');
    expect(growLockPath('/dev/loop7')).not.toBe(growLockPath('/dev/loop8'));
  });
});

/**
 * An agent killed between freeze and thaw leaves the file system frozen; the next start
 * thaws every mount it manages. On the fake host, and on a real ext4 on a loop device
 * frozen with fsfreeze (as a killed agent leaves it), whose writes block until the thaw.
 */
import { execFile, spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import winston from 'winston';
import { destroyTempRoot, makeTempRoot } from '@flocker/storage-drivers/testing';
import { linuxHostOps } from './HostOps';
import { FakeHost } from './testing/fakes';
import { thawManagedMounts } from './thawAtStart';

const run = promisify(execFile);
const DS = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
const silent = winston.createLogger({ silent: true });

/** Whether a write (and fsync) of a file completes within `ms` (a frozen file system blocks it). */
function writeCompletes(file: string, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    // In a child: a write blocked on a frozen file system must not hold one of this process's threads.
    const child = spawn('sh', ['-c', `echo x > '${file}' && sync -f '${file}'`], { stdio: 'ignore' });
    const timer = setTimeout(() => resolve(false), ms);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve(code === 0);
    });
  });
}

describe('thawing at start', () => {
  it('thaws the frozen managed mounts only (fake host); not frozen is no error', async () => {
    const host = new FakeHost();
    host.mounts = [
      { device: '/dev/a', mountPoint: `/flocker/${DS}`, majorMinor: '7:1' },
      { device: '/dev/b', mountPoint: '/flocker/not-a-dataset', majorMinor: '7:2' },
      { device: '/dev/c', mountPoint: '/elsewhere/' + DS, majorMinor: '7:3' },
      { device: '/dev/d', mountPoint: `/flocker/${DS.replace('a', 'b')}`, majorMinor: '7:4' },
    ];
    await host.freeze(`/flocker/${DS}`);
    expect(await thawManagedMounts(host, '/flocker/', silent)).toEqual([`/flocker/${DS}`]);
    expect(host.frozen.size).toBe(0);
    expect(host.freezeLog).toEqual([
      `freeze /flocker/${DS}`,
      `thaw /flocker/${DS}`,
      `thaw /flocker/${DS.replace('a', 'b')}`,
    ]);
    expect(await thawManagedMounts(host, '/flocker', silent)).toEqual([]);
  });

  it('a real ext4 left frozen (fsfreeze -f, as by an agent killed mid-snapshot) takes writes again after the start', async () => {
    const root = await makeTempRoot('flocker-thaw-');
    const mountRoot = path.join(root, 'mnt');
    const mountPoint = path.join(mountRoot, DS);
    try {
      const image = path.join(root, 'image');
      await run('truncate', ['-s', '64M', image]);
      await run('mkfs.ext4', ['-q', '-F', image]);
      const { stdout } = await run('losetup', ['--find', '--show', image]);
      await fs.mkdir(mountPoint, { recursive: true });
      await run('mount', ['-t', 'ext4', stdout.trim(), mountPoint]);
      await run('fsfreeze', ['--freeze', mountPoint]);
      const file = path.join(mountPoint, 'after-thaw');
      expect(await writeCompletes(path.join(mountPoint, 'while-frozen'), 500)).toBe(false);
      expect(await thawManagedMounts(linuxHostOps, mountRoot, silent)).toEqual([mountPoint]);
      expect(await writeCompletes(file, 10_000)).toBe(true);
      // Thawed already: a second start finds nothing frozen, and says so without an error.
      expect(await thawManagedMounts(linuxHostOps, mountRoot, silent)).toEqual([]);
      expect(await linuxHostOps.thaw(mountPoint)).toBe(false);
    } finally {
      await run('fsfreeze', ['--unfreeze', mountPoint]).catch(() => undefined);
      await destroyTempRoot(root);
    }
  }, 30_000);
});

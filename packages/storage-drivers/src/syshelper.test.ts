import { execFileSync } from 'node:child_process';
import { existsSync, promises as fs } from 'node:fs';
import * as path from 'node:path';
import { execFileExec, HelperUnavailable, type ExecFn } from './exec';
import { isImmutable, setImmutable } from './immutable';
import { detachLoop, findLoopDevices, LoopIoctls } from './losetup';
import { MountSyscalls } from './mountHelper';
import { PoolLock } from './PoolLock';
import { SYSHELPER_PATH, SysHelper } from './syshelper';
import { destroyTempRoot, makeTempRoot } from './testing/testSupport';

jest.setTimeout(60_000);

const roots: string[] = [];
afterAll(async () => {
  for (const root of roots) await destroyTempRoot(root);
});

const AARCH64 = 'aarch64-linux-gnu-thread-multi';
const UNKNOWN = 'mips64el-linux-gnuabi64-thread-multi';

/** An exec that records which programs ran. */
function recordingExec(): { exec: ExecFn; ran: string[] } {
  const ran: string[] = [];
  return { ran, exec: (file, args) => (ran.push(file), execFileExec(file, args)) };
}

describe('flocker-syshelper', () => {
  it('ships with the package where production starts it, and perl compiles it', () => {
    expect(SYSHELPER_PATH).toBe(path.resolve(__dirname, '..', 'helpers', 'flocker-syshelper.pl'));
    expect(existsSync(SYSHELPER_PATH)).toBe(true);
    expect(execFileSync('perl', ['-c', SYSHELPER_PATH], { stdio: ['ignore', 'pipe', 'pipe'] }).toString()).toBe('');
  });

  it('uses the system call numbers of this perl (x86_64 here) and of aarch64, and refuses other architectures', async () => {
    const here = await new SysHelper('test helper').request('arch');
    if (process.arch === 'x64') expect(here).toMatch(/^ok x86_64-linux\S* mount=165 umount2=166$/);
    if (process.arch === 'arm64') expect(here).toMatch(/^ok aarch64-linux\S* mount=40 umount2=39$/);

    const aarch64 = new SysHelper('test helper', { arch: AARCH64 });
    expect(await aarch64.request('arch')).toBe(`ok ${AARCH64} mount=40 umount2=39`);
    if (process.arch !== 'arm64') {
      // Another architecture's numbers are never run here (40 is sendfile on x86_64).
      expect(await aarch64.request('mount /dev/null\t/nowhere\text4')).toMatch(
        /^unsupported --arch aarch64-\S+ is not this perl's architecture/,
      );
    }

    const unknown = new SysHelper('test helper', { arch: UNKNOWN });
    const refusal = `unsupported flocker-syshelper has no system call numbers for architecture ${UNKNOWN} (known: aarch64, x86_64)`;
    expect(await unknown.request('arch')).toBe(refusal);
    expect(await unknown.request('mount /dev/null\t/nowhere\text4')).toBe(refusal);
    expect(await unknown.request('umount /nowhere')).toBe(refusal);
    expect(await unknown.request('getimmutable /')).toBe(refusal);
    expect(await unknown.request('flushbuf /dev/null')).toBe(refusal);
    // x32 has its own numbers.
    expect(await new SysHelper('test helper', { arch: 'x86_64-linux-gnux32' }).request('arch')).toMatch(
      /^unsupported .* x86_64-linux-gnux32 /,
    );
  });

  it('answers requests it does not know, and malformed ones, with an error line instead of dying', async () => {
    const helper = new SysHelper('test helper');
    expect(await helper.request('frobnicate x')).toBe('err unknown command frobnicate');
    expect(await helper.request('lock 1')).toBe('err no --lock file given');
    expect(await helper.request('mount /dev/null\t/nowhere')).toMatch(
      /^err 22 mount needs a device, a directory and a filesystem type/,
    );
    expect(await helper.request('mount /dev/null\t/nowhere\text4\tdiscard\tmore')).toMatch(
      /^err 22 mount takes at most a device, a directory, a filesystem type and data/,
    );
    expect(await helper.request('arch')).toMatch(/^ok /);
    // flushbuf (issue 23, pre-attached spares) of no device, and of something that is no block device.
    expect(await helper.request('flushbuf /dev/flocker-no-such-device')).toMatch(/^err 2 /);
    expect(await helper.request('flushbuf /dev/null')).toMatch(/^err 25 /);
  });

  it('on an architecture it does not know, mounts fall back to mount(8) and the flag to chattr/lsattr; loop ioctls still work', async () => {
    const root = await makeTempRoot('flocker-syshelper-test-');
    roots.push(root);
    expect(await new MountSyscalls({ arch: UNKNOWN }).mount('/dev/null', root, 'ext4')).toBeNull();
    expect(await new MountSyscalls({ arch: UNKNOWN }).mount('/dev/null', root, 'ext4', ['discard'])).toBeNull();
    expect(await new MountSyscalls({ arch: UNKNOWN }).umount(root)).toBeNull();

    const file = path.join(root, 'x.img');
    await fs.writeFile(file, '');
    await fs.truncate(file, 1024 * 1024);
    const ioctls = new LoopIoctls({ arch: UNKNOWN });
    const { exec, ran } = recordingExec();
    await setImmutable(file, true, { exec, ioctls });
    expect(await isImmutable(file, { exec, ioctls })).toBe(true);
    await setImmutable(file, false, { exec, ioctls });
    expect(ran).toEqual(['chattr', 'lsattr', 'chattr']);
    // LOOP_* numbers are the same on every architecture: no losetup process.
    const device = await ioctls.attach(file);
    expect(device).toMatch(/^\/dev\/loop\d+$/);
    expect(await findLoopDevices(execFileExec, file)).toEqual([device]);
    await detachLoop(exec, device!, undefined, { ioctls });
    expect(ran).toEqual(['chattr', 'lsattr', 'chattr']);
    expect(await findLoopDevices(execFileExec, file)).toEqual([]);
  });

  it('on this architecture the flag is set without a process', async () => {
    const root = await makeTempRoot('flocker-syshelper-test-');
    roots.push(root);
    const file = path.join(root, 'x');
    await fs.writeFile(file, 'x');
    const { exec, ran } = recordingExec();
    const ioctls = new LoopIoctls();
    await setImmutable(file, true, { exec, ioctls });
    expect(await isImmutable(file, { exec: execFileExec })).toBe(true);
    await setImmutable(file, false, { exec, ioctls });
    expect(ran).toEqual([]);
  });

  it('when the script is missing, every user falls back to the standard tools', async () => {
    const root = await makeTempRoot('flocker-syshelper-test-');
    roots.push(root);
    const script = path.join(root, 'no-such-helper.pl');
    await expect(new SysHelper('test helper', { script }).request('arch')).rejects.toBeInstanceOf(HelperUnavailable);
    expect(await new MountSyscalls({ script }).mount('/dev/null', root, 'ext4')).toBeNull();
    expect(await new MountSyscalls({ script }).mount('/dev/null', root, 'ext4', ['discard'])).toBeNull();
    const ioctls = new LoopIoctls({ script });
    expect(await ioctls.attach(path.join(root, 'x.img'))).toBeNull();
    expect(await ioctls.detach('/dev/loop0')).toBeNull();
    expect(await ioctls.immutable(root, 'get')).toBeNull();
    // flock(1) instead: still one holder at a time.
    const file = path.join(root, 'pool.lock');
    const locks = [new PoolLock(file, { syshelper: { script } }), new PoolLock(file, { syshelper: { script } })];
    let inside = 0;
    let maxInside = 0;
    await Promise.all(
      [0, 1, 0, 1].map((i) =>
        locks[i].withLock(async () => {
          inside++;
          maxInside = Math.max(maxInside, inside);
          await new Promise((r) => setTimeout(r, 5));
          inside--;
        }),
      ),
    );
    expect(maxInside).toBe(1);
  });
});

import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, openSync, closeSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mount, unmount } from './blockdev';
import { MountSyscalls, mountSyscalls, syscallMountData } from './mountHelper';

jest.setTimeout(60_000);

const mounted = (dir: string) =>
  readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .some((l) => l.split(' ')[1] === dir);

/** The super options (mount(2)'s data as the file system shows it) of what is mounted at dir, from mountinfo. */
const superOptions = (dir: string): string[] | undefined => {
  const line = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .find((l) => l.split(' ')[4] === dir);
  return line?.split(' - ')[1]?.split(' ')[2]?.split(',');
};

describe("syscallMountData: which mounts take the helper's mount(2)", () => {
  it.each([
    [[], []],
    [['discard'], ['discard']],
    [['nouuid'], ['nouuid']],
    [
      ['nouuid', 'discard'],
      ['nouuid', 'discard'],
    ],
    [['nodiscard'], ['nodiscard']],
    // mount(8) flag words (MS_*), not data, and its userspace-only words: mount(8).
    [['ro'], null],
    [['discard', 'nosuid'], null],
    [['noatime'], null],
    [['defaults'], null],
    [['x-flocker'], null],
    [['discard=async'], null],
  ])('%j -> %j', (options, expected) => {
    expect(syscallMountData(options)).toEqual(expected);
  });
});

describe('mount(2)/umount2(2) through the helper', () => {
  let dir: string;
  let device: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'flocker-mounthelper-'));
    const img = join(dir, 'disk.img');
    execFileSync('truncate', ['-s', '64M', img]);
    execFileSync('mkfs.ext4', ['-q', img]);
    device = execFileSync('losetup', ['--find', '--show', img]).toString().trim();
    mkdirSync(join(dir, 'mnt'));
  });
  afterAll(() => {
    try {
      execFileSync('umount', [join(dir, 'mnt')], { stdio: 'ignore' });
    } catch {
      /* not mounted */
    }
    if (device) execFileSync('losetup', ['-d', device]);
    rmSync(dir, { recursive: true, force: true });
  });

  it('mounts and unmounts a real ext4 device, and says why when it cannot', async () => {
    const helper = new MountSyscalls();
    const mnt = join(dir, 'mnt');
    expect(await helper.mount(device, mnt, 'ext4')).toEqual({ ok: true });
    expect(mounted(mnt)).toBe(true);
    writeFileSync(join(mnt, 'f'), 'data');
    const fd = openSync(join(mnt, 'f'), 'r');
    const busy = await helper.umount(mnt);
    expect(busy).toMatchObject({ ok: false, errno: 16 });
    closeSync(fd);
    expect(await helper.umount(mnt)).toEqual({ ok: true });
    expect(mounted(mnt)).toBe(false);
    expect(await helper.mount('/dev/no-such-device', mnt, 'ext4')).toMatchObject({ ok: false, errno: 2 });
    expect(await helper.mount(device, mnt, 'no-such-fs')).toMatchObject({ ok: false, errno: 19 });
    expect(await helper.mount(device, 'with\ttab', 'ext4')).toBeNull();
  });

  it('backs blockdev mount/unmount, with StorageError codes', async () => {
    const mnt = join(dir, 'mnt');
    await mount(device, mnt, { fstype: 'ext4' });
    expect(readFileSync(join(mnt, 'f'), 'utf8')).toBe('data');
    await expect(mount(device, join(dir, 'missing-dir'), { fstype: 'ext4' })).rejects.toMatchObject({
      code: 'BACKEND_ERROR',
    });
    await unmount(mnt);
    expect(mounted(mnt)).toBe(false);
    await expect(unmount(mnt)).rejects.toMatchObject({ code: 'DEVICE_BUSY' });
  });

  it('passes data to mount(2): an ext4 mount with discard shows it in mountinfo', async () => {
    const helper = new MountSyscalls();
    const mnt = join(dir, 'mnt');
    expect(await helper.mount(device, mnt, 'ext4', ['discard'])).toEqual({ ok: true });
    expect(superOptions(mnt)).toContain('discard');
    expect(await helper.umount(mnt)).toEqual({ ok: true });
    // Without data, none: the ext4 default.
    expect(await helper.mount(device, mnt, 'ext4')).toEqual({ ok: true });
    expect(superOptions(mnt)).not.toContain('discard');
    expect(await helper.umount(mnt)).toEqual({ ok: true });
    // Data the file system refuses: its errno (EINVAL), not a mount without it.
    expect(await helper.mount(device, mnt, 'ext4', ['nouuid'])).toMatchObject({ ok: false, errno: 22 });
    expect(mounted(mnt)).toBe(false);
    expect(await helper.mount(device, mnt, 'ext4', ['a\tb'])).toBeNull();
  });

  it('blockdev mount takes the helper for discard and mount(8) for a flag word (ro)', async () => {
    const mnt = join(dir, 'mnt');
    const calls = jest.spyOn(mountSyscalls, 'mount');
    try {
      await mount(device, mnt, { fstype: 'ext4', options: ['discard'] });
      expect(calls).toHaveBeenCalledTimes(1);
      await expect(calls.mock.results[0].value).resolves.toEqual({ ok: true });
      expect(superOptions(mnt)).toContain('discard');
      await unmount(mnt);
      calls.mockClear();
      await mount(device, mnt, { fstype: 'ext4', options: ['ro'] });
      expect(calls).not.toHaveBeenCalled();
      expect(superOptions(mnt)).toContain('ro');
      await unmount(mnt);
    } finally {
      calls.mockRestore();
    }
  });
});

import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, openSync, closeSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mount, unmount } from './blockdev';
import { MountSyscalls } from './mountHelper';

jest.setTimeout(60_000);

const mounted = (dir: string) =>
  readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .some((l) => l.split(' ')[1] === dir);

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
});

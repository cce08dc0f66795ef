import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { majorMinorOf } from '@flocker/storage-drivers';
import { ext4SizeFromSuperblock, linuxHostOps } from './HostOps';

describe('host helpers', () => {
  it('reads an ext4 size from its superblock', () => {
    const sb = Buffer.alloc(1024);
    sb.writeUInt16LE(0xef53, 0x38);
    sb.writeUInt32LE(2, 0x18); // 4096-byte blocks
    sb.writeUInt32LE(16384, 0x04);
    expect(ext4SizeFromSuperblock(sb)).toBe(64 * 1024 * 1024);
    sb.writeUInt32LE(0x80, 0x60); // 64bit: the high word counts
    sb.writeUInt32LE(1, 0x150);
    expect(ext4SizeFromSuperblock(sb)).toBe((2 ** 32 + 16384) * 4096);
  });
  it('says "not ext4" without the magic number', () => {
    expect(ext4SizeFromSuperblock(Buffer.alloc(1024))).toBeNull();
  });
  it('splits a dev_t like glibc', () => {
    expect(majorMinorOf(0x0703n)).toBe('7:3');
    expect(majorMinorOf((259n << 8n) | 0x01n)).toBe('259:1');
    expect(majorMinorOf(0x100700n)).toBe('7:256'); // minor bits above 8 live at 20+
  });
});

describe('linuxHostOps: the synchronous directory and device-node calls (issue 23, session 16)', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'flocker-hostops-'));
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('mkdirp makes every missing directory and takes an existing one as done', async () => {
    const deep = path.join(dir, 'a', 'b', 'c');
    await linuxHostOps.mkdirp(deep);
    await linuxHostOps.mkdirp(deep);
    expect(existsSync(deep)).toBe(true);
  });

  // One "rmdir if empty" for the unmount action and the offline grow's mount point (FR finding 11: there were two).
  it('removeEmptyDir: true once an empty directory is gone (or was); false, kept as it is, if not empty or not a directory', async () => {
    const empty = path.join(dir, 'empty');
    const full = path.join(dir, 'full');
    await linuxHostOps.mkdirp(empty);
    await linuxHostOps.mkdirp(full);
    writeFileSync(path.join(full, 'data'), 'x');
    expect(await linuxHostOps.removeEmptyDir(empty)).toBe(true);
    expect(await linuxHostOps.removeEmptyDir(empty)).toBe(true); // gone already
    expect(await linuxHostOps.removeEmptyDir(full)).toBe(false); // not empty: kept
    expect(await linuxHostOps.removeEmptyDir(path.join(full, 'data'))).toBe(false); // a file: kept
    expect(existsSync(empty)).toBe(false);
    expect(existsSync(path.join(full, 'data'))).toBe(true);
  });

  it('removeEmptyDir still fails on what it does not expect (rmdir of ".": EINVAL)', async () => {
    await linuxHostOps.mkdirp(path.join(dir, 'd'));
    await expect(linuxHostOps.removeEmptyDir(`${path.join(dir, 'd')}/.`)).rejects.toMatchObject({ code: 'EINVAL' });
  });

  it('deviceNumber: null for a missing path and for anything but a block device', async () => {
    expect(await linuxHostOps.deviceNumber(path.join(dir, 'missing'))).toBeNull();
    expect(await linuxHostOps.deviceNumber('/dev/null')).toBeNull(); // a character device
    expect(await linuxHostOps.deviceNumber(dir)).toBeNull();
  });
});

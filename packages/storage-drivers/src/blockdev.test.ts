import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { isStorageError } from './BlockDeviceApi';
import {
  filesystemType,
  hasFilesystem,
  isDeviceBusy,
  isLoopDeviceNeverWritten,
  listMounts,
  blockDeviceSize,
  growthReserveArgs,
  freezeFilesystem,
  makeFilesystem,
  thawFilesystem,
  xfsSizeFromSuperblock,
  ONLINE_GROWTH_FACTOR,
  mount,
  parseMountInfo,
  resizeFilesystem,
  unmount,
} from './blockdev';
import { expectStorageError } from './testing/contract';
import { execFileExec, formatCommand, runChecked, type ExecFn, type ExecResult } from './exec';
import { parseLosetupAssociations } from './losetup';
import { destroyTempRoot, makeTempRoot } from './testing/testSupport';

jest.setTimeout(30_000);

/** A fake ExecFn answering from a script, recording every argv. */
function fakeExec(answer: (file: string, args: readonly string[]) => Partial<ExecResult>): {
  exec: ExecFn;
  calls: string[][];
} {
  const calls: string[][] = [];
  const exec: ExecFn = async (file, args) => {
    calls.push([file, ...args]);
    return { exitCode: 0, stdout: '', stderr: '', ...answer(file, args) };
  };
  return { exec, calls };
}

describe('parseMountInfo', () => {
  const sample = [
    '22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw',
    '36 22 7:3 / /var/lib/flocker/mnt/a\\040b rw,noatime master:1 shared:2 - ext4 /dev/loop3 rw,errors=continue',
    '37 22 0:31 / /proc rw,nosuid - proc proc rw',
    '38 22 7:4 / /flocker/d rw,relatime - ext4 /dev/loop4 rw,emergency_ro',
    'garbage line',
    '',
  ].join('\n');

  it('reads device, mount point (unescaped), fstype, major:minor and both options; skips lines it cannot read', () => {
    expect(parseMountInfo(sample)).toEqual([
      {
        majorMinor: '254:0',
        mountPoint: '/',
        options: 'rw,relatime',
        fstype: 'ext4',
        device: '/dev/vda',
        superOptions: 'rw',
      },
      {
        majorMinor: '7:3',
        mountPoint: '/var/lib/flocker/mnt/a b',
        options: 'rw,noatime',
        fstype: 'ext4',
        device: '/dev/loop3',
        superOptions: 'rw,errors=continue',
      },
      {
        majorMinor: '0:31',
        mountPoint: '/proc',
        options: 'rw,nosuid',
        fstype: 'proc',
        device: 'proc',
        superOptions: 'rw',
      },
      // ext4 gone read-only after a write error (kernel 6.12 on): the mount's own options still say rw.
      {
        majorMinor: '7:4',
        mountPoint: '/flocker/d',
        options: 'rw,relatime',
        fstype: 'ext4',
        device: '/dev/loop4',
        superOptions: 'rw,emergency_ro',
      },
    ]);
  });

  it('listMounts reads /proc/self/mountinfo through the injected reader', async () => {
    const read: string[] = [];
    const mounts = await listMounts({ readFile: async (p) => (read.push(p), sample) });
    expect(read).toEqual(['/proc/self/mountinfo']);
    expect(mounts.map((m) => m.device)).toEqual(['/dev/vda', '/dev/loop3', 'proc', '/dev/loop4']);
  });
});

describe('parseLosetupAssociations', () => {
  it('lists the loop devices of `losetup -j` output', () => {
    expect(
      parseLosetupAssociations(
        '/dev/loop0: [65024]:123 (/pool/volumes/x.img)\n/dev/loop12: [65024]:123 (/pool/volumes/x.img)\n',
      ),
    ).toEqual(['/dev/loop0', '/dev/loop12']);
    expect(parseLosetupAssociations('')).toEqual([]);
  });
});

describe('filesystem helpers (argv)', () => {
  it('hasFilesystem: blkid exit 2 means no filesystem', async () => {
    const { exec, calls } = fakeExec(() => ({ exitCode: 2 }));
    expect(await hasFilesystem('/dev/loop9', { exec })).toBe(false);
    expect(calls).toEqual([['blkid', '-p', '-o', 'export', '/dev/loop9']]);
  });

  it('filesystemType reads TYPE, or PTTYPE for a partition table', async () => {
    expect(
      await filesystemType(
        '/dev/x',
        fakeExec(() => ({ stdout: 'DEVNAME=/dev/x\nUUID=1\nTYPE=ext4\nUSAGE=filesystem\n' })),
      ),
    ).toBe('ext4');
    expect(
      await filesystemType(
        '/dev/x',
        fakeExec(() => ({ stdout: 'DEVNAME=/dev/x\nPTTYPE=gpt\n' })),
      ),
    ).toBe('gpt');
    expect(
      await hasFilesystem(
        '/dev/x',
        fakeExec(() => ({ stdout: 'DEVNAME=/dev/x\nPTTYPE=gpt\n' })),
      ),
    ).toBe(true);
  });

  it('hasFilesystem: every other blkid failure is an error, never "empty"', async () => {
    const { exec } = fakeExec(() => ({ exitCode: 4, stderr: 'blkid: error: /dev/nope: No such file or directory' }));
    const e = await hasFilesystem('/dev/nope', { exec }).catch((x: unknown) => x);
    expect(isStorageError(e, 'BACKEND_ERROR')).toBe(true);
    expect(String(e)).toMatch(/No such file or directory/);
  });

  it('makeFilesystem runs mkfs.ext4 with lazy init, label and MMP only on an empty device', async () => {
    const { exec, calls } = fakeExec((file) => (file === 'blkid' ? { exitCode: 2 } : {}));
    await makeFilesystem('/dev/loop9', {
      type: 'ext4',
      label: 'flocker',
      multiMountProtection: true,
      exec,
      deviceSize: async () => null,
    });
    expect(calls).toEqual([
      ['blkid', '-p', '-o', 'export', '/dev/loop9'],
      ['mkfs.ext4', '-q', '-E', 'lazy_itable_init=1,lazy_journal_init=1', '-L', 'flocker', '-O', 'mmp', '/dev/loop9'],
    ]);
  });

  it("makeFilesystem reserves room for 64x online growth, not mke2fs's 1024x", async () => {
    const { exec, calls } = fakeExec((file) => (file === 'blkid' ? { exitCode: 2 } : {}));
    await makeFilesystem('/dev/loop9', { type: 'ext4', exec, deviceSize: async () => 10 * 1024 ** 3 });
    expect(calls[1]).toEqual([
      'mkfs.ext4',
      '-q',
      '-b',
      '4096',
      '-E',
      `lazy_itable_init=1,lazy_journal_init=1,resize=${((10 * 1024 ** 3) / 4096) * 64}`,
      '/dev/loop9',
    ]);
  });

  it("growthReserveArgs: mke2fs's own choices below 512 MiB or when the size is unknown; capped at 2^32-1 blocks", () => {
    const lazy = 'lazy_itable_init=1,lazy_journal_init=1';
    expect(growthReserveArgs(null)).toEqual(['-E', lazy]);
    expect(growthReserveArgs(256 * 1024 * 1024)).toEqual(['-E', lazy]);
    expect(growthReserveArgs(512 * 1024 * 1024)).toEqual([
      '-b',
      '4096',
      '-E',
      `${lazy},resize=${131072 * ONLINE_GROWTH_FACTOR}`,
    ]);
    expect(growthReserveArgs(2 * 1024 ** 4)).toEqual(['-b', '4096', '-E', `${lazy},resize=${2 ** 32 - 1}`]);
  });

  it('makeFilesystem refuses a device that has a filesystem, and does not run mkfs', async () => {
    const { exec, calls } = fakeExec(() => ({ stdout: 'TYPE=xfs\n' }));
    await expectStorageError(makeFilesystem('/dev/loop9', { type: 'ext4', exec }), 'FILESYSTEM_EXISTS');
    expect(calls.map((c) => c[0])).toEqual(['blkid']);
  });

  it('makeFilesystem skips blkid only when neverWritten answers true', async () => {
    const yes = fakeExec(() => ({}));
    await makeFilesystem('/dev/loop9', { type: 'ext4', exec: yes.exec, neverWritten: async () => true });
    expect(yes.calls.map((c) => c[0])).toEqual(['mkfs.ext4']);
    const no = fakeExec(() => ({ stdout: 'TYPE=xfs\n' }));
    await expectStorageError(
      makeFilesystem('/dev/loop9', { type: 'ext4', exec: no.exec, neverWritten: async () => false }),
      'FILESYSTEM_EXISTS',
    );
    expect(no.calls.map((c) => c[0])).toEqual(['blkid']);
  });

  it('makeFilesystem rejects labels longer than 16 bytes', async () => {
    const { exec } = fakeExec((file) => (file === 'blkid' ? { exitCode: 2 } : {}));
    await expectStorageError(
      makeFilesystem('/dev/loop9', { type: 'ext4', label: 'x'.repeat(17), exec }),
      'BACKEND_ERROR',
    );
  });

  it('mount, unmount and resizeFilesystem run the expected commands', async () => {
    const { exec, calls } = fakeExec(() => ({}));
    await mount('/dev/loop9', '/mnt/x', { fstype: 'ext4', exec });
    await mount('/dev/loop9', '/mnt/y', { fstype: 'ext4', options: ['noatime', 'nodev'], exec });
    await unmount('/mnt/x', { exec });
    await resizeFilesystem('/dev/loop9', { exec, mounted: true });
    await resizeFilesystem('/dev/loop9', { exec, mounted: false });
    expect(calls).toEqual([
      ['mount', '-t', 'ext4', '/dev/loop9', '/mnt/x'],
      ['mount', '-t', 'ext4', '-o', 'noatime,nodev', '/dev/loop9', '/mnt/y'],
      ['umount', '/mnt/x'],
      ['resize2fs', '/dev/loop9'],
      ['e2fsck', '-f', '-p', '/dev/loop9'],
      ['resize2fs', '/dev/loop9'],
    ]);
  });

  it('failures carry the command and its stderr', async () => {
    const { exec } = fakeExec(() => ({
      exitCode: 32,
      stderr: 'mount: /mnt/x: wrong fs type, bad option, bad superblock.\n',
    }));
    const e = await mount('/dev/loop9', '/mnt/x', { fstype: 'ext4', exec }).catch((x: unknown) => x);
    expect(isStorageError(e, 'BACKEND_ERROR')).toBe(true);
    expect(String(e)).toContain('`mount -t ext4 /dev/loop9 /mnt/x` exited with 32: mount: /mnt/x: wrong fs type');
  });

  it('unmount failures are DEVICE_BUSY', async () => {
    const { exec } = fakeExec(() => ({ exitCode: 32, stderr: 'umount: /mnt/x: target is busy.' }));
    await expectStorageError(unmount('/mnt/x', { exec }), 'DEVICE_BUSY');
  });
});

describe('exec', () => {
  it('execFileExec reports exit codes and output without throwing', async () => {
    expect(await execFileExec('sh', ['-c', 'echo out; echo err >&2; exit 3'])).toEqual({
      exitCode: 3,
      stdout: 'out\n',
      stderr: 'err\n',
    });
  });

  it('execFileExec rejects with BACKEND_ERROR when the program does not exist', async () => {
    const e = await execFileExec('/nonexistent/flocker-tool', []).catch((x: unknown) => x);
    expect(isStorageError(e, 'BACKEND_ERROR')).toBe(true);
    expect(String(e)).toMatch(/is it installed/);
  });

  it('runChecked returns stdout on success and formats commands shell-like', async () => {
    expect(await runChecked(execFileExec, 'echo', ['hi'], 'greeting')).toBe('hi\n');
    expect(formatCommand('mount', ['-o', 'a b', "it's"])).toBe(`mount -o 'a b' 'it'\\''s'`);
  });
});

describe('filesystem helpers on a real loop device', () => {
  let root: string;
  let device: string;

  beforeAll(async () => {
    root = await makeTempRoot('flocker-blockdev-test-');
    const image = path.join(root, 'disk.img');
    await fs.writeFile(image, '');
    await fs.truncate(image, 32 * 1024 * 1024);
    device = (await runChecked(execFileExec, 'losetup', ['--find', '--show', image], 'attach')).trim();
  });

  afterAll(async () => {
    if (root) await destroyTempRoot(root);
  });

  it('creates, detects, mounts, grows and unmounts ext4', async () => {
    expect(await hasFilesystem(device)).toBe(false);
    await makeFilesystem(device, { type: 'ext4', label: 'flocker-test' });
    expect(await filesystemType(device)).toBe('ext4');
    await expectStorageError(makeFilesystem(device, { type: 'ext4' }), 'FILESYSTEM_EXISTS');

    const mnt = path.join(root, 'mnt');
    await fs.mkdir(mnt);
    await mount(device, mnt, { fstype: 'ext4', options: ['noatime'] });
    expect(await isDeviceBusy(device)).toBe(true);
    const entry = (await listMounts()).find((m) => m.mountPoint === mnt);
    expect(entry).toMatchObject({ device, fstype: 'ext4' });

    await unmount(mnt);
    expect(await isDeviceBusy(device)).toBe(false);
    expect((await listMounts()).some((m) => m.mountPoint === mnt)).toBe(false);

    // Offline growth (online growth needs CAP_SYS_RESOURCE, which CI sandboxes may lack).
    await fs.truncate(path.join(root, 'disk.img'), 64 * 1024 * 1024);
    await runChecked(execFileExec, 'losetup', ['-c', device], 'refresh');
    await resizeFilesystem(device);
    const info = await runChecked(execFileExec, 'dumpe2fs', ['-h', device], 'dumpe2fs');
    const blocks = Number(/Block count:\s+(\d+)/.exec(info)?.[1]);
    const blockSize = Number(/Block size:\s+(\d+)/.exec(info)?.[1]);
    expect(blocks * blockSize).toBe(64 * 1024 * 1024);
  });

  it('formats a 1 GiB device with a 64x growth reserve, and grows it offline far beyond that', async () => {
    const image = path.join(root, 'big.img');
    await fs.writeFile(image, '');
    await fs.truncate(image, 1024 ** 3);
    const big = (await runChecked(execFileExec, 'losetup', ['--find', '--show', image], 'attach')).trim();
    try {
      expect(await blockDeviceSize(big)).toBe(1024 ** 3);
      expect(await blockDeviceSize(image)).toBeNull(); // a file, not a block device
      await makeFilesystem(big, { type: 'ext4' });
      const info = await runChecked(execFileExec, 'dumpe2fs', ['-h', big], 'dumpe2fs');
      // 64 GiB = 512 groups of 128 MiB = 8 descriptor blocks of 64 (mke2fs default: 1024x, ~128 blocks).
      expect(Number(/Reserved GDT blocks:\s+(\d+)/.exec(info)?.[1])).toBeLessThanOrEqual(8);
      expect(Number(/Block size:\s+(\d+)/.exec(info)?.[1])).toBe(4096);
      await fs.truncate(image, 100 * 1024 ** 3);
      await runChecked(execFileExec, 'losetup', ['-c', big], 'refresh');
      await resizeFilesystem(big, { mounted: false });
      const grown = await runChecked(execFileExec, 'dumpe2fs', ['-h', big], 'dumpe2fs');
      expect(Number(/Block count:\s+(\d+)/.exec(grown)?.[1]) * 4096).toBe(100 * 1024 ** 3);
    } finally {
      await runChecked(execFileExec, 'losetup', ['-d', big], 'detach');
    }
  });
});

describe('xfs datasets (issue 20: online growth without CAP_SYS_RESOURCE)', () => {
  let root: string;

  beforeAll(async () => {
    root = await makeTempRoot('flocker-blockdev-xfs-');
  });
  afterAll(async () => {
    if (root) await destroyTempRoot(root);
  });

  it('makeFilesystem runs mkfs.xfs (no -f) with a label of at most 12 bytes, and refuses devices below 300 MiB', async () => {
    const { exec, calls } = fakeExec((file) => (file === 'blkid' ? { exitCode: 2 } : {}));
    await makeFilesystem('/dev/loop9', { type: 'xfs', label: 'pg', exec, deviceSize: async () => 512 * 1024 ** 2 });
    expect(calls).toEqual([
      ['blkid', '-p', '-o', 'export', '/dev/loop9'],
      ['mkfs.xfs', '-q', '-L', 'pg', '/dev/loop9'],
    ]);
    await expectStorageError(
      makeFilesystem('/dev/loop9', { type: 'xfs', exec, deviceSize: async () => 299 * 1024 ** 2 }),
      'INVALID_SIZE',
    );
    await expectStorageError(
      makeFilesystem('/dev/loop9', { type: 'xfs', label: 'x'.repeat(13), exec, deviceSize: async () => null }),
      'BACKEND_ERROR',
    );
  });

  it('reads an xfs size from its superblock', () => {
    const sb = Buffer.alloc(512);
    sb.writeUInt32BE(0x58465342, 0);
    sb.writeUInt32BE(4096, 4);
    sb.writeBigUInt64BE(76800n, 8);
    expect(xfsSizeFromSuperblock(sb)).toBe(300 * 1024 ** 2);
    expect(xfsSizeFromSuperblock(Buffer.alloc(512))).toBeNull();
  });

  it('freezes and thaws a mounted file system through the syscall helper (FIFREEZE/FITHAW); thawing a thawed one is false', async () => {
    const image = path.join(root, 'freeze.img');
    await fs.writeFile(image, '');
    await fs.truncate(image, 32 * 1024 ** 2);
    const device = (await runChecked(execFileExec, 'losetup', ['--find', '--show', image], 'attach')).trim();
    const mnt = path.join(root, 'frozen');
    try {
      await makeFilesystem(device, { type: 'ext4' });
      await fs.mkdir(mnt);
      await mount(device, mnt, { fstype: 'ext4' });
      await freezeFilesystem(mnt);
      // A write blocks while frozen: a child's write does not finish until the thaw.
      const writer = execFileExec('sh', ['-c', `echo x > ${mnt}/f && sync -f ${mnt}/f`]);
      const early = await Promise.race([
        writer.then(() => 'done'),
        new Promise((r) => setTimeout(() => r('blocked'), 300)),
      ]);
      expect(early).toBe('blocked');
      expect(await thawFilesystem(mnt)).toBe(true);
      expect((await writer).exitCode).toBe(0);
      expect(await thawFilesystem(mnt)).toBe(false);
      // And the same through fsfreeze(8) when an exec is given (the fallback).
      await freezeFilesystem(mnt, { exec: execFileExec });
      expect(await thawFilesystem(mnt, { exec: execFileExec })).toBe(true);
      expect(await thawFilesystem(mnt, { exec: execFileExec })).toBe(false);
    } finally {
      await thawFilesystem(mnt).catch(() => undefined);
      await unmount(mnt).catch(() => undefined);
      await runChecked(execFileExec, 'losetup', ['-d', device], 'detach');
    }
  });

  it('grows a mounted xfs file system online with xfs_growfs; unmounted it is refused', async () => {
    const image = path.join(root, 'xfs.img');
    await fs.writeFile(image, '');
    await fs.truncate(image, 300 * 1024 ** 2);
    const device = (await runChecked(execFileExec, 'losetup', ['--find', '--show', image], 'attach')).trim();
    const mnt = path.join(root, 'mnt');
    try {
      await makeFilesystem(device, { type: 'xfs' });
      expect(await filesystemType(device)).toBe('xfs');
      await expectStorageError(makeFilesystem(device, { type: 'xfs' }), 'FILESYSTEM_EXISTS');
      await expectStorageError(resizeFilesystem(device, { fstype: 'xfs' }), 'BACKEND_ERROR');
      await fs.mkdir(mnt);
      await mount(device, mnt, { fstype: 'xfs' });
      const before = (await fs.statfs(mnt)).blocks * (await fs.statfs(mnt)).bsize;
      await fs.truncate(image, 600 * 1024 ** 2);
      await runChecked(execFileExec, 'losetup', ['-c', device], 'refresh');
      await resizeFilesystem(device, { fstype: 'xfs', mountPoint: mnt });
      const st = await fs.statfs(mnt);
      expect(st.blocks * st.bsize).toBeGreaterThan(before + 250 * 1024 ** 2);
    } finally {
      await unmount(mnt).catch(() => undefined);
      await runChecked(execFileExec, 'losetup', ['-d', device], 'detach');
    }
  });
});

describe('isLoopDeviceNeverWritten', () => {
  let root: string;
  const devices: string[] = [];

  beforeAll(async () => {
    root = await makeTempRoot('flocker-blockdev-test-');
  });
  afterAll(async () => {
    if (root) await destroyTempRoot(root);
  });

  async function sparseLoop(name: string): Promise<{ image: string; device: string }> {
    const image = path.join(root, name);
    await fs.writeFile(image, '');
    await fs.truncate(image, 16 * 1024 * 1024);
    const device = (await runChecked(execFileExec, 'losetup', ['--find', '--show', image], 'attach')).trim();
    devices.push(device);
    return { image, device };
  }

  it('is true for a loop device over a file with no allocated block, false once anything is written', async () => {
    const { device } = await sparseLoop('fresh.img');
    expect(await isLoopDeviceNeverWritten(device)).toBe(true);
    // A buffered write through the device, not yet flushed by anyone: still seen.
    const handle = await fs.open(device, 'r+');
    await handle.write(Buffer.from('x'), 0, 1, 8 * 1024 * 1024);
    await handle.close();
    expect(await isLoopDeviceNeverWritten(device)).toBe(false);
  });

  it('is false after mkfs, for a replaced backing file, and for anything not a loop device', async () => {
    const formatted = await sparseLoop('formatted.img');
    await makeFilesystem(formatted.device, { type: 'ext4', neverWritten: (d) => isLoopDeviceNeverWritten(d) });
    expect(await filesystemType(formatted.device)).toBe('ext4');
    expect(await isLoopDeviceNeverWritten(formatted.device)).toBe(false);
    await expectStorageError(
      makeFilesystem(formatted.device, { type: 'ext4', neverWritten: (d) => isLoopDeviceNeverWritten(d) }),
      'FILESYSTEM_EXISTS',
    );

    const replaced = await sparseLoop('replaced.img');
    const copy = path.join(root, 'copy.img');
    await fs.writeFile(copy, '');
    await fs.truncate(copy, 16 * 1024 * 1024);
    await fs.rename(copy, replaced.image); // the device now serves an unlinked inode
    expect(await isLoopDeviceNeverWritten(replaced.device)).toBe(false);

    expect(await isLoopDeviceNeverWritten('/dev/null')).toBe(false);
    expect(await isLoopDeviceNeverWritten('/dev/loop999999')).toBe(false);
  });
});

/**
 * Review FR finding 7 (session 17): mke2fs and resize2fs leave off a last block group too small for its own metadata,
 * so an ext4 file system can be short of its device for good (1 MiB of 1025 MiB). It counts as full size (no pending
 * grow, no e2fsck + resize2fs at every mount); one short by a growable amount does not. On sparse image files with
 * the real mkfs.ext4 (and the agent's own mkfs arguments) and resize2fs.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { growthReserveArgs } from '@flocker/storage-drivers';
import { ext4SizeFromSuperblock, fillsDevice, linuxHostOps } from './HostOps';

const MiB = 1024 * 1024;

describe('an ext4 file system counts as full size within what mke2fs and resize2fs leave off', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'flocker-fullsize-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const image = (name: string, size: number): string => {
    const file = join(dir, name);
    execFileSync('truncate', ['-s', String(size), file]);
    execFileSync('mkfs.ext4', ['-q', '-F', ...growthReserveArgs(size), file]);
    return file;
  };

  it.each([1025, 4097, 130, 64])('made on %i MiB: full size', async (mib) => {
    const file = image(`i${mib}`, mib * MiB);
    const fs = await linuxHostOps.filesystemOf(file);
    expect(fs?.fstype).toBe('ext4');
    expect(fillsDevice(fs!, mib * MiB)).toBe(true);
  });

  it('1025 MiB: 1 MiB short, and resize2fs leaves it so (the case the check is for)', async () => {
    const file = image('i', 1025 * MiB);
    expect((await linuxHostOps.filesystemOf(file))?.size).toBe(1024 * MiB);
    await linuxHostOps.growUnmountedFilesystem(file);
    expect((await linuxHostOps.filesystemOf(file))?.size).toBe(1024 * MiB);
  });

  it.each([
    ['one group (128 MiB)', 1025, 1025 + 128],
    ['less than a group (64 MiB)', 1025, 1025 + 64],
    ['one group of 1 KiB blocks (8 MiB)', 64, 72],
  ])('its volume grown by %s: smaller, and grown to full size', async (_what, from, to) => {
    const file = image('i', from * MiB);
    execFileSync('truncate', ['-s', String(to * MiB), file]);
    expect(fillsDevice((await linuxHostOps.filesystemOf(file))!, to * MiB)).toBe(false);
    await linuxHostOps.growUnmountedFilesystem(file);
    const grown = await linuxHostOps.filesystemOf(file);
    expect(grown!.size).toBeGreaterThan(from * MiB);
    expect(fillsDevice(grown!, to * MiB)).toBe(true);
  });

  it('a whole last group short is smaller, whatever the metadata; exact without the superblock geometry', () => {
    expect(fillsDevice({ size: 1024 * MiB, fullWithin: 128 * MiB }, 1152 * MiB)).toBe(false);
    expect(fillsDevice({ size: 1024 * MiB, fullWithin: 128 * MiB }, 1152 * MiB - 1)).toBe(true);
    expect(fillsDevice({ size: 64 * MiB }, 64 * MiB)).toBe(true);
    expect(fillsDevice({ size: 64 * MiB }, 64 * MiB + 1)).toBe(false);
    expect(ext4SizeFromSuperblock(Buffer.alloc(1024))).toBeNull();
  });
});

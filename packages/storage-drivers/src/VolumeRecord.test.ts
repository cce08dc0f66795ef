import { execFileSync } from 'node:child_process';
import {
  closeSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { commitTemp, writeFileAtomic, writeSyncedTemp } from './VolumeRecord';

describe('atomic record writes', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'volrec-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('replaces a file, with or without the directory fsync, leaving no temp file', async () => {
    const file = join(dir, 'r.json');
    writeFileSync(file, 'old');
    await writeFileAtomic(file, 'new');
    expect(readFileSync(file, 'utf8')).toBe('new');
    await writeFileAtomic(file, 'newer', { durableRename: false });
    expect(readFileSync(file, 'utf8')).toBe('newer');
    expect(readdirSync(dir)).toEqual(['r.json']);
  });

  it('flushes a companion together with the temp file, and commits only on request', async () => {
    const file = join(dir, 'r.json');
    let synced = 0;
    const tmp = await writeSyncedTemp(file, 'content', async () => void synced++);
    expect(synced).toBe(1);
    expect(readdirSync(dir)).toEqual([tmp.slice(dir.length + 1)]);
    await commitTemp(tmp, file);
    expect(readdirSync(dir)).toEqual(['r.json']);
    expect(readFileSync(file, 'utf8')).toBe('content');
  });

  it('removes the temp file when the companion flush fails', async () => {
    await expect(writeSyncedTemp(join(dir, 'r.json'), 'x', () => Promise.reject(new Error('EIO')))).rejects.toThrow(
      'EIO',
    );
    expect(readdirSync(dir)).toEqual([]);
  });

  it('on a full disk (a small tmpfs, filled) a record write fails with ENOSPC, keeps the old record and leaves no temp file', async () => {
    const mnt = join(dir, 'pool');
    mkdirSync(mnt);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', mnt]);
    try {
      const file = join(mnt, 'r.json');
      await writeFileAtomic(file, 'old');
      // Fill what is left, as dd would.
      const fd = openSync(join(mnt, 'fill'), 'w');
      try {
        const chunk = Buffer.alloc(4096);
        for (;;) writeSync(fd, chunk);
      } catch (e) {
        expect((e as NodeJS.ErrnoException).code).toBe('ENOSPC');
      } finally {
        closeSync(fd);
      }
      const big = JSON.stringify({ pad: 'x'.repeat(64 * 1024) });
      await expect(writeFileAtomic(file, big)).rejects.toMatchObject({ code: 'ENOSPC' });
      await expect(writeSyncedTemp(file, big)).rejects.toMatchObject({ code: 'ENOSPC' });
      expect(readFileSync(file, 'utf8')).toBe('old');
      expect(readdirSync(mnt).sort()).toEqual(['fill', 'r.json']);
      rmSync(join(mnt, 'fill'));
      await writeFileAtomic(file, big);
      expect(readFileSync(file, 'utf8')).toBe(big);
      expect(readdirSync(mnt)).toEqual(['r.json']);
    } finally {
      execFileSync('umount', ['-l', mnt]);
    }
  });
});

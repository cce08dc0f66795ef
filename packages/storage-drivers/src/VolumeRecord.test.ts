import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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
    await expect(writeSyncedTemp(join(dir, 'r.json'), 'x', () => Promise.reject(new Error('EIO')))).rejects.toThrow('EIO');
    expect(readdirSync(dir)).toEqual([]);
  });
});

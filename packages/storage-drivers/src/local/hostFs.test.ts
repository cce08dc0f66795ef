/**
 * realHostFs.writeTextDurably (the btrfs lineage record): @flocker/api's writeFileDurable in a
 * directory made for it (session 16, final review s15): a temp name no other writer uses, the temp
 * file removed when the write fails, the old file untouched.
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { realHostFs } from './hostFs';

describe('realHostFs.writeTextDurably', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'flocker-hostfs-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));
  const write = (path: string, text: string): Promise<void> => realHostFs.writeTextDurably!(path, text);

  it('writes the file whole, in a directory made for it', async () => {
    const file = join(dir, 'a', 'b', 'record.json');
    await write(file, '{"live":"x"}');
    expect(readFileSync(file, 'utf8')).toBe('{"live":"x"}');
    expect(readdirSync(join(dir, 'a', 'b'))).toEqual(['record.json']);
  });

  it('a failed write leaves no temp file and the old content untouched', async () => {
    // The rename fails: a non-empty directory stands where the file goes.
    const file = join(dir, 'record.json');
    mkdirSync(file);
    writeFileSync(join(file, 'inside'), 'old');
    await expect(write(file, 'new')).rejects.toThrow();
    expect(readdirSync(dir)).toEqual(['record.json']);
    expect(readFileSync(join(file, 'inside'), 'utf8')).toBe('old');
  });

  it('writers of one file at once never share a temp file: each succeeds, one whole content is left', async () => {
    const file = join(dir, 'record.json');
    const texts = Array.from({ length: 16 }, (_, i) => `${String(i)}:${'x'.repeat(64 * 1024)}`);
    await Promise.all(texts.map((t) => write(file, t)));
    expect(texts).toContain(readFileSync(file, 'utf8'));
    expect(readdirSync(dir)).toEqual(['record.json']);
  });
});

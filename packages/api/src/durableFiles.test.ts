import {
  existsSync,
  mkdtempSync,
  openSync,
  closeSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { isNoSpace, writeAll, writeAllSync, writeFileDurable, writeFileDurableSync } from './durableFiles';
import { FakeFullDisk } from './testing/fakeFullDisk';
import { SafeLogOutput } from './safeLogOutput';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'flocker-durable-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('writeAll', () => {
  it('continues after short writes until every byte is written', async () => {
    const chunks: number[] = [];
    const handle = {
      write: async (_b: Uint8Array, _o: number, length: number, position: number | null) => {
        const n = Math.min(3, length);
        chunks.push(position ?? -1);
        return { bytesWritten: n };
      },
    };
    await writeAll(handle, Buffer.from('0123456789'), 100);
    expect(chunks).toEqual([100, 103, 106, 109]);
  });

  it('throws ENOSPC instead of looping when a write makes no progress', async () => {
    const handle = { write: async () => ({ bytesWritten: 0 }) };
    await expect(writeAll(handle, Buffer.from('x'), 0)).rejects.toMatchObject({ code: 'ENOSPC' });
    expect(() => writeAllSync(3, Buffer.from('x'), 0, { writeSync: () => 0 })).toThrow(/ENOSPC/);
  });

  it('reports the ENOSPC of a disk that filled mid-write', async () => {
    const disk = new FakeFullDisk(4);
    const file = path.join(dir, 'f');
    const h = await disk.open(file, 'w');
    try {
      const err = await writeAll(h, Buffer.from('0123456789'), 0).catch((e: unknown) => e);
      expect(isNoSpace(err)).toBe(true);
    } finally {
      await h.close();
    }
    expect(disk.shortWrites).toBe(1);
    expect(readFileSync(file, 'utf8')).toBe('0123');
  });
});

describe('writeFileDurable', () => {
  it('keeps the old file and leaves no temp file when the disk fills (async and sync)', async () => {
    const file = path.join(dir, 'record.json');
    writeFileSync(file, 'old\n');
    const disk = new FakeFullDisk(5);
    await expect(writeFileDurable(file, 'new content\n', { ops: disk.ops })).rejects.toMatchObject({ code: 'ENOSPC' });
    expect(readFileSync(file, 'utf8')).toBe('old\n');
    expect(readdirSync(dir)).toEqual(['record.json']);

    disk.free = 3;
    expect(() => writeFileDurableSync(file, 'new content\n', { ops: disk.syncOps })).toThrow(/ENOSPC/);
    expect(readFileSync(file, 'utf8')).toBe('old\n');
    expect(readdirSync(dir)).toEqual(['record.json']);

    disk.free = Infinity;
    await writeFileDurable(file, 'new content\n', { ops: disk.ops });
    expect(readFileSync(file, 'utf8')).toBe('new content\n');
    writeFileDurableSync(file, 'newer\n', { ops: disk.syncOps });
    expect(readFileSync(file, 'utf8')).toBe('newer\n');
    expect(readdirSync(dir)).toEqual(['record.json']);
  });

  it('keeps the old file when the fsync fails', async () => {
    const file = path.join(dir, 'record.json');
    writeFileSync(file, 'old\n');
    const disk = new FakeFullDisk();
    disk.failNextSync = true;
    await expect(writeFileDurable(file, 'new\n', { ops: disk.ops })).rejects.toMatchObject({ code: 'EIO' });
    expect(readFileSync(file, 'utf8')).toBe('old\n');
    expect(existsSync(path.join(dir, 'record.json'))).toBe(true);
    expect(readdirSync(dir)).toHaveLength(1);
  });
});

describe('SafeLogOutput', () => {
  it('drops lines it cannot write (a full disk), counts them and says so once writing works again', () => {
    const file = path.join(dir, 'service.log');
    const fd = openSync(file, 'a');
    const disk = new FakeFullDisk(30);
    try {
      const out = new SafeLogOutput(fd, { ops: disk.syncOps, direct: true, now: () => new Date(0) });
      out.write('{"message":"first"}\n'); // 20 bytes: fits
      out.write('{"message":"second"}\n'); // 10 of 21 fit: torn
      out.write('{"message":"third"}\n'); // refused
      expect(out.dropped).toBe(2);
      expect(out.lastError).toBe('ENOSPC');
      disk.free = Infinity;
      out.write('{"message":"fourth"}\n');
      expect(out.dropped).toBe(0);
      expect(out.droppedTotal).toBe(2);
    } finally {
      closeSync(fd);
    }
    const lines = readFileSync(file, 'utf8').split('\n');
    expect(lines[0]).toBe('{"message":"first"}');
    expect(lines[1]).toBe('{"message"');
    expect(JSON.parse(lines[2] ?? '')).toEqual({
      level: 'warn',
      message: 'log lines dropped: the log output failed',
      dropped: 2,
      error: 'ENOSPC',
      timestamp: '1970-01-01T00:00:00.000Z',
    });
    expect(lines[3]).toBe('{"message":"fourth"}');
  });

  it('never emits an error on /dev/full (writes fail with ENOSPC)', () => {
    const fd = openSync('/dev/full', 'w');
    try {
      const out = new SafeLogOutput(fd);
      const errors: unknown[] = [];
      out.on('error', (e) => errors.push(e));
      for (let i = 0; i < 100; i++) out.write(`line ${i}\n`);
      expect(out.droppedTotal).toBe(100);
      expect(errors).toEqual([]);
    } finally {
      closeSync(fd);
    }
  });
});

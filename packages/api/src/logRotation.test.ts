import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { z } from 'zod';
import { rotationFromEnv, SafeLogOutput } from './safeLogOutput';

const LogLine = z.object({ i: z.number() }).loose();

describe('log rotation by size (issue 21)', () => {
  let dir: string;
  beforeEach(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flocker-logrotate-'))));
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  const line = (i: number) => `${JSON.stringify({ level: 'info', message: 'x'.repeat(80), i })}\n`;
  const write = (out: SafeLogOutput, from: number, to: number) =>
    new Promise<void>((resolve) => {
      for (let i = from; i < to; i++) out.write(line(i));
      out.write('', () => resolve());
    });
  const numbers = (file: string) =>
    fs.existsSync(file)
      ? fs
          .readFileSync(file, 'utf8')
          .split('\n')
          .filter(Boolean)
          .map((l) => LogLine.parse(JSON.parse(l)).i)
      : [];

  it('a file the log appends to (>>) is copied to .1 … .keep and truncated once past the limit; no line is lost or torn', async () => {
    const file = path.join(dir, 'agent.log');
    const fd = fs.openSync(file, 'a');
    const out = new SafeLogOutput(fd, { rotate: { maxBytes: 10_000, keep: 2 } });
    await write(out, 0, 400); // ~40 KB: several rotations
    fs.closeSync(fd);
    expect(fs.statSync(file).size).toBeLessThan(12_000);
    expect(fs.existsSync(`${file}.3`)).toBe(false);
    const kept = [...numbers(`${file}.2`), ...numbers(`${file}.1`), ...numbers(file)];
    // The newest generations hold consecutive lines up to the last, each whole.
    expect(kept[kept.length - 1]).toBe(399);
    expect(kept).toEqual(Array.from({ length: kept.length }, (_, k) => 400 - kept.length + k));
  });

  it('a file not opened for appending is never truncated (the next write would leave a hole), nor is a pipe', async () => {
    const file = path.join(dir, 'plain.log');
    const fd = fs.openSync(file, 'w');
    const out = new SafeLogOutput(fd, { rotate: { maxBytes: 1_000, keep: 2 } });
    await write(out, 0, 100);
    fs.closeSync(fd);
    expect(numbers(file)).toHaveLength(100);
    expect(fs.existsSync(`${file}.1`)).toBe(false);
  });

  it('reads its limits from FLOCKER_LOG_MAX_BYTES and FLOCKER_LOG_KEEP (50 MiB and 5 by default; 0 turns it off)', () => {
    expect(rotationFromEnv({})).toEqual({ maxBytes: 50 * 1024 * 1024, keep: 5 });
    expect(rotationFromEnv({ FLOCKER_LOG_MAX_BYTES: '1000', FLOCKER_LOG_KEEP: '2' })).toEqual({
      maxBytes: 1000,
      keep: 2,
    });
    expect(rotationFromEnv({ FLOCKER_LOG_MAX_BYTES: '0' })).toBeUndefined();
    expect(rotationFromEnv({ FLOCKER_LOG_KEEP: 'x' })).toBeUndefined();
  });
});

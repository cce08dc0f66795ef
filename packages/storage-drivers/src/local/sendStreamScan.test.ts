/**
 * Review FR finding 12: btrfs changedSince collected the whole `send --no-data` stream in memory before
 * parsing it (tens of MB for a copy with millions of changed files), although the answer is known at the
 * first command that changes something. The stream is now read as it comes (SendStreamScan) and the
 * send killed at the first change; every check stays (the magic, the lengths, the end required, a
 * stream cut short an error, never "no change" on doubt). Crafted streams here, split at every byte;
 * the real pools in changedSinceProbe.btrfs.test.ts.
 */
import { PassThrough } from 'node:stream';
import type { ExecFn } from '../exec';
import { BtrfsEngine, SendStreamScan, sendStreamHasNoChange } from './btrfs';
import type { HostFs } from './hostFs';
import type { SpawnFn, StreamProcess } from './processes';

const ID = '0b0e6d4c-6c52-4a43-9d8a-4e3f1c1d2a10';
const MAGIC = Buffer.from('btrfs-stream\0', 'latin1');
const VERSION = Buffer.from([1, 0, 0, 0]);

/** One command: u32 length, u16 command, u32 crc (not checked), then `length` attribute bytes. */
function command(cmd: number, length: number): Buffer {
  const header = Buffer.alloc(10);
  header.writeUInt32LE(length, 0);
  header.writeUInt16LE(cmd, 4);
  header.writeUInt32LE(0xdeadbeef, 6);
  return Buffer.concat([header, Buffer.alloc(length, 0xa5)]);
}

function stream(commands: readonly (readonly [number, number])[]): Buffer {
  return Buffer.concat([MAGIC, VERSION, ...commands.map(([c, l]) => command(c, l))]);
}

const SNAPSHOT = 2;
const SUBVOL = 1;
const END = 21;
const UTIMES = 20;
const UPDATE_EXTENT = 22;
const UNLINK = 11;

const whole = stream([
  [SNAPSHOT, 40],
  [END, 0],
]);
const changed = stream([
  [SNAPSHOT, 40],
  [UTIMES, 28],
  [UPDATE_EXTENT, 24],
  [END, 0],
]);
const badMagic = Buffer.concat([Buffer.from('btrfs-strean\0', 'latin1'), VERSION, command(END, 0)]);

/** Each stream and what it is: true (no change), false (a change), or the error it must raise. */
const CASES: [string, Buffer, boolean | RegExp][] = [
  ['the snapshot header and the end', whole, true],
  [
    'a subvolume header and the end',
    stream([
      [SUBVOL, 30],
      [END, 0],
    ]),
    true,
  ],
  ['a change (utimes, update_extent)', changed, false],
  [
    'a change only after the end',
    stream([
      [SNAPSHOT, 40],
      [END, 0],
      [UNLINK, 8],
    ]),
    false,
  ],
  // The magic and version, the snapshot header, then 4 of utimes' 28 attribute bytes.
  ['a change whose attributes are cut off', changed.subarray(0, MAGIC.length + 4 + 50 + 14), false],
  ['no end', stream([[SNAPSHOT, 40]]), /cut short/],
  ['cut inside the header command', whole.subarray(0, 30), /cut short/],
  ['cut inside the end command', whole.subarray(0, whole.length - 1), /cut short/],
  ['cut inside a command header after the end', Buffer.concat([whole, Buffer.alloc(9)]), /cut short/],
  [
    'a header longer than the stream',
    Buffer.concat([MAGIC, VERSION, command(SNAPSHOT, 0).fill(0xff, 0, 4), command(END, 0)]),
    /cut short/,
  ],
  ['only the magic and the version', Buffer.concat([MAGIC, VERSION]), /cut short/],
  ['the version cut off', Buffer.concat([MAGIC, VERSION.subarray(0, 3)]), /no stream/],
  ['not a stream', Buffer.from('nothing'), /no stream/],
  ['nothing at all', Buffer.alloc(0), /no stream/],
  ['another magic', badMagic, /no stream/],
];

/** Fed in the given chunks: what the scan answers (its error's message where it raises one). */
function scanChunks(chunks: readonly Buffer[]): boolean | string {
  try {
    const scan = new SendStreamScan();
    for (const c of chunks) if (scan.push(c) === 'changed') return false;
    return scan.end();
  } catch (e) {
    return (e as Error).message;
  }
}

function expectOutcome(got: boolean | string, want: boolean | RegExp): void {
  if (typeof want === 'boolean') expect(got).toBe(want);
  else expect(got).toMatch(want);
}

describe('SendStreamScan (a btrfs send stream read as it comes)', () => {
  it.each(CASES)('%s: the same answer whole, split at every byte, and a byte at a time', (_what, s, want) => {
    expectOutcome(scanChunks([s]), want);
    for (let at = 0; at <= s.length; at += 1) expectOutcome(scanChunks([s.subarray(0, at), s.subarray(at)]), want);
    expectOutcome(scanChunks([...s].map((b) => Buffer.from([b]))), want);
    // The whole-buffer form (kept for callers holding a whole stream) agrees.
    if (typeof want === 'boolean') expect(sendStreamHasNoChange(s)).toBe(want);
    else expect(() => sendStreamHasNoChange(s)).toThrow(want);
  });

  it('answers "changed" as soon as the first changing command header is in, nothing after it needed', () => {
    const upTo = MAGIC.length + 4 + 10 + 40 + 10;
    const scan = new SendStreamScan();
    expect(scan.push(changed.subarray(0, upTo - 1))).toBe('more');
    expect(scan.push(changed.subarray(upTo - 1, upTo))).toBe('changed');
    // Anything fed after it changes nothing; the end says changed too.
    expect(scan.push(Buffer.from('garbage'))).toBe('changed');
    expect(scan.end()).toBe(false);
  });

  it('another magic is refused as soon as the magic and version are in', () => {
    const scan = new SendStreamScan();
    expect(scan.push(badMagic.subarray(0, 16))).toBe('more');
    expect(() => scan.push(badMagic.subarray(16, 17))).toThrow(/no stream/);
  });
});

/** A btrfs engine on a fake pool whose send writes `head`, then more only when `endless` is false. */
function engineWithSend(head: Buffer, endless: boolean): { engine: BtrfsEngine; calls: string[] } {
  const calls: string[] = [];
  const existing = new Set([`/pool/flocker/datasets/${ID}`, `/pool/flocker/snapshots/${ID}/move-000001`]);
  const exec: ExecFn = (file, args) => {
    calls.push([file, ...args].join(' '));
    if (args[0] === 'subvolume' && args[1] === 'snapshot') existing.add(args.at(-1) ?? '');
    if (args[0] === 'subvolume' && args[1] === 'delete') existing.delete(args.at(-1) ?? '');
    return Promise.resolve({ exitCode: 0, stdout: '', stderr: '' });
  };
  const spawn: SpawnFn = (file, args) => {
    calls.push(`spawn ${[file, ...args].join(' ')}`);
    const stdin = new PassThrough();
    const stdout = new PassThrough();
    let exited!: (killed: boolean) => void;
    const done = new Promise<void>((resolve, reject) => {
      exited = (killed) => (killed ? reject(new Error('killed by SIGKILL')) : resolve());
    });
    done.catch(() => undefined);
    stdout.write(head);
    if (!endless) {
      stdout.end();
      setImmediate(() => exited(false));
    }
    const p: StreamProcess = {
      stdin,
      stdout,
      done,
      kill: () => {
        calls.push('kill');
        stdout.destroy();
        // The send's exit comes a moment after the kill (the probe it sends is busy until then).
        setTimeout(() => {
          calls.push('exited');
          exited(true);
        }, 20);
      },
    };
    return p;
  };
  const fs: HostFs = {
    mkdirp: () => Promise.resolve(),
    exists: (p) => Promise.resolve(existing.has(p)),
    list: () => Promise.resolve([]),
    removeEmptyDir: () => Promise.resolve(),
    realpath: (p) => Promise.resolve(p),
  };
  return { engine: new BtrfsEngine({ pool: '/pool', exec, spawn, fs }), calls };
}

describe('btrfs changedSince reads the send only up to its first change', () => {
  const probe = `/pool/flocker/probes/${ID}`;

  it('a send still writing after its first change: answered "changed", the send killed, the probe deleted once it exited', async () => {
    const { engine, calls } = engineWithSend(changed.subarray(0, MAGIC.length + 4 + 10 + 40 + 10), true);
    expect(await engine.changedSince(ID, 'move-000001')).toBe(true);
    expect(calls.slice(-3)).toEqual(['kill', 'exited', `btrfs subvolume delete ${probe}`]);
  }, 5_000);

  it('a whole stream with no change: unchanged, nothing killed', async () => {
    const { engine, calls } = engineWithSend(whole, false);
    expect(await engine.changedSince(ID, 'move-000001')).toBe(false);
    expect(calls).not.toContain('kill');
    expect(calls.at(-1)).toBe(`btrfs subvolume delete ${probe}`);
  });

  it('another magic: an error (never an answer), the send killed and exited before the probe is deleted', async () => {
    const { engine, calls } = engineWithSend(badMagic, true);
    await expect(engine.changedSince(ID, 'move-000001')).rejects.toMatchObject({ code: 'TRANSFER_FAILED' });
    expect(calls.slice(-3)).toEqual(['kill', 'exited', `btrfs subvolume delete ${probe}`]);
  }, 5_000);

  it('a stream cut short by a send that exited 0: an error', async () => {
    const { engine } = engineWithSend(whole.subarray(0, whole.length - 1), false);
    await expect(engine.changedSince(ID, 'move-000001')).rejects.toThrow(/cut short/);
  });
});

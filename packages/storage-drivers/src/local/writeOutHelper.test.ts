import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { spawnProcess, type SpawnFn, type StreamProcess } from './processes';
import { WRITE_OUT_SCRIPT, WriteOutHelper } from './writeOutHelper';

const MiB = 1024 * 1024;

/** A fake helper: records what it was asked (its stdin), answers a write-out when told to. */
function fakeSpawn(): {
  spawn: SpawnFn;
  calls: string[];
  asked: () => number;
  answer: () => void;
  ended: () => boolean;
  stdinText: () => string;
} {
  const calls: string[] = [];
  const stdin = new PassThrough();
  const stdout = new PassThrough();
  let text = '';
  let ended = false;
  stdin.on('data', (d: Buffer) => (text += d.toString()));
  stdin.on('end', () => (ended = true));
  const spawn: SpawnFn = (file, args) => {
    calls.push([file, ...args].join(' '));
    const p: StreamProcess = { stdin, stdout, done: Promise.resolve(), kill: () => undefined };
    return p;
  };
  return {
    spawn,
    calls,
    asked: () => text.split('\n').length - 1,
    answer: () => stdout.write('\n'),
    ended: () => ended,
    stdinText: () => text,
  };
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('WriteOutHelper', () => {
  it('starts one helper per receive (no process per write-out) and asks every `every` bytes, one at a time', async () => {
    const f = fakeSpawn();
    const h = new WriteOutHelper(f.spawn, '/pool', 128 * MiB);
    expect(f.calls).toEqual([`sh -c ${WRITE_OUT_SCRIPT} /pool`]);
    for (let i = 0; i < 127; i++) h.received(MiB);
    await tick();
    expect(f.asked()).toBe(0);
    h.received(MiB);
    await tick();
    expect(f.asked()).toBe(1);
    // Running: another 256 MiB asks nothing more until it answers, then the next chunk asks at once.
    for (let i = 0; i < 256; i++) h.received(MiB);
    await tick();
    expect(f.asked()).toBe(1);
    f.answer();
    await tick();
    h.received(MiB);
    await tick();
    expect(f.asked()).toBe(2);
    // The count starts again after an ask.
    f.answer();
    await tick();
    h.received(MiB);
    await tick();
    expect(f.asked()).toBe(2);
    expect(f.calls).toHaveLength(1);
  });

  it('with a step of 0 asks nothing while the receive runs, only the one write-out at finish', async () => {
    const f = fakeSpawn();
    const h = new WriteOutHelper(f.spawn, '/pool', 0);
    for (let i = 0; i < 2048; i++) h.received(MiB);
    await tick();
    expect(f.asked()).toBe(0);
    h.finish();
    await tick();
    expect(f.stdinText()).toBe('\n');
    expect(f.ended()).toBe(true);
  });

  it('finish asks one more write-out and ends the helper; stop ends it without; both once', async () => {
    const f = fakeSpawn();
    const h = new WriteOutHelper(f.spawn, '/pool', 128 * MiB);
    h.finish();
    h.finish();
    h.received(512 * MiB);
    await tick();
    expect(f.stdinText()).toBe('\n');
    expect(f.ended()).toBe(true);
    const g = fakeSpawn();
    const s = new WriteOutHelper(g.spawn, '/pool', 128 * MiB);
    s.stop();
    s.finish();
    await tick();
    expect(g.stdinText()).toBe('');
    expect(g.ended()).toBe(true);
  });

  it('a helper that cannot start or dies only leaves the write-out undone (no throw, no unhandled rejection)', async () => {
    const dead: SpawnFn = () => {
      const stdin = new PassThrough();
      stdin.destroy(new Error('EPIPE'));
      const done = Promise.reject(new Error('cannot run sh'));
      return { stdin, stdout: new PassThrough(), done, kill: () => undefined };
    };
    const h = new WriteOutHelper(dead, '/pool', MiB);
    h.received(2 * MiB);
    h.finish();
    await tick();
  });

  it('the real script runs `btrfs filesystem sync <pool>` once per line, answers each, and exits at the end', async () => {
    // A stand-in btrfs on PATH that logs its argv (the script's own behaviour, not btrfs's).
    const dir = mkdtempSync(join(tmpdir(), 'flocker-writeout-'));
    const log = join(dir, 'log');
    writeFileSync(join(dir, 'btrfs'), `#!/bin/sh\necho "$@" >> ${log}\n`);
    chmodSync(join(dir, 'btrfs'), 0o755);
    try {
      const p = spawnProcess('env', [
        `PATH=${dir}:${process.env.PATH ?? ''}`,
        'sh',
        '-c',
        WRITE_OUT_SCRIPT,
        '/my pool',
      ]);
      const answers: string[] = [];
      p.stdout.on('data', (d: Buffer) => answers.push(d.toString()));
      p.stdin.write('\n');
      p.stdin.end('\n');
      await p.done;
      expect(answers.join('')).toBe('\n\n');
      expect(readFileSync(log, 'utf8')).toBe('filesystem sync /my pool\nfilesystem sync /my pool\n');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/**
 * PoolLock.withLock's `whileWaiting` (issue 23, session 16): the loopback driver makes an attach's or a detach's record
 * temp there, once the lock's request is out, instead of before sending it. Called at most once, after the request
 * went out and before `fn`; its failure changes nothing about the lock. With the helper and with flock(1).
 */
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PoolLock } from './PoolLock';

jest.setTimeout(30_000);

let root: string;
beforeEach(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'flocker-poollock-'));
});
afterEach(async () => {
  await fs.rm(root, { recursive: true, force: true });
});

describe.each(['helper', 'flock'] as const)('PoolLock whileWaiting (%s)', (mode) => {
  it('runs while another holder still has the lock, once, and before fn', async () => {
    const file = path.join(root, 'pool.lock');
    const holder = new PoolLock(file, { mode });
    const waiter = new PoolLock(file, { mode });
    const events: string[] = [];
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    let holding!: () => void;
    const taken = new Promise<void>((r) => (holding = r));
    const first = holder.withLock(async () => {
      holding();
      await held;
      events.push('holder releases');
    });
    await taken;
    let sawWaiting!: () => void;
    const waiting = new Promise<void>((r) => (sawWaiting = r));
    const second = waiter.withLock(
      async () => void events.push('fn'),
      () => {
        events.push('whileWaiting');
        sawWaiting();
      },
    );
    await waiting; // called although the holder has not let go
    release();
    await Promise.all([first, second]);
    expect(events).toEqual(['whileWaiting', 'holder releases', 'fn']);
  });

  it('a whileWaiting that throws leaves the lock working: fn runs, and the lock is free after', async () => {
    const file = path.join(root, 'pool.lock');
    const a = new PoolLock(file, { mode });
    const b = new PoolLock(file, { mode });
    const ran: string[] = [];
    await a.withLock(
      async () => void ran.push('a'),
      () => {
        throw new Error('beside the request');
      },
    );
    await b.withLock(async () => void ran.push('b'));
    await a.withLock(async () => void ran.push('a again'));
    expect(ran).toEqual(['a', 'b', 'a again']);
  });
});

/**
 * A stand-in for flocker-syshelper's lock protocol (no real flock) that, at end of input, answers what was sent and then
 * takes `exitMs` to exit (a loaded host); it keeps a file named after its pid in `dir` while it runs.
 */
const slowExitHelper = (dir: string, exitMs: number): string => `
use strict;
$| = 1;
my $mark = "${dir}/alive." . $$;
open(my $fh, '>', $mark) or die;
close($fh);
while (my $l = <STDIN>) {
  chomp $l;
  print($l =~ /^lock/ ? "locked\\n" : $l eq 'unlock' ? "unlocked\\n" : "unknown\\n");
}
select(undef, undef, undef, ${exitMs / 1000});
unlink($mark);
`;

describe('PoolLock.close (review s27 F11)', () => {
  it('a withLock called right after close() runs once the old helper has exited: one helper per lock at a time', async () => {
    const script = path.join(root, 'slow-exit-helper.pl');
    await fs.writeFile(script, slowExitHelper(root, 800));
    const lock = new PoolLock(path.join(root, 'pool.lock'), { syshelper: { script } });
    const alive = async () => (await fs.readdir(root)).filter((f) => f.startsWith('alive.'));
    await lock.withLock(async () => undefined);
    expect(await alive()).toHaveLength(1);
    const closing = lock.close();
    let during: string[] = [];
    await lock.withLock(async () => {
      during = await alive();
    });
    await closing;
    // Before: the new helper took the lock while the old one was still exiting (two helpers, the old one's flock not
    // yet dropped by the kernel).
    expect(during).toHaveLength(1);
    await lock.close();
    expect(await alive()).toEqual([]);
  });
});

/**
 * Session 15 (user U's reproduction 3): a dataset deleted while its move runs. The agent stops the
 * move (LocalMoveOptions.stop, given in `signal` too): at once, a send under way too (its stream
 * aborted, as a kill of the send process: the target discards the partial receive), nothing promoted,
 * nothing retired (both nodes then destroy what they hold).
 * Review RT2 (session 15), finding 4 (failed on d6b918d): a stop (the dataset deleted) that comes while the
 * mover awaits something between its loop's aborted check and the send (released(): the agent's inUse
 * reads every mount namespace; or the first round's listDatasets) does not abort that send: sendOne adds
 * its 'abort' listener to a signal already aborted, which never fires again (7e28133's fix). The move then
 * waits for the whole send (a large full send) before it sees the stop.
 */
import { PassThrough } from 'node:stream';
import type { LocalEngine, SendStream } from './engine';
import { moveLocalDataset } from './LocalMover';
import { MOVE_ID as ID, memoryEngine, recordingTarget } from './moverTestSupport';
import type { StatusAnswer, TargetApi } from './transfer';

/** A source whose sends never end by themselves (a large full send): only abort() ends them, with an error. */
/** Waits for something the test started to happen (a fixed sleep fails on a loaded host). */
async function eventually(check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

function source(): LocalEngine & { aborted: number; retired: boolean; sends: SendStream[] } {
  const e = {
    ...memoryEngine(),
    aborted: 0,
    retired: false,
    sends: [] as SendStream[],
    retire: () => {
      e.retired = true;
      return Promise.resolve();
    },
    send: (): SendStream => {
      const stream = new PassThrough();
      stream.write(Buffer.alloc(1024));
      let fail: (e: Error) => void = () => undefined;
      const done = new Promise<void>((_resolve, reject) => (fail = reject));
      done.catch(() => undefined);
      const sent: SendStream = {
        stream,
        done,
        abort: () => {
          e.aborted += 1;
          const error = new Error('send killed');
          stream.destroy(error);
          fail(error);
        },
      };
      e.sends.push(sent);
      return sent;
    },
  };
  return e;
}

/** A target reading a send until its stream ends or fails (a receive under way). */
function target(onReceive: () => void): TargetApi & { promoted: string[] } {
  return {
    ...recordingTarget(),
    status: (): Promise<StatusAnswer> =>
      Promise.resolve({ ok: true as const, snapshots: [], live: { exists: false, mountPoints: [], parent: null } }),
    receive: (_r: unknown, send: SendStream) =>
      new Promise<number>((resolve, reject) => {
        onReceive();
        send.stream.on('error', reject);
        send.stream.on('end', () => reject(new Error('stream cut short')));
        send.stream.resume();
        void resolve;
      }),
  };
}

describe('a move stopped (its dataset deleted)', () => {
  it('during a send: the send is aborted at once and the move ends; nothing promoted or retired', async () => {
    const a = source();
    const stop = new AbortController();
    const b = target(() => setTimeout(() => stop.abort(), 20));
    const started = performance.now();
    await expect(
      moveLocalDataset({ engine: a, target: b, datasetId: ID, size: 1000, signal: stop.signal, stop: stop.signal }),
    ).rejects.toThrow();
    expect(performance.now() - started).toBeLessThan(2_000);
    expect(a.aborted).toBeGreaterThanOrEqual(1);
    expect(b.promoted).toEqual([]);
    expect(a.retired).toBe(false);
  });

  it('without stop (the agent stopping: signal only), a send under way is left to end by itself', async () => {
    const a = source();
    const signal = new AbortController();
    let receiving = 0;
    const b = target(() => {
      receiving += 1;
      signal.abort();
    });
    const move = moveLocalDataset({ engine: a, target: b, datasetId: ID, size: 1000, signal: signal.signal });
    const ended = move.then(
      () => 'done',
      () => 'failed',
    );
    await eventually(() => receiving > 0);
    // The signal is aborted now: give a wrong abort of the send time to happen (a check that nothing happens).
    await new Promise((r) => setTimeout(r, 100));
    expect(receiving).toBe(1);
    expect(a.aborted).toBe(0);
    // The send ends by itself (here: with an error): the move then ends on the aborted signal, nothing retried.
    a.sends[0]?.abort();
    expect(await ended).toBe('failed');
    expect(receiving).toBe(1);
  });
});

describe('review RT2: a move stopped just before its send starts', () => {
  it('the stop during released() (before the send): the send is aborted at once, the move ends', async () => {
    const a = source();
    const stop = new AbortController();
    const b = target(() => undefined);
    let snapshotsTaken = 0;
    const createSnapshot = a.createSnapshot.bind(a);
    a.createSnapshot = (id: string, name: string) => {
      snapshotsTaken += 1;
      return createSnapshot(id, name);
    };
    const move = moveLocalDataset({
      engine: a,
      target: b,
      datasetId: ID,
      size: 1000,
      signal: stop.signal,
      stop: stop.signal,
      // The delete's stop arrives while the mover looks for the release (once a snapshot is there to send).
      released: () => {
        if (snapshotsTaken > 0) stop.abort();
        return Promise.resolve(false);
      },
    });
    const ended = move.then(
      () => 'done',
      () => 'failed',
    );
    const timeout = new Promise<string>((r) => setTimeout(() => r('still sending'), 2_000).unref());
    const outcome = await Promise.race([ended, timeout]);
    for (const s of a.sends) s.abort();
    await ended;
    expect(outcome).toBe('failed');
    expect(b.promoted).toEqual([]);
    expect(a.retired).toBe(false);
  });
});

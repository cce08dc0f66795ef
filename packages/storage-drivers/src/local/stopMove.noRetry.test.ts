/**
 * Session 26 (CI of 0638b82, e2e local-failover-return 'deleted while its move waits in phase 2'): a
 * move stopped (its dataset deleted) ends at once without a "move step failed; resuming" warning or a
 * retry. Before, the stop's abort of the wait for the release (or of a send) was caught as a failed
 * step: counted, told to onRetry, logged at warn as resumed, and the move ended only when the back-off's
 * sleep refused the aborted signal, with a bare AbortError ("This operation was aborted").
 */
import { PassThrough } from 'node:stream';
import winston from 'winston';
import type { LocalEngine, SendStream } from './engine';
import { moveLocalDataset } from './LocalMover';
import { MOVE_ID as ID, memoryEngine, recordingTarget } from './moverTestSupport';

/** A logger keeping every entry (level, message) in memory. */
function memoryLogger(): { logger: winston.Logger; entries: Array<{ level: string; message: string }> } {
  const entries: Array<{ level: string; message: string }> = [];
  const keep = winston.format((info) => {
    entries.push({ level: info.level, message: String(info.message) });
    return false;
  });
  return {
    logger: winston.createLogger({ level: 'debug', format: keep(), transports: [new winston.transports.Console()] }),
    entries,
  };
}

/** Waits for something the test started to happen (a fixed sleep fails on a loaded host). */
async function eventually(check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A source whose sends after the first never end by themselves (only abort() ends them, with an error). */
function source(): LocalEngine & { sends: number } {
  const base = memoryEngine();
  const e = {
    ...base,
    sends: 0,
    send: (...args: Parameters<LocalEngine['send']>): SendStream => {
      e.sends += 1;
      if (e.sends === 1) return base.send(...args);
      const stream = new PassThrough();
      stream.write(Buffer.alloc(1024));
      let fail: (err: Error) => void = () => undefined;
      const done = new Promise<void>((_resolve, reject) => (fail = reject));
      done.catch(() => undefined);
      return {
        stream,
        done,
        abort: () => {
          const error = new Error('send killed');
          stream.destroy(error);
          fail(error);
        },
      };
    },
  };
  return e;
}

describe('a move stopped (its dataset deleted) ends at once, not as a failed step', () => {
  it.each([
    ['while it waits for the release (phase 2)', 'waitingForRelease'],
    ['during a catch-up send while it waits', 'send'],
  ] as const)('%s: no retry, no warning, no send after the stop', async (_what, at) => {
    const a = source();
    const b = recordingTarget();
    const receive = b.receive.bind(b);
    let receiving = 0;
    b.receive = (r, send) => {
      receiving += 1;
      // The second send (a catch-up round) never ends by itself: read until cut.
      if (receiving === 1) return receive(r, send);
      return new Promise<number>((_resolve, reject) => {
        send.stream.on('error', reject);
        send.stream.on('end', () => reject(new Error('stream cut short')));
        send.stream.resume();
      });
    };
    const stop = new AbortController();
    const { logger, entries } = memoryLogger();
    const retries: string[] = [];
    const phases: string[] = [];
    const move = moveLocalDataset({
      engine: a,
      target: b,
      datasetId: ID,
      size: 1000,
      signal: stop.signal,
      stop: stop.signal,
      // The writer never lets go (phase 2 waits); a catch-up round only in the 'send' case.
      released: () => Promise.resolve(false),
      catchUpMs: at === 'send' ? 0 : 600_000,
      releasePollMs: 20,
      logger,
      onRetry: (error) => retries.push(error),
      onProgress: (p) => phases.push(p.phase),
    });
    const ended = move.then(
      () => undefined,
      (e: unknown) => e,
    );
    if (at === 'waitingForRelease') await eventually(() => phases.includes('waitingForRelease'));
    else await eventually(() => receiving === 2);
    const sendsAtStop = a.sends;
    stop.abort();
    const outcome = await ended;
    expect(retries).toEqual([]);
    expect(entries.filter((e) => e.level === 'warn' || e.level === 'error')).toEqual([]);
    expect(outcome).toMatchObject({ code: 'TRANSFER_FAILED', message: 'the move was stopped' });
    expect(a.sends).toBe(sendsAtStop);
    expect(b.promoted).toEqual([]);
  });
});

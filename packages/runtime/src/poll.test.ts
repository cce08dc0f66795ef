import { ManualClock } from './testing';
import { pollUntil, PollTimeoutError } from './poll';

/** A clock whose sleeps pass at once (and are recorded): polls run to their end without waiting. */
function instantClock() {
  const clock = new ManualClock(0);
  const sleeps: number[] = [];
  clock.sleep = async (ms: number) => {
    sleeps.push(ms);
    await clock.advance(ms);
  };
  return { clock, sleeps };
}

describe('pollUntil', () => {
  it('checks until a value, pausing with the backoff between checks', async () => {
    const { clock, sleeps } = instantClock();
    let n = 0;
    const got = await pollUntil(() => (++n === 4 ? 'done' : undefined), {
      timeoutMs: 10_000,
      backoff: { initialMs: 10, maxMs: 1000, jitter: true },
      random: () => 0.999,
      clock,
    });
    expect(got).toBe('done');
    expect(sleeps).toEqual([10, 20, 40]);
  });

  it('pauses a fixed interval when given one', async () => {
    const { clock, sleeps } = instantClock();
    let n = 0;
    await pollUntil(async (attempt) => (attempt === 3 ? ++n : undefined), {
      timeoutMs: 10_000,
      intervalMs: 500,
      clock,
    });
    expect(sleeps).toEqual([500, 500, 500]);
  });

  it('never sleeps past the deadline, checks once more there, then times out (PollTimeoutError or onTimeout)', async () => {
    const { clock, sleeps } = instantClock();
    let checks = 0;
    const never = () => {
      checks++;
      return undefined;
    };
    await expect(
      pollUntil(never, {
        timeoutMs: 200,
        backoff: { initialMs: 10, maxMs: 50, jitter: true },
        random: () => 0.999,
        clock,
      }),
    ).rejects.toBeInstanceOf(PollTimeoutError);
    expect(sleeps.reduce((a, b) => a + b, 0)).toBe(200);
    expect(checks).toBe(sleeps.length + 1);
    expect(await pollUntil(never, { timeoutMs: 200, intervalMs: 30, clock, onTimeout: () => 'gave up' })).toBe(
      'gave up',
    );
    await expect(
      pollUntil(never, {
        timeoutMs: 0,
        intervalMs: 30,
        clock,
        onTimeout: () => {
          throw new Error('my own timeout');
        },
      }),
    ).rejects.toThrow('my own timeout');
  });

  it('ends with the error a check throws', async () => {
    const { clock } = instantClock();
    await expect(
      pollUntil(
        () => {
          throw new Error('gone');
        },
        { timeoutMs: 1000, intervalMs: 10, clock },
      ),
    ).rejects.toThrow('gone');
  });

  it('stops when the signal aborts, cancelling its pause', async () => {
    const clock = new ManualClock(0);
    const abort = new AbortController();
    const polling = pollUntil(() => undefined, { timeoutMs: 60_000, intervalMs: 1000, clock, signal: abort.signal });
    await clock.advance(2500);
    expect(clock.pending).toBe(1);
    abort.abort(new Error('shutting down'));
    await expect(polling).rejects.toThrow('shutting down');
    expect(clock.pending).toBe(0);
  });
});

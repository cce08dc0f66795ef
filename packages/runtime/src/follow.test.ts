import { errorMessage } from './errors';
import { followLongPoll, type FollowLongPollOptions } from './follow';
import { ManualClock, settle } from './testing';

interface Snap {
  readonly generation: string;
}

/** A scripted control service: each poll takes the next answer (a snapshot, an error, or 'hold' until release()). */
function scripted(clock: ManualClock) {
  const asked: Array<[string | undefined, number]> = [];
  const answers: Array<Snap | Error> = [];
  let holding: ((s: Snap) => void) | undefined;
  const wait = async (since: string | undefined, timeoutMs: number): Promise<Snap> => {
    asked.push([since, timeoutMs]);
    const next = answers.shift();
    if (next === undefined) return new Promise<Snap>((resolve) => (holding = resolve));
    await clock.sleep(1); // the network
    if (next instanceof Error) throw next;
    return next;
  };
  return {
    asked,
    answers,
    wait,
    release(s: Snap) {
      holding?.(s);
      holding = undefined;
    },
  };
}

function follow(
  clock: ManualClock,
  server: ReturnType<typeof scripted>,
  extra: Partial<FollowLongPollOptions<Snap>> = {},
) {
  const abort = new AbortController();
  const seen: Array<[string, string | undefined]> = [];
  const errors: Array<[string, number]> = [];
  const done = followLongPoll<Snap>({
    wait: server.wait,
    waitMs: 25_000,
    onSnapshot: (s, { since }) => void seen.push([s.generation, since]),
    onError: (e, failures) => void errors.push([errorMessage(e), failures]),
    backoff: { initialMs: 100, maxMs: 400, jitter: false },
    clock,
    signal: abort.signal,
    ...extra,
  });
  return { abort, seen, errors, done };
}

const g = (generation: string): Snap => ({ generation });

describe('followLongPoll', () => {
  it('starts with a fresh read, then asks from the last generation seen; every answer reaches onSnapshot', async () => {
    const clock = new ManualClock(0);
    const server = scripted(clock);
    server.answers.push(g('1'), g('2'), g('3'));
    const f = follow(clock, server);
    await clock.advance(10);
    expect(server.asked).toEqual([
      [undefined, 0],
      ['1', 25_000],
      ['2', 25_000],
      ['3', 25_000],
    ]);
    expect(f.seen).toEqual([
      ['1', undefined],
      ['2', '1'],
      ['3', '2'],
    ]);
    f.abort.abort();
    server.release(g('4'));
    await f.done;
    expect(f.seen).toHaveLength(3); // nothing after the abort
  });

  it('backs off on failures in a row, reads fresh after each, and starts the backoff over after an answer', async () => {
    const clock = new ManualClock(0);
    const server = scripted(clock);
    server.answers.push(g('1'), new Error('down'), new Error('down'), new Error('down'), g('1'), new Error('down'));
    const f = follow(clock, server);
    await clock.advance(1 + 1 + 100 + 1 + 200 + 1 + 400 + 1 + 1 + 100);
    expect(f.errors).toEqual([
      ['down', 1],
      ['down', 2],
      ['down', 3],
      ['down', 1],
    ]);
    expect(server.asked.map(([since]) => since)).toEqual([
      undefined,
      '1',
      undefined,
      undefined,
      undefined,
      '1',
      undefined,
    ]);
    expect(f.seen).toEqual([
      ['1', undefined],
      ['1', undefined],
    ]);
    f.abort.abort();
    server.release(g('2'));
    await f.done;
  });

  it('stops during a backoff pause at once, cancelling its timer', async () => {
    const clock = new ManualClock(0);
    const server = scripted(clock);
    server.answers.push(new Error('down'));
    const f = follow(clock, server, { backoff: { initialMs: 60_000, maxMs: 60_000, jitter: false } });
    await clock.advance(10);
    expect(clock.pending).toBe(1);
    f.abort.abort();
    await f.done;
    expect(clock.pending).toBe(0);
  });

  it('pauses instead of spinning when the server answers an unchanged generation at once', async () => {
    const clock = new ManualClock(0);
    let polls = 0;
    const f = follow(clock, scripted(clock), {
      wait: async () => {
        polls++;
        await clock.sleep(1);
        return g('same');
      },
      spinPauseMs: 100,
    });
    await clock.advance(1000);
    expect(polls).toBeGreaterThanOrEqual(9);
    expect(polls).toBeLessThanOrEqual(11);
    f.abort.abort();
    await f.done;
  });

  it('asks waitMs before each poll; a throwing onSnapshot counts as a failure', async () => {
    const clock = new ManualClock(0);
    const server = scripted(clock);
    server.answers.push(g('1'), g('2'), g('3'));
    let next = 5_000;
    const f = follow(clock, server, {
      waitMs: () => next,
      onSnapshot: (s) => {
        if (s.generation === '2') throw new Error('turn failed');
        next = 1_000;
      },
    });
    await clock.advance(1 + 1 + 100 + 1);
    expect(server.asked).toEqual([
      [undefined, 0],
      ['1', 1_000],
      [undefined, 0],
      ['3', 1_000],
    ]);
    expect(f.errors).toEqual([['turn failed', 1]]);
    f.abort.abort();
    server.release(g('4'));
    await f.done;
    await settle();
  });
});

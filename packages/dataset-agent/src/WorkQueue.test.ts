import { WorkQueue } from './WorkQueue';

/** A worker per dataset that ends when the test says so. */
function harness(limit: number) {
  const started: Array<[string, string | undefined]> = [];
  const finish = new Map<string, () => void>();
  let stopping = false;
  let done = 0;
  const q = new WorkQueue<string>(
    limit,
    (id, arg) => {
      started.push([id, arg]);
      return new Promise<void>((resolve) => finish.set(id, resolve));
    },
    () => !stopping,
    () => done++,
  );
  const end = async (id: string): Promise<void> => {
    finish.get(id)!();
    await new Promise((r) => setImmediate(r));
  };
  return { q, started, end, stop: () => (stopping = true), done: () => done };
}

describe('WorkQueue', () => {
  it('runs at most `limit` at once, in the order added, handing the pump argument to those it starts', async () => {
    const { q, started, end, done } = harness(2);
    for (const id of ['a', 'b', 'c']) q.add(id);
    q.pump('fresh');
    expect(started).toEqual([
      ['a', 'fresh'],
      ['b', 'fresh'],
    ]);
    expect(q.hasRoom()).toBe(false);
    await end('a');
    // The next one starts without the (by now stale) argument.
    expect(started[2]).toEqual(['c', undefined]);
    expect(done()).toBe(1);
    await end('b');
    await end('c');
    expect(q.idle).toBe(true);
  });

  it('never runs one dataset twice at once; adding a running one does not queue it', async () => {
    const { q, started, end } = harness(4);
    q.add('a');
    q.pump();
    q.add('a');
    q.pump();
    expect(started).toEqual([['a', undefined]]);
    expect(q.isWaiting('a')).toBe(false);
    await end('a');
    expect(q.idle).toBe(true);
  });

  it('starts nothing once stopping, and settles when the running ones end', async () => {
    const { q, started, end, stop } = harness(1);
    q.add('a');
    q.add('b');
    q.pump();
    stop();
    const settled = q.settled();
    await end('a');
    await settled;
    expect(started.map(([id]) => id)).toEqual(['a']);
    q.clearWaiting();
    expect(q.idle).toBe(true);
  });
});

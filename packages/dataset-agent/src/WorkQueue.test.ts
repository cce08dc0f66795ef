import { WorkQueue } from './WorkQueue';

/** A worker per dataset that ends when the test says so. */
function harness(limit: number, again?: (id: string) => boolean) {
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
    again,
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

  it('runs a dataset marked dirty while it ran again once its worker ends, in the place it frees, before the waiting ones', async () => {
    const { q, started, end, done } = harness(1);
    q.add('a');
    q.pump('fresh');
    q.add('b');
    q.markDirty('a');
    // Marked twice: still one more run.
    q.markDirty('a');
    await end('a');
    expect(started).toEqual([
      ['a', 'fresh'],
      ['a', undefined],
    ]);
    expect(q.isWaiting('b')).toBe(true);
    expect(done()).toBe(1);
    await end('a');
    expect(started.map(([id]) => id)).toEqual(['a', 'a', 'b']);
    await end('b');
    expect(q.idle).toBe(true);
  });

  it('marks nothing for a dataset not running, and does not run a dirty one again when `again` refuses', async () => {
    const asked: string[] = [];
    const { q, started, end } = harness(2, (id) => (asked.push(id), id !== 'b'));
    q.markDirty('a');
    q.add('a');
    q.add('b');
    q.pump();
    q.markDirty('b');
    await end('a');
    await end('b');
    expect(asked).toEqual(['b']);
    expect(started.map(([id]) => id)).toEqual(['a', 'b']);
    expect(q.idle).toBe(true);
  });

  it('forgets dirty marks with the waiting ones, and runs nothing again once stopping', async () => {
    const { q, started, end, stop } = harness(2);
    q.add('a');
    q.add('b');
    q.pump();
    q.markDirty('a');
    q.markDirty('b');
    q.clearWaiting();
    await end('a');
    q.markDirty('b');
    stop();
    await end('b');
    expect(started.map(([id]) => id)).toEqual(['a', 'b']);
    expect(q.idle).toBe(true);
  });
});

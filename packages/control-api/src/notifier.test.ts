/** ChangeNotifier's standing subscriptions (the streaming watch, issue 23). */
import { ChangeNotifier } from './notifier';

const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('ChangeNotifier.subscribe', () => {
  /** Views changed since a `since` below `changedAt[node]`; generations are plain counters here. */
  function setup() {
    let generation = 1;
    const changedAt = new Map<string, number>();
    const notifier = new ChangeNotifier(
      () => String(generation),
      (node, since) => (changedAt.get(node) ?? 0) > Number(since),
    );
    const change = (node: string): void => {
      generation++;
      changedAt.set(node, generation);
      notifier.notify([node]);
    };
    return { notifier, change, gen: () => String(generation) };
  }

  it('wakes at every change of its node view after its since, not for other nodes, until cancelled', async () => {
    const { notifier, change, gen } = setup();
    const woken: boolean[] = [];
    const sub = notifier.subscribe('a', gen(), (closing) => woken.push(closing));
    change('b');
    await turn();
    expect(woken).toEqual([]);
    change('a');
    await turn();
    expect(woken).toEqual([false]);
    sub.since = gen();
    change('a');
    await turn();
    expect(woken).toEqual([false, false]);
    expect(notifier.waiting).toBe(1);
    sub.cancel();
    expect(notifier.waiting).toBe(0);
    change('a');
    await turn();
    expect(woken).toHaveLength(2);
  });

  it('is not woken again for a since it already moved past', async () => {
    const { notifier, change, gen } = setup();
    let woken = 0;
    const sub = notifier.subscribe('a', gen(), () => woken++);
    change('a');
    sub.since = gen();
    await turn();
    expect(woken).toBe(0);
    sub.cancel();
  });

  it('says closing when the notifier closes, and a subscription made after is told at once', async () => {
    const { notifier, gen } = setup();
    const woken: boolean[] = [];
    notifier.subscribe('a', gen(), (closing) => woken.push(closing));
    notifier.close();
    expect(woken).toEqual([true]);
    notifier.subscribe('a', gen(), (closing) => woken.push(closing));
    await turn();
    expect(woken).toEqual([true, true]);
  });
});

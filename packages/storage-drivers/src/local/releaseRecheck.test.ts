/**
 * Review U2 (session 16), finding 1: a move's release was seen once while a container still had the
 * volume mounted (one scan of the mount namespaces that missed the container's: see
 * namespaceMounts.test), and from then on the mover never looked again: the final snapshot was
 * sent and promoted on the target while the container went on writing into the source's copy (two
 * writers; its writes after that snapshot lost). The release is looked at again, fresh, right
 * before the first promote: still in use, the snapshot is not final and the move copies on.
 */
import { moveTestDataset } from './moveCallTestSupport';
import { memoryEngine as source, recordingTarget as target } from './moverTestSupport';

describe('a move looks at the release again right before its promote', () => {
  it('a release seen once while a container still writes (a scan that missed it): nothing promoted until it stops', async () => {
    const a = source();
    const b = target();
    let containerStopped = false;
    let promotedWhileWriting = false;
    let calls = 0;
    const move = moveTestDataset({
      engine: a,
      target: b,
      releasePollMs: 5,
      catchUpMs: 20,
      // The third look misses the container's mount; every other one sees it until it stops.
      released: () => Promise.resolve(containerStopped || ++calls === 3),
      afterPromote: () => {
        if (!containerStopped) promotedWhileWriting = true;
        return Promise.resolve();
      },
    });
    await new Promise((r) => setTimeout(r, 300));
    expect(b.promoted).toEqual([]);
    containerStopped = true;
    const result = await move;
    expect(promotedWhileWriting).toBe(false);
    expect(b.promoted).toEqual([result.finalSnapshot]);
    // The final snapshot is one taken after the container stopped, not the one taken on the missed look.
    expect(result.finalSnapshot).not.toBe(b.received[0]?.name);
  });

  it('released and still released at the promote: one promote, no extra round', async () => {
    const a = source();
    const b = target();
    let looks = 0;
    const result = await moveTestDataset({
      engine: a,
      target: b,
      released: () => {
        looks += 1;
        return Promise.resolve(true);
      },
    });
    expect(b.promoted).toEqual([result.finalSnapshot]);
    expect(b.received.map((s) => s.name)).toEqual([result.finalSnapshot]);
    expect(looks).toBe(2); // the first look, and the one before the promote
  });
});

describe('the look before the promote runs beside the final send', () => {
  it('started once the final send starts; a look that failed is taken again, fresh, before the promote', async () => {
    const a = source();
    const b = target();
    const order: string[] = [];
    let looks = 0;
    const receive = b.receive.bind(b);
    b.receive = async (r, send) => {
      order.push(`receive ${r.name}`);
      const n = await receive(r, send);
      order.push(`received ${r.name}`);
      return n;
    };
    const result = await moveTestDataset({
      engine: a,
      target: b,
      backoffInitialMs: 1,
      released: () => {
        looks += 1;
        order.push(`look ${looks}`);
        // The look beside the final send fails (a scan error): never taken for released.
        return looks === 2 ? Promise.reject(new Error('EMFILE')) : Promise.resolve(true);
      },
    });
    expect(b.promoted).toEqual([result.finalSnapshot]);
    expect(order.slice(0, 3)).toEqual(['look 1', 'look 2', `receive ${result.finalSnapshot}`]);
    expect(looks).toBe(3);
  });
});

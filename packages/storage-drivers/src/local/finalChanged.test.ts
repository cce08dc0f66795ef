/**
 * Review RV 2 (session 16): right before its first promote a move asks the engine whether the
 * source's copy changed since the final snapshot, besides the look at the release (which answers
 * "in use now" and misses a writer it cannot see that wrote after the snapshot and then ended).
 * Changed: the snapshot is not final, the move copies on (a new final snapshot, sent incrementally).
 * Real engines on real pools: finalChanged.btrfs.test.ts; the engines' answers: contract.ts.
 */
import { moveLocalDataset, SourceChangedAfterPromoteError } from './LocalMover';
import { moveTestDataset } from './moveCallTestSupport';
import { memoryEngine, recordingTarget } from './moverTestSupport';

function engineAnswering(answer: (name: string, call: number) => Promise<boolean | null>) {
  const asked: string[] = [];
  const engine = memoryEngine();
  engine.changedSince = (_id, name) => {
    asked.push(name);
    return answer(name, asked.length);
  };
  // As the real engines' retire (RV4 finding 1): the check inside it, right before the delete.
  const retiredUnchanged: string[] = [];
  engine.retire = async (id, o) => {
    if (o?.unchangedSince === undefined) throw new Error('a move retires its source only checked');
    if ((await engine.changedSince?.(id, o.unchangedSince)) === true)
      throw new SourceChangedAfterPromoteError(`changed since ${o.unchangedSince}`);
    retiredUnchanged.push(o.unchangedSince);
  };
  return { engine, asked, retiredUnchanged };
}

describe('a move promotes only a final snapshot the source has not changed since', () => {
  it('changed since the final snapshot (a writer the look missed, gone): a new final snapshot, sent from the first, promoted', async () => {
    const { engine, asked } = engineAnswering((_n, call) => Promise.resolve(call === 1));
    const b = recordingTarget();
    const sent: Array<{ name: string; parent: string | null }> = [];
    const result = await moveTestDataset({
      engine,
      target: b,
      released: () => Promise.resolve(true),
      onSent: (s) => sent.push({ name: s.name, parent: s.parent }),
    });
    // The last: before the source's copy is retired (after the promote).
    expect(asked).toEqual(['move-000001', 'move-000002', 'move-000002']);
    expect(sent).toEqual([
      { name: 'move-000001', parent: null },
      { name: 'move-000002', parent: 'move-000001' },
    ]);
    expect(b.promoted).toEqual(['move-000002']);
    expect(result.finalSnapshot).toBe('move-000002');
  });

  it('unchanged: asked once, after the look at the release, right before the one promote', async () => {
    const order: string[] = [];
    const { engine } = engineAnswering((name) => {
      order.push(`changedSince ${name}`);
      return Promise.resolve(false);
    });
    const b = recordingTarget();
    const promote = b.promote.bind(b);
    b.promote = (id, name, size, mount) => {
      order.push(`promote ${name}`);
      return promote(id, name, size, mount);
    };
    let looks = 0;
    await moveTestDataset({
      engine,
      target: b,
      released: () => {
        order.push(`look ${++looks}`);
        return Promise.resolve(true);
      },
    });
    expect(order).toEqual([
      'look 1',
      'look 2',
      'changedSince move-000001',
      'promote move-000001',
      // Again before the source's copy is retired.
      'changedSince move-000001',
    ]);
    expect(b.received.map((s) => s.name)).toEqual(['move-000001']);
  });

  it('in use again at the look: not asked (phase 1 again), asked once released again', async () => {
    const { engine, asked } = engineAnswering(() => Promise.resolve(false));
    const b = recordingTarget();
    let looks = 0;
    const result = await moveTestDataset({
      engine,
      target: b,
      releasePollMs: 1,
      // The look beside the first final send sees a mount again.
      released: () => Promise.resolve(++looks !== 2),
    });
    expect(asked).toEqual([result.finalSnapshot, result.finalSnapshot]);
    expect(result.finalSnapshot).not.toBe('move-000001');
    expect(b.promoted).toEqual([result.finalSnapshot]);
  });

  it('an engine that cannot tell (null), or has no such call: promoted on the release alone, with a warning', async () => {
    for (const changedSince of [() => Promise.resolve(null), undefined]) {
      const engine = memoryEngine();
      if (changedSince !== undefined) engine.changedSince = changedSince;
      const b = recordingTarget();
      const warnings: string[] = [];
      const logger = {
        warn: (m: string) => warnings.push(m),
        info: () => undefined,
        debug: () => undefined,
      } as unknown as NonNullable<Parameters<typeof moveLocalDataset>[0]['logger']>;
      const result = await moveTestDataset({
        engine,
        target: b,
        logger,
        released: () => Promise.resolve(true),
      });
      expect(b.promoted).toEqual([result.finalSnapshot]);
      expect(warnings).toEqual([expect.stringMatching(/cannot tell whether the source changed/)]);
    }
  });

  it('a failed answer is never taken for unchanged: retried, the release and the change looked at afresh', async () => {
    const { engine, asked } = engineAnswering((_n, call) =>
      call === 1 ? Promise.reject(new Error('btrfs filesystem sync: EIO')) : Promise.resolve(false),
    );
    const b = recordingTarget();
    let looks = 0;
    await moveTestDataset({
      engine,
      target: b,
      backoffInitialMs: 1,
      released: () => {
        looks += 1;
        return Promise.resolve(true);
      },
    });
    expect(asked).toEqual(['move-000001', 'move-000001', 'move-000001']);
    expect(looks).toBe(3); // the first look, the one beside the final send, and a fresh one after the failure
    expect(b.promoted).toEqual(['move-000001']);
  });

  it('nothing is kept across a restart: a new run (the agent killed before its promote) takes a new final snapshot and asks again', async () => {
    const stop = new AbortController();
    const { engine, asked } = engineAnswering((_n, call) => {
      if (call === 1) {
        // The agent killed while it asks (kill -9): this run ends, nothing promoted.
        stop.abort();
        return Promise.reject(new Error('killed'));
      }
      return Promise.resolve(false);
    });
    const b = recordingTarget();
    const released = () => Promise.resolve(true);
    await expect(moveTestDataset({ engine, target: b, released, signal: stop.signal })).rejects.toThrow();
    expect(b.promoted).toEqual([]);
    const result = await moveTestDataset({ engine, target: b, released });
    expect(result.finalSnapshot).toBe('move-000002');
    expect(asked).toEqual(['move-000001', 'move-000002', 'move-000002']);
    expect(b.promoted).toEqual(['move-000002']);
  });

  it('written after the promote (a writer still running that no look saw): the source copy is not retired, the move ends unretried', async () => {
    const { engine, asked, retiredUnchanged: retired } = engineAnswering((_n, call) => Promise.resolve(call > 1));
    engine.destroyDataset = (id) => {
      retired.push(`destroy ${id}`);
      return Promise.resolve();
    };
    for (const keepSourceSnapshots of [1, 0]) {
      const b = recordingTarget();
      asked.length = 0;
      let retries = 0;
      await expect(
        moveTestDataset({
          engine,
          target: b,
          keepSourceSnapshots,
          backoffInitialMs: 1,
          released: () => Promise.resolve(true),
          onRetry: () => (retries += 1),
        }),
      ).rejects.toBeInstanceOf(SourceChangedAfterPromoteError);
      expect(b.promoted).toHaveLength(1);
      expect(asked).toEqual([b.promoted[0], b.promoted[0]]);
      expect(retries).toBe(0);
    }
    expect(retired).toEqual([]);
  });

  it('unchanged after the promote: retired as before (keep 0: retired, then destroyed)', async () => {
    const { engine, asked } = engineAnswering(() => Promise.resolve(false));
    const calls: string[] = [];
    const retire = engine.retire.bind(engine);
    engine.retire = async (id, o) => {
      await retire(id, o);
      calls.push(`retire unchanged since ${o?.unchangedSince ?? '?'}`);
    };
    engine.destroyDataset = () => {
      calls.push('destroy');
      return Promise.resolve();
    };
    const result = await moveTestDataset({
      engine,
      target: recordingTarget(),
      keepSourceSnapshots: 0,
      released: () => Promise.resolve(true),
    });
    expect(asked).toEqual([result.finalSnapshot, result.finalSnapshot]);
    expect(calls).toEqual([`retire unchanged since ${result.finalSnapshot}`, 'destroy']);
  });
});

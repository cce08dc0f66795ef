/**
 * Review RL (session 14): a move taken back (the dataset's primary is the source again) after the
 * release but before the promote was asked for. Nothing on the target is a live copy yet (it holds
 * received snapshots only), so the move stops there: it used to go on, promote the target and
 * retire the source's copy of a dataset whose primary is the source (then a move back), or, where
 * the target already knew, retry its refused promote for minutes while the source's copy stayed
 * unmounted (the agent mounts only once the mover ended).
 */
import { Readable } from 'node:stream';
import {
  ConnectionLostError,
  LocalStorageError,
  type LocalDataset,
  type LocalEngine,
  type LocalSnapshot,
  type SendStream,
} from './engine';
import { moveLocalDataset, type LocalMoveOptions, type MoveResult } from './LocalMover';
import { MOVE_ID, memoryEngine, recordingTarget, type RecordingTarget } from './moverTestSupport';
import { makeTestCluster } from './testSupport';
import { TransferClient, TransferServer, type TargetApi } from './transfer';

const ID = MOVE_ID;

/** The move of ID from `engine` to `target`, its release seen from the start, `cancel` its move back. */
const moveReleased = (
  engine: LocalEngine,
  target: TargetApi,
  cancel: AbortSignal,
  more: Partial<LocalMoveOptions> = {},
): Promise<MoveResult> =>
  moveLocalDataset({
    engine,
    target,
    datasetId: ID,
    size: 1000,
    released: () => Promise.resolve(true),
    cancel,
    ...more,
  });

/** A source whose copy goes once retired, its snapshots in `snapshots` (a destroyed one removed), not in use. */
function source(): LocalEngine & { live: boolean; retired: boolean; snapshots: LocalSnapshot[] } {
  let n = 0;
  const e = {
    ...memoryEngine(),
    live: true,
    retired: false,
    snapshots: [] as LocalSnapshot[],
    listDatasets: (): Promise<LocalDataset[]> =>
      Promise.resolve(e.live ? [{ datasetId: ID, size: 1000, usedBytes: 10 }] : []),
    retire: () => {
      e.live = false;
      e.retired = true;
      return Promise.resolve();
    },
    inUse: () => Promise.resolve(false),
    createSnapshot: (_id: string, name: string): Promise<LocalSnapshot> => {
      const s = { datasetId: ID, name, identity: `id-${++n}`, received: false };
      e.snapshots.push(s);
      return Promise.resolve(s);
    },
    listSnapshots: () => Promise.resolve([...e.snapshots]),
    destroySnapshot: (_id: string, name: string) => {
      e.snapshots = e.snapshots.filter((s) => s.name !== name);
      return Promise.resolve();
    },
    send: (): SendStream => ({
      stream: Readable.from([Buffer.from('x')]),
      done: Promise.resolve(),
      abort: () => undefined,
    }),
  };
  return e;
}

/** A recording target whose receive takes the snapshot at once (its send not read). */
function target(): RecordingTarget {
  const t = recordingTarget();
  t.receive = (r: { name: string; identity: string }) => {
    t.received.push({ name: r.name, identity: r.identity });
    return Promise.resolve(1);
  };
  return t;
}

describe('a move taken back after the release', () => {
  it('before the promote was asked (the final snapshot taken, even sent): stopped, nothing live there, the source keeps its copy', async () => {
    for (const at of ['final snapshot taken', 'final snapshot sent'] as const) {
      const a = source();
      const b = target();
      const cancel = new AbortController();
      await expect(
        moveReleased(a, b, cancel.signal, {
          onProgress: (p) => {
            if (at === 'final snapshot taken' && p.phase === 'final') cancel.abort();
          },
          onSent: (s) => {
            if (at === 'final snapshot sent' && s.released) cancel.abort();
          },
        }),
      ).rejects.toThrow(/taken back/);
      expect(b.promoted).toEqual([]);
      expect(a.live).toBe(true);
      expect(a.retired).toBe(false);
    }
  });

  it('once the promote was asked: the move ends (the target may hold the primary copy already)', async () => {
    const a = source();
    const cancel = new AbortController();
    const b = target();
    const asked: TargetApi = {
      ...b,
      promote: (id, name, size, mount) => {
        cancel.abort();
        return b.promote(id, name, size, mount);
      },
    };
    const result = await moveReleased(a, asked, cancel.signal);
    expect(b.promoted).toEqual([result.finalSnapshot]);
    expect(a.retired).toBe(true);
  });
});

/**
 * Session 16 (s15's open follow-up): a move back (a Docker Mount on the source, a container there
 * again) that lands after the promote was asked for but before the target saw it. The target,
 * no longer the dataset's primary, refuses the promote; the mover used to ignore the cancel once the
 * promote was asked and retried the refusal for about a minute (20 counted failures, back-off up to
 * 5 s) while the source's copy stayed unmounted and the container's Mount waited. A promote that was
 * answered (none can still run there) and a target that shows no live copy: nothing there is the
 * primary's, so the move stops at once. A promote whose answer was lost may have run: the move never
 * stops on a refusal alone then.
 */
describe('a move taken back after its promote was asked for', () => {
  const notPrimary = (): LocalStorageError =>
    new LocalStorageError(
      'PEER_REFUSED',
      `node b: this node is not the primary of dataset ${ID}: it takes no data of it`,
    );

  it('the target refused the promote (it saw the move back first) and holds no live copy: stopped within seconds, the source keeps its copy', async () => {
    for (const cancelFirst of [true, false]) {
      const a = source();
      const b = target();
      const cancel = new AbortController();
      let asked = 0;
      const refusing: TargetApi = {
        ...b,
        promote: () => {
          asked += 1;
          // The source's agent sees the move back before the refusal, or only after it (the mover then waits a back-off).
          if (cancelFirst) cancel.abort();
          else setTimeout(() => cancel.abort(), 50);
          return Promise.reject(notPrimary());
        },
      };
      const t0 = performance.now();
      await expect(moveReleased(a, refusing, cancel.signal)).rejects.toThrow(/taken back/);
      expect(performance.now() - t0).toBeLessThan(3_000);
      expect(asked).toBeGreaterThanOrEqual(1);
      expect(b.promoted).toEqual([]);
      expect(a.live).toBe(true);
      expect(a.retired).toBe(false);
    }
  });

  it('through the real listener: its refusal is an answer, the move stops at once', async () => {
    const cluster = makeTestCluster();
    const nodeB = cluster.node();
    // The target has seen the move back: it is not the primary any more (it refuses before touching its engine).
    const server = new TransferServer({ engine: source(), credentials: nodeB, mayReceive: () => false });
    const port = await server.listen(0, '127.0.0.1');
    try {
      const client = new TransferClient({ host: '127.0.0.1', port, nodeUuid: nodeB.nodeUuid }, cluster.node());
      const a = source();
      const b = target();
      const cancel = new AbortController();
      // Everything but the promote as a target that took the snapshots; the promote to the real listener.
      const t: TargetApi = {
        ...b,
        promote: (id, name, size, mount) => {
          cancel.abort();
          return client.promote(id, name, size, mount);
        },
      };
      const t0 = performance.now();
      await expect(moveReleased(a, t, cancel.signal)).rejects.toThrow(/taken back/);
      expect(performance.now() - t0).toBeLessThan(3_000);
      expect(a.retired).toBe(false);
    } finally {
      await server.close();
      cluster.destroy();
    }
  });

  it('a promote whose answer was lost may have run: a later refusal does not stop the move as taken back, the source keeps its copy', async () => {
    const a = source();
    const b = target();
    const cancel = new AbortController();
    let asked = 0;
    const t: TargetApi = {
      ...b,
      promote: (id, name, size, mount) => {
        asked += 1;
        cancel.abort();
        if (asked === 1) {
          // It ran there; the connection dropped before the answer.
          void b.promote(id, name, size, mount);
          return Promise.reject(new ConnectionLostError('node b closed the connection without an answer'));
        }
        return Promise.reject(notPrimary());
      },
    };
    const failure = await moveReleased(a, t, cancel.signal, {
      maxAttempts: 3,
      backoffInitialMs: 1,
      backoffMaxMs: 5,
    }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(failure).toBeInstanceOf(LocalStorageError);
    expect(String(failure)).not.toMatch(/taken back/);
    expect(a.retired).toBe(false);
    expect(a.live).toBe(true);
  });

  it('a promote refused while the move is not taken back: retried as before (the target may only not have seen the move yet)', async () => {
    const a = source();
    const b = target();
    let asked = 0;
    const t: TargetApi = {
      ...b,
      promote: (id, name, size, mount) => {
        asked += 1;
        return asked < 3 ? Promise.reject(notPrimary()) : b.promote(id, name, size, mount);
      },
    };
    const result = await moveReleased(a, t, new AbortController().signal, {
      backoffInitialMs: 1,
      backoffMaxMs: 5,
    });
    expect(b.promoted).toEqual([result.finalSnapshot]);
    expect(a.retired).toBe(true);
  });
});

/**
 * Review RL (session 14): a move taken back (the dataset's primary is the source again) after the
 * release but before the promote was asked for. Nothing on the target is a live copy yet (it holds
 * received snapshots only), so the move stops there: it used to go on, promote the target and
 * retire the source's copy of a dataset whose primary is the source (then a move back), or, where
 * the target already knew, retry its refused promote for minutes while the source's copy stayed
 * unmounted (the agent mounts only once the mover ended).
 */
import { Readable } from 'node:stream';
import type { LocalDataset, LocalEngine, LocalSnapshot, SendStream } from './engine';
import { moveLocalDataset } from './LocalMover';
import type { StatusAnswer, TargetApi } from './transfer';

const ID = '0b0e6d4c-6c52-4a43-9d8a-4e3f1c1d2a10';

function source(): LocalEngine & { live: boolean; retired: boolean; snapshots: LocalSnapshot[] } {
  let n = 0;
  const e = {
    engine: 'btrfs' as const,
    pool: 'memory',
    live: true,
    retired: false,
    snapshots: [] as LocalSnapshot[],
    prepare: () => Promise.resolve(),
    listDatasets: (): Promise<LocalDataset[]> =>
      Promise.resolve(e.live ? [{ datasetId: ID, size: 1000, usedBytes: 10 }] : []),
    listRetained: () => Promise.resolve([]),
    createDataset: () => Promise.reject(new Error('not here')),
    resizeDataset: () => Promise.resolve(),
    destroyDataset: () => Promise.resolve(),
    retire: () => {
      e.live = false;
      e.retired = true;
      return Promise.resolve();
    },
    mountPoints: () => Promise.resolve([]),
    inUse: () => Promise.resolve(false),
    mount: () => Promise.resolve(),
    unmount: () => Promise.resolve(),
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
    receive: () => Promise.reject(new Error('not here')),
    promote: () => Promise.reject(new Error('not here')),
  };
  return e;
}

function target(): TargetApi & { held: Array<{ name: string; identity: string }>; promoted: string[] } {
  const t = {
    held: [] as Array<{ name: string; identity: string }>,
    promoted: [] as string[],
    status: (): Promise<StatusAnswer> =>
      Promise.resolve({
        ok: true as const,
        snapshots: [...t.held],
        live: { exists: t.promoted.length > 0, mountPoints: [], parent: null },
      }),
    receive: (r: { name: string; identity: string }) => {
      t.held.push({ name: r.name, identity: r.identity });
      return Promise.resolve(1);
    },
    promote: (_id: string, name: string) => {
      t.promoted.push(name);
      return Promise.resolve();
    },
    prune: () => Promise.resolve(),
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
        moveLocalDataset({
          engine: a,
          target: b,
          datasetId: ID,
          size: 1000,
          released: () => Promise.resolve(true),
          cancel: cancel.signal,
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
    const result = await moveLocalDataset({
      engine: a,
      target: asked,
      datasetId: ID,
      size: 1000,
      released: () => Promise.resolve(true),
      cancel: cancel.signal,
    });
    expect(b.promoted).toEqual([result.finalSnapshot]);
    expect(a.retired).toBe(true);
  });
});

/**
 * Test support for the mover's unit tests (releaseRecheck, stopMove, cancelBeforePromote,
 * transfer.statusLineage): an in-memory engine holding one dataset and a recording target, which a
 * test overrides where it looks.
 */
import { PassThrough } from 'node:stream';
import type { LocalDataset, LocalEngine, LocalSnapshot, SendStream } from './engine';
import type { StatusAnswer, TargetApi } from './transfer';

/** The one dataset a memoryEngine holds. */
export const MOVE_ID = '0b0e6d4c-6c52-4a43-9d8a-4e3f1c1d2a10';

/**
 * An engine holding MOVE_ID (size 1000, nothing mounted, in use), its snapshots in memory (ids
 * id-1, id-2, …; destroySnapshot keeps them), each send 16 bytes; creating, receiving and promoting
 * refused ('not here'); everything else done at once.
 */
export function memoryEngine(): LocalEngine {
  let n = 0;
  const snapshots: LocalSnapshot[] = [];
  return {
    engine: 'btrfs' as const,
    pool: 'memory',
    prepare: () => Promise.resolve(),
    listDatasets: (): Promise<LocalDataset[]> => Promise.resolve([{ datasetId: MOVE_ID, size: 1000, usedBytes: 10 }]),
    listRetained: () => Promise.resolve([]),
    createDataset: () => Promise.reject(new Error('not here')),
    resizeDataset: () => Promise.resolve(),
    destroyDataset: () => Promise.resolve(),
    retire: () => Promise.resolve(),
    mountPoints: () => Promise.resolve([]),
    inUse: () => Promise.resolve(true),
    mount: () => Promise.resolve(),
    unmount: () => Promise.resolve(),
    createSnapshot: (_id: string, name: string): Promise<LocalSnapshot> => {
      const s = { datasetId: MOVE_ID, name, identity: `id-${++n}`, received: false };
      snapshots.push(s);
      return Promise.resolve(s);
    },
    listSnapshots: () => Promise.resolve([...snapshots]),
    destroySnapshot: () => Promise.resolve(),
    send: (): SendStream => {
      const stream = new PassThrough();
      stream.end(Buffer.alloc(16));
      return { stream, done: Promise.resolve(), abort: () => stream.destroy() };
    },
    receive: () => Promise.reject(new Error('not here')),
    promote: () => Promise.reject(new Error('not here')),
  };
}

/** A target in memory: what it received and promoted, in order. */
export type RecordingTarget = TargetApi & { promoted: string[]; received: { name: string; identity: string }[] };

/**
 * A target recording each snapshot it received (read to its end; the byte count answered) and each
 * promote; its status shows the snapshots received, a live copy once promoted.
 */
export function recordingTarget(): RecordingTarget {
  const t = {
    promoted: [] as string[],
    received: [] as { name: string; identity: string }[],
    status: (): Promise<StatusAnswer> =>
      Promise.resolve({
        ok: true as const,
        snapshots: [...t.received],
        live: { exists: t.promoted.length > 0, mountPoints: [], parent: null },
      }),
    receive: async (r: { name: string; identity: string }, send: Pick<SendStream, 'stream' | 'done'>) => {
      let bytes = 0;
      for await (const chunk of send.stream) bytes += (chunk as Buffer).length;
      t.received.push({ name: r.name, identity: r.identity });
      return bytes;
    },
    promote: (_id: string, name: string) => {
      t.promoted.push(name);
      return Promise.resolve();
    },
    prune: () => Promise.resolve(),
  };
  return t;
}

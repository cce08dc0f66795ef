/**
 * Test support for the mover's unit tests (releaseRecheck, stopMove, cancelBeforePromote,
 * transfer.statusLineage): an in-memory engine holding one dataset, which a test overrides where it
 * looks.
 */
import { PassThrough } from 'node:stream';
import type { LocalDataset, LocalEngine, LocalSnapshot, SendStream } from './engine';

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

/** Shared by the lineage review tests (lineage.review.test.ts, lineage.outside.test.ts): a copy's writes and an engine on a real pool. */
import { closeSync, fsyncSync, mkdirSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BtrfsEngine } from './btrfs';
import type { LocalEngine } from './engine';
import { makeBtrfsLoopPool, type BtrfsLoopPool } from './testSupport';

export const MiB = 1024 * 1024;
export const root = process.getuid?.() === 0;

export function writeSynced(file: string, text: string): void {
  const fd = openSync(file, 'w');
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** A copy written through the engine's mount, let go of, then snapshotted idle: sameAs that snapshot. */
export async function idleSnapshot(e: LocalEngine, id: string, mnt: string): Promise<string> {
  await e.createDataset(id, 64 * MiB);
  const path = join(mnt, id);
  await e.mount(id, path);
  writeSynced(join(path, 'file'), 'acknowledged before the snapshot');
  await e.unmount(path);
  const s = await e.createSnapshot(id, 'move-000001');
  expect((await e.lineage?.(id))?.sameAs).toBe(s.identity);
  return s.identity;
}

/** What useBtrfsLoopEngine sets up; read inside a test (set by beforeAll). */
export interface BtrfsLoopEngineBed {
  dir: string;
  pool: BtrfsLoopPool;
  e: BtrfsEngine;
}

/**
 * In a describe: a temp directory (named from prefix), a 256 MiB btrfs loop pool in it with an engine prepared
 * on it, and <dir>/mnt; all removed after the describe's tests.
 */
export function useBtrfsLoopEngine(prefix: string): BtrfsLoopEngineBed {
  const bed = {} as BtrfsLoopEngineBed;
  beforeAll(async () => {
    bed.dir = mkdtempSync(join(tmpdir(), prefix));
    bed.pool = makeBtrfsLoopPool(bed.dir, 'pool', 256 * MiB);
    bed.e = new BtrfsEngine({ pool: bed.pool.pool });
    await bed.e.prepare();
    mkdirSync(join(bed.dir, 'mnt'));
  });
  afterAll(() => {
    // Unset where beforeAll failed early.
    bed.pool?.destroy();
    if (bed.dir !== undefined) rmSync(bed.dir, { recursive: true, force: true });
  });
  return bed;
}

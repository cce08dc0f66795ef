/**
 * Review RV4 (session 17) of 4ab44ab, on real btrfs pools (loop devices) and a real transfer. The
 * move's clean-up asks changedSince(F) and then, later, deletes the source's subvolume (retire):
 * between the two run the prune of older move snapshots and the retire's namespace scan. A writer
 * the scan cannot see (an fd kept past a lazy unmount) that writes in that window has its
 * acknowledged write deleted with the subvolume, and the move reports success.
 *
 * First test: failed before the check moved into the engine's retire (K6: retire(id, { unchangedSince })
 * sets ro, checks, then deletes). Second: prints the window's length (now check -> delete). Third: what
 * the ro flag does and does not stop. Fourth: a retire killed with ro set leaves nothing read-only for ever.
 */
import { execFileSync } from 'node:child_process';
import { closeSync, openSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { execFileExec, type ExecFn } from '../exec';
import { BtrfsEngine } from './btrfs';
import { hiddenWriterFd, liveCopy, MiB, startBtrfsTransferPair, type BtrfsTransferPair } from './btrfsMoveTestSupport';
import { SourceChangedAfterPromoteError } from './engine';
import { realHostFs } from './hostFs';
import { moveLocalDataset } from './LocalMover';
import type { TransferClient } from './transfer';

describe('RV4: the clean-up window between changedSince and the retire delete (btrfs)', () => {
  let pair: BtrfsTransferPair | undefined;
  let b: BtrfsEngine;
  let client: TransferClient;
  let mountRoot: string;
  let poolA: string;
  /** Commands the source engine ran, with when they started and ended (ms, performance.now()). */
  const log: { args: string; t0: number; t1: number }[] = [];
  const timedExec: ExecFn = async (file, args) => {
    const t0 = performance.now();
    try {
      return await execFileExec(file, args);
    } finally {
      log.push({ args: `${file} ${args.join(' ')}`, t0, t1: performance.now() });
    }
  };

  beforeAll(async () => {
    pair = await startBtrfsTransferPair('flocker-rv4-btrfs-');
    ({ b, client, mountRoot } = pair);
    poolA = pair.a.pool;
  }, 60_000);
  afterAll(async () => {
    await pair?.destroy();
  });

  it('a hidden writer writing during the retire (after its scan, before its delete): the move refuses, the copy stays live and writable with the write', async () => {
    const a = new BtrfsEngine({ pool: poolA });
    const { id, pathW } = await liveCopy(a, mountRoot, 'before the move');
    const fd = hiddenWriterFd(pathW);
    let promoted = false;
    let wrote = false;
    const inUse = a.inUse.bind(a);
    // The retire's own scan (refuseRetireInUse) runs after the clean-up's changedSince: the writer
    // writes there (the scan cannot see it: no mount left), as it could at any time in that window.
    const engine = Object.assign(Object.create(a) as BtrfsEngine, {
      inUse: async (d: string) => {
        if (promoted && !wrote) {
          wrote = true;
          writeSync(fd, 'WRITTEN', 0);
        }
        return inUse(d);
      },
    });
    let outcome: 'moved' | 'refused' = 'moved';
    await moveLocalDataset({
      engine,
      target: client,
      datasetId: id,
      size: 64 * MiB,
      afterPromote: () => {
        promoted = true;
      },
    }).catch(() => {
      outcome = 'refused';
    });
    closeSync(fd);
    expect(wrote).toBe(true);
    const aHasIt = (await a.listDatasets()).some((d) => d.datasetId === id);
    const bData = readFileSync(join(mountRoot, 'b', id, 'data'), 'utf8');
    // Never lost: either A's copy is kept live (refused, TWO_LIVE_COPIES next), or B has the write.
    expect({ outcome, aHasIt, bData }).not.toEqual({ outcome: 'moved', aHasIt: false, bData: 'before the move' });
    expect({ outcome, aHasIt }).toEqual({ outcome: 'refused', aHasIt: true });
    // Kept live as it was: the retire's ro undone (a new open for write works).
    await a.mount(id, pathW);
    expect(readFileSync(join(pathW, 'data'), 'utf8')).toBe('WRITTENthe move');
    writeFileSync(join(pathW, 'after'), 'x');
    await a.unmount(pathW);
  }, 120_000);

  it('a retire killed between its ro and its check: the next mount makes the live copy writable; a retire again deletes it when unchanged', async () => {
    const a = new BtrfsEngine({ pool: poolA });
    const { id, pathW } = await liveCopy(a, mountRoot, 'x');
    await a.unmount(pathW);
    await a.createSnapshot(id, 'move-000001');
    // The state a kill -9 right after the retire's `property set ro true` leaves.
    execFileSync('btrfs', ['property', 'set', '-ts', a.datasetPath(id), 'ro', 'true']);
    expect((await a.listDatasets()).some((d) => d.datasetId === id)).toBe(true);
    // What mount looks at before asking btrfs (review FR finding 13): the kernel's EROFS for a read-only subvolume.
    expect(await realHostFs.writable?.(a.datasetPath(id))).toBe(false);
    await a.mount(id, pathW);
    expect(await realHostFs.writable?.(a.datasetPath(id))).toBe(true);
    writeFileSync(join(pathW, 'data'), 'y');
    await a.unmount(pathW);
    // Changed since move-000001: refused, writable; a fresh snapshot, unchanged since: retired.
    await expect(a.retire(id, { unchangedSince: 'move-000001' })).rejects.toBeInstanceOf(
      SourceChangedAfterPromoteError,
    );
    expect(
      execFileSync('btrfs', ['property', 'get', '-ts', a.datasetPath(id), 'ro'], { encoding: 'utf8' }).trim(),
    ).toBe('ro=false');
    await a.createSnapshot(id, 'move-000002');
    execFileSync('btrfs', ['property', 'set', '-ts', a.datasetPath(id), 'ro', 'true']);
    await a.retire(id, { unchangedSince: 'move-000002' });
    expect((await a.listDatasets()).some((d) => d.datasetId === id)).toBe(false);
    expect((await a.listSnapshots(id)).map((s) => s.name)).toEqual(['move-000001', 'move-000002']);
    await a.destroyDataset(id);
  }, 60_000);

  it('how long the window is (check -> delete), with three move snapshots to prune and the real namespace scan', async () => {
    const a = new BtrfsEngine({ pool: poolA, exec: timedExec });
    const { id, pathW } = await liveCopy(a, mountRoot, 'before the move');
    await a.unmount(pathW);
    const windows: number[] = [];
    for (let i = 0; i < 3; i++) {
      // Three more move snapshots (as rounds before the release leave): pruned in the window.
      for (let k = 0; k < 3; k++) await a.createSnapshot(id, `move-00010${i}${k}`);
      log.length = 0;
      const t0 = performance.now();
      await moveLocalDataset({ engine: a, target: client, datasetId: id, size: 64 * MiB });
      // The check now runs inside the retire, right before its delete: its point in time is the probe
      // snapshot (K6, RV4 finding 2: a probe and a send diff), the diff follows, then the delete.
      const del0 = log.findIndex((l) => l.args.includes('subvolume delete -c'));
      const check = log
        .slice(0, del0)
        .findLast((l) => l.args.includes('subvolume snapshot -r') && l.args.includes('/probes/'));
      const del = log.find((l) => l.args.includes('subvolume delete -c'));
      if (check === undefined || del === undefined) throw new Error(`no check or delete: ${JSON.stringify(log)}`);
      windows.push(del.t0 - check.t1);
      console.log(
        `round ${i}: move ${(performance.now() - t0).toFixed(0)} ms; the retire's probe snapshot ended -> delete started: ${(del.t0 - check.t1).toFixed(1)} ms; ` +
          `between: ${log
            .filter((l) => l.t0 >= check.t1 && l.t0 <= del.t0)
            .map((l) => l.args.replace(poolA, '<pool>').slice(0, 60))
            .join(' | ')}`,
      );
      // Move it back for the next round (b -> a), so a holds it live again.
      const pathB = join(mountRoot, 'b', id);
      await b.unmount(pathB);
      await b.destroyDataset(id);
      await a.destroyDataset(id);
      await a.createDataset(id, 64 * MiB);
    }
    expect(windows).toHaveLength(3);
  }, 180_000);

  it('the btrfs ro flag (a cheap ordering fix: ro, check, delete) refuses new opens but not a write through an fd opened before it', async () => {
    const a = new BtrfsEngine({ pool: poolA });
    const { id, pathW } = await liveCopy(a, mountRoot, 'before the move');
    const fd = openSync(join(pathW, 'data'), 'r+');
    const other = join(mountRoot, 'w2', id);
    await a.mount(id, other);
    execFileSync('umount', ['-l', pathW]);
    await a.createSnapshot(id, 'move-000001');
    expect(await a.changedSince(id, 'move-000001')).toBe(false);
    execFileSync('btrfs', ['property', 'set', a.datasetPath(id), 'ro', 'true']);
    // The hidden writer's fd still writes (acknowledged), the check sees it; a new open is refused.
    expect(writeSync(fd, 'WRITTEN', 0)).toBe(7);
    closeSync(fd);
    expect(await a.changedSince(id, 'move-000001')).toBe(true);
    expect(() => writeFileSync(join(other, 'new'), 'x')).toThrow(/EROFS/);
    execFileSync('btrfs', ['property', 'set', a.datasetPath(id), 'ro', 'false']);
    await a.unmount(other);
    await a.destroyDataset(id);
  }, 60_000);
});

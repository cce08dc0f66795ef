/**
 * The contract every local engine keeps (issue 24), run against real pools: the btrfs engine in
 * e2e/src/local-btrfs.test.ts; the ZFS engine wherever `zfs` exists. It calls jest's describe/it:
 * import it only from tests (`@flocker/storage-drivers/testing`).
 */
import { randomUUID } from 'node:crypto';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { CopyLineage, LocalEngine } from './engine';

export interface LocalContractFixture {
  /** Two engines on two pools (two simulated hosts). */
  readonly a: LocalEngine;
  readonly b: LocalEngine;
  /** A directory for mount paths. */
  readonly mountRoot: string;
}

const MiB = 1024 * 1024;

export function localEngineContract(name: string, fixture: () => LocalContractFixture): void {
  describe(`local engine contract: ${name}`, () => {
    const f = (): LocalContractFixture => fixture();

    it('creates a dataset idempotently with its size limit, grows it, destroys it idempotently', async () => {
      const { a } = f();
      const id = randomUUID();
      await a.createDataset(id, 64 * MiB);
      await a.createDataset(id, 64 * MiB);
      expect((await a.listDatasets()).filter((d) => d.datasetId === id).map((d) => d.size)).toEqual([64 * MiB]);
      await a.resizeDataset(id, 128 * MiB);
      expect((await a.listDatasets()).find((d) => d.datasetId === id)?.size).toBe(128 * MiB);
      await a.destroyDataset(id);
      await a.destroyDataset(id);
      expect((await a.listDatasets()).some((d) => d.datasetId === id)).toBe(false);
    });

    it('mounts and unmounts idempotently; never over another mount; no destroy while mounted', async () => {
      const { a, mountRoot } = f();
      const id = randomUUID();
      const other = randomUUID();
      await a.createDataset(id, 64 * MiB);
      await a.createDataset(other, 64 * MiB);
      const path = join(mountRoot, id);
      await a.mount(id, path);
      await a.mount(id, path);
      expect(await a.mountPoints(id)).toEqual([path]);
      expect(await a.inUse(id)).toBe(true);
      await expect(a.mount(other, path)).rejects.toMatchObject({ code: 'DEVICE_BUSY' });
      await expect(a.destroyDataset(id)).rejects.toMatchObject({ code: 'DEVICE_BUSY' });
      await a.unmount(path);
      await a.unmount(path);
      expect(await a.mountPoints(id)).toEqual([]);
      expect(await a.inUse(id)).toBe(false);
      await a.destroyDataset(id);
      await a.destroyDataset(other);
    });

    it('snapshots are idempotent by name, listed oldest first, and keep their point in time', async () => {
      const { a, b, mountRoot } = f();
      const id = randomUUID();
      await a.createDataset(id, 64 * MiB);
      const path = join(mountRoot, id);
      await a.mount(id, path);
      writeFileSync(join(path, 'file'), 'one');
      const s1 = await a.createSnapshot(id, 'move-000001');
      expect(await a.createSnapshot(id, 'move-000001')).toEqual(s1);
      writeFileSync(join(path, 'file'), 'two');
      await a.createSnapshot(id, 'move-000002');
      expect((await a.listSnapshots(id)).map((s) => s.name)).toEqual(['move-000001', 'move-000002']);
      await a.unmount(path);
      // The first snapshot, moved whole to b and made its live copy: the data of its point in time.
      const send = a.send(id, 'move-000001', null);
      const got = await b.receive(id, 'move-000001', s1.identity, send.stream);
      await send.done;
      expect(got.identity).toBe(s1.identity);
      await b.promote(id, 'move-000001', 64 * MiB);
      const pathB = join(mountRoot, `${id}-b`);
      await b.mount(id, pathB);
      expect(readFileSync(join(pathB, 'file'), 'utf8')).toBe('one');
      await b.unmount(pathB);
      await a.destroyDataset(id);
      await b.destroyDataset(id);
    });

    // A copy listed live on the new primary during its receive is one the agent mounts and reports mounted:
    // half a copy, which the receive then unmounts (zfs-fuse: ci15 saw B's path empty as it was shown mounted).
    it('a copy being received is never a live copy: not listed while it is received, nor after, until promoted', async () => {
      const { a, b, mountRoot } = f();
      const id = randomUUID();
      await a.createDataset(id, 64 * MiB);
      const path = join(mountRoot, id);
      await a.mount(id, path);
      writeFileSync(join(path, 'file'), Buffer.alloc(8 * MiB, 7));
      const s1 = await a.createSnapshot(id, 'move-000001');
      writeFileSync(join(path, 'file2'), 'delta');
      const s2 = await a.createSnapshot(id, 'move-000002');
      await a.unmount(path);
      const listedLive: string[] = [];
      const receiving = async (name: string, parent: string | null, identity: string): Promise<void> => {
        let done = false;
        const look = (async () => {
          while (!done) if ((await b.listDatasets()).some((d) => d.datasetId === id)) listedLive.push(`during ${name}`);
        })();
        const send = a.send(id, name, parent);
        try {
          await b.receive(id, name, identity, send.stream);
          await send.done;
        } finally {
          done = true;
          await look;
        }
        if ((await b.listDatasets()).some((d) => d.datasetId === id)) listedLive.push(`after ${name}`);
      };
      await receiving('move-000001', null, s1.identity);
      await receiving('move-000002', 'move-000001', s2.identity);
      expect(listedLive).toEqual([]);
      await b.promote(id, 'move-000002', 64 * MiB);
      expect((await b.listDatasets()).find((d) => d.datasetId === id)?.size).toBe(64 * MiB);
      const pathB = join(mountRoot, `${id}-b`);
      await b.mount(id, pathB);
      expect(readFileSync(join(pathB, 'file2'), 'utf8')).toBe('delta');
      await b.unmount(pathB);
      await a.destroyDataset(id);
      await b.destroyDataset(id);
    });

    // Two live copies after a double fault are ordered by it (issue 24): the source's copy, not
    // written since its final snapshot, is the older one; the target's, promoted from it and written, the newer.
    it('lineage: what a live copy is made from and the snapshot it is unchanged since; written or mounted, not known', async () => {
      const { a, b, mountRoot } = f();
      const lineage = (e: LocalEngine, id: string): Promise<CopyLineage | null> => {
        if (e.lineage === undefined) throw new Error(`the ${e.engine} engine tells no lineage`);
        return e.lineage(id);
      };
      const id = randomUUID();
      await a.createDataset(id, 64 * MiB);
      expect(await lineage(a, id)).toEqual({ from: null, sameAs: null, snapshots: [] });
      const path = join(mountRoot, id);
      await a.mount(id, path);
      writeFileSync(join(path, 'file'), 'one');
      const s1 = await a.createSnapshot(id, 'move-000001');
      // Mounted: it may be written any time.
      expect((await lineage(a, id))?.sameAs).toBeNull();
      writeFileSync(join(path, 'file'), 'two');
      await a.unmount(path);
      expect(await lineage(a, id)).toEqual({ from: null, sameAs: null, snapshots: [s1.identity] });
      const s2 = await a.createSnapshot(id, 'move-000002');
      expect(await lineage(a, id)).toEqual({ from: null, sameAs: s2.identity, snapshots: [s1.identity, s2.identity] });
      for (const [name, parent, identity] of [
        ['move-000001', null, s1.identity],
        ['move-000002', 'move-000001', s2.identity],
      ] as const) {
        const send = a.send(id, name, parent);
        await b.receive(id, name, identity, send.stream);
        await send.done;
      }
      expect(await lineage(b, id)).toBeNull();
      await b.promote(id, 'move-000002', 64 * MiB);
      await b.promote(id, 'move-000002', 64 * MiB);
      expect(await lineage(b, id)).toEqual({
        from: s2.identity,
        sameAs: s2.identity,
        snapshots: [s1.identity, s2.identity],
      });
      const pathB = join(mountRoot, `${id}-b`);
      await b.mount(id, pathB);
      writeFileSync(join(pathB, 'file'), 'three');
      await b.unmount(pathB);
      // Written since the promote: made from s2, no longer its content; a promote again changes nothing.
      await b.promote(id, 'move-000002', 64 * MiB);
      expect(await lineage(b, id)).toEqual({ from: s2.identity, sameAs: null, snapshots: [s1.identity, s2.identity] });
      // a's copy is still s2's content: the older one.
      expect((await lineage(a, id))?.sameAs).toBe(s2.identity);
      // The snapshots it was made from pruned (a replica round keeps only its newest): still known.
      await b.destroySnapshot(id, 'move-000001');
      await b.destroySnapshot(id, 'move-000002');
      expect(await lineage(b, id)).toEqual({ from: s2.identity, sameAs: null, snapshots: [] });
      await a.retire(id);
      expect(await lineage(a, id)).toBeNull();
      await a.destroyDataset(id);
      await b.destroyDataset(id);
    });

    // Review RV 2: a move's first promote waits for it; a writer the namespace scan missed, which
    // wrote after the final snapshot and ended, must show as a change (never "unchanged").
    it('changedSince: unchanged after a snapshot; changed by a write through a mount gone since; a read at most until the next snapshot', async () => {
      const { a, mountRoot } = f();
      const changedSince = (id: string, name: string): Promise<boolean | null> => {
        if (a.changedSince === undefined) throw new Error(`the ${a.engine} engine has no changedSince`);
        return a.changedSince(id, name);
      };
      const id = randomUUID();
      await a.createDataset(id, 64 * MiB);
      const path = join(mountRoot, id);
      await a.mount(id, path);
      writeFileSync(join(path, 'file'), 'one');
      await a.unmount(path);
      await a.createSnapshot(id, 'move-000001');
      const unchanged = await changedSince(id, 'move-000001');
      // null: this engine cannot tell (zfs-fuse: no `written`), and says so every time.
      const tells = unchanged !== null;
      expect(unchanged).toBe(tells ? false : null);
      expect(await changedSince(id, 'move-000001')).toBe(tells ? false : null);
      // A writer nothing saw: mounted, written (not synced), gone.
      await a.mount(id, path);
      writeFileSync(join(path, 'file'), 'two');
      await a.unmount(path);
      expect(await changedSince(id, 'move-000001')).toBe(tells ? true : null);
      // A deletion is a change too.
      await a.createSnapshot(id, 'move-000002');
      await a.mount(id, path);
      writeFileSync(join(path, 'other'), 'x');
      await a.unmount(path);
      await a.createSnapshot(id, 'move-000003');
      expect(await changedSince(id, 'move-000003')).toBe(tells ? false : null);
      await a.mount(id, path);
      rmSync(join(path, 'other'));
      await a.unmount(path);
      expect(await changedSince(id, 'move-000003')).toBe(tells ? true : null);
      // A reader (an atime update may count: one more round, never a loss); after a snapshot taken
      // after it, unchanged again.
      await a.createSnapshot(id, 'move-000004');
      await a.mount(id, path);
      expect(readFileSync(join(path, 'file'), 'utf8')).toBe('two');
      await a.unmount(path);
      const afterRead = await changedSince(id, 'move-000004');
      await a.createSnapshot(id, 'move-000005');
      expect(await changedSince(id, 'move-000005')).toBe(tells ? false : null);
      console.log(`changedSince (${a.engine}): after a read of a file, ${String(afterRead)}`);
      // The snapshot gone: not provably unchanged.
      await a.destroySnapshot(id, 'move-000001');
      expect(await changedSince(id, 'move-000001')).toBe(tells ? true : null);
      await a.destroyDataset(id);
    });

    it('incremental sends apply on the common snapshot; a wrong identity is refused and not kept', async () => {
      const { a, b, mountRoot } = f();
      const id = randomUUID();
      await a.createDataset(id, 64 * MiB);
      const path = join(mountRoot, id);
      await a.mount(id, path);
      writeFileSync(join(path, 'file'), 'base');
      const s1 = await a.createSnapshot(id, 'move-000001');
      writeFileSync(join(path, 'file'), 'delta');
      const s2 = await a.createSnapshot(id, 'move-000002');
      await a.unmount(path);
      const full = a.send(id, 'move-000001', null);
      await b.receive(id, 'move-000001', s1.identity, full.stream);
      await full.done;
      const wrong = a.send(id, 'move-000002', 'move-000001');
      await expect(b.receive(id, 'move-000002', 'not-its-identity', wrong.stream)).rejects.toMatchObject({
        code: 'INTEGRITY',
      });
      await wrong.done.catch(() => undefined);
      expect((await b.listSnapshots(id)).map((s) => s.name)).toEqual(['move-000001']);
      const inc = a.send(id, 'move-000002', 'move-000001');
      await b.receive(id, 'move-000002', s2.identity, inc.stream);
      await inc.done;
      expect((await b.listSnapshots(id)).map((s) => s.identity)).toEqual([s1.identity, s2.identity]);
      await b.promote(id, 'move-000002', 64 * MiB);
      await b.promote(id, 'move-000002', 64 * MiB); // idempotent
      const pathB = join(mountRoot, `${id}-b`);
      await b.mount(id, pathB);
      expect(readFileSync(join(pathB, 'file'), 'utf8')).toBe('delta');
      await b.unmount(pathB);
      // The source retires its copy after the move: no longer a live copy (kept: listed as retained); idempotent.
      await a.retire(id);
      await a.retire(id);
      expect((await a.listDatasets()).some((d) => d.datasetId === id)).toBe(false);
      expect(await a.listRetained()).toContain(id);
      await a.destroyDataset(id);
      await b.destroyDataset(id);
      expect(await a.listRetained()).not.toContain(id);
    });
  });
}

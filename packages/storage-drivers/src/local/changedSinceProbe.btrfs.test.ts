/**
 * Review RV4 finding 2 (session 17): btrfs changedSince by a probe snapshot and a send diff
 * (`send --no-data -p <snapshot> <probe>`), per subvolume, instead of the pool-wide `filesystem sync`
 * plus a generation compare. Real loop pools; the stream parser also on hand-made streams.
 */
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { sendStreamHasNoChange, type BtrfsEngine } from './btrfs';
import { MiB, startBtrfsPair, type BtrfsPair } from './btrfsMoveTestSupport';
import { SourceChangedAfterPromoteError } from './engine';

/** A send stream: the magic, version 1, then each [command, attribute bytes]. */
function stream(commands: readonly (readonly [number, number])[]): Buffer {
  const parts = [Buffer.from('btrfs-stream\0', 'latin1'), Buffer.from([1, 0, 0, 0])];
  for (const [command, length] of commands) {
    const header = Buffer.alloc(10);
    header.writeUInt32LE(length, 0);
    header.writeUInt16LE(command, 4);
    parts.push(header, Buffer.alloc(length));
  }
  return Buffer.concat(parts);
}

describe('sendStreamHasNoChange', () => {
  it('only the snapshot header and the end: no change; any other command: a change; not a whole stream: an error', () => {
    expect(
      sendStreamHasNoChange(
        stream([
          [2, 40],
          [21, 0],
        ]),
      ),
    ).toBe(true);
    // update_extent (22, --no-data's write), utimes (20), chmod (18), unlink (11).
    for (const command of [22, 20, 18, 11])
      expect(
        sendStreamHasNoChange(
          stream([
            [2, 40],
            [command, 8],
            [21, 0],
          ]),
        ),
      ).toBe(false);
    expect(() => sendStreamHasNoChange(stream([[2, 40]]))).toThrow(/cut short/);
    expect(() =>
      sendStreamHasNoChange(
        stream([
          [2, 40],
          [21, 0],
        ]).subarray(0, 30),
      ),
    ).toThrow(/cut short/);
    expect(() => sendStreamHasNoChange(Buffer.from('nothing'))).toThrow(/no stream/);
  });
});

describe('btrfs changedSince by a probe snapshot (real pools)', () => {
  let pair: BtrfsPair | undefined;
  let a: BtrfsEngine;
  let b: BtrfsEngine;
  let mountRoot: string;

  beforeAll(async () => {
    pair = await startBtrfsPair('flocker-k6-probe-');
    ({ a, b, mountRoot } = pair);
  }, 60_000);
  afterAll(async () => {
    await pair?.destroy();
  });

  async function written(e: BtrfsEngine, id: string, name: string, text: string): Promise<void> {
    const at = join(mountRoot, randomUUID());
    await e.mount(id, at);
    writeFileSync(join(at, name), text);
    await e.unmount(at);
  }

  /** A new 64 MiB dataset on a with `data` written, unmounted: its id. */
  async function writtenCopy(text: string): Promise<string> {
    const id = randomUUID();
    await a.createDataset(id, 64 * MiB);
    await written(a, id, 'data', text);
    return id;
  }

  it('a probe raises the live generation but changes nothing: the lineage still finds the copy the same as its snapshot', async () => {
    const id = await writtenCopy('x');
    const f = await a.createSnapshot(id, 'move-000001');
    expect((await a.lineage(id))?.sameAs).toBe(f.identity);
    expect(await a.changedSince(id, 'move-000001')).toBe(false);
    expect(await a.changedSince(id, 'move-000001')).toBe(false);
    // The generation compare alone says "changed" now (the probe's snapshot raised it); the diff decides.
    expect((await a.lineage(id))?.sameAs).toBe(f.identity);
    // No probe left behind.
    expect(existsSync(join(a.pool, 'flocker', 'probes', id))).toBe(false);
    await written(a, id, 'data', 'y');
    expect(await a.changedSince(id, 'move-000001')).toBe(true);
    expect((await a.lineage(id))?.sameAs).toBe(null);
    await a.destroyDataset(id);
  }, 60_000);

  it('a copy promoted from a received snapshot, never written, is unchanged since it (a retire checked against it deletes it); written, refused', async () => {
    const id = await writtenCopy('x');
    const f = await a.createSnapshot(id, 'move-000001');
    await b.receive(id, 'move-000001', f.identity, a.send(id, 'move-000001', null).stream);
    await b.promote(id, 'move-000001', 64 * MiB);
    // The promoted copy's lineage: the same as the snapshot it is made from (no snapshot taken of it).
    expect(await b.lineage(id)).toMatchObject({ from: f.identity, sameAs: f.identity });
    expect(await b.changedSince(id, 'move-000001')).toBe(false);
    await written(b, id, 'data', 'z');
    expect(await b.changedSince(id, 'move-000001')).toBe(true);
    await expect(b.retire(id, { unchangedSince: 'move-000001' })).rejects.toBeInstanceOf(
      SourceChangedAfterPromoteError,
    );
    expect((await b.listDatasets()).some((d) => d.datasetId === id)).toBe(true);
    await b.destroyDataset(id);
    // Again, not written: retired.
    await b.receive(id, 'move-000001', f.identity, a.send(id, 'move-000001', null).stream);
    await b.promote(id, 'move-000001', 64 * MiB);
    await b.retire(id, { unchangedSince: 'move-000001' });
    expect((await b.listDatasets()).some((d) => d.datasetId === id)).toBe(false);
    await b.destroyDataset(id);
    await a.destroyDataset(id);
  }, 60_000);

  it("a crash's leftover probe is replaced by the next check and removed with the dataset", async () => {
    const id = await writtenCopy('x');
    await a.createSnapshot(id, 'move-000001');
    const probe = join(a.pool, 'flocker', 'probes', id);
    execFileSync('mkdir', ['-p', join(a.pool, 'flocker', 'probes')]);
    // An old probe (of an earlier state), as a kill -9 between the probe and its delete leaves.
    execFileSync('btrfs', ['subvolume', 'snapshot', '-r', a.datasetPath(id), probe]);
    await written(a, id, 'data', 'y');
    expect(await a.changedSince(id, 'move-000001')).toBe(true);
    expect(existsSync(probe)).toBe(false);
    execFileSync('btrfs', ['subvolume', 'snapshot', '-r', a.datasetPath(id), probe]);
    await a.destroyDataset(id);
    expect(existsSync(probe)).toBe(false);
  }, 60_000);
});

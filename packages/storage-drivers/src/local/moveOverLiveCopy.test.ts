/**
 * Review RL (session 14): a mover never sends over, nor promotes over, a live copy the target holds
 * already. The sequence: a move A -> B is promoted (B mounts its copy, its users write), and A's
 * mover is killed before its clean-up retired A's copy. A's agent, restarted, decides from a view
 * that does not list B's copy yet (B's report not in, or the control service restarted) and starts
 * the move again: a new final snapshot of A's (older) copy, sent to B and promoted there. On ZFS the
 * incremental `zfs receive -F` rolls B's file system back; on btrfs the promote replaces B's copy
 * when it is not mounted at that moment (B rebooted, its agent not up yet): B's writes gone either
 * way. Real engines on real pools (btrfs on loop devices; ZFS on zfs-fuse or the kernel's).
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BtrfsEngine } from './btrfs';
import type { LocalEngine } from './engine';
import { moveLocalDataset } from './LocalMover';
import { makeBtrfsLoopPool, makeTestCluster, type BtrfsLoopPool, type TestCluster } from './testSupport';
import { TransferClient, TransferServer, type TargetApi } from './transfer';
import { ZfsEngine } from './zfs';
import { ensureZfs, makeZfsFilePool, type ZfsFilePool } from './zfsTestSupport';

const MiB = 1024 * 1024;

interface Hosts {
  readonly a: LocalEngine;
  readonly b: LocalEngine;
  readonly mountRoot: string;
}

function moveOverLiveCopy(name: string, hosts: () => Hosts): void {
  describe(`a move never overwrites the target's live copy: ${name}`, () => {
    let cluster: TestCluster;
    let server: TransferServer;
    let client: TransferClient;
    let mountB: string;

    beforeAll(async () => {
      cluster = makeTestCluster();
      const nodeA = cluster.node();
      const nodeB = cluster.node();
      const { b, mountRoot } = hosts();
      mountB = join(mountRoot, 'b');
      server = new TransferServer({ engine: b, credentials: nodeB, mountPathFor: (id) => join(mountB, id) });
      const port = await server.listen(0, '127.0.0.1');
      client = new TransferClient({ host: '127.0.0.1', port, nodeUuid: nodeB.nodeUuid }, nodeA);
    });
    afterAll(async () => {
      await server?.close();
      cluster?.destroy();
    });

    for (const bMounted of [true, false]) {
      it(`a move started again after its promote (the source killed before its clean-up), B's copy ${bMounted ? 'mounted' : 'not mounted (B rebooted)'}: refused, B's writes kept, A's copy untouched`, async () => {
        const { a, mountRoot } = hosts();
        const id = randomUUID();
        const pathA = join(mountRoot, 'a', id);
        const pathB = join(mountB, id);
        await a.createDataset(id, 64 * MiB);
        await a.mount(id, pathA);
        writeFileSync(join(pathA, 'data'), 'from A');
        await a.unmount(pathA);
        // The first move, killed right after B's promote answered (before the clean-up retired A's copy).
        const stop = new AbortController();
        const killedAfterPromote: TargetApi = {
          status: (d) => client.status(d),
          receive: (r, s, n) => client.receive(r, s, n),
          prune: (d, k) => client.prune(d, k),
          promote: async (d, n, s, m) => {
            await client.promote(d, n, s, m);
            stop.abort();
          },
        };
        await expect(
          moveLocalDataset({
            engine: a,
            target: killedAfterPromote,
            datasetId: id,
            size: 64 * MiB,
            signal: stop.signal,
          }),
        ).rejects.toThrow(/stopped/);
        const { b } = hosts();
        expect(await b.mountPoints(id)).toEqual([pathB]);
        // B is the primary: its users write (acknowledged writes).
        writeFileSync(join(pathB, 'data'), 'written on B after the move');
        if (!bMounted) await b.unmount(pathB);
        // A's agent, restarted, starts the move again (its view does not list B's copy yet).
        await expect(
          moveLocalDataset({
            engine: a,
            target: client,
            datasetId: id,
            size: 64 * MiB,
            maxAttempts: 2,
            backoffInitialMs: 10,
            backoffMaxMs: 20,
          }),
        ).rejects.toMatchObject({ code: 'PEER_REFUSED', message: expect.stringMatching(/live copy/) });
        // B's copy is B's: never rolled back or replaced.
        if (!bMounted) await b.mount(id, pathB);
        expect(readFileSync(join(pathB, 'data'), 'utf8')).toBe('written on B after the move');
        // A's copy is still there (the agent retires it once B's copy shows in its view).
        expect((await a.listDatasets()).map((d) => d.datasetId)).toContain(id);
        await b.unmount(pathB);
        await a.destroyDataset(id);
        await b.destroyDataset(id);
      }, 120_000);
    }

    it('the promote retried by the same run (its answer lost) is not refused: the move ends, A retired', async () => {
      const { a, b, mountRoot } = hosts();
      const id = randomUUID();
      const pathA = join(mountRoot, 'a', id);
      await a.createDataset(id, 64 * MiB);
      await a.mount(id, pathA);
      writeFileSync(join(pathA, 'data'), 'from A');
      await a.unmount(pathA);
      let lost = 1;
      const answerLost: TargetApi = {
        status: (d) => client.status(d),
        receive: (r, s, n) => client.receive(r, s, n),
        prune: (d, k) => client.prune(d, k),
        promote: async (d, n, s, m) => {
          await client.promote(d, n, s, m);
          if (lost-- > 0) throw new Error('the connection dropped before the answer');
        },
      };
      await moveLocalDataset({
        engine: a,
        target: answerLost,
        datasetId: id,
        size: 64 * MiB,
        backoffInitialMs: 10,
        backoffMaxMs: 20,
      });
      expect(readFileSync(join(mountB, id, 'data'), 'utf8')).toBe('from A');
      expect((await a.listDatasets()).map((d) => d.datasetId)).not.toContain(id);
      await b.unmount(join(mountB, id));
      await a.destroyDataset(id);
      await b.destroyDataset(id);
    }, 120_000);
  });
}

describe('btrfs on loop devices', () => {
  let dir: string;
  const pools: BtrfsLoopPool[] = [];
  let fixture: Hosts;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'flocker-rl-btrfs-'));
    for (const name of ['a', 'b']) pools.push(makeBtrfsLoopPool(dir, name, 256 * MiB));
    const [pa, pb] = pools;
    if (pa === undefined || pb === undefined) throw new Error('no pools');
    fixture = {
      a: new BtrfsEngine({ pool: pa.pool }),
      b: new BtrfsEngine({ pool: pb.pool }),
      mountRoot: join(dir, 'mnt'),
    };
    await fixture.a.prepare();
    await fixture.b.prepare();
  }, 60_000);
  afterAll(() => {
    for (const p of pools) p.destroy();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });
  moveOverLiveCopy('btrfs', () => fixture);

  it("the engine's promote never replaces a live copy made from another snapshot (not mounted: it was replaced): refused, its data kept", async () => {
    const { a, b, mountRoot } = fixture;
    const id = randomUUID();
    const pathA = join(mountRoot, 'a', id);
    const pathB = join(mountRoot, 'b', id);
    await a.createDataset(id, 64 * MiB);
    await a.mount(id, pathA);
    writeFileSync(join(pathA, 'data'), 'first');
    const first = await a.createSnapshot(id, 'move-000001');
    writeFileSync(join(pathA, 'data'), 'second');
    const second = await a.createSnapshot(id, 'move-000002');
    const one = a.send(id, 'move-000001', null);
    await b.receive(id, 'move-000001', first.identity, one.stream);
    await one.done;
    await b.promote(id, 'move-000001', 64 * MiB);
    await b.mount(id, pathB);
    writeFileSync(join(pathB, 'data'), 'written on B');
    await b.unmount(pathB);
    const two = a.send(id, 'move-000002', 'move-000001');
    await b.receive(id, 'move-000002', second.identity, two.stream);
    await two.done;
    await expect(b.promote(id, 'move-000002', 64 * MiB)).rejects.toMatchObject({ code: 'PEER_REFUSED' });
    // A repeated promote of the snapshot it is made from is still idempotent.
    await b.promote(id, 'move-000001', 64 * MiB);
    await b.mount(id, pathB);
    expect(readFileSync(join(pathB, 'data'), 'utf8')).toBe('written on B');
    await b.unmount(pathB);
    await a.unmount(pathA);
    await a.destroyDataset(id);
    await b.destroyDataset(id);
  }, 60_000);
});

const zfsReady = ensureZfs();
describe('ZFS on real pools', () => {
  if (!zfsReady.ok) {
    it('cannot run on this machine (the reason is printed)', () => {
      console.log(`ZFS real-run tests skipped: ${zfsReady.reason}`);
    });
    return;
  }
  let dir: string;
  const pools: ZfsFilePool[] = [];
  let fixture: Hosts;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'flocker-rl-zfs-'));
    for (const name of ['rla', 'rlb']) pools.push(makeZfsFilePool(dir, name, 256 * MiB));
    const [pa, pb] = pools;
    if (pa === undefined || pb === undefined) throw new Error('no pools');
    fixture = { a: new ZfsEngine({ pool: pa.pool }), b: new ZfsEngine({ pool: pb.pool }), mountRoot: join(dir, 'mnt') };
    await fixture.a.prepare();
    await fixture.b.prepare();
  }, 60_000);
  afterAll(() => {
    for (const p of pools) p.destroy();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });
  moveOverLiveCopy('zfs', () => fixture);
});

/**
 * Test support for the btrfs move tests (finalChanged.btrfs, finalChanged.rv4.btrfs,
 * changedSinceProbe.btrfs): two prepared btrfs pools on loop devices, optionally with a transfer
 * server on b and a client from a, and a live copy with a writer the namespace scan cannot see.
 */
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BtrfsEngine } from './btrfs';
import { makeBtrfsLoopPool, makeTestCluster, type BtrfsLoopPool, type TestCluster } from './testSupport';
import { TransferClient, TransferServer } from './transfer';

export const MiB = 1024 * 1024;

export interface BtrfsPair {
  readonly dir: string;
  /** Engines on pools a and b, prepared. */
  readonly a: BtrfsEngine;
  readonly b: BtrfsEngine;
  /** Where the tests mount: <mountRoot>/b/<id> is the transfer server's mount path. */
  readonly mountRoot: string;
  destroy(): Promise<void>;
}

export interface BtrfsTransferPair extends BtrfsPair {
  /** A client on a of the transfer server on b. */
  readonly client: TransferClient;
}

/** Two 256 MiB btrfs pools a and b under a new temp dir named by `prefix`, with engines prepared. */
export async function startBtrfsPair(prefix: string): Promise<BtrfsPair> {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const pools: BtrfsLoopPool[] = [];
  const destroy = (): Promise<void> => {
    for (const p of pools) p.destroy();
    rmSync(dir, { recursive: true, force: true });
    return Promise.resolve();
  };
  try {
    for (const name of ['a', 'b']) pools.push(makeBtrfsLoopPool(dir, name, 256 * MiB));
    const [pa, pb] = pools;
    if (pa === undefined || pb === undefined) throw new Error('no pools');
    const a = new BtrfsEngine({ pool: pa.pool });
    const b = new BtrfsEngine({ pool: pb.pool });
    await a.prepare();
    await b.prepare();
    return { dir, a, b, mountRoot: join(dir, 'mnt'), destroy };
  } catch (e) {
    await destroy();
    throw e;
  }
}

/** startBtrfsPair, and a transfer server on b (mounting at <mountRoot>/b/<id>) with a client from a. */
export async function startBtrfsTransferPair(prefix: string): Promise<BtrfsTransferPair> {
  const pair = await startBtrfsPair(prefix);
  let cluster: TestCluster | undefined;
  let server: TransferServer | undefined;
  const destroy = async (): Promise<void> => {
    await server?.close();
    cluster?.destroy();
    await pair.destroy();
  };
  try {
    cluster = makeTestCluster();
    const nodeA = cluster.node();
    const nodeB = cluster.node();
    server = new TransferServer({
      engine: pair.b,
      credentials: nodeB,
      mountPathFor: (id) => join(pair.mountRoot, 'b', id),
    });
    const port = await server.listen(0, '127.0.0.1');
    const client = new TransferClient({ host: '127.0.0.1', port, nodeUuid: nodeB.nodeUuid }, nodeA);
    return { ...pair, client, destroy };
  } catch (e) {
    await destroy();
    throw e;
  }
}

/** A new 64 MiB dataset on `engine`, mounted at <mountRoot>/w/<id> with `data` written: its id and mount path. */
export async function liveCopy(
  engine: BtrfsEngine,
  mountRoot: string,
  data: string,
): Promise<{ id: string; pathW: string }> {
  const id = randomUUID();
  const pathW = join(mountRoot, 'w', id);
  await engine.createDataset(id, 64 * MiB);
  await engine.mount(id, pathW);
  writeFileSync(join(pathW, 'data'), data);
  return { id, pathW };
}

/** A writer the namespace scan cannot see: an fd on <pathW>/data kept past a lazy unmount of pathW. */
export function hiddenWriterFd(pathW: string): number {
  const fd = openSync(join(pathW, 'data'), 'r+');
  execFileSync('umount', ['-l', pathW]);
  return fd;
}

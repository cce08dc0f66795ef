/**
 * Session 16 (final review s15): the transfer listener computed a live copy's lineage (btrfs: a
 * whole-pool `filesystem sync`, listings, a /proc scan) for every `status` request, also the
 * mover's and the replica rounds', which never read it. A status may now say `lineage: false`: the
 * listener leaves the lineage out. Compatible both ways: a status without the field (an older
 * agent's, or one that reads the lineage) is answered with it as before; a listener one release
 * behind refuses the unknown field (its requests are strict), and the client then asks again
 * without it and keeps doing so for that listener.
 */
import { Readable } from 'node:stream';
import tls from 'node:tls';
import type { CopyLineage, LocalEngine, LocalSnapshot, SendStream } from './engine';
import { moveLocalDataset } from './LocalMover';
import { MOVE_ID, memoryEngine } from './moverTestSupport';
import { makeTestCluster, type TestCluster } from './testSupport';
import { TransferClient, TransferServer, type StatusAnswer, type TargetApi } from './transfer';

const ID = MOVE_ID;

/** A target engine holding a live copy, counting its lineage look-ups. */
function holder(): LocalEngine & { lineageCalls: number } {
  const e = {
    ...memoryEngine(),
    lineageCalls: 0,
    createDataset: () => Promise.reject(new Error('no')),
    inUse: () => Promise.resolve(false),
    createSnapshot: (): Promise<LocalSnapshot> => Promise.reject(new Error('no')),
    listSnapshots: () => Promise.resolve([{ datasetId: ID, name: 'move-000001', identity: 'i1', received: true }]),
    send: (): SendStream => ({ stream: Readable.from([]), done: Promise.resolve(), abort: () => undefined }),
    receive: () => Promise.reject(new Error('no')),
    promote: () => Promise.reject(new Error('no')),
    lineage: (): Promise<CopyLineage> => {
      e.lineageCalls += 1;
      return Promise.resolve({ from: 'i1', sameAs: 'i1', snapshots: ['i1'] });
    },
  };
  return e;
}

describe('status with and without the lineage', () => {
  let cluster: TestCluster;
  beforeAll(() => {
    cluster = makeTestCluster();
  });
  afterAll(() => cluster.destroy());

  it('lineage: false is answered without computing it; a plain status (older agents, the two-copies check) with it', async () => {
    const b = cluster.node();
    const engine = holder();
    const server = new TransferServer({ engine, credentials: b });
    const port = await server.listen(0, '127.0.0.1');
    try {
      const client = new TransferClient({ host: '127.0.0.1', port, nodeUuid: b.nodeUuid }, cluster.node());
      const bare = await client.status(ID, { lineage: false });
      expect(bare.live.exists).toBe(true);
      expect(bare.live.lineage).toBeUndefined();
      expect(bare.snapshots).toEqual([{ name: 'move-000001', identity: 'i1' }]);
      expect(engine.lineageCalls).toBe(0);
      const full = await client.status(ID);
      expect(full.live.lineage).toEqual({ from: 'i1', sameAs: 'i1', snapshots: ['i1'] });
      expect(engine.lineageCalls).toBe(1);
    } finally {
      await server.close();
    }
  });

  it('a listener one release behind (strict, no such field): asked again without it, and from then on only so', async () => {
    const b = cluster.node();
    const lines: string[] = [];
    const older = tls.createServer(
      { ...b, requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.3' },
      (s) => {
        let text = '';
        s.setEncoding('utf8');
        s.on('data', (d: string) => {
          text += d;
          const nl = text.indexOf('\n');
          if (nl < 0) return;
          const line = text.slice(0, nl);
          lines.push(line);
          const request = JSON.parse(line) as Record<string, unknown>;
          // As an older listener's strict parse answers an unknown key.
          s.end(
            `${JSON.stringify(
              Object.keys(request).some((k) => !['op', 'datasetId'].includes(k))
                ? { ok: false, code: 'PEER_REFUSED', message: 'bad request: Unrecognized key: "lineage"' }
                : ({
                    ok: true,
                    snapshots: [{ name: 'move-000001', identity: 'i1' }],
                    live: { exists: false, mountPoints: [], parent: null },
                  } satisfies StatusAnswer),
            )}\n`,
          );
        });
        s.on('error', () => undefined);
      },
    );
    const port = await new Promise<number>((resolve) =>
      older.listen(0, '127.0.0.1', () => resolve((older.address() as { port: number }).port)),
    );
    try {
      const client = new TransferClient({ host: '127.0.0.1', port, nodeUuid: b.nodeUuid }, cluster.node());
      expect((await client.status(ID, { lineage: false })).snapshots).toHaveLength(1);
      expect((await client.status(ID, { lineage: false })).snapshots).toHaveLength(1);
      expect(lines.map((l) => JSON.parse(l) as unknown)).toEqual([
        { op: 'status', datasetId: ID, lineage: false },
        { op: 'status', datasetId: ID },
        { op: 'status', datasetId: ID },
      ]);
    } finally {
      await new Promise<void>((resolve) => older.close(() => resolve()));
    }
  });

  it('the mover asks without the lineage (it never reads it)', async () => {
    const asked: Array<{ lineage?: boolean } | undefined> = [];
    const target: TargetApi = {
      status: (_id, o) => {
        asked.push(o);
        return Promise.reject(new Error('stop here'));
      },
      receive: () => Promise.reject(new Error('no')),
      promote: () => Promise.reject(new Error('no')),
      prune: () => Promise.resolve(),
    };
    await expect(
      moveLocalDataset({ engine: holder(), target, datasetId: ID, size: 1000, maxAttempts: 1 }),
    ).rejects.toThrow(/stop here/);
    expect(asked).toEqual([{ lineage: false }]);
  });
});

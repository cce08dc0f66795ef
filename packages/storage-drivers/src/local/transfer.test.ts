/**
 * The transfer protocol over real mutual TLS (certificates from a throwaway openssl CA), with an
 * in-memory engine on the receiving side: what is kept, what is refused, and by whom.
 */
import { randomUUID } from 'node:crypto';
import { PassThrough, Readable } from 'node:stream';
import tls from 'node:tls';
import type { LocalDataset, LocalEngine, LocalSnapshot, SendStream } from './engine';
import { moveLocalDataset } from './LocalMover';
import { spawnProcess } from './processes';
import { makeTestCluster, type TestCluster } from './testSupport';
import { partialBufferAction, TransferClient, TransferServer } from './transfer';

const ID = '0b0e6d4c-6c52-4a43-9d8a-4e3f1c1d2a10';

/** Waits for something the test started to happen (a fixed sleep fails on a loaded host). */
async function eventually(check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

/**
 * Snapshots are byte strings; a stream is "<name>|<identity>|<data>|END", incremental or not. Like
 * `btrfs receive -e`, the receive stops at its end marker (what follows is the transfer's business).
 */
class MemoryEngine implements LocalEngine {
  readonly engine = 'btrfs' as const;
  readonly pool = 'memory';
  live: { data: string; mounted: string[] } | undefined;
  snapshots: Array<LocalSnapshot & { data: string }> = [];
  destroyed: string[] = [];
  prepare = () => Promise.resolve();
  listDatasets = (): Promise<LocalDataset[]> =>
    Promise.resolve(this.live ? [{ datasetId: ID, size: 1000, usedBytes: this.live.data.length }] : []);
  listRetained = (): Promise<string[]> =>
    Promise.resolve(this.live === undefined && this.snapshots.length > 0 ? [ID] : []);
  createDataset = (): Promise<LocalDataset> => {
    this.live ??= { data: '', mounted: [] };
    return Promise.resolve({ datasetId: ID, size: 1000, usedBytes: 0 });
  };
  resizeDataset = () => Promise.resolve();
  destroyDataset = () => Promise.resolve();
  retire = () => {
    this.live = undefined;
    return Promise.resolve();
  };
  mountPoints = () => Promise.resolve(this.live?.mounted ?? []);
  inUse = () => Promise.resolve((this.live?.mounted ?? []).length > 0);
  mount = (_id: string, path: string) => {
    this.live?.mounted.push(path);
    return Promise.resolve();
  };
  unmount = () => {
    if (this.live) this.live.mounted = [];
    return Promise.resolve();
  };
  createSnapshot = (_id: string, name: string): Promise<LocalSnapshot> => {
    const s = { datasetId: ID, name, identity: randomUUID(), received: false, data: this.live?.data ?? '' };
    this.snapshots.push(s);
    return Promise.resolve(s);
  };
  listSnapshots = () => Promise.resolve(this.snapshots.map(({ data: _d, ...s }) => s));
  destroySnapshot = (_id: string, name: string) => {
    this.destroyed.push(name);
    this.snapshots = this.snapshots.filter((s) => s.name !== name);
    return Promise.resolve();
  };
  send = (_id: string, name: string): SendStream => {
    const s = this.snapshots.find((x) => x.name === name);
    return {
      stream: Readable.from([Buffer.from(`${name}|${s?.identity}|${s?.data}|END`)]),
      done: Promise.resolve(),
      abort: () => undefined,
    };
  };
  receive = async (_id: string, name: string, identity: string, stream: Readable): Promise<LocalSnapshot> => {
    const chunks: Buffer[] = [];
    let tail = '';
    for await (const c of stream as AsyncIterable<Buffer>) {
      chunks.push(c);
      tail = (tail + c.subarray(-4).toString('latin1')).slice(-4);
      if (tail === '|END') break;
    }
    const text = Buffer.concat(chunks).toString();
    const [n, id, data, end] = text.split('|');
    if (end !== 'END') throw Object.assign(new Error('cut off'), { code: 'TRANSFER_FAILED' });
    if (n !== name || id !== identity) throw Object.assign(new Error('bad stream'), { code: 'TRANSFER_FAILED' });
    const s = { datasetId: ID, name, identity, received: true, data: data ?? '' };
    this.snapshots.push(s);
    return s;
  };
  /** Datasets settled (LocalEngine.settle); settleFails: it fails instead. */
  settled: string[] = [];
  settleFails = false;
  settle = (id: string): Promise<void> => {
    if (this.settleFails) return Promise.reject(new Error('the pool is read-only'));
    this.settled.push(id);
    return Promise.resolve();
  };
  promote = (_id: string, name: string): Promise<LocalDataset> => {
    this.live = { data: this.snapshots.find((s) => s.name === name)?.data ?? '', mounted: [] };
    return Promise.resolve({ datasetId: ID, size: 1000, usedBytes: 0 });
  };
}

describe('local transfer over mutual TLS', () => {
  let cluster: TestCluster;
  let other: TestCluster;
  let server: TransferServer;
  let port: number;
  let target: MemoryEngine;
  let a: ReturnType<TestCluster['node']>;
  let b: ReturnType<TestCluster['node']>;

  beforeAll(() => {
    cluster = makeTestCluster();
    other = makeTestCluster();
    a = cluster.node();
    b = cluster.node();
  });
  afterAll(() => {
    cluster.destroy();
    other.destroy();
  });
  beforeEach(async () => {
    target = new MemoryEngine();
    server = new TransferServer({ engine: target, credentials: b, mountPathFor: (id) => `/flocker/${id}` });
    port = await server.listen(0, '127.0.0.1');
  });
  afterEach(() => server.close());

  it('moves a dataset: rounds while mounted, the final delta after the release, promoted and mounted there', async () => {
    const source = new MemoryEngine();
    source.live = { data: 'v1', mounted: ['/flocker/x'] };
    const client = new TransferClient({ host: '127.0.0.1', port, nodeUuid: b.nodeUuid }, a);
    let released = false;
    const result = await moveLocalDataset({
      engine: source,
      target: client,
      datasetId: ID,
      size: 1000,
      released: () => Promise.resolve(released),
      releasePollMs: 5,
      onProgress: (p) => {
        // The writer goes on during phase 1, then lets go.
        if (p.phase === 'waitingForRelease' && source.live !== undefined) {
          source.live.data = 'v2';
          released = true;
        }
      },
    });
    expect(target.live).toEqual({ data: 'v2', mounted: [`/flocker/${ID}`] });
    expect(result.finalSnapshot).toMatch(/^move-\d{6}$/);
    // Both sides keep only the final snapshot; the source's live copy is retired.
    expect(target.snapshots.map((s) => s.name)).toEqual([result.finalSnapshot]);
    expect(source.snapshots.map((s) => s.name)).toEqual([result.finalSnapshot]);
    expect(source.live).toBeUndefined();
  });

  it('the target settles (writes out what it received) after each send before the release, never after the final one; a failed settle only leaves it to the final receive', async () => {
    for (const fails of [false, true]) {
      target = new MemoryEngine();
      target.settleFails = fails;
      await server.close();
      server = new TransferServer({ engine: target, credentials: b, mountPathFor: (id) => `/flocker/${id}` });
      port = await server.listen(0, '127.0.0.1');
      const source = new MemoryEngine();
      source.live = { data: 'v1', mounted: ['/flocker/x'] };
      const events: string[] = [];
      const settles: boolean[] = [];
      let waited = 0;
      const result = await moveLocalDataset({
        engine: source,
        target: new TransferClient({ host: '127.0.0.1', port, nodeUuid: b.nodeUuid }, a),
        datasetId: ID,
        size: 1000,
        released: () => Promise.resolve(waited >= 2),
        releasePollMs: 5,
        catchUpMs: 0,
        onSent: (s) => events.push(`sent ${s.released ? 'final' : 'phase 1'} (settled ${target.settled.length})`),
        onSettled: (s) => settles.push(s.ok),
        onProgress: (p) => {
          if (p.phase === 'waitingForRelease') waited++;
        },
      });
      // Settled once after each of the two phase-1 sends (the full one, a catch-up round), before the next step.
      expect(events).toEqual(
        fails
          ? ['sent phase 1 (settled 0)', 'sent phase 1 (settled 0)', 'sent final (settled 0)']
          : ['sent phase 1 (settled 0)', 'sent phase 1 (settled 1)', 'sent final (settled 2)'],
      );
      expect(target.settled).toEqual(fails ? [] : [ID, ID]);
      expect(settles).toEqual([!fails, !fails]);
      expect(target.live).toEqual({ data: 'v1', mounted: [`/flocker/${ID}`] });
      expect(result.rounds).toHaveLength(3);
    }
  });

  it('a target that stops reading in the final send, dies, then refuses connections: the mover retries with backoff and resumes from the snapshot it holds', async () => {
    const source = new MemoryEngine();
    source.live = { data: 'v1', mounted: ['/flocker/x'] };
    // The final snapshot's send is a real process writing more than every buffer on the way holds
    // (its stdout is left unread while the target stalls), as btrfs send is.
    const big = 32 * 1024 * 1024;
    const memorySend = source.send;
    source.send = (id: string, name: string) => {
      const s = source.snapshots.find((x) => x.name === name);
      if (s === undefined || s.data !== 'v2') return memorySend(id, name);
      const p = spawnProcess('sh', [
        '-c',
        `printf '%s|%s|v2' "$0" "$1"; head -c ${big} /dev/zero; printf '|END'`,
        name,
        s.identity,
      ]);
      p.stdin.end();
      return { stream: p.stdout, done: p.done, abort: p.kill };
    };
    // The target stops reading the final send (SIGSTOP) until its connection is gone.
    let stallFinal = false;
    let stalled: () => void = () => undefined;
    const stalledSeen = new Promise<void>((resolve) => (stalled = resolve));
    const memoryReceive = target.receive;
    target.receive = async (id: string, name: string, identity: string, stream: Readable) => {
      if (!stallFinal) return memoryReceive(id, name, identity, stream);
      stalled();
      stream.on('error', () => undefined);
      await new Promise((resolve) => stream.once('close', resolve));
      throw Object.assign(new Error('killed'), { code: 'TRANSFER_FAILED' });
    };
    const client = new TransferClient({ host: '127.0.0.1', port, nodeUuid: b.nodeUuid }, a);
    const retries: string[] = [];
    const sent: Array<{ name: string; parent: string | null; released: boolean }> = [];
    let released = false;
    const moving = moveLocalDataset({
      engine: source,
      target: client,
      datasetId: ID,
      size: 1000,
      released: () => Promise.resolve(released),
      releasePollMs: 5,
      backoffInitialMs: 20,
      backoffMaxMs: 100,
      onRetry: (e) => retries.push(e),
      onSent: (x) => sent.push(x),
      onProgress: (p) => {
        if (p.phase === 'waitingForRelease' && !released && source.live !== undefined) {
          source.live.data = 'v2';
          stallFinal = true;
          released = true;
        }
      },
    });
    await stalledSeen;
    // The buffers between the send and the stalled target fill up: the send waits for room.
    await new Promise((r) => setTimeout(r, 300));
    // kill -9 of the target: its connections reset, then nothing listens on its port (refused).
    await server.close();
    for (let i = 0; i < 200 && !retries.some((e) => /ECONNREFUSED/.test(e)); i++)
      await new Promise((r) => setTimeout(r, 20));
    expect(retries.some((e) => /ECONNREFUSED/.test(e))).toBe(true);
    // Nothing of the cut stream was kept there.
    expect(target.snapshots.map((s) => s.data)).toEqual(['v1']);
    stallFinal = false;
    server = new TransferServer({ engine: target, credentials: b, mountPathFor: (id) => `/flocker/${id}` });
    await server.listen(port, '127.0.0.1');
    const result = await moving;
    // The final snapshot went from the one the target held (never from zero), whole, and became its copy.
    const finalSends = sent.filter((x) => x.released);
    expect(finalSends.map((x) => [x.name, x.parent])).toEqual([[result.finalSnapshot, 'move-000001']]);
    expect(target.live?.data).toBe(`v2${'\0'.repeat(big)}`);
    expect(target.live?.mounted).toEqual([`/flocker/${ID}`]);
  }, 30_000);

  it('a target refusing connections is waited for past maxAttempts (by time, maxUnreachableMs), then given up on with the reason', async () => {
    await server.close();
    const source = new MemoryEngine();
    source.live = { data: 'v1', mounted: [] };
    const client = new TransferClient({ host: '127.0.0.1', port, nodeUuid: b.nodeUuid }, a);
    const base = { engine: source, target: client, datasetId: ID, size: 1000, backoffInitialMs: 5, backoffMaxMs: 10 };
    await expect(moveLocalDataset({ ...base, maxAttempts: 2, maxUnreachableMs: 150 })).rejects.toThrow(/ECONNREFUSED/);
    let refused = 0;
    const moving = moveLocalDataset({
      ...base,
      maxAttempts: 2,
      onRetry: () => {
        refused += 1;
      },
    });
    while (refused < 10) await new Promise((r) => setTimeout(r, 5));
    server = new TransferServer({ engine: target, credentials: b, mountPathFor: (id) => `/flocker/${id}` });
    await server.listen(port, '127.0.0.1');
    await moving;
    expect(target.live?.data).toBe('v1');
  });

  it('refuses data of a dataset the node does not take (not its primary), answering status still', async () => {
    const refusing = new TransferServer({ engine: new MemoryEngine(), credentials: b, mayReceive: () => false });
    const refusingPort = await refusing.listen(0, '127.0.0.1');
    try {
      const client = new TransferClient({ host: '127.0.0.1', port: refusingPort, nodeUuid: b.nodeUuid }, a);
      await expect(client.status(ID)).resolves.toMatchObject({ ok: true });
      await expect(client.promote(ID, 'move-000001', 1000, true)).rejects.toMatchObject({ code: 'PEER_REFUSED' });
      await expect(
        client.receive(
          { datasetId: ID, name: 'move-000001', parent: null, identity: 'x' },
          { stream: Readable.from([Buffer.from('move-000001|x|data|END')]), done: Promise.resolve() },
        ),
      ).rejects.toMatchObject({ code: 'PEER_REFUSED' });
    } finally {
      await refusing.close();
    }
  });

  it('a move taken back before the release stops; nothing is promoted there', async () => {
    const source = new MemoryEngine();
    source.live = { data: 'v1', mounted: ['/flocker/x'] };
    const client = new TransferClient({ host: '127.0.0.1', port, nodeUuid: b.nodeUuid }, a);
    const cancel = new AbortController();
    await expect(
      moveLocalDataset({
        engine: source,
        target: client,
        datasetId: ID,
        size: 1000,
        released: () => Promise.resolve(false),
        releasePollMs: 5,
        cancel: cancel.signal,
        onProgress: (p) => {
          if (p.phase === 'waitingForRelease') cancel.abort();
        },
      }),
    ).rejects.toThrow(/taken back/);
    expect(target.live).toBeUndefined();
    expect(source.live).toEqual({ data: 'v1', mounted: ['/flocker/x'] });
  });

  it('answers status with the snapshots held', async () => {
    await target.createSnapshot(ID, 'move-000001');
    const client = new TransferClient({ host: '127.0.0.1', port, nodeUuid: b.nodeUuid }, a);
    const status = await client.status(ID);
    expect(status.snapshots.map((s) => s.name)).toEqual(['move-000001']);
    expect(status.live.exists).toBe(false);
  });

  it('the client refuses a listener that is not the node it means (another node of the cluster)', async () => {
    const client = new TransferClient({ host: '127.0.0.1', port, nodeUuid: a.nodeUuid }, a);
    await expect(client.status(ID)).rejects.toMatchObject({ code: 'TRANSFER_FAILED' });
  });

  it('the listener refuses a client of another cluster, and a client without a certificate', async () => {
    const stranger = other.node();
    const client = new TransferClient(
      { host: '127.0.0.1', port, nodeUuid: b.nodeUuid },
      { ...stranger, ca: cluster.ca },
    );
    await expect(client.status(ID)).rejects.toMatchObject({ code: 'TRANSFER_FAILED' });
    const anonymous = tls.connect({ host: '127.0.0.1', port, ca: cluster.ca, checkServerIdentity: () => undefined });
    const outcome = await new Promise<string>((resolve) => {
      anonymous.on('data', (d: Buffer) => resolve(d.toString()));
      anonymous.once('error', (e: Error) => resolve(`error ${e.message}`));
      anonymous.once('close', () => resolve('closed'));
      anonymous.write('{"op":"status","datasetId":"0b0e6d4c-6c52-4a43-9d8a-4e3f1c1d2a10"}\n');
    });
    expect(outcome).not.toMatch(/"ok":true/);
  });

  it('a stream whose byte count does not match its trailer is removed after the receive (INTEGRITY)', async () => {
    const identity = randomUUID();
    const raw = tls.connect({ host: '127.0.0.1', port, ...a, checkServerIdentity: () => undefined });
    await new Promise<void>((resolve) => raw.once('secureConnect', () => resolve()));
    const payload = Buffer.from(`move-000001|${identity}|data|END`);
    const header = Buffer.alloc(4);
    header.writeUInt32BE(payload.length, 0);
    const answer = new Promise<string>((resolve) => {
      let text = '';
      raw.on('data', (d: Buffer) => (text += d.toString()));
      raw.once('close', () => resolve(text));
    });
    raw.write(`${JSON.stringify({ op: 'receive', datasetId: ID, name: 'move-000001', parent: null, identity })}\n`);
    raw.write(Buffer.concat([header, payload, Buffer.alloc(4)]));
    // The engine has accepted the stream (its end marker) by the time the bad trailer comes.
    await eventually(() => target.snapshots.length > 0);
    expect(target.snapshots.map((s) => s.name)).toEqual(['move-000001']);
    raw.write(`${JSON.stringify({ bytes: payload.length + 1 })}\n`);
    expect(JSON.parse(await answer)).toMatchObject({ ok: false, code: 'INTEGRITY' });
    expect(target.snapshots).toEqual([]);
    expect(target.destroyed).toEqual(['move-000001']);
  });

  it('a connection cut in the middle of a stream keeps nothing', async () => {
    const identity = randomUUID();
    const raw = tls.connect({ host: '127.0.0.1', port, ...a, checkServerIdentity: () => undefined });
    await new Promise<void>((resolve) => raw.once('secureConnect', () => resolve()));
    const header = Buffer.alloc(4);
    header.writeUInt32BE(1000, 0);
    raw.write(`${JSON.stringify({ op: 'receive', datasetId: ID, name: 'move-000001', parent: null, identity })}\n`);
    raw.write(Buffer.concat([header, Buffer.from(`move-000001|${identity}|half`)]));
    await new Promise((r) => setTimeout(r, 50));
    raw.destroy();
    await new Promise((r) => setTimeout(r, 100));
    expect(target.snapshots).toEqual([]);
  });

  it('a send that fails at the source is never ended as complete', async () => {
    const client = new TransferClient({ host: '127.0.0.1', port, nodeUuid: b.nodeUuid }, a);
    const stream = new PassThrough();
    stream.end(Buffer.from('move-000001|x|partial'));
    const done = Promise.reject(new Error('btrfs send exited with 1'));
    done.catch(() => undefined);
    await expect(
      client.receive({ datasetId: ID, name: 'move-000001', parent: null, identity: 'x' }, { stream, done }),
    ).rejects.toThrow();
    await new Promise((r) => setTimeout(r, 100));
    expect(target.snapshots).toEqual([]);
  });
});

describe('partialBufferAction (the receiver coalescing TLS records into MiB buffers)', () => {
  it('waits while bytes keep arriving, passes a buffer on once the sender stalls or it has filled for 50 ms', () => {
    // Bytes arrived since the last look: a MiB arriving slowly (a busy host) is not cut into pieces.
    expect(partialBufferAction(300_000, 100_000, 5)).toBe('wait');
    expect(partialBufferAction(300_000, 100_000, 49.9)).toBe('wait');
    // Nothing arrived since the last look: the sender stalled (or the stream ends later), pass on what is there.
    expect(partialBufferAction(300_000, 300_000, 5)).toBe('passOn');
    expect(partialBufferAction(10, 0, 5)).toBe('wait');
    expect(partialBufferAction(10, 10, 10)).toBe('passOn');
    // A trickle slower than a MiB per 50 ms: passed on at 50 ms however much arrived meanwhile.
    expect(partialBufferAction(300_000, 100_000, 50)).toBe('passOn');
    expect(partialBufferAction(300_000, 100_000, 500)).toBe('passOn');
  });
});

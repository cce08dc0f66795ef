/**
 * The transfer path's pooled buffers: a buffer is refilled only after the write that carried it
 * completed. Every byte is checksummed at the moment its slow write completes (a buffer refilled
 * earlier would change what is hashed), through a real sender process and real mutual TLS.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Writable, type Readable } from 'node:stream';
import tls from 'node:tls';
import { BufferPool, releaserOf } from './bufferPool';
import type { LocalEngine, LocalSnapshot } from './engine';
import { FIFO_BYTES, growPipe, spawnProcess, type StreamProcess } from './processes';
import { pipeInto } from './streams';
import { makeTestCluster, type TestCluster } from './testSupport';
import { readIntoReusedBuffer, TransferClient, TransferServer } from './transfer';

const ID = '0b0e6d4c-6c52-4a43-9d8a-4e3f1c1d2a10';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('BufferPool', () => {
  it('hands a buffer out again only after it was released, through any view of it; double and foreign releases are ignored', () => {
    const pool = new BufferPool(1024, 2);
    const a = pool.acquire();
    const b = pool.acquire();
    expect(a.buffer).not.toBe(b.buffer);
    expect(pool.outstanding).toBe(2);
    pool.release(a.subarray(0, 10));
    pool.release(a);
    pool.release(Buffer.alloc(1024));
    expect(pool.outstanding).toBe(1);
    const c = pool.acquire();
    expect(c.buffer).toBe(a.buffer);
    const d = pool.acquire();
    expect(d.buffer).not.toBe(a.buffer);
    expect(d.buffer).not.toBe(b.buffer);
    expect(pool.allocated).toBe(3);
  });

  it('keeps at most `keep` free buffers', () => {
    const pool = new BufferPool(16, 1);
    const all = [pool.acquire(), pool.acquire(), pool.acquire()];
    for (const x of all) pool.release(x);
    pool.acquire();
    pool.acquire();
    expect(pool.allocated).toBe(4);
  });
});

describe('pooled buffers on the transfer path', () => {
  let dir: string;
  let file: string;
  let digest: string;
  let cluster: TestCluster;
  const SIZE = 24 * 1024 * 1024 + 12345;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'flocker-pool-test-'));
    file = join(dir, 'data');
    const data = randomBytes(SIZE);
    writeFileSync(file, data);
    digest = createHash('sha256').update(data).digest('hex');
    cluster = makeTestCluster();
  });
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
    cluster.destroy();
  });

  /** A consumer whose writes complete late: each chunk is hashed when its write completes, then released. */
  const slowConsume = async (stream: Readable, delayMs: number) => {
    const release = releaserOf(stream);
    const hash = createHash('sha256');
    const buffers = new Set<ArrayBufferLike>();
    let chunks = 0;
    const pending: Array<Promise<void>> = [];
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      chunks++;
      buffers.add(chunk.buffer);
      const copy = Buffer.from(chunk);
      // Several writes in flight at once, like a socket's buffer.
      pending.push(
        sleep(delayMs).then(() => {
          expect(chunk.equals(copy)).toBe(true);
          release?.(chunk);
        }),
      );
      hash.update(copy);
      if (pending.length > 3) await pending.shift();
    }
    await Promise.all(pending);
    return { digest: hash.digest('hex'), chunks, buffers: buffers.size, pooled: release !== undefined };
  };

  it("a sender's pooled stdout: every byte, in large chunks, from a few buffers reused only once released", async () => {
    const p = spawnProcess('cat', [file], { pooledStdout: true });
    const got = await slowConsume(p.stdout, 5);
    await p.done;
    expect(got.pooled).toBe(true);
    expect(got.digest).toBe(digest);
    expect(got.chunks).toBeLessThanOrEqual(Math.ceil(SIZE / (960 * 1024)) + 1);
    expect(got.buffers).toBeLessThan(got.chunks);
  });

  it("a sender's FIFO is grown to a MiB (F_SETPIPE_SZ by perl), so its reads take up to that much", async () => {
    // The program reports its own stdout's size once grown (the growing is not awaited: it retries for a while).
    const p = spawnProcess(
      'perl',
      [
        '-e',
        'my $s; for (1..200) { $s = fcntl(STDOUT, 1032, 0); last if $s >= 1048576; select(undef, undef, undef, 0.05) } print $s',
      ],
      { pooledStdout: true },
    );
    const chunks: Buffer[] = [];
    for await (const chunk of p.stdout as AsyncIterable<Buffer>) chunks.push(Buffer.from(chunk));
    await p.done;
    expect(Number(Buffer.concat(chunks).toString())).toBe(FIFO_BYTES);
    // A path that is no pipe of ours: perl says so by its exit code, nothing throws.
    expect(await growPipe(987654)).toBe(1);
  });

  it('a consumer that never releases still gets every byte (fresh buffers)', async () => {
    const p = spawnProcess('cat', [file], { pooledStdout: true });
    const hash = createHash('sha256');
    for await (const chunk of p.stdout as AsyncIterable<Buffer>) hash.update(chunk);
    await p.done;
    expect(hash.digest('hex')).toBe(digest);
  });

  it('a pooled send that fails or is killed rejects (never a clean end)', async () => {
    const failing = spawnProcess('sh', ['-c', 'head -c 3000000 /dev/zero; exit 3'], { pooledStdout: true });
    failing.stdout.resume();
    await expect(failing.done).rejects.toThrow(/exited with 3/);
    const killed = spawnProcess('cat', ['/dev/zero'], { pooledStdout: true });
    killed.stdout.once('data', () => killed.kill());
    await expect(killed.done).rejects.toThrow(/SIGKILL|stopped/);
  });

  /** An engine that receives into a program whose stdin completes each write late, hashing it then. */
  const slowEngine = (delayMs: number) => {
    const seen = { digest: '', writes: 0, buffers: new Set<ArrayBufferLike>(), pooled: false };
    const engine: Pick<LocalEngine, 'receive' | 'destroySnapshot'> = {
      destroySnapshot: () => Promise.resolve(),
      receive: async (_id, name, identity, stream): Promise<LocalSnapshot> => {
        seen.pooled = releaserOf(stream) !== undefined;
        const hash = createHash('sha256');
        const stdin = new Writable({
          highWaterMark: 2 * 1024 * 1024,
          write: (chunk: Buffer, _e, callback) => {
            seen.writes++;
            seen.buffers.add(chunk.buffer);
            // Read when the write completes, as a pipe's write would: a buffer refilled early shows here.
            setTimeout(() => {
              hash.update(chunk);
              callback();
            }, delayMs);
          },
        });
        let finish: () => void = () => undefined;
        const finished = new Promise<void>((resolve) => (finish = resolve));
        stdin.on('finish', () => finish());
        const p: StreamProcess = { stdin, stdout: new PassThrough(), done: finished, kill: () => stdin.destroy() };
        await pipeInto(stream, p);
        seen.digest = hash.digest('hex');
        return { datasetId: ID, name, identity, received: true };
      },
    };
    return { engine: engine as LocalEngine, seen };
  };

  it('through mutual TLS into a slow receiving program: every byte, coalesced into large writes from reused buffers', async () => {
    const a = cluster.node();
    const b = cluster.node();
    const { engine, seen } = slowEngine(3);
    const server = new TransferServer({ engine, credentials: b });
    const port = await server.listen(0, '127.0.0.1');
    try {
      const client = new TransferClient({ host: '127.0.0.1', port, nodeUuid: b.nodeUuid }, a);
      const p = spawnProcess('cat', [file], { pooledStdout: true });
      const bytes = await client.receive(
        { datasetId: ID, name: 'move-000001', parent: null, identity: 'x' },
        { stream: p.stdout, done: p.done },
      );
      expect(bytes).toBe(SIZE);
      expect(seen.pooled).toBe(true);
      expect(seen.digest).toBe(digest);
      // 16-KiB TLS records would be ~1500 writes.
      expect(seen.writes).toBeLessThanOrEqual(Math.ceil(SIZE / (1024 * 1024)) + 2);
      expect(seen.buffers.size).toBeLessThan(seen.writes);
    } finally {
      await server.close();
    }
  });

  it('a received partial buffer is passed on when the sender stalls (not held until a MiB fills)', async () => {
    const a = cluster.node();
    const b = cluster.node();
    let first: (c: Buffer) => void = () => undefined;
    const firstChunk = new Promise<Buffer>((resolve) => (first = resolve));
    const engine: Pick<LocalEngine, 'receive' | 'destroySnapshot'> = {
      destroySnapshot: () => Promise.resolve(),
      receive: async (_id, name, identity, stream) => {
        stream.on('error', () => undefined);
        stream.once('data', (c: Buffer) => first(Buffer.from(c)));
        await new Promise((resolve) => stream.once('close', resolve));
        return { datasetId: ID, name, identity, received: true };
      },
    };
    const server = new TransferServer({ engine: engine as LocalEngine, credentials: b });
    const port = await server.listen(0, '127.0.0.1');
    const raw = tls.connect({ host: '127.0.0.1', port, ...a, checkServerIdentity: () => undefined });
    try {
      await new Promise<void>((resolve) => raw.once('secureConnect', () => resolve()));
      const header = Buffer.alloc(4);
      header.writeUInt32BE(10, 0);
      raw.write(
        `${JSON.stringify({ op: 'receive', datasetId: ID, name: 'move-000001', parent: null, identity: 'x' })}\n`,
      );
      raw.write(Buffer.concat([header, Buffer.from('0123456789')]));
      expect((await firstChunk).toString()).toBe('0123456789');
    } finally {
      raw.destroy();
      await server.close();
    }
  });

  it('after a stall the rest of the same buffer fills (the socket reads into it in place); a repeated release of a chunk does not free it', async () => {
    const a = cluster.node();
    const b = cluster.node();
    const chunks: Buffer[] = [];
    let got: () => void = () => undefined;
    let arrived = new Promise<void>((resolve) => (got = resolve));
    const engine: Pick<LocalEngine, 'receive' | 'destroySnapshot'> = {
      destroySnapshot: () => Promise.resolve(),
      receive: async (_id, name, identity, stream) => {
        const release = releaserOf(stream);
        stream.on('error', () => undefined);
        stream.on('data', (c: Buffer) => {
          chunks.push(c);
          // Released at once, twice: the buffer is the one the socket still fills.
          release?.(c);
          release?.(c);
          got();
        });
        await new Promise((resolve) => stream.once('close', resolve));
        return { datasetId: ID, name, identity, received: true };
      },
    };
    const server = new TransferServer({ engine: engine as LocalEngine, credentials: b });
    const port = await server.listen(0, '127.0.0.1');
    const raw = tls.connect({ host: '127.0.0.1', port, ...a, checkServerIdentity: () => undefined });
    const frame = (text: string): Buffer => {
      const header = Buffer.alloc(4);
      header.writeUInt32BE(text.length, 0);
      return Buffer.concat([header, Buffer.from(text)]);
    };
    try {
      await new Promise<void>((resolve) => raw.once('secureConnect', () => resolve()));
      raw.write(
        `${JSON.stringify({ op: 'receive', datasetId: ID, name: 'move-000001', parent: null, identity: 'x' })}\n`,
      );
      await sleep(50);
      raw.write(frame('0123456789'));
      await arrived;
      arrived = new Promise<void>((resolve) => (got = resolve));
      raw.write(frame('abcdefghij'));
      await arrived;
      arrived = new Promise<void>((resolve) => (got = resolve));
      raw.write(frame('KLMNOPQRST'));
      await arrived;
      expect(chunks.map((c) => c.toString())).toEqual(['0123456789', 'abcdefghij', 'KLMNOPQRST']);
      // The second and third went into the same buffer, right after the first (decrypted there: no copy).
      expect(chunks[1]?.buffer).toBe(chunks[0]?.buffer);
      expect(chunks[2]?.buffer).toBe(chunks[0]?.buffer);
      expect(chunks[1]?.byteOffset).toBe((chunks[0]?.byteOffset ?? 0) + 10);
      expect(chunks[2]?.byteOffset).toBe((chunks[0]?.byteOffset ?? 0) + 20);
    } finally {
      raw.destroy();
      await server.close();
    }
  });

  it('reads go into the buffer the caller names for the next one (in place), else into the reused one', async () => {
    const a = cluster.node();
    const b = cluster.node();
    const target = Buffer.alloc(1024 * 1024);
    let filled = 0;
    const views: Buffer[] = [];
    let got: () => void = () => undefined;
    const all = new Promise<void>((resolve) => (got = resolve));
    const server = tls.createServer({ ...b, requestCert: true, rejectUnauthorized: true }, (socket) => {
      readIntoReusedBuffer(
        socket,
        (view) => {
          views.push(view);
          if (view.buffer === target.buffer) filled += view.length;
          if (views.reduce((n, v) => n + v.length, 0) >= 2 * 20000) got();
        },
        // The first read goes into the reused buffer (set before any), the rest after what is in target.
        () => target.subarray(filled),
      );
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    const port = typeof address === 'object' && address !== null ? address.port : 0;
    const raw = tls.connect({ host: '127.0.0.1', port, ...a, checkServerIdentity: () => undefined });
    try {
      await new Promise<void>((resolve) => raw.once('secureConnect', () => resolve()));
      raw.write('x'.repeat(20000));
      await sleep(20);
      raw.write('y'.repeat(20000));
      await all;
      const first = views[0];
      expect(first?.buffer).not.toBe(target.buffer);
      const inTarget = views.filter((v) => v.buffer === target.buffer);
      expect(inTarget.length).toBe(views.length - 1);
      expect(inTarget[0]?.byteOffset).toBe(target.byteOffset);
      const text = Buffer.concat(views).toString();
      expect(text).toBe('x'.repeat(20000) + 'y'.repeat(20000));
      expect(target.subarray(0, filled).toString()).toBe(text.slice(first?.length ?? 0));
    } finally {
      raw.destroy();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('on this Node, an accepted TLS socket decrypts into one reused buffer (no fresh buffer per record, no data events)', async () => {
    const a = cluster.node();
    const b = cluster.node();
    const views: Buffer[] = [];
    const texts: string[] = [];
    let events = 0;
    let reused = false;
    let got: () => void = () => undefined;
    const all = new Promise<void>((resolve) => (got = resolve));
    const server = tls.createServer({ ...b, requestCert: true, rejectUnauthorized: true }, (socket) => {
      socket.on('data', () => events++);
      reused = readIntoReusedBuffer(socket, (view) => {
        views.push(view);
        texts.push(view.toString());
        if (texts.join('').length >= 3 * 20000) got();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    const port = typeof address === 'object' && address !== null ? address.port : 0;
    const raw = tls.connect({ host: '127.0.0.1', port, ...a, checkServerIdentity: () => undefined });
    try {
      await new Promise<void>((resolve) => raw.once('secureConnect', () => resolve()));
      for (const c of ['x', 'y', 'z']) {
        raw.write(c.repeat(20000));
        await sleep(20);
      }
      await all;
      expect(reused).toBe(true);
      expect(events).toBe(0);
      expect(texts.join('')).toBe('x'.repeat(20000) + 'y'.repeat(20000) + 'z'.repeat(20000));
      expect(new Set(views.map((v) => v.buffer)).size).toBe(1);
    } finally {
      raw.destroy();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('frame headers split across TLS records (the reused read buffer) are reassembled', async () => {
    const a = cluster.node();
    const b = cluster.node();
    const { engine, seen } = slowEngine(0);
    const server = new TransferServer({ engine, credentials: b });
    const port = await server.listen(0, '127.0.0.1');
    const raw = tls.connect({ host: '127.0.0.1', port, ...a, checkServerIdentity: () => undefined });
    try {
      await new Promise<void>((resolve) => raw.once('secureConnect', () => resolve()));
      const payload = randomBytes(70000);
      const frame = Buffer.alloc(4 + payload.length);
      frame.writeUInt32BE(payload.length, 0);
      payload.copy(frame, 4);
      const wire = Buffer.concat([
        frame,
        frame,
        Buffer.alloc(4),
        Buffer.from(`${JSON.stringify({ bytes: 2 * payload.length })}\n`),
      ]);
      raw.write(
        `${JSON.stringify({ op: 'receive', datasetId: ID, name: 'move-000001', parent: null, identity: 'x' })}\n`,
      );
      // Cut inside the headers (each write is its own TLS record).
      let answer = '';
      raw.on('data', (d: Buffer) => (answer += d.toString()));
      for (const [from, to] of [
        [0, 2],
        [2, 70005],
        [70005, 70006],
        [70006, 70010],
        [70010, wire.length],
      ]) {
        raw.write(wire.subarray(from, to));
        await sleep(10);
      }
      for (let i = 0; i < 100 && !answer.includes('\n'); i++) await sleep(20);
      expect(JSON.parse(answer)).toMatchObject({ ok: true });
      expect(seen.digest).toBe(createHash('sha256').update(payload).update(payload).digest('hex'));
    } finally {
      raw.destroy();
      await server.close();
    }
  });
});

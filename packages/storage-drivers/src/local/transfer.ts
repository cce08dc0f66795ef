/**
 * Moving local datasets between agents: each node runs a small TLS listener (TransferServer) that
 * receives snapshots into its engine; the source connects (TransferClient). Mutual TLS with the
 * cluster's node certificates: both sides must present a certificate of the cluster CA whose
 * common name is node-<uuid>, and the client checks it reached the node it meant to.
 *
 * One request per connection: a JSON line, for `receive` followed by frames (4-byte big-endian
 * length, payload; length 0 ends) and a trailer line {bytes}; then one JSON answer line.
 * Integrity without a digest of our own over every byte (which cost as much CPU as the cipher):
 * TLS authenticates every record on the wire, the engines' streams carry their own checksums that
 * their receive verifies (btrfs: a CRC32C per command; ZFS: per record), the end frame and byte
 * count catch a stream cut short, and the receiver keeps the snapshot only if the engine accepted
 * the whole stream and the identity of what it made equals the sender's (see receive()).
 */
import { X509Certificate } from 'node:crypto';
import { PassThrough } from 'node:stream';
import tls from 'node:tls';
import { identityFromCommonName } from '@flocker/api';
import { errorMessage } from '@flocker/runtime';
import type winston from 'winston';
import { z } from 'zod';
import {
  ConnectionLostError,
  isLocalStorageError,
  LocalStorageError,
  type LocalEngine,
  type LocalErrorCode,
  type SendStream,
} from './engine';
import { BufferPool, markPooled, POOL_CHUNK, pooledOf, type Pooled } from './bufferPool';
import { snapshotsToPrune } from './plan';

export interface NodeTlsCredentials {
  readonly ca: Buffer | string;
  readonly cert: Buffer | string;
  readonly key: Buffer | string;
}

const DatasetId = z.string().regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
const Name = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/);

export const TransferRequest = z.discriminatedUnion('op', [
  z
    .object({
      op: z.literal('status'),
      datasetId: DatasetId,
      /**
       * false: the live copy's lineage is left out (it costs a btrfs whole-pool sync, listings and a
       * /proc scan; a move or a replica round never reads it). Absent: with it (older agents). A
       * listener one release behind refuses the field (strict): TransferClient.status asks again without.
       */
      lineage: z.boolean().optional(),
    })
    .strict(),
  z
    .object({
      op: z.literal('receive'),
      datasetId: DatasetId,
      name: Name,
      parent: Name.nullable(),
      identity: z.string().min(1).max(128),
    })
    .strict(),
  z
    .object({
      op: z.literal('promote'),
      datasetId: DatasetId,
      name: Name,
      size: z.number().int().positive(),
      /** Mount the promoted copy where the target's agent mounts it (its mountPathFor). */
      mount: z.boolean(),
    })
    .strict(),
  z.object({ op: z.literal('prune'), datasetId: DatasetId, keep: Name }).strict(),
  /** Write out what the receives left in memory (LocalEngine.settle), answered once done. */
  z.object({ op: z.literal('settle'), datasetId: DatasetId }).strict(),
]);
export type TransferRequest = z.infer<typeof TransferRequest>;

const SnapshotRefSchema = z.object({ name: z.string(), identity: z.string() });
export const StatusAnswer = z.object({
  ok: z.literal(true),
  snapshots: z.array(SnapshotRefSchema),
  live: z.object({
    exists: z.boolean(),
    mountPoints: z.array(z.string()),
    parent: z.string().nullable(),
    /**
     * The live copy's lineage (LocalEngine.lineage; issue 24: two live copies are ordered by it).
     * Absent: an agent one release behind, or an engine that does not tell: nothing known.
     */
    lineage: z
      .object({
        from: z.string().max(128).nullable(),
        sameAs: z.string().max(128).nullable(),
        snapshots: z.array(z.string().max(128)).max(10_000),
      })
      .optional(),
  }),
});
export type StatusAnswer = z.infer<typeof StatusAnswer>;
const OkAnswer = z.object({ ok: z.literal(true) }).loose();
const ErrorAnswer = z.object({ ok: z.literal(false), code: z.string(), message: z.string() });
const Answer = z.union([OkAnswer, ErrorAnswer]);
const Trailer = z.object({ bytes: z.number().int().nonnegative() }).strict();

const MAX_LINE = 64 * 1024;
/** A received partial buffer is passed on after this long with no bytes added to it (a stalled or idle sender)… */
const COALESCE_WAIT_MS = 5;
/** …or once it has been filling this long (a sender trickling slower than a MiB per this). */
const COALESCE_MAX_MS = 50;
/**
 * Pooled frames written and not yet called back: one being written, one queued behind it (written
 * alone when the first completes; a third would make the socket flush the queue as a writev).
 */
const MAX_IN_FLIGHT = 2;
/**
 * Free buffers a receive keeps for reuse: more than can be out at once (the engine's stream holds up
 * to 4 MiB, more are being written to the engine, one fills). With the pool's default 8, a burst of
 * releases dropped buffers the next burst allocated anew: 58 MiB allocated per GiB received, each a
 * MiB of fresh pages to fault in and external memory that sets off V8 mark-compacts; 17 with this.
 */
const RECEIVE_POOL_KEEP = 32;
/** The sending socket's buffer (bytes) before the stream is paused. */
const SOCKET_BUFFER = 1024 * 1024;
/**
 * A send on which nothing moves this long (no write taken by the connection, no byte read from it)
 * fails: the receiver stalled (a hung receive), or the connection is half-open (a network blip).
 * Before, a send had no timeout at all (review F10): it waited for room for good. Generous: a
 * receiver busy on a loaded pool stops reading for seconds, not minutes.
 */
export const TRANSFER_IDLE_MS = 120_000;
/** Keep-alive probes after this long idle: a half-open connection fails while the receiver's answer is awaited. */
const KEEPALIVE_MS = 30_000;

/**
 * TLS 1.3 only, AES-128-GCM first: a whole dataset goes through the cipher, and AES-128 costs about
 * three quarters of AES-256 (Node's default first choice) with AES-NI; both are authenticated.
 */
const TRANSFER_CIPHERS = 'TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256';

function nodeUuidOf(cert: { subject?: { CN?: string | string[] } } | undefined): string | undefined {
  const cn = cert?.subject?.CN;
  const name = Array.isArray(cn) ? cn[0] : cn;
  // The API's one rule (node-<any hex 8-4-4-4-12>, lower-cased): the peer is the node the control service knows.
  const identity = name === undefined ? undefined : identityFromCommonName(name);
  return identity?.kind === 'node' ? identity.uuid : undefined;
}

/** The node UUID of a PEM node certificate (its common name node-<uuid>). */
export function nodeUuidOfPem(pem: Buffer | string): string | undefined {
  const cn = new X509Certificate(pem).subject
    .split('\n')
    .find((l) => l.startsWith('CN='))
    ?.slice(3);
  return nodeUuidOf({ subject: cn !== undefined ? { CN: cn } : {} });
}

export interface TransferServerOptions {
  readonly engine: LocalEngine;
  readonly credentials: NodeTlsCredentials;
  readonly logger?: winston.Logger;
  /** Which peers may send (default: any node of the cluster CA). */
  readonly authorize?: (peerNodeUuid: string) => boolean;
  /**
   * Whether this node takes data of the dataset from the peer (receive, promote, prune): the agent
   * answers "this node is the dataset's primary"; default: yes. Status is always answered.
   */
  readonly mayReceive?: (datasetId: string, peerNodeUuid: string) => boolean;
  /** Where this node mounts a dataset (promote with mount); the target decides, never the sender. */
  readonly mountPathFor?: (datasetId: string) => string;
  /** Told after a promote (the agent looks again at once). */
  readonly promoted?: (datasetId: string) => void;
}

/** The receiving side: a TLS listener on each node. */
export class TransferServer {
  private readonly server: tls.Server;
  private readonly sockets = new Set<tls.TLSSocket>();

  constructor(private readonly o: TransferServerOptions) {
    this.server = tls.createServer(
      {
        ...o.credentials,
        requestCert: true,
        rejectUnauthorized: true,
        minVersion: 'TLSv1.3',
        ciphers: TRANSFER_CIPHERS,
        honorCipherOrder: true,
      },
      (socket) => {
        this.sockets.add(socket);
        socket.once('close', () => this.sockets.delete(socket));
        socket.on('error', () => undefined);
        void this.handle(socket);
      },
    );
    this.server.on('tlsClientError', () => undefined);
  }

  listen(port: number, host = '0.0.0.0'): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        const a = this.server.address();
        resolve(typeof a === 'object' && a !== null ? a.port : port);
      });
    });
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private async handle(socket: tls.TLSSocket): Promise<void> {
    const reader = new FrameReader(socket);
    const answer = (body: object): void => {
      socket.end(`${JSON.stringify(body)}\n`);
    };
    const peer = nodeUuidOf(socket.getPeerCertificate());
    if (peer === undefined || (this.o.authorize !== undefined && !this.o.authorize(peer))) {
      answer({ ok: false, code: 'PEER_REFUSED', message: 'only the nodes of this cluster may send datasets here' });
      return;
    }
    let request: TransferRequest;
    try {
      request = TransferRequest.parse(JSON.parse(await reader.line()));
    } catch (e) {
      answer({
        ok: false,
        code: 'PEER_REFUSED',
        message: `bad request: ${e instanceof Error ? e.message : String(e)}`,
      });
      return;
    }
    try {
      // Inside the try: a mayReceive that throws answers BACKEND_ERROR, not an unhandled rejection (review S26B B11).
      if (request.op !== 'status' && this.o.mayReceive?.(request.datasetId, peer) === false) {
        const message = `this node is not the primary of dataset ${request.datasetId}: it takes no data of it from node ${peer}`;
        // Not a failed request: the sender acted on a view this node has moved past (a round begun just
        // before a delete or a move it saw first), and logs and handles its side.
        this.o.logger?.info('refused a transfer request', {
          op: request.op,
          datasetId: request.datasetId,
          peer,
          code: 'PEER_REFUSED',
          error: message,
        });
        answer({ ok: false, code: 'PEER_REFUSED', message });
        return;
      }
      answer(await this.serve(request, reader, peer));
    } catch (e) {
      const raw = isLocalStorageError(e) ? e.code : (e as { code?: unknown }).code;
      const code = typeof raw === 'string' ? raw : 'BACKEND_ERROR';
      this.o.logger?.warn('local transfer request failed', { op: request.op, peer, code, error: String(e) });
      answer({ ok: false, code, message: e instanceof Error ? e.message : String(e) });
    }
  }

  private async serve(request: TransferRequest, reader: FrameReader, peer: string): Promise<object> {
    const { engine } = this.o;
    switch (request.op) {
      case 'status': {
        const snapshots = await engine.listSnapshots(request.datasetId);
        const live = (await engine.listDatasets()).find((d) => d.datasetId === request.datasetId);
        const lineage =
          live !== undefined && request.lineage !== false ? await engine.lineage?.(request.datasetId) : undefined;
        return {
          ok: true,
          snapshots: snapshots.map((s) => ({ name: s.name, identity: s.identity })),
          live: {
            exists: live !== undefined,
            mountPoints: live !== undefined ? await engine.mountPoints(request.datasetId) : [],
            parent: null,
            ...(lineage != null ? { lineage: { ...lineage, snapshots: [...lineage.snapshots] } } : {}),
          },
        } satisfies StatusAnswer;
      }
      case 'receive': {
        const payload = reader.payload();
        const t0 = Date.now();
        let snapshot: Awaited<ReturnType<LocalEngine['receive']>>;
        try {
          snapshot = await engine.receive(request.datasetId, request.name, request.identity, payload.stream);
        } catch (e) {
          // Never left paused on a full stream nobody reads: the sender would wait for room forever.
          payload.stream.destroy();
          throw e;
        }
        // The engine may stop at its own end marker: the rest (the trailer) is read and checked still.
        payload.stream.resume();
        try {
          await payload.verified;
        } catch (e) {
          await engine.destroySnapshot(request.datasetId, request.name);
          throw e;
        }
        this.o.logger?.info('received a snapshot', {
          datasetId: request.datasetId,
          name: request.name,
          parent: request.parent,
          peer,
          durationMs: Date.now() - t0,
        });
        return { ok: true, snapshot: { name: snapshot.name, identity: snapshot.identity } };
      }
      case 'promote': {
        await engine.promote(request.datasetId, request.name, request.size);
        const mountPath = this.o.mountPathFor?.(request.datasetId);
        if (request.mount && mountPath !== undefined) await engine.mount(request.datasetId, mountPath);
        this.o.promoted?.(request.datasetId);
        return { ok: true };
      }
      case 'prune': {
        const all = await engine.listSnapshots(request.datasetId);
        for (const name of snapshotsToPrune(all, request.keep)) await engine.destroySnapshot(request.datasetId, name);
        return { ok: true };
      }
      case 'settle': {
        const t0 = Date.now();
        await engine.settle?.(request.datasetId);
        this.o.logger?.debug('settled', { datasetId: request.datasetId, peer, durationMs: Date.now() - t0 });
        return { ok: true };
      }
    }
  }
}

/**
 * Has the socket decrypt into buffers of ours instead of a fresh buffer per 16-KiB TLS record: at
 * hundreds of MiB/s those (external memory) set off a V8 mark-compact every few dozen MiB, which
 * took a third of the receiver's CPU. Each read goes where `next` said after the read before (a
 * caller's buffer, e.g. the free room of the one it fills: no copy after the decryption), or, where
 * it says null, into one reused 64-KiB buffer; onRead gets a view of the bytes read (valid only
 * during the call, unless the buffer is the caller's). This is the `onread` option of net.Socket
 * and tls.connect (a buffer, or a function giving the next one), which tls.Server does not offer
 * for the sockets it accepts: it is set on the accepted socket the same way (the socket's own
 * kBuffer/kBufferCb/kBufferGen fields, its handle's useUserBuffer). Where a Node version lacks
 * those, the socket's 'data' events carry the data as before (false returned); the caller listens
 * to both, and each read arrives through exactly one of them. Pausing the socket stops reads in
 * either mode.
 */
export function readIntoReusedBuffer(
  socket: tls.TLSSocket,
  onRead: (view: Buffer) => void,
  next?: () => Buffer | null,
): boolean {
  const symbols = Object.getOwnPropertySymbols(socket);
  const field = (name: string): symbol | undefined => symbols.find((s) => s.description === name);
  const kBuffer = field('kBuffer');
  const kBufferCb = field('kBufferCb');
  const kBufferGen = field('kBufferGen');
  const fields = socket as unknown as Record<symbol, unknown>;
  const handle = (socket as unknown as { _handle?: { useUserBuffer?: (buffer: Uint8Array) => void } | null })._handle;
  if (kBuffer === undefined || kBufferCb === undefined || kBufferGen === undefined) return false;
  if (fields[kBuffer] !== null || typeof handle?.useUserBuffer !== 'function') return false;
  const reused = Buffer.allocUnsafeSlow(64 * 1024);
  fields[kBuffer] = reused;
  // Node calls it after each read (with the buffer read into), then kBufferGen for the next one.
  fields[kBufferCb] = (n: number, into: Uint8Array): boolean => {
    onRead(Buffer.from(into.buffer, into.byteOffset, n));
    return true;
  };
  fields[kBufferGen] = (): Buffer => next?.() ?? reused;
  handle.useUserBuffer(reused);
  return true;
}

/**
 * Reads a request line, then frames, from a socket. Once the payload starts, every chunk the
 * socket gives is parsed as it arrives (no await, no copy: a frame's payload goes on as subarrays
 * of the pieces that arrived), with backpressure from the engine pausing the socket.
 */
class FrameReader {
  private chunks: Buffer[] = [];
  private length = 0;
  private waiting: (() => void) | null = null;
  private ended = false;
  private failure: Error | null = null;
  /** While the payload is read: takes each chunk from the socket at once. */
  private sink: ((chunk: Buffer) => void) | null = null;
  /** While the payload is read: told the connection ended or failed. */
  private cut: (() => void) | null = null;
  /** While the payload is read: where the socket's next read goes (the free room of a pooled buffer). */
  private readTarget: (() => Buffer | null) | null = null;

  constructor(private readonly socket: tls.TLSSocket) {
    /** A chunk that is not ours to keep (a view of the reused read buffer) is copied if kept. */
    const take = (chunk: Buffer, ours: boolean): void => {
      if (this.sink !== null) {
        this.sink(chunk);
        return;
      }
      const kept = ours ? chunk : Buffer.from(chunk);
      this.chunks.push(kept);
      this.length += kept.length;
      this.wake();
    };
    socket.on('data', (chunk: Buffer) => take(chunk, true));
    readIntoReusedBuffer(
      socket,
      (view) => take(view, false),
      () => this.readTarget?.() ?? null,
    );
    const stop = (): void => {
      this.ended = true;
      this.wake();
      this.cut?.();
    };
    socket.once('end', stop);
    socket.once('close', stop);
    socket.once('error', (e: Error) => {
      this.failure = e;
      this.wake();
      this.cut?.();
    });
  }

  private wake(): void {
    const w = this.waiting;
    this.waiting = null;
    w?.();
  }

  private brokenError(): LocalStorageError | null {
    if (this.failure !== null)
      return new LocalStorageError('TRANSFER_FAILED', `connection failed: ${this.failure.message}`);
    if (this.ended) return new LocalStorageError('TRANSFER_FAILED', 'the connection ended in the middle of the stream');
    return null;
  }

  /** At least n bytes queued (or the connection ended: an error). */
  private async need(n: number): Promise<void> {
    while (this.length < n) {
      const broken = this.brokenError();
      if (broken !== null) throw broken;
      await new Promise<void>((resolve) => (this.waiting = resolve));
    }
  }

  /** Exactly n queued bytes (copied only when they span chunks). */
  private take(n: number): Buffer {
    const parts: Buffer[] = [];
    let left = n;
    while (left > 0) {
      const first = this.chunks[0];
      if (first === undefined) break;
      const piece = first.length <= left ? first : first.subarray(0, left);
      if (first.length <= left) this.chunks.shift();
      else this.chunks[0] = first.subarray(left);
      parts.push(piece);
      left -= piece.length;
      this.length -= piece.length;
    }
    return parts.length === 1 ? parts[0] : Buffer.concat(parts);
  }

  async line(): Promise<string> {
    for (;;) {
      let at = 0;
      for (const c of this.chunks) {
        const nl = c.indexOf(10);
        if (nl >= 0)
          return this.take(at + nl + 1)
            .toString('utf8')
            .trimEnd();
        at += c.length;
      }
      if (this.length > MAX_LINE) throw new LocalStorageError('PEER_REFUSED', 'request line too long');
      await this.need(this.length + 1);
    }
  }

  /**
   * The stream's payload, and whether its end frame and trailer (the byte count) confirmed it.
   * TLS decrypts straight into pooled 1-MiB buffers (the socket's next read goes into the free room
   * of the one being filled; a read that landed elsewhere — what came with the request line, a
   * Node without the onread hooks — is copied in), the frame headers taken out in place. A buffer's
   * bytes are passed on when it is full, at the end of the frames, or when the stream stalls
   * (COALESCE_WAIT_MS without a byte added, or COALESCE_MAX_MS after its bytes began to come): the
   * engine gets one chunk and one pipe write per MiB, not 64. Bytes passed on after a stall leave
   * the rest of the buffer to fill (the socket reads into it already), so a buffer may go out in
   * several chunks: it goes back to the pool once the reader left it and every chunk of it was
   * released by the consumer (pipeInto, once written to the receiving program). (Passing on at each
   * frame's end would hand out a whole buffer per small frame of a sender that is not pooled.)
   */
  payload(): { stream: PassThrough; verified: Promise<void> } {
    const pool = new BufferPool(POOL_CHUNK, RECEIVE_POOL_KEEP);
    /** Chunks passed on and not yet released, and how many of each buffer's. */
    const out = new Set<Buffer>();
    const chunksOf = new Map<ArrayBufferLike, number>();
    /** Back to the pool once the reader left the buffer and none of its chunks is out. */
    const maybeFree = (b: Buffer): void => {
      if (b.buffer !== current?.buffer && !chunksOf.has(b.buffer)) pool.release(b);
    };
    // Each chunk once (a repeated or foreign release is ignored: the buffer may be filling still).
    const release = (chunk: Buffer): void => {
      if (!out.delete(chunk)) return;
      const n = (chunksOf.get(chunk.buffer) ?? 1) - 1;
      if (n > 0) chunksOf.set(chunk.buffer, n);
      else chunksOf.delete(chunk.buffer);
      maybeFree(chunk);
    };
    const stream = markPooled(new PassThrough({ highWaterMark: 4 * 1024 * 1024 }), release);
    /** The buffer being filled: bytes before `start` are passed on, after `filled` free. */
    let current: Buffer | null = pool.acquire();
    let start = 0;
    let filled = 0;
    let stalled: NodeJS.Timeout | null = null;
    let paused = false;
    /** Pauses the socket until the stream drains (set below). */
    let pause: () => void = () => undefined;
    /** Passes the bytes not yet passed on; false when the stream is full (the socket is paused). */
    const passOn = (): boolean => {
      if (stalled !== null) clearTimeout(stalled);
      stalled = null;
      if (current === null || filled === start) return true;
      const chunk = current.subarray(start, filled);
      start = filled;
      if (stream.destroyed) return true;
      out.add(chunk);
      chunksOf.set(chunk.buffer, (chunksOf.get(chunk.buffer) ?? 0) + 1);
      return stream.write(chunk);
    };
    /** The full buffer's bytes on, and a fresh buffer to fill. */
    const nextBuffer = (): boolean => {
      const ok = passOn();
      const left = current;
      current = pool.acquire();
      if (left !== null) maybeFree(left);
      start = 0;
      filled = 0;
      return ok;
    };
    /** A stall, not a time limit per buffer: on a busy host a MiB may take longer than COALESCE_WAIT_MS to arrive. */
    const watchForStall = (): void => {
      const startedAt = performance.now();
      let filledAtCheck = start;
      const check = (): void => {
        if (partialBufferAction(filled, filledAtCheck, performance.now() - startedAt) === 'wait') {
          filledAtCheck = filled;
          stalled = setTimeout(check, COALESCE_WAIT_MS);
          return;
        }
        stalled = null;
        if (!passOn() && !paused) pause();
      };
      stalled = setTimeout(check, COALESCE_WAIT_MS);
    };
    let bytes = 0;
    /** Bytes of the current frame still to come; -1: a frame header is next. */
    let frameLeft = -1;
    const header = Buffer.alloc(4);
    let headerLength = 0;
    /**
     * Takes in the n bytes just put at `filled` of the current buffer: frame headers are taken out
     * (the bytes after one moved up over it; one per frame, a MiB). Returns the bytes after the end
     * frame (the trailer; a view of the buffer, to copy) once it came, else null.
     */
    const absorb = (buffer: Buffer, n: number): Buffer | null => {
      const wasEmpty = filled === start;
      let at = filled;
      let end = filled + n;
      while (at < end) {
        if (frameLeft > 0) {
          const m = Math.min(frameLeft, end - at);
          at += m;
          frameLeft -= m;
          bytes += m;
          continue;
        }
        // A frame header, perhaps split between reads.
        const k = Math.min(4 - headerLength, end - at);
        buffer.copy(header, headerLength, at, at + k);
        headerLength += k;
        buffer.copyWithin(at, at + k, end);
        end -= k;
        if (headerLength < 4) break;
        headerLength = 0;
        frameLeft = header.readUInt32BE(0);
        if (frameLeft === 0) {
          filled = at;
          return buffer.subarray(at, end);
        }
      }
      filled = end;
      if (wasEmpty && filled > start) watchForStall();
      return null;
    };
    const verified = new Promise<void>((resolve, reject) => {
      const resume = (): void => {
        stream.off('drain', resume);
        stream.off('close', resume);
        paused = false;
        this.socket.resume();
      };
      pause = (): void => {
        paused = true;
        this.socket.pause();
        stream.once('drain', resume);
        stream.once('close', resume);
      };
      const endOfFrames = (rest: Buffer[]): void => {
        // The last bytes on (a full stream needs no pause now: the trailer is all that is left).
        passOn();
        this.sink = null;
        this.cut = null;
        this.readTarget = null;
        for (const piece of rest) {
          if (piece.length === 0) continue;
          // A copy: the piece's buffer is reused.
          const kept = Buffer.from(piece);
          this.chunks.push(kept);
          this.length += kept.length;
        }
        const left = current;
        current = null;
        if (left !== null) maybeFree(left);
        if (paused) resume();
        this.line()
          .then((text) => {
            const trailer = Trailer.parse(JSON.parse(text));
            if (trailer.bytes !== bytes)
              throw new LocalStorageError(
                'INTEGRITY',
                `the stream's ${bytes} bytes are not the ${trailer.bytes} sent: it was cut or garbled`,
              );
            stream.end();
            resolve();
          })
          .catch(reject);
      };
      const parse = (chunk: Buffer): void => {
        // Decrypted in place (see readTarget), or else copied in.
        const inPlace =
          current !== null &&
          chunk.buffer === current.buffer &&
          chunk.byteOffset === current.byteOffset + filled &&
          chunk.length <= current.length - filled;
        let at = 0;
        let full = false;
        while (at < chunk.length && current !== null) {
          const n = inPlace ? chunk.length : Math.min(chunk.length - at, current.length - filled);
          if (!inPlace) chunk.copy(current, filled, at, at + n);
          at += n;
          const rest = absorb(current, n);
          if (rest !== null) return endOfFrames([rest, chunk.subarray(at)]);
          if (filled === current.length && !nextBuffer()) full = true;
        }
        if (full && !paused) pause();
      };
      this.cut = () => {
        if (stalled !== null) clearTimeout(stalled);
        this.sink = null;
        this.cut = null;
        this.readTarget = null;
        reject(this.brokenError() ?? new LocalStorageError('TRANSFER_FAILED', 'the connection ended'));
      };
      this.sink = parse;
      this.readTarget = () => (current !== null ? current.subarray(filled) : null);
      // What came with the request line first.
      const queued = this.chunks;
      this.chunks = [];
      this.length = 0;
      for (const chunk of queued) {
        if (this.sink === parse) parse(chunk);
        else {
          this.chunks.push(chunk);
          this.length += chunk.length;
          this.wake();
        }
      }
      if (this.sink === parse && (this.ended || this.failure !== null)) this.cut();
    });
    verified.catch((e: unknown) => stream.destroy(e instanceof Error ? e : new Error(String(e))));
    return { stream, verified };
  }
}

/**
 * A received buffer not yet full, looked at every COALESCE_WAIT_MS: passed on when nothing was added
 * to it since the last look (the sender stalled) or it has been filling COALESCE_MAX_MS; else waited on.
 */
export function partialBufferAction(
  filled: number,
  filledAtLastLook: number,
  msSinceAcquired: number,
): 'wait' | 'passOn' {
  return filled > filledAtLastLook && msSinceAcquired < COALESCE_MAX_MS ? 'wait' : 'passOn';
}

export interface TransferPeer {
  readonly host: string;
  readonly port: number;
  /** The node the listener must be (its certificate's common name node-<uuid>). */
  readonly nodeUuid: string;
}

/** What the mover needs of the target (TransferClient; a fake in unit tests). */
export interface TargetApi {
  /** lineage false: the answer may leave the live copy's lineage out (not computed). */
  status(datasetId: string, options?: { readonly lineage?: boolean }): Promise<StatusAnswer>;
  /**
   * Sends the stream; resolves with the bytes sent once the target kept the snapshot. `signal` ends it wherever it
   * is (the connection closed: the target discards what it received), the wait for the target's answer too.
   */
  receive(
    request: { datasetId: string; name: string; parent: string | null; identity: string },
    send: Pick<SendStream, 'stream' | 'done'>,
    onBytes?: (bytes: number) => void,
    signal?: AbortSignal,
  ): Promise<number>;
  /** Makes the snapshot the target's live copy; mount: the target mounts it at its own path for the dataset. */
  promote(datasetId: string, name: string, size: number, mount: boolean): Promise<void>;
  prune(datasetId: string, keep: string): Promise<void>;
  /** Has the target write out what its receives left in memory (see LocalEngine.settle); optional. */
  settle?(datasetId: string): Promise<void>;
}

export class TransferClient implements TargetApi {
  /** The listener refused a status's `lineage` field (one release behind): asked without it from then on. */
  private olderListener = false;

  constructor(
    private readonly peer: TransferPeer,
    private readonly credentials: NodeTlsCredentials,
    private readonly timeoutMs = 60_000,
    /** A send with nothing moving for this long fails (TRANSFER_IDLE_MS). */
    private readonly idleMs = TRANSFER_IDLE_MS,
  ) {}

  private connect(): Promise<tls.TLSSocket> {
    return new Promise((resolve, reject) => {
      const options: tls.ConnectionOptions & { highWaterMark: number } = {
        host: this.peer.host,
        port: this.peer.port,
        ...this.credentials,
        minVersion: 'TLSv1.3',
        ciphers: TRANSFER_CIPHERS,
        // Room for several of the stream's chunks (tls.connect takes it; its type does not say so): with the
        // default 16 KiB every chunk would fill the buffer and pause the stream.
        highWaterMark: SOCKET_BUFFER,
        // Node certificates name the node, not a host: the node UUID is what is checked.
        checkServerIdentity: (_host, cert) =>
          nodeUuidOf(cert) === this.peer.nodeUuid.toLowerCase()
            ? undefined
            : new Error(`the listener at ${this.peer.host}:${this.peer.port} is not node ${this.peer.nodeUuid}`),
      };
      const socket = tls.connect(options);
      socket.setTimeout(this.timeoutMs, () =>
        socket.destroy(new ConnectionLostError(`no answer from ${this.peer.host}:${this.peer.port}`)),
      );
      socket.once('secureConnect', () => resolve(socket));
      socket.once('error', (e: Error) =>
        reject(
          e instanceof LocalStorageError
            ? e
            : new ConnectionLostError(
                `cannot reach node ${this.peer.nodeUuid} at ${this.peer.host}:${this.peer.port}: ${e.message}`,
              ),
        ),
      );
    });
  }

  /** The answer line, parsed; an error answer becomes a LocalStorageError with the peer's code. */
  private answer(socket: tls.TLSSocket): Promise<Record<string, unknown>> {
    return new Promise((resolve, reject) => {
      let text = '';
      socket.setEncoding('utf8');
      socket.on('data', (d: string) => {
        text += d;
        const nl = text.indexOf('\n');
        if (nl < 0) return;
        socket.end();
        try {
          const a = Answer.parse(JSON.parse(text.slice(0, nl)));
          if (a.ok) resolve(a);
          else reject(new LocalStorageError(peerCode(a.code), `node ${this.peer.nodeUuid}: ${a.message}`));
        } catch (e) {
          reject(
            new LocalStorageError('PEER_REFUSED', `unreadable answer from node ${this.peer.nodeUuid}: ${String(e)}`),
          );
        }
      });
      socket.once('error', (e: Error) => reject(new ConnectionLostError(`node ${this.peer.nodeUuid}: ${e.message}`)));
      socket.once('close', () =>
        reject(new ConnectionLostError(`node ${this.peer.nodeUuid} closed the connection without an answer`)),
      );
    });
  }

  private async call(request: TransferRequest): Promise<Record<string, unknown>> {
    const socket = await this.connect();
    const answer = this.answer(socket);
    socket.write(`${JSON.stringify(request)}\n`);
    return answer;
  }

  async status(datasetId: string, options?: { readonly lineage?: boolean }): Promise<StatusAnswer> {
    if (options?.lineage === false && !this.olderListener) {
      try {
        return StatusAnswer.parse(await this.call({ op: 'status', datasetId, lineage: false }));
      } catch (e) {
        // Its strict parse refused the field before anything was looked at: the plain request instead.
        if (!refusedLineageField(e)) throw e;
        this.olderListener = true;
      }
    }
    return StatusAnswer.parse(await this.call({ op: 'status', datasetId }));
  }

  async promote(datasetId: string, name: string, size: number, mount: boolean): Promise<void> {
    await this.call({ op: 'promote', datasetId, name, size, mount });
  }

  async prune(datasetId: string, keep: string): Promise<void> {
    await this.call({ op: 'prune', datasetId, keep });
  }

  async settle(datasetId: string): Promise<void> {
    await this.call({ op: 'settle', datasetId });
  }

  async receive(
    request: { datasetId: string; name: string; parent: string | null; identity: string },
    send: Pick<SendStream, 'stream' | 'done'>,
    onBytes?: (bytes: number) => void,
    signal?: AbortSignal,
  ): Promise<number> {
    const socket = await this.connect();
    // Stopped: the connection closes wherever the send is (a stream sent whole into the buffers of a receiver that
    // hangs before it answers included: aborting the engine's send alone left that wait).
    const stop = (): void => {
      socket.destroy(new LocalStorageError('TRANSFER_FAILED', `the send to node ${this.peer.nodeUuid} was stopped`));
    };
    if (signal?.aborted === true) stop();
    signal?.addEventListener('abort', stop, { once: true });
    socket.once('close', () => signal?.removeEventListener('abort', stop));
    // While the stream goes: nothing moving for idleMs fails the send (a stalled receiver, a half-open connection).
    socket.removeAllListeners('timeout');
    socket.setTimeout(this.idleMs, () =>
      socket.destroy(
        new ConnectionLostError(
          `node ${this.peer.nodeUuid}: nothing sent or received for ${this.idleMs} ms: its receive stalled, or the connection is lost`,
        ),
      ),
    );
    socket.setKeepAlive(true, KEEPALIVE_MS);
    const answer = this.answer(socket);
    // The peer's own answer (a refusal) says more than the write it cut off.
    let refusal: unknown;
    answer.catch((e: unknown) => (refusal = e));
    // A connection that drops while the send waits for room fails the send (no 'drain' ever comes).
    const closed = new Promise<never>((_, reject) =>
      socket.once('close', () => reject(new ConnectionLostError(`node ${this.peer.nodeUuid} dropped the connection`))),
    );
    closed.catch(() => undefined);
    const write = (b: Buffer | string): Promise<void> => {
      if (socket.destroyed) return closed;
      return socket.write(b)
        ? Promise.resolve()
        : Promise.race([new Promise<void>((resolve) => socket.once('drain', () => resolve())), closed]);
    };
    let bytes = 0;
    try {
      await write(`${JSON.stringify({ op: 'receive', ...request })}\n`);
      // An answer before the end of the stream is a refusal: the send stops (the peer reads no more of it).
      const cut = Promise.race([closed, answer.then(() => Promise.reject(new Error('answered mid-stream')))]);
      cut.catch(() => undefined);
      await this.pump(socket, send.stream, pooledOf(send.stream), cut, (n) => {
        bytes += n;
        onBytes?.(bytes);
      });
      // Only a send that succeeded is ended as complete.
      await send.done;
    } catch (e) {
      // The send failed: the receiver sees a cut-off stream and keeps nothing.
      socket.destroy();
      await new Promise((r) => setImmediate(r));
      const cause = refusal ?? e;
      throw cause instanceof LocalStorageError ? cause : new LocalStorageError('TRANSFER_FAILED', String(cause));
    }
    socket.cork();
    socket.write(Buffer.alloc(4));
    socket.write(`${JSON.stringify({ bytes })}\n`);
    socket.uncork();
    // The receiver finishes its receive before it answers (its pool's own pace, as before): no idle bound; the
    // keep-alive still ends a connection lost meanwhile.
    socket.setTimeout(0);
    await answer;
    return bytes;
  }

  /**
   * The stream onto the socket as frames, each chunk as it comes (no copy). A pooled send's chunk
   * (a MiB) gets its header in the headroom before it and goes as one write, one at a time: the
   * next waits for the write's callback, which releases the buffer (TLS is done with it). Never
   * two queued writes, which the socket would flush as a writev that TLS first copies into a fresh
   * buffer. Other chunks: header and chunk in one corked write, the stream paused while the
   * socket's buffer is full and resumed on 'drain'.
   */
  private pump(
    socket: tls.TLSSocket,
    stream: NodeJS.ReadableStream,
    pooled: Pooled | undefined,
    closed: Promise<never>,
    sent: (n: number) => void,
  ): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const resume = (): void => {
        stream.resume();
      };
      const onData = (chunk: Buffer | string): void => {
        const data = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
        if (data.length === 0) return;
        if (pooled !== undefined && pooled.headroom >= 4 && data.byteOffset >= 4) {
          const frame = Buffer.from(data.buffer, data.byteOffset - 4, data.length + 4);
          frame.writeUInt32BE(data.length, 0);
          inFlight++;
          if (inFlight >= MAX_IN_FLIGHT) stream.pause();
          socket.write(frame, () => {
            pooled.release(data);
            inFlight--;
            if (!finished && inFlight < MAX_IN_FLIGHT) stream.resume();
          });
          sent(data.length);
          return;
        }
        const header = Buffer.allocUnsafe(4);
        header.writeUInt32BE(data.length, 0);
        socket.cork();
        socket.write(header);
        const ok = socket.write(data);
        socket.uncork();
        sent(data.length);
        if (!ok) {
          stream.pause();
          socket.once('drain', resume);
        }
      };
      let finished = false;
      let inFlight = 0;
      const finish = (e?: unknown): void => {
        finished = true;
        stream.off('data', onData);
        stream.off('end', finish);
        stream.off('error', finish);
        socket.off('drain', resume);
        if (e === undefined) resolve();
        else reject(e instanceof Error ? e : new Error(errorMessage(e)));
      };
      stream.on('data', onData);
      stream.once('end', finish);
      stream.once('error', finish);
      closed.catch(finish);
      stream.resume();
    });
  }
}

/** A listener one release behind refusing the status's `lineage` field (its answer to an unknown key). */
function refusedLineageField(e: unknown): boolean {
  return (
    e instanceof LocalStorageError &&
    !(e instanceof ConnectionLostError) &&
    e.code === 'PEER_REFUSED' &&
    e.message.includes('bad request') &&
    e.message.includes('lineage')
  );
}

const PeerCode = z.enum([
  'POOL_UNAVAILABLE',
  'UNKNOWN_DATASET',
  'UNKNOWN_SNAPSHOT',
  'TRANSFER_FAILED',
  'INTEGRITY',
  'PEER_REFUSED',
]);

/** The peer's error code where it is one of ours; anything else (its backend failing, busy) is worth a retry. */
function peerCode(code: string): LocalErrorCode {
  const parsed = PeerCode.safeParse(code);
  return parsed.success ? parsed.data : 'TRANSFER_FAILED';
}

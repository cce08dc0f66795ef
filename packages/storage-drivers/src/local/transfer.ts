/**
 * Moving local datasets between agents: each node runs a small TLS listener (TransferServer) that
 * receives snapshots into its engine; the source connects (TransferClient). Mutual TLS with the
 * cluster's node certificates: both sides must present a certificate of the cluster CA whose
 * common name is node-<uuid>, and the client checks it reached the node it meant to.
 *
 * One request per connection: a JSON line, for `receive` followed by frames (4-byte big-endian
 * length, payload; length 0 ends) and a trailer line {bytes, crc32}; then one JSON answer line.
 * (TLS authenticates every record on the wire; the trailer catches a stream cut or garbled between
 * the engines and the socket, at a fraction of a cryptographic digest's cost.)
 * The receiver keeps the snapshot only if the engine accepted the whole stream, the digest and
 * byte count match, and the engine's identity of what it made equals the sender's (see receive()).
 */
import { X509Certificate } from 'node:crypto';
import { PassThrough } from 'node:stream';
import tls from 'node:tls';
import { crc32 } from 'node:zlib';
import type winston from 'winston';
import { z } from 'zod';
import {
  isLocalStorageError,
  LocalStorageError,
  type LocalEngine,
  type LocalErrorCode,
  type SendStream,
} from './engine';
import { snapshotsToPrune } from './plan';

export interface NodeTlsCredentials {
  readonly ca: Buffer | string;
  readonly cert: Buffer | string;
  readonly key: Buffer | string;
}

const DatasetId = z.string().regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
const Name = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/);

export const TransferRequest = z.discriminatedUnion('op', [
  z.object({ op: z.literal('status'), datasetId: DatasetId }).strict(),
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
]);
export type TransferRequest = z.infer<typeof TransferRequest>;

const SnapshotRefSchema = z.object({ name: z.string(), identity: z.string() });
export const StatusAnswer = z.object({
  ok: z.literal(true),
  snapshots: z.array(SnapshotRefSchema),
  live: z.object({ exists: z.boolean(), mountPoints: z.array(z.string()), parent: z.string().nullable() }),
});
export type StatusAnswer = z.infer<typeof StatusAnswer>;
const OkAnswer = z.object({ ok: z.literal(true) }).loose();
const ErrorAnswer = z.object({ ok: z.literal(false), code: z.string(), message: z.string() });
const Answer = z.union([OkAnswer, ErrorAnswer]);
const Trailer = z.object({ bytes: z.number().int().nonnegative(), crc32: z.number().int().nonnegative() }).strict();

const MAX_LINE = 64 * 1024;

/**
 * TLS 1.3 only, AES-128-GCM first: a whole dataset goes through the cipher, and AES-128 costs about
 * three quarters of AES-256 (Node's default first choice) with AES-NI; both are authenticated.
 */
const TRANSFER_CIPHERS = 'TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256';

function nodeUuidOf(cert: { subject?: { CN?: string | string[] } } | undefined): string | undefined {
  const cn = cert?.subject?.CN;
  const name = Array.isArray(cn) ? cn[0] : cn;
  const m = /^node-([0-9a-f-]{36})$/i.exec(name ?? '');
  return m?.[1]?.toLowerCase();
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
    if (request.op !== 'status' && this.o.mayReceive?.(request.datasetId, peer) === false)
      throw new LocalStorageError(
        'PEER_REFUSED',
        `this node is not the primary of dataset ${request.datasetId}: it takes no data of it from node ${peer}`,
      );
    switch (request.op) {
      case 'status': {
        const snapshots = await engine.listSnapshots(request.datasetId);
        const live = (await engine.listDatasets()).find((d) => d.datasetId === request.datasetId);
        return {
          ok: true,
          snapshots: snapshots.map((s) => ({ name: s.name, identity: s.identity })),
          live: {
            exists: live !== undefined,
            mountPoints: live !== undefined ? await engine.mountPoints(request.datasetId) : [],
            parent: null,
          },
        } satisfies StatusAnswer;
      }
      case 'receive': {
        const payload = reader.payload();
        const t0 = Date.now();
        const snapshot = await engine.receive(request.datasetId, request.name, request.identity, payload.stream);
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
    }
  }
}

/**
 * Reads a request line, then frames, from a socket (with backpressure). Received chunks are queued,
 * not concatenated, and a frame's payload goes on as the pieces that arrived (no copy): the
 * stream's throughput is the engines', not this reader's.
 */
class FrameReader {
  private chunks: Buffer[] = [];
  private length = 0;
  private waiting: (() => void) | null = null;
  private ended = false;
  private failure: Error | null = null;

  constructor(private readonly socket: tls.TLSSocket) {
    socket.on('data', (chunk: Buffer) => {
      this.chunks.push(chunk);
      this.length += chunk.length;
      this.wake();
    });
    socket.once('end', () => {
      this.ended = true;
      this.wake();
    });
    socket.once('close', () => {
      this.ended = true;
      this.wake();
    });
    socket.once('error', (e: Error) => {
      this.failure = e;
      this.wake();
    });
  }

  private wake(): void {
    const w = this.waiting;
    this.waiting = null;
    w?.();
  }

  /** At least n bytes queued (or the connection ended: an error). */
  private async need(n: number): Promise<void> {
    while (this.length < n) {
      if (this.failure !== null)
        throw new LocalStorageError('TRANSFER_FAILED', `connection failed: ${this.failure.message}`);
      if (this.ended)
        throw new LocalStorageError('TRANSFER_FAILED', 'the connection ended in the middle of the stream');
      await new Promise<void>((resolve) => (this.waiting = resolve));
    }
  }

  /** Up to n bytes from the first queued chunk, without copying. */
  private takeUpTo(n: number): Buffer {
    const first = this.chunks[0];
    if (first === undefined) return Buffer.alloc(0);
    if (first.length <= n) {
      this.chunks.shift();
      this.length -= first.length;
      return first;
    }
    this.chunks[0] = first.subarray(n);
    this.length -= n;
    return first.subarray(0, n);
  }

  /** Exactly n queued bytes (copied only when they span chunks). */
  private take(n: number): Buffer {
    const first = this.chunks[0];
    if (first !== undefined && first.length >= n) return this.takeUpTo(n);
    const parts: Buffer[] = [];
    let left = n;
    while (left > 0) {
      const piece = this.takeUpTo(left);
      parts.push(piece);
      left -= piece.length;
    }
    return Buffer.concat(parts);
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

  /** The stream's payload, and whether its trailer confirmed it (bytes and CRC-32). */
  payload(): { stream: PassThrough; verified: Promise<void> } {
    const stream = new PassThrough({ highWaterMark: 4 * 1024 * 1024 });
    let crc = 0;
    let bytes = 0;
    const drained = (): Promise<void> =>
      new Promise<void>((resolve) => {
        const go = (): void => {
          stream.off('drain', go);
          stream.off('close', go);
          resolve();
        };
        stream.once('drain', go);
        stream.once('close', go);
      });
    const verified = (async () => {
      for (;;) {
        await this.need(4);
        let remaining = this.take(4).readUInt32BE(0);
        if (remaining === 0) break;
        while (remaining > 0) {
          if (this.length === 0) await this.need(1);
          // Whatever is queued goes on at once; an await only when nothing is (or the engine is behind).
          let full = false;
          while (remaining > 0 && this.length > 0) {
            const piece = this.takeUpTo(remaining);
            remaining -= piece.length;
            crc = crc32(piece, crc);
            bytes += piece.length;
            if (!stream.destroyed && !stream.write(piece)) full = true;
          }
          if (full) {
            this.socket.pause();
            await drained();
            this.socket.resume();
          }
        }
      }
      const trailer = Trailer.parse(JSON.parse(await this.line()));
      if (trailer.bytes !== bytes || trailer.crc32 !== crc)
        throw new LocalStorageError(
          'INTEGRITY',
          `the stream's ${bytes} bytes (CRC-32 ${crc}) are not the ${trailer.bytes} sent (CRC-32 ${trailer.crc32})`,
        );
      stream.end();
    })();
    verified.catch((e: unknown) => stream.destroy(e instanceof Error ? e : new Error(String(e))));
    return { stream, verified };
  }
}

export interface TransferPeer {
  readonly host: string;
  readonly port: number;
  /** The node the listener must be (its certificate's common name node-<uuid>). */
  readonly nodeUuid: string;
}

/** What the mover needs of the target (TransferClient; a fake in unit tests). */
export interface TargetApi {
  status(datasetId: string): Promise<StatusAnswer>;
  /** Sends the stream; resolves with the bytes sent once the target kept the snapshot. */
  receive(
    request: { datasetId: string; name: string; parent: string | null; identity: string },
    send: Pick<SendStream, 'stream' | 'done'>,
    onBytes?: (bytes: number) => void,
  ): Promise<number>;
  /** Makes the snapshot the target's live copy; mount: the target mounts it at its own path for the dataset. */
  promote(datasetId: string, name: string, size: number, mount: boolean): Promise<void>;
  prune(datasetId: string, keep: string): Promise<void>;
}

export class TransferClient implements TargetApi {
  constructor(
    private readonly peer: TransferPeer,
    private readonly credentials: NodeTlsCredentials,
    private readonly timeoutMs = 60_000,
  ) {}

  private connect(): Promise<tls.TLSSocket> {
    return new Promise((resolve, reject) => {
      const socket = tls.connect({
        host: this.peer.host,
        port: this.peer.port,
        ...this.credentials,
        minVersion: 'TLSv1.3',
        ciphers: TRANSFER_CIPHERS,
        // Node certificates name the node, not a host: the node UUID is what is checked.
        checkServerIdentity: (_host, cert) =>
          nodeUuidOf(cert) === this.peer.nodeUuid.toLowerCase()
            ? undefined
            : new Error(`the listener at ${this.peer.host}:${this.peer.port} is not node ${this.peer.nodeUuid}`),
      });
      socket.setTimeout(this.timeoutMs, () =>
        socket.destroy(new LocalStorageError('TRANSFER_FAILED', `no answer from ${this.peer.host}:${this.peer.port}`)),
      );
      socket.once('secureConnect', () => resolve(socket));
      socket.once('error', (e: Error) =>
        reject(
          e instanceof LocalStorageError
            ? e
            : new LocalStorageError(
                'TRANSFER_FAILED',
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
      socket.once('error', (e: Error) =>
        reject(new LocalStorageError('TRANSFER_FAILED', `node ${this.peer.nodeUuid}: ${e.message}`)),
      );
      socket.once('close', () =>
        reject(
          new LocalStorageError(
            'TRANSFER_FAILED',
            `node ${this.peer.nodeUuid} closed the connection without an answer`,
          ),
        ),
      );
    });
  }

  private async call(request: TransferRequest): Promise<Record<string, unknown>> {
    const socket = await this.connect();
    const answer = this.answer(socket);
    socket.write(`${JSON.stringify(request)}\n`);
    return answer;
  }

  async status(datasetId: string): Promise<StatusAnswer> {
    return StatusAnswer.parse(await this.call({ op: 'status', datasetId }));
  }

  async promote(datasetId: string, name: string, size: number, mount: boolean): Promise<void> {
    await this.call({ op: 'promote', datasetId, name, size, mount });
  }

  async prune(datasetId: string, keep: string): Promise<void> {
    await this.call({ op: 'prune', datasetId, keep });
  }

  async receive(
    request: { datasetId: string; name: string; parent: string | null; identity: string },
    send: Pick<SendStream, 'stream' | 'done'>,
    onBytes?: (bytes: number) => void,
  ): Promise<number> {
    const socket = await this.connect();
    socket.setTimeout(0);
    const answer = this.answer(socket);
    // The peer's own answer (a refusal) says more than the write it cut off.
    let refusal: unknown;
    answer.catch((e: unknown) => (refusal = e));
    // A connection that drops while the send waits for room fails the send (no 'drain' ever comes).
    const closed = new Promise<never>((_, reject) =>
      socket.once('close', () =>
        reject(new LocalStorageError('TRANSFER_FAILED', `node ${this.peer.nodeUuid} dropped the connection`)),
      ),
    );
    closed.catch(() => undefined);
    const write = (b: Buffer | string): Promise<void> => {
      if (socket.destroyed) return closed;
      return socket.write(b)
        ? Promise.resolve()
        : Promise.race([new Promise<void>((resolve) => socket.once('drain', () => resolve())), closed]);
    };
    let crc = 0;
    let bytes = 0;
    try {
      await write(`${JSON.stringify({ op: 'receive', ...request })}\n`);
      for await (const chunk of send.stream as AsyncIterable<Buffer>) {
        if (socket.destroyed) break;
        const header = Buffer.alloc(4);
        header.writeUInt32BE(chunk.length, 0);
        crc = crc32(chunk, crc);
        bytes += chunk.length;
        socket.cork();
        socket.write(header);
        const wrote = write(chunk);
        socket.uncork();
        await wrote;
        onBytes?.(bytes);
      }
      // Only a send that succeeded is ended as complete.
      if (!socket.destroyed) await send.done;
    } catch (e) {
      // The send failed: the receiver sees a cut-off stream and keeps nothing.
      socket.destroy();
      await new Promise((r) => setImmediate(r));
      const cause = refusal ?? e;
      throw cause instanceof LocalStorageError ? cause : new LocalStorageError('TRANSFER_FAILED', String(cause));
    }
    if (socket.destroyed) await answer;
    await write(Buffer.alloc(4));
    await write(`${JSON.stringify({ bytes, crc32: crc })}\n`);
    await answer;
    return bytes;
  }
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

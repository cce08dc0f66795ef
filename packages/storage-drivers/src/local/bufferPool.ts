/**
 * Reused large buffers for the transfer path. A fresh buffer per chunk (64 KiB from a child's
 * stdout, 16 KiB per TLS record) is external memory that sets off V8 mark-compacts every ~50 MiB:
 * at hundreds of MiB/s that was a tenth of each side's CPU. A buffer handed out here goes back only
 * through release(), which its consumer calls once the write that carries it has completed (its
 * write callback): a buffer is never refilled while a write still reads it. A consumer that never
 * releases costs nothing but the reuse (the pool allocates anew when it has none free).
 */
import type { Readable } from 'node:stream';

/** Bytes per pooled buffer: large writes (one TLS write, one pipe writev per MiB). */
export const POOL_CHUNK = 1024 * 1024;

export class BufferPool {
  private readonly free: ArrayBuffer[] = [];
  /** Handed out and not yet released: only these are taken back (a double or foreign release is ignored). */
  private readonly out = new Set<ArrayBuffer>();
  /** Buffers allocated so far (tests: reuse happened). */
  allocated = 0;

  constructor(
    readonly size = POOL_CHUNK,
    /** At most this many free buffers are kept. */
    private readonly keep = 8,
  ) {}

  acquire(): Buffer {
    let ab = this.free.pop();
    if (ab === undefined) {
      ab = new ArrayBuffer(this.size);
      this.allocated++;
    }
    this.out.add(ab);
    return Buffer.from(ab, 0, this.size);
  }

  /** Gives back the buffer a chunk (or any view of it) lies in; its data may be overwritten from now on. */
  release(chunk: Uint8Array): void {
    const ab = chunk.buffer;
    if (!(ab instanceof ArrayBuffer) || !this.out.delete(ab)) return;
    if (this.free.length < this.keep) this.free.push(ab);
  }

  /** Handed out, not released. */
  get outstanding(): number {
    return this.out.size;
  }
}

/** Releases a chunk of a stream once its consumer wrote it (see BufferPool.release). */
export type ReleaseChunk = (chunk: Buffer) => void;

/**
 * Free bytes a pooled sender leaves in front of each chunk in its buffer: the transfer writes its
 * frame header there and sends header and chunk as one contiguous write (TLS copies a writev's
 * buffers into a fresh one first).
 */
export const FRAME_HEADROOM = 4;

export interface Pooled {
  readonly release: ReleaseChunk;
  /** Bytes before each chunk, in its buffer, that belong to no chunk and are the consumer's to write. */
  readonly headroom: number;
}

const pooledStreams = new WeakMap<Readable, Pooled>();

/** Says that the stream's chunks are pooled: its consumer should release each once written. */
export function markPooled<T extends Readable>(stream: T, release: ReleaseChunk, headroom = 0): T {
  pooledStreams.set(stream, { release, headroom });
  return stream;
}

/** How to give back the stream's chunks, and the room before each, if they are pooled. */
export function pooledOf(stream: Readable): Pooled | undefined {
  return pooledStreams.get(stream);
}

/** How to give back the stream's chunks, if they are pooled. */
export function releaserOf(stream: Readable): ReleaseChunk | undefined {
  return pooledStreams.get(stream)?.release;
}

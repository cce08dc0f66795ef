import { createHash } from 'node:crypto';
import type { CallOptions, ObjectInfo, ObjectStore } from '../store';

export type StoreOperation = 'put' | 'get' | 'head' | 'list' | 'delete';

/**
 * An ObjectStore in memory for unit tests: objects are plain fields tests may read, corrupt or age; counters
 * say what was sent; `beforeOperation` may throw to simulate an outage or a crash at a chosen call.
 */
export class MemoryObjectStore implements ObjectStore {
  readonly location = 'memory://test';
  readonly objects = new Map<string, { body: Buffer; lastModified: Date }>();
  readonly counts: Record<StoreOperation, number> = { put: 0, get: 0, head: 0, list: 0, delete: 0 };
  /** Bytes of every put body, summed. */
  bytesPut = 0;
  beforeOperation?: (op: StoreOperation, key: string) => void | Promise<void>;

  constructor(readonly now: () => number = Date.now) {}

  private async enter(op: StoreOperation, key: string, options?: CallOptions): Promise<void> {
    options?.signal?.throwIfAborted();
    this.counts[op]++;
    await this.beforeOperation?.(op, key);
  }

  async put(key: string, body: Uint8Array, options?: CallOptions): Promise<void> {
    await this.enter('put', key, options);
    this.bytesPut += body.length;
    this.objects.set(key, { body: Buffer.from(body), lastModified: new Date(this.now()) });
  }

  async get(key: string, options?: CallOptions): Promise<Buffer | undefined> {
    await this.enter('get', key, options);
    const o = this.objects.get(key);
    return o === undefined ? undefined : Buffer.from(o.body);
  }

  async head(key: string, options?: CallOptions): Promise<ObjectInfo | undefined> {
    await this.enter('head', key, options);
    const o = this.objects.get(key);
    if (o === undefined) return undefined;
    // Like S3 with additional checksums (what the bytes hashed to when written; here the bytes as they are).
    const sha256 = createHash('sha256').update(o.body).digest('base64');
    return { key, size: o.body.length, lastModified: o.lastModified, sha256 };
  }

  async *list(prefix: string, options?: CallOptions): AsyncIterable<ObjectInfo> {
    await this.enter('list', prefix, options);
    const keys = [...this.objects.keys()].filter((k) => k.startsWith(prefix)).sort();
    for (const key of keys) {
      const o = this.objects.get(key);
      if (o !== undefined) yield { key, size: o.body.length, lastModified: o.lastModified };
    }
  }

  async delete(key: string, options?: CallOptions): Promise<void> {
    await this.enter('delete', key, options);
    this.objects.delete(key);
  }

  keys(prefix = ''): string[] {
    return [...this.objects.keys()].filter((k) => k.startsWith(prefix)).sort();
  }

  resetCounts(): void {
    for (const k of Object.keys(this.counts) as StoreOperation[]) this.counts[k] = 0;
    this.bytesPut = 0;
  }
}

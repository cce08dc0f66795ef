/** Chunk bytes: hashing, hole detection, compression and its verified inverse. */
import { createHash } from 'node:crypto';
import { promisify } from 'node:util';
import * as zlib from 'node:zlib';
import { BackupError } from './errors';

export type Compression = 'zstd' | 'gzip';

const ZSTD_MAGIC = Buffer.from([0x28, 0xb5, 0x2f, 0xfd]);
const GZIP_MAGIC = Buffer.from([0x1f, 0x8b]);

const gzip = promisify(zlib.gzip);
const gunzip = promisify(zlib.gunzip);
// zstd arrived in Node 22.15/23.8; an older runtime falls back to gzip (readers tell chunks apart by magic bytes).
const zstdCompress = typeof zlib.zstdCompress === 'function' ? promisify(zlib.zstdCompress) : undefined;
const zstdDecompress = typeof zlib.zstdDecompress === 'function' ? promisify(zlib.zstdDecompress) : undefined;

export const DEFAULT_COMPRESSION: Compression = zstdCompress === undefined ? 'gzip' : 'zstd';

export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

const ZEROS = Buffer.alloc(1024 * 1024);

/** True when every byte is zero: such a chunk is a hole. */
export function isAllZero(bytes: Uint8Array): boolean {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let off = 0; off < buf.length; off += ZEROS.length) {
    const n = Math.min(ZEROS.length, buf.length - off);
    if (!buf.subarray(off, off + n).equals(ZEROS.subarray(0, n))) return false;
  }
  return true;
}

export async function compressChunk(
  plain: Uint8Array,
  compression: Compression = DEFAULT_COMPRESSION,
): Promise<Buffer> {
  if (compression === 'zstd' && zstdCompress !== undefined) {
    // Level 3 (zstd's default): fast enough to keep up with the network, most of level 19's ratio on volume data.
    return zstdCompress(plain, { params: { [zlib.constants.ZSTD_c_compressionLevel]: 3 } });
  }
  return gzip(plain, { level: 6 });
}

/**
 * The plain bytes of a stored chunk, verified: it must decompress (codec told by magic bytes), be exactly
 * `length` bytes and hash to `hash`. Anything else is CHUNK_CORRUPT naming the key.
 */
export async function openChunk(stored: Buffer, hash: string, length: number, key: string): Promise<Buffer> {
  const corrupt = (why: string) => new BackupError('CHUNK_CORRUPT', `backup chunk ${key} is corrupt: ${why}`, key);
  let plain: Buffer;
  try {
    // maxOutputLength bounds memory against a corrupt (or hostile) object that would inflate without end.
    const options = { maxOutputLength: Math.max(1, length) };
    if (stored.subarray(0, 4).equals(ZSTD_MAGIC)) {
      if (zstdDecompress === undefined) throw new Error('zstd is not available in this Node.js');
      plain = await zstdDecompress(stored, options);
    } else if (stored.subarray(0, 2).equals(GZIP_MAGIC)) {
      plain = await gunzip(stored, options);
    } else {
      throw new Error('neither a zstd nor a gzip stream');
    }
  } catch (e) {
    if (e instanceof BackupError) throw e;
    throw corrupt(`does not decompress (${e instanceof Error ? e.message : String(e)})`);
  }
  if (plain.length !== length) throw corrupt(`holds ${plain.length} bytes, the manifest expects ${length}`);
  const actual = sha256Hex(plain);
  if (actual !== hash) throw corrupt(`its content hashes to ${actual}`);
  return plain;
}

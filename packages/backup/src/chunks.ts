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

/** a XOR b (equal lengths) into a new buffer: the delta of two versions of a chunk, and its inverse. */
export function xorBuffers(a: Uint8Array, b: Uint8Array): Buffer {
  if (a.length !== b.length) throw new Error(`xor of ${a.length} and ${b.length} bytes`);
  const out = Buffer.allocUnsafe(a.length);
  let i = 0;
  // Eight bytes at a time where all three buffers allow 64-bit views (large buffers start aligned).
  if (a.byteOffset % 8 === 0 && b.byteOffset % 8 === 0 && out.byteOffset % 8 === 0) {
    const words = Math.floor(a.length / 8);
    const wa = new BigUint64Array(a.buffer, a.byteOffset, words);
    const wb = new BigUint64Array(b.buffer, b.byteOffset, words);
    const wo = new BigUint64Array(out.buffer, out.byteOffset, words);
    for (let w = 0; w < words; w++) wo[w] = (wa[w] ?? 0n) ^ (wb[w] ?? 0n);
    i = words * 8;
  }
  for (; i < a.length; i++) out[i] = (a[i] ?? 0) ^ (b[i] ?? 0);
  return out;
}

function corruptError(key: string, why: string): BackupError {
  return new BackupError('CHUNK_CORRUPT', `backup chunk ${key} is corrupt: ${why}`, key);
}

/** Decompresses a stored object (codec told by magic bytes) that must hold exactly `length` bytes. */
export async function decompressChunk(stored: Buffer, length: number, key: string): Promise<Buffer> {
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
    throw corruptError(key, `does not decompress (${e instanceof Error ? e.message : String(e)})`);
  }
  if (plain.length !== length) throw corruptError(key, `holds ${plain.length} bytes, the manifest expects ${length}`);
  return plain;
}

/**
 * The plain bytes of a stored chunk, verified: it must decompress, be exactly `length` bytes and hash to `hash`.
 * Anything else is CHUNK_CORRUPT naming the key.
 */
export async function openChunk(stored: Buffer, hash: string, length: number, key: string): Promise<Buffer> {
  const plain = await decompressChunk(stored, length, key);
  const actual = sha256Hex(plain);
  if (actual !== hash) throw corruptError(key, `its content hashes to ${actual}`);
  return plain;
}

/** The plain bytes of a delta applied to its (verified) base, verified against `hash`; CHUNK_CORRUPT names the delta. */
export async function openDelta(stored: Buffer, base: Buffer, hash: string, key: string): Promise<Buffer> {
  const plain = xorBuffers(await decompressChunk(stored, base.length, key), base);
  const actual = sha256Hex(plain);
  if (actual !== hash) throw corruptError(key, `applied to its base, it hashes to ${actual}`);
  return plain;
}

import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, promises as fs } from 'node:fs';

export interface ImageRegion {
  readonly offset: number;
  readonly length: number;
}

/** A small deterministic generator (mulberry32): the same seed places regions at the same offsets. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

async function writeRandom(file: string, regions: readonly ImageRegion[]): Promise<void> {
  const handle = await fs.open(file, 'r+');
  try {
    for (const r of regions) {
      for (let done = 0; done < r.length;) {
        const n = Math.min(8 << 20, r.length - done);
        await handle.write(randomBytes(n), 0, n, r.offset + done);
        done += n;
      }
    }
  } finally {
    await handle.close();
  }
}

function placeRegions(size: number, count: number, length: number, seed: number, align = 1): ImageRegion[] {
  const random = prng(seed);
  return Array.from({ length: count }, () => {
    const slots = Math.floor((size - length) / align);
    return { offset: Math.floor(random() * (slots + 1)) * align, length };
  });
}

/** A sparse file of `size` bytes with `regions` regions of random data (each `regionSize` bytes); holes elsewhere. */
export async function makeSparseImage(
  file: string,
  options: { size: number; regions: number; regionSize: number; seed?: number },
): Promise<ImageRegion[]> {
  await fs.writeFile(file, '');
  await fs.truncate(file, options.size);
  const regions = placeRegions(options.size, options.regions, options.regionSize, options.seed ?? 1, 4096);
  await writeRandom(file, regions);
  return regions;
}

/**
 * Overwrites `bytes` bytes in `regions` contiguous spans with new random data: at `offsets` if given (one per
 * region), else at seeded random offsets.
 */
export async function mutateImage(
  file: string,
  options: { bytes: number; regions: number; seed?: number; offsets?: readonly number[] },
): Promise<ImageRegion[]> {
  const { size } = await fs.stat(file);
  const length = Math.ceil(options.bytes / options.regions);
  const regions =
    options.offsets?.map((offset) => ({ offset, length })) ??
    placeRegions(size, options.regions, length, options.seed ?? 2);
  await writeRandom(file, regions);
  return regions;
}

export async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

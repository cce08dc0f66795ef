import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { z } from 'zod';

/** What the loopback pool keeps beside each backing file, `<id>.json`. */
export const VolumeRecord = z
  .object({
    version: z.literal(1),
    blockdevice_id: z.string().min(1),
    dataset_id: z.string().min(1),
    size: z.number().int().positive(),
    profile: z.string().optional(),
    attached_to: z.string().min(1).nullable(),
    created: z.string(),
  })
  .strict();
export type VolumeRecord = z.infer<typeof VolumeRecord>;

/** Writes a file so readers see either the old or the new content, even across a crash. */
export async function writeFileAtomic(file: string, content: string): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  const handle = await fs.open(tmp, 'wx', 0o644);
  try {
    await handle.writeFile(content, 'utf8');
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await fs.rename(tmp, file);
  } catch (e) {
    await fs.rm(tmp, { force: true });
    throw e;
  }
  await fsyncDir(path.dirname(file));
}

export async function fsyncDir(dir: string): Promise<void> {
  const handle = await fs.open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Sizes of what we back up from or restore to: a regular file (snapshot image) or a block device. */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { BackupError } from './errors';

export interface DeviceInfo {
  readonly size: number;
  readonly isBlockDevice: boolean;
}

/** A block device's size from sysfs (stat answers 0 for devices): /sys/class/block/NAME/size counts 512-byte sectors. */
async function blockDeviceSize(devicePath: string): Promise<number> {
  const real = await fs.realpath(devicePath);
  const text = await fs.readFile(path.join('/sys/class/block', path.basename(real), 'size'), 'utf8');
  const sectors = Number(text.trim());
  if (!Number.isSafeInteger(sectors)) throw new Error(`unreadable size ${JSON.stringify(text)} in sysfs`);
  return sectors * 512;
}

export async function describePath(p: string, role: 'source' | 'target'): Promise<DeviceInfo> {
  const code = role === 'source' ? 'SOURCE_UNREADABLE' : 'TARGET_UNUSABLE';
  try {
    const st = await fs.stat(p);
    if (st.isBlockDevice()) return { size: await blockDeviceSize(p), isBlockDevice: true };
    if (st.isFile()) return { size: st.size, isBlockDevice: false };
    throw new Error('neither a regular file nor a block device');
  } catch (e) {
    if (e instanceof BackupError) throw e;
    throw new BackupError(code, `${role} ${p}: ${e instanceof Error ? e.message : String(e)}`, p, { cause: e });
  }
}

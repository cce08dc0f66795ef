/**
 * Device names for AttachVolume, and finding an attached EBS volume's block
 * device on this host — always by the volume id, never by "the newest disk".
 *
 * - Nitro instances expose EBS volumes as NVMe namespaces whose controller
 *   serial is the volume id without the dash (vol0123…), also linked by udev
 *   as /dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0123….
 * - Xen instances expose the device named in the volume's attachment record
 *   (/dev/sdf) as /dev/xvdf (or /dev/sdf); used only on hosts without EBS NVMe
 *   controllers, where the name in EC2's attachment record is the match.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { isDeviceBusy } from '../blockdev';
import { pollUntil, type BackoffOptions } from './retry';

/** The names AWS recommends for EBS data volumes on Linux. */
export const DEVICE_NAMES: readonly string[] = 'fghijklmnop'.split('').map((c) => `/dev/sd${c}`);

/** "/dev/xvdf", "sdf1", "/dev/sdf" → "f": names that would clash on the instance. */
export function deviceSlot(name: string): string {
  return path
    .basename(name)
    .replace(/^(xv|s|h)d/, '')
    .replace(/\d+$/, '');
}

/** The first of DEVICE_NAMES whose slot no name in inUse takes, or undefined when all are taken. */
export function pickDeviceName(inUse: Iterable<string>): string | undefined {
  const taken = new Set([...inUse].map(deviceSlot));
  return DEVICE_NAMES.find((n) => !taken.has(deviceSlot(n)));
}

/** The NVMe serial (and by-id suffix) of an EBS volume: the id without its dash. */
export function nvmeSerial(volumeId: string): string {
  return volumeId.replace('-', '');
}

export interface HostPaths {
  /** Default /dev. */
  readonly devRoot: string;
  /** Default /sys. */
  readonly sysRoot: string;
}

export const DEFAULT_HOST_PATHS: HostPaths = { devRoot: '/dev', sysRoot: '/sys' };

async function isBlockDevice(p: string): Promise<boolean> {
  try {
    return (await fs.stat(p)).isBlockDevice();
  } catch {
    return false;
  }
}

async function readTrimmed(p: string): Promise<string | undefined> {
  try {
    return (await fs.readFile(p, 'utf8')).trim();
  } catch {
    return undefined;
  }
}

interface NvmeDisk {
  readonly name: string;
  readonly serial: string | undefined;
  readonly model: string | undefined;
}

async function nvmeDisks(sysRoot: string): Promise<NvmeDisk[]> {
  let names: string[];
  try {
    names = await fs.readdir(path.join(sysRoot, 'block'));
  } catch {
    return [];
  }
  const disks: NvmeDisk[] = [];
  // nvme1n1 (namespace), not nvme1n1p1 (partitions are not listed in /sys/block anyway).
  for (const name of names.filter((n) => /^nvme\d+n\d+$/.test(n)).sort()) {
    const dir = path.join(sysRoot, 'block', name, 'device');
    disks.push({
      name,
      serial: await readTrimmed(path.join(dir, 'serial')),
      model: await readTrimmed(path.join(dir, 'model')),
    });
  }
  return disks;
}

/**
 * The block device of this attached volume on this host, or undefined if it
 * has not appeared (yet). attachmentDevice is the name in EC2's attachment
 * record, e.g. /dev/sdf.
 */
export async function findEbsDevice(
  volumeId: string,
  attachmentDevice: string | undefined,
  paths: HostPaths = DEFAULT_HOST_PATHS,
): Promise<string | undefined> {
  const serial = nvmeSerial(volumeId);
  const byId = path.join(paths.devRoot, 'disk', 'by-id', `nvme-Amazon_Elastic_Block_Store_${serial}`);
  if (await isBlockDevice(byId)) return fs.realpath(byId);
  const disks = await nvmeDisks(paths.sysRoot);
  const match = disks.find((d) => d.serial === serial);
  if (match !== undefined) {
    const dev = path.join(paths.devRoot, match.name);
    if (await isBlockDevice(dev)) return dev;
    return undefined;
  }
  // A Nitro host names every EBS volume by serial; a sdX/xvdX there is something else.
  const nitro = disks.some(
    (d) => (d.model ?? '').includes('Amazon Elastic Block Store') || (d.serial ?? '').startsWith('vol'),
  );
  if (nitro || attachmentDevice === undefined) return undefined;
  const slot = deviceSlot(attachmentDevice);
  if (!/^[a-z]{1,2}$/.test(slot)) return undefined;
  for (const name of [`xvd${slot}`, `sd${slot}`]) {
    const dev = path.join(paths.devRoot, name);
    if (await isBlockDevice(dev)) return dev;
  }
  return undefined;
}

export interface WaitForDeviceOptions extends Partial<HostPaths>, Partial<BackoffOptions> {
  readonly timeoutMs: number;
}

/** Waits (bounded, with backoff) for the volume's block device to appear on this host. */
export async function waitForDevice(
  volumeId: string,
  attachmentDevice: string | undefined,
  options: WaitForDeviceOptions,
): Promise<string> {
  const paths = {
    devRoot: options.devRoot ?? DEFAULT_HOST_PATHS.devRoot,
    sysRoot: options.sysRoot ?? DEFAULT_HOST_PATHS.sysRoot,
  };
  return pollUntil(() => findEbsDevice(volumeId, attachmentDevice, paths), {
    baseMs: options.baseMs ?? 100,
    maxMs: options.maxMs ?? 2000,
    random: options.random,
    sleep: options.sleep,
    timeoutMs: options.timeoutMs,
    what: `the block device of ${volumeId} (attached as ${attachmentDevice ?? '?'}) to appear on this host`,
    blockdeviceId: volumeId,
  });
}

/** Waits (bounded) until the volume's block device has gone from this host after a detach. */
export async function waitForDeviceGone(
  volumeId: string,
  attachmentDevice: string | undefined,
  options: WaitForDeviceOptions,
): Promise<void> {
  const paths = {
    devRoot: options.devRoot ?? DEFAULT_HOST_PATHS.devRoot,
    sysRoot: options.sysRoot ?? DEFAULT_HOST_PATHS.sysRoot,
  };
  await pollUntil(
    async () => ((await findEbsDevice(volumeId, attachmentDevice, paths)) === undefined ? true : undefined),
    {
      baseMs: options.baseMs ?? 100,
      maxMs: options.maxMs ?? 2000,
      random: options.random,
      sleep: options.sleep,
      timeoutMs: options.timeoutMs,
      what: `the block device of ${volumeId} to disappear from this host`,
      blockdeviceId: volumeId,
    },
  );
}

/** What the driver needs from the host it runs on; injectable for tests. */
export interface EbsHost {
  /** The device now, or undefined if it is not there. */
  findDevice(volumeId: string, attachmentDevice: string | undefined): Promise<string | undefined>;
  waitForDevice(volumeId: string, attachmentDevice: string | undefined, timeoutMs: number): Promise<string>;
  waitForDeviceGone(volumeId: string, attachmentDevice: string | undefined, timeoutMs: number): Promise<void>;
  /** Mounted or otherwise claimed exclusively: detaching now would yank it from under a user. */
  isBusy(devicePath: string): Promise<boolean>;
}

export function linuxEbsHost(paths: Partial<HostPaths> = {}): EbsHost {
  const full = { ...DEFAULT_HOST_PATHS, ...paths };
  return {
    findDevice: (volumeId, device) => findEbsDevice(volumeId, device, full),
    waitForDevice: (volumeId, device, timeoutMs) => waitForDevice(volumeId, device, { ...paths, timeoutMs }),
    waitForDeviceGone: (volumeId, device, timeoutMs) => waitForDeviceGone(volumeId, device, { ...paths, timeoutMs }),
    isBusy: (devicePath) => isDeviceBusy(devicePath),
  };
}

/**
 * The local backend's disks (issue 24): each simulated host gets its own btrfs file system on its own loop device.
 * It is made at `up` in the root namespace and never mounted there (the hosts' mount namespaces are private: a root
 * mount would be seen by none of them), and mounted in the host's own mount namespace at every boot — a disk that
 * stays attached while the host is powered off, as the loopback backend's devices do. teardown() detaches it with
 * every loop device backed under baseDir, then removes the image (removeLocalDisks).
 */
import * as fs from 'node:fs';
import { LOCAL_POOL_BYTES, type HostLayout } from './layout';
import { inHost } from './namespaces';
import { ClusterError, run } from './run';
import { loopDevicesUnder } from '../loopPools';

/** A new sparse image of `bytes`, on a loop device, made btrfs; the device. */
export async function makeLocalDisk(host: HostLayout, bytes = LOCAL_POOL_BYTES): Promise<string> {
  // wx: never over an image a loop device may still serve (a cluster whose teardown failed).
  fs.writeFileSync(host.localPoolImage, '', { flag: 'wx' });
  await run(['truncate', '-s', String(bytes), host.localPoolImage]);
  const device = (await run(['losetup', '-f', '--show', host.localPoolImage])).stdout.trim();
  try {
    await run(['mkfs.btrfs', '-q', '-f', device], { timeoutMs: 60_000 });
  } catch (err) {
    if (err instanceof ClusterError && err.message.startsWith('cannot run mkfs.btrfs')) {
      throw new ClusterError('MKFS_MISSING', 'the local backend needs mkfs.btrfs: apt-get install -y btrfs-progs');
    }
    throw err;
  }
  return device;
}

/** The loop device serving the host's image. */
export function localDiskDevice(host: HostLayout): string {
  const device = loopDevicesUnder(host.dir).find((l) => l.backFile === host.localPoolImage && !l.deleted)?.name;
  if (device === undefined) {
    throw new ClusterError('NO_LOCAL_DISK', `host ${host.name}: no loop device serves ${host.localPoolImage}`);
  }
  return device;
}

/** Mounts the host's file system at its pool, in its mount namespace (nothing to do when it is mounted there). */
export async function mountLocalDisk(host: HostLayout): Promise<void> {
  fs.mkdirSync(host.localPool, { recursive: true });
  const script = 'mountpoint -q "$1" || mount -t btrfs "$2" "$1"';
  await run([...inHost(host), 'sh', '-ec', script, 'sh', host.localPool, localDiskDevice(host)]);
}

/** Removes the hosts' images; only once teardown has detached every loop device under baseDir. */
export function removeLocalDisks(hosts: readonly HostLayout[]): void {
  for (const h of hosts) fs.rmSync(h.localPoolImage, { force: true });
}

/**
 * The host side of a Cinder attachment (attach_mode cinder, as os-brick does
 * for bare metal): turn the connection info Cinder hands out into a local
 * block device, and take it away again.
 *
 * Supported connection types:
 * - `nfs` (Cinder's NFS/RemoteFS drivers): the export is mounted (or found
 *   mounted already) and the volume's raw file is attached as a loop device.
 * - `local` (drivers that give a host path): `device_path` as is.
 * Others (iscsi, rbd, nvmeof, fibre_channel) need their own initiator tooling
 * and are refused with BACKEND_ERROR naming the type.
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { StorageError } from '../BlockDeviceApi';
import { isDeviceBusy, listMounts, type MountEntry } from '../blockdev';
import { runChecked, type ExecFn } from '../exec';
import { attachLoop, detachLoop, findLoopDevices } from '../losetup';
import type { ConnectionInfo } from './schemas';

export interface HostConnectorSideOptions {
  readonly exec: ExecFn;
  /** Where to mount NFS exports that are not mounted yet. */
  readonly nfsMountBase: string;
  readonly listMounts?: () => Promise<MountEntry[]>;
}

/** Cinder's (os-brick's) mount point naming: md5 of the export under the base. */
export function nfsMountPointFor(base: string, exportName: string): string {
  return path.join(base, createHash('md5').update(exportName).digest('hex'));
}

export class ConnectorSide {
  private readonly mounts: () => Promise<MountEntry[]>;

  constructor(private readonly options: HostConnectorSideOptions) {
    this.mounts = options.listMounts ?? (() => listMounts());
  }

  /** The local block device for this connection, connecting first if needed (idempotent). */
  async connect(info: ConnectionInfo, volumeId: string): Promise<string> {
    switch (info.driver_volume_type) {
      case 'nfs': {
        const file = await this.nfsFile(info, volumeId, true);
        const existing = await findLoopDevices(this.options.exec, file);
        if (existing.length > 0) return existing[0];
        return attachLoop(this.options.exec, file, volumeId);
      }
      case 'local': {
        if (!info.device_path)
          throw new StorageError('BACKEND_ERROR', `connection info of volume ${volumeId} has no device_path`, volumeId);
        return info.device_path;
      }
      default:
        throw unsupported(info, volumeId);
    }
  }

  /** The local device if connected here, else null. Never connects. */
  async connectedDevice(info: ConnectionInfo, volumeId: string): Promise<string | null> {
    if (info.driver_volume_type === 'local') return info.device_path ?? null;
    if (info.driver_volume_type !== 'nfs') return null;
    const file = await this.nfsFile(info, volumeId, false);
    if (file === null) return null;
    const devices = await findLoopDevices(this.options.exec, file);
    return devices[0] ?? null;
  }

  /**
   * Removes the local device. Without force a device in use (mounted, in any
   * mount namespace) is DEVICE_BUSY. With force, unused devices are removed and
   * busy ones are left to autoclear when finally unmounted.
   */
  async disconnect(info: ConnectionInfo, volumeId: string, force: boolean): Promise<void> {
    if (info.driver_volume_type !== 'nfs') return;
    const file = await this.nfsFile(info, volumeId, false);
    if (file === null) return;
    const devices = await findLoopDevices(this.options.exec, file);
    if (!force) {
      for (const device of devices) {
        if (await isDeviceBusy(device)) {
          throw new StorageError(
            'DEVICE_BUSY',
            `volume ${volumeId} is in use on ${device} (mounted?); unmount it before detaching`,
            volumeId,
          );
        }
      }
    }
    for (const device of devices) {
      // losetup -d on a busy device only marks it for autoclear: what fencing we can do on this host.
      await detachLoop(this.options.exec, device, volumeId).catch((e: unknown) => {
        if (!force) throw e;
      });
    }
  }

  /** Where the volume's file lives; mounts the export when asked to (null if not mounted and not asked). */
  private async nfsFile(info: ConnectionInfo, volumeId: string, mountIfNeeded: true): Promise<string>;
  private async nfsFile(info: ConnectionInfo, volumeId: string, mountIfNeeded: false): Promise<string | null>;
  private async nfsFile(info: ConnectionInfo, volumeId: string, mountIfNeeded: boolean): Promise<string | null> {
    const exportName = info.export;
    const name = info.name;
    if (!exportName || !name || name.includes('/') || name === '..' || name === '.') {
      throw new StorageError(
        'BACKEND_ERROR',
        `NFS connection info of volume ${volumeId} lacks a usable export/name`,
        volumeId,
      );
    }
    if (info.format !== undefined && info.format !== 'raw') {
      throw new StorageError(
        'BACKEND_ERROR',
        `volume ${volumeId} is stored as ${info.format}; only raw NFS volumes can be attached on bare metal`,
        volumeId,
      );
    }
    const mounts = await this.mounts();
    const candidates = [
      ...mounts.filter((m) => m.device === exportName).map((m) => m.mountPoint),
      // Cinder's own mount of the share, when cinder-volume runs on this host.
      ...(info.mount_point_base ? [nfsMountPointFor(info.mount_point_base, exportName)] : []),
      nfsMountPointFor(this.options.nfsMountBase, exportName),
    ];
    for (const mp of candidates) {
      if (mounts.some((m) => m.mountPoint === mp)) return path.join(mp, name);
    }
    if (!mountIfNeeded) return null;
    const mp = nfsMountPointFor(this.options.nfsMountBase, exportName);
    await fs.mkdir(mp, { recursive: true });
    await runChecked(
      this.options.exec,
      'mount',
      ['-t', 'nfs', exportName, mp],
      `mounting NFS export ${exportName}`,
      'BACKEND_ERROR',
      volumeId,
    );
    return path.join(mp, name);
  }
}

function unsupported(info: ConnectionInfo, volumeId: string): StorageError {
  return new StorageError(
    'BACKEND_ERROR',
    `volume ${volumeId} uses connection type ${info.driver_volume_type}, which this host connector does not support (supported: nfs, local)`,
    volumeId,
  );
}

/**
 * Carries out one action. Each is idempotent: running it again after it (or a
 * crash in the middle of it) already took effect is a no-op, so the loop can
 * always simply retry what the next observation still asks for.
 */
import {
  isStorageError,
  StorageError,
  type BlockDeviceApi,
  type BlockDeviceVolume,
  type CreateVolumeOptions,
  type StorageErrorCode,
} from '@flocker/storage-drivers';
import type winston from 'winston';
import { AgentError, errorMessage } from './errors';
import { fillsDevice, type FilesystemFound, type HostOps } from './HostOps';
import type { Action } from './LocalState';
import { attributeProblems, createRefusal, listPoolOf, type ReportedVolume } from './poolSafety';

export interface ExecutionContext {
  readonly driver: BlockDeviceApi;
  readonly host: HostOps;
  readonly instanceId: string;
  readonly logger?: winston.Logger;
  /** Told of each volume this process creates. */
  readonly onCreated?: (volume: BlockDeviceVolume) => void;
  /**
   * A create takes a spare volume (issue 23) when this answers one: already formatted, so
   * it is told to onClaimed, not onCreated. Absent where the dataset may not take one
   * (spareDecisions.mayClaimSpare) or the backend keeps none.
   */
  readonly claimSpare?: (
    datasetId: string,
    size: number,
    options: CreateVolumeOptions,
  ) => Promise<
    (BlockDeviceVolume & { readonly devicePath?: string; readonly filesystem?: FilesystemFound }) | undefined
  >;
  /** Told of each spare claimed, with the file system the claim's check read from it (when the backend says). */
  readonly onClaimed?: (volume: BlockDeviceVolume, filesystem?: FilesystemFound) => void;
  /**
   * mount: the file system the action's device holds as this process knows it without a read (a spare it claimed and
   * has not touched since, DatasetWorker): the superblock is not read again (issue 23: the claimed spare's mount is on
   * a new volume's critical path, and a read there is a thread-pool hop and a loop-device read).
   */
  readonly knownFilesystem?: FilesystemFound;
  /** Whether the caller can use the device of a volume it attaches (see ActionResult.devicePath). */
  readonly wantDevicePath?: (blockdeviceId: string) => boolean;
  /**
   * What the cluster knows of volumes, checked before a create: the volumes nodes
   * report (poolSafety.reportedVolumes) and the datasets of volumes this agent saw
   * before (blockdevice id → dataset id), to attribute unreadable records.
   */
  /** Writes a stored backup onto the action's device, verified (issue 20); absent without S3 settings. */
  readonly restoreBackup?: (action: Extract<Action, { kind: 'restore' }>) => Promise<void>;
  readonly knownVolumes?: () => {
    readonly reported: readonly ReportedVolume[];
    readonly remembered: ReadonlyMap<string, string>;
  };
  readonly offlineGrow?: OfflineGrow;
}

/**
 * The offline grow of a mounted ext4 file system whose online growth is refused (no CAP_SYS_RESOURCE): absent, the
 * refusal is only logged (it grows at the volume's next mount, a move).
 */
export interface OfflineGrow {
  /** The agent's own mount of the dataset here. */
  mountPath(datasetId: string): string;
  /** No lease on the dataset on any node in the latest configuration seen: asked right before and after the unmount. */
  leaseFree(datasetId: string): boolean;
  /** The file system fills its device now (true), or still waits for its users to go (false). */
  settled(datasetId: string, grown: boolean): void;
}

/**
 * What an action's own driver calls answered, when this call made the change
 * (not when it found it already made): see stateAfter.
 */
export interface ActionResult {
  /** create: the volume this call made. */
  readonly created?: BlockDeviceVolume;
  /** attach: the device of the volume this call attached here, if the caller wanted it; create: of a spare it claimed attached. */
  readonly devicePath?: string;
  /**
   * attach: the volume's size as the backend's record says at the attach (a move's attach decided on the view may
   * carry an older size: a volume grown since must have its file system grown at the mount that follows).
   */
  readonly size?: number;
  /** mount, restore: the file system the device holds (its superblock), mounted (absent: neither ext4 nor xfs). */
  readonly filesystem?: 'ext4' | 'xfs';
}

/** The result of a mount step: the file system mountVolume found, if any. */
function mountedResult(filesystem: 'ext4' | 'xfs' | undefined): ActionResult {
  return filesystem !== undefined ? { filesystem } : {};
}

export async function executeAction(action: Action, ctx: ExecutionContext): Promise<ActionResult> {
  const { driver, host } = ctx;
  switch (action.kind) {
    case 'create': {
      // Re-check just before creating: never a second volume for one dataset, also not when
      // the dataset's record is unreadable or its volume is reported but not in this pool.
      const pool = await listPoolOf(driver);
      if (pool.volumes.some((v) => v.datasetId === action.datasetId)) return {};
      const known = ctx.knownVolumes?.() ?? { reported: [], remembered: new Map<string, string>() };
      const refusal = createRefusal(
        action.datasetId,
        { ...pool, problems: attributeProblems(pool.problems, known.remembered, known.reported) },
        known.reported,
        `the ${driver.backend} pool`,
      );
      if (refusal !== undefined) throw new AgentError(refusal.code, refusal.message);
      // onlyVolume: the backend checks again with the create itself (loopback: under its pool lock),
      // so another host deciding to create the same dataset's volume meanwhile cannot make a second.
      const options = { ...(action.profile !== undefined ? { profile: action.profile } : {}), onlyVolume: true };
      if (action.sourceSnapshotId !== undefined) {
        // A clone already holds a file system: not reported as created blank (onCreated), so never formatted.
        return { created: await createClone(driver, action.sourceSnapshotId, action.datasetId, action.size, options) };
      }
      if (ctx.claimSpare !== undefined) {
        const claimed = await ctx.claimSpare(action.datasetId, action.size, options);
        if (claimed !== undefined) {
          // Attached here by the claim (on the spare's own loop device): its device too, for stateAfter.
          const { devicePath, filesystem, ...volume } = claimed;
          ctx.onClaimed?.(volume, filesystem);
          return { created: volume, ...(devicePath !== undefined ? { devicePath } : {}) };
        }
      }
      const created = await driver.createVolume(action.datasetId, action.size, options);
      ctx.onCreated?.(created);
      return { created };
    }
    case 'attach': {
      let size: number;
      try {
        size = (await driver.attachVolume(action.blockdeviceId, ctx.instanceId)).size;
      } catch (e) {
        if (
          isStorageError(e, 'ALREADY_ATTACHED') &&
          (await attachedTo(driver, action.blockdeviceId)) === ctx.instanceId
        )
          return {};
        throw e;
      }
      if (!ctx.wantDevicePath?.(action.blockdeviceId)) return {};
      try {
        return { devicePath: await driver.getDevicePath(action.blockdeviceId), size };
      } catch {
        return {}; // attached, device not known yet: the next look finds it
      }
    }
    case 'format':
      // Already formatted (say, by a run that crashed after mkfs): done, and nothing overwritten.
      await ignoring(['FILESYSTEM_EXISTS'], () => host.makeFilesystem(action.devicePath, action.filesystem));
      return {};
    case 'mount':
      return mountedResult(await mountVolume(action, host, ctx.knownFilesystem));
    case 'restore': {
      // Mounted only once every chunk of the backup verified and is on the device.
      if (ctx.restoreBackup === undefined) {
        throw new AgentError(
          'BACKUP_NOT_CONFIGURED',
          'this agent has no S3 settings (agent.yml backup: or AWS_* environment variables): it cannot restore a backup',
        );
      }
      await ctx.restoreBackup(action);
      return mountedResult(await mountVolume({ ...action, kind: 'mount' }, host));
    }
    case 'takeSnapshot':
      await takeSnapshot(action, ctx);
      return {};
    case 'unmount': {
      const mounts = await host.listMounts();
      if (mounts.some((m) => m.mountPoint === action.mountPath)) await host.unmount(action.mountPath);
      // The empty mount point goes too (a directory per volume that ever was here otherwise
      // piles up under the mount root); a stacked mount still there keeps it.
      if ((await host.listMounts()).every((m) => m.mountPoint !== action.mountPath))
        await host.removeEmptyDir(action.mountPath);
      return {};
    }
    case 'detach':
      await detach(driver, action.blockdeviceId, false);
      return {};
    case 'forceDetach':
      await detach(driver, action.blockdeviceId, true);
      return {};
    case 'destroy':
      await destroy(driver, action.blockdeviceId, action.detachFirst);
      return {};
    case 'destroySnapshot':
      if (driver.destroySnapshot === undefined) throw noSnapshots(driver);
      await driver.destroySnapshot(action.snapshotId);
      return {};
    case 'resize': {
      if (driver.resizeVolume === undefined) return {};
      if (action.unmounted === true) {
        await resizeUnmounted(action, ctx);
        return {};
      }
      await driver.resizeVolume(action.blockdeviceId, action.size);
      try {
        await host.resizeFilesystem(action.devicePath);
      } catch (e) {
        // Online growth needs CAP_SYS_RESOURCE. Without it: offline, once nothing uses the volume here.
        if (!/Permission denied/.test(errorMessage(e))) throw e;
        const grow = ctx.offlineGrow;
        if (grow === undefined) {
          ctx.logger?.warn('online filesystem resize not permitted; it will grow at the next mount', {
            datasetId: action.datasetId,
            devicePath: action.devicePath,
          });
          return {};
        }
        let grown = false;
        try {
          grown = await growOffline(action, grow, ctx);
        } finally {
          // A failed grow (say, e2fsck) stays pending too: retried, with backoff, while nothing uses the volume.
          grow.settled(action.datasetId, grown);
        }
        if (grown) ctx.logger?.info('file system grown offline', { datasetId: action.datasetId });
        else
          ctx.logger?.warn(
            'online filesystem resize not permitted (the agent lacks CAP_SYS_RESOURCE): the file system grows when no container uses the volume (no lease on it)',
            { datasetId: action.datasetId, devicePath: action.devicePath },
          );
        return {};
      }
      ctx.offlineGrow?.settled(action.datasetId, true);
      return {};
    }
  }
}

/**
 * Unmounts the agent's own mount, grows the file system (e2fsck -f, resize2fs) and mounts it again; false, with the
 * mount as it was, when anything may use the volume: a lease on it (a container or pod here, or on its way), another
 * mount of the device in this namespace (a pod's bind), the unmount refused (files open), or after the unmount a
 * mount of it in another namespace (the exclusive open fails; a container's bind keeps its file system, and the
 * mount again takes the same one). Also false, logged, for anything but ext4 (nothing unmounted).
 *
 * The empty mount point is removed right after the unmount and made again just before the mount: a Docker or CSI
 * bind of the path that a lease taken meanwhile let through (its Mount answered before the unmount, its bind came
 * after) fails (no such directory) or binds a deleted directory where nothing can be created, rather than taking a
 * directory of the host's root file system that the mount then hides. A kill anywhere leaves the device mounted or
 * unmounted: the next look's mount step makes the directory and grows an unmounted file system first (mountVolume).
 */
async function growOffline(
  action: Extract<Action, { kind: 'resize' }>,
  grow: OfflineGrow,
  ctx: ExecutionContext,
): Promise<boolean> {
  const { host } = ctx;
  if (host.deviceBusy === undefined) return false;
  const mountPath = grow.mountPath(action.datasetId);
  const number = await host.deviceNumber(action.devicePath);
  const mounts = (await host.listMounts()).filter(
    (m) => m.device === action.devicePath || (number !== null && m.majorMinor === number),
  );
  if (mounts.length !== 1 || mounts[0]?.mountPoint !== mountPath || !grow.leaseFree(action.datasetId)) return false;
  // e2fsck + resize2fs, and the mount again with the type found: ext4 only (only ext4 is ever pending: resize2fs's
  // "Permission denied"; findPendingGrows looks for ext4). Anything else is left mounted as it is.
  const found = await host.filesystemOf(action.devicePath);
  if (found?.fstype !== 'ext4') {
    ctx.logger?.warn('not an ext4 file system: not grown offline', {
      datasetId: action.datasetId,
      devicePath: action.devicePath,
      filesystem: found?.fstype ?? null,
    });
    return false;
  }
  try {
    await host.unmount(mountPath);
  } catch {
    return false; // busy here (an open file, a process's cwd): left mounted
  }
  let grown = false;
  try {
    if (!(await host.removeEmptyDir(mountPath))) {
      // Written into (or mounted on) in the instant since the unmount: the mount below hides it; a person looks.
      ctx.logger?.error('the mount point was not empty after the unmount for an offline grow: not grown', {
        datasetId: action.datasetId,
        mountPath,
      });
      return false;
    }
    // A lease taken meanwhile: mounted again at once, not grown.
    if (grow.leaseFree(action.datasetId) && !(await host.deviceBusy(action.devicePath))) {
      await host.growUnmountedFilesystem(action.devicePath);
      grown = true;
    }
  } finally {
    await host.mkdirp(mountPath);
    await host.mount(action.devicePath, mountPath, found.fstype);
  }
  return grown;
}

/**
 * The resize of a mounted volume whose driver extends only what it may detach (Cinder extend_attached: reattach:
 * detach, extend, attach): the agent's own mount goes first and comes back after, with the file system grown by the
 * mount (ext4 offline before it, xfs online after it). Only when nothing else may use the volume, checked as the
 * offline grow does (growOffline): no lease right before and right after the unmount, the agent's mount the only one
 * of the device, the unmount not refused, and the device not busy after it (a bind in another namespace); else the
 * mount is as it was, logged, and the next decision tries again. The device may change with the attach again
 * (another loop device, another /dev/vdX): the mount takes the one the driver names now. A kill or a failed
 * resize leaves the volume unmounted (or detached): the next look's steps attach and mount it (mountVolume grows it).
 */
async function resizeUnmounted(action: Extract<Action, { kind: 'resize' }>, ctx: ExecutionContext): Promise<void> {
  const { host, driver } = ctx;
  const grow = ctx.offlineGrow;
  if (driver.resizeVolume === undefined) return;
  const waits = (why: string): void => {
    ctx.logger?.warn(`volume not grown: the backend grows it only detached, and ${why}; tried again at the next look`, {
      datasetId: action.datasetId,
      devicePath: action.devicePath,
    });
  };
  if (grow === undefined || host.deviceBusy === undefined) {
    waits('this agent cannot take its mount off safely');
    return;
  }
  const mountPath = grow.mountPath(action.datasetId);
  const number = await host.deviceNumber(action.devicePath);
  const mounts = (await host.listMounts()).filter(
    (m) => m.device === action.devicePath || (number !== null && m.majorMinor === number),
  );
  if (mounts.length !== 1 || mounts[0]?.mountPoint !== mountPath || !grow.leaseFree(action.datasetId)) {
    waits('something else uses it (a lease, or another mount of the device)');
    return;
  }
  const found = await host.filesystemOf(action.devicePath);
  try {
    await host.unmount(mountPath);
  } catch {
    waits('its file system is busy (an open file, a working directory)');
    return;
  }
  let free = false;
  try {
    // The empty mount point goes while unmounted: a bind a lease let through meanwhile fails rather than binding a
    // directory of the host's root file system (as growOffline).
    free =
      (await host.removeEmptyDir(mountPath)) &&
      grow.leaseFree(action.datasetId) &&
      !(await host.deviceBusy(action.devicePath));
  } finally {
    if (!free) {
      await host.mkdirp(mountPath);
      await host.mount(action.devicePath, mountPath, found?.fstype);
    }
  }
  if (!free) {
    waits('it came into use while unmounted');
    return;
  }
  const resized = await driver.resizeVolume(action.blockdeviceId, action.size);
  const devicePath = await driver.getDevicePath(action.blockdeviceId);
  await mountVolume(
    {
      kind: 'mount',
      datasetId: action.datasetId,
      blockdeviceId: action.blockdeviceId,
      devicePath,
      mountPath,
      size: resized.size,
    },
    host,
  );
  ctx.logger?.info('volume grown with its mount taken off', { datasetId: action.datasetId, size: resized.size });
}

/**
 * Mounts the device at the path (growing a file system smaller than the volume); idempotent. Answers the file system
 * its superblock shows (the one mounted), undefined when neither ext4 nor xfs.
 */
async function mountVolume(
  action: Extract<Action, { kind: 'mount' }>,
  host: HostOps,
  known?: FilesystemFound,
): Promise<'ext4' | 'xfs' | undefined> {
  // Independent of each other: together (issue 23: the mount is on a move's critical path). The superblock is read
  // once, for the size and for the type the mount needs; not at all when the caller knows them (a claimed spare).
  const [, number, filesystem] = await Promise.all([
    host.mkdirp(action.mountPath),
    host.deviceNumber(action.devicePath),
    known ?? host.filesystemOf(action.devicePath),
  ]);
  const mounts = await host.listMounts();
  const here = mounts.filter((m) => m.mountPoint === action.mountPath);
  if (here.some((m) => m.device === action.devicePath || (number !== null && m.majorMinor === number)))
    return filesystem?.fstype;
  // Never mount over another mount: it would hide what is there (a stale mount is
  // removed by the agent's stray-mount rule first; anything else needs a person).
  if (here.length > 0) {
    throw new StorageError(
      'DEVICE_BUSY',
      `${action.mountPath} is already a mount point (of ${here.map((m) => m.device).join(', ')}); not mounting ${action.devicePath} over it`,
      action.blockdeviceId,
    );
  }
  // A volume grown while mounted where online resize was refused: grow its filesystem now. One short of the volume
  // by no more than mke2fs and resize2fs leave off is full size: no e2fsck -f + resize2fs at every mount (FR finding 7).
  const smaller = filesystem !== null && !fillsDevice(filesystem, action.size);
  if (smaller && mounts.every((m) => m.device !== action.devicePath)) {
    await host.growUnmountedFilesystem(action.devicePath);
  }
  // A grow keeps the type; neither ext4 nor xfs found: the mount finds the type itself (blkid).
  await host.mount(action.devicePath, action.mountPath, filesystem?.fstype);
  // xfs grows only mounted: one grown while attached elsewhere or unmounted grows now.
  if (smaller) {
    const after = await host.filesystemOf(action.devicePath);
    if (after !== null && !fillsDevice(after, action.size)) await host.resizeFilesystem(action.devicePath);
  }
  return filesystem?.fstype;
}

function noSnapshots(driver: BlockDeviceApi): AgentError {
  return new AgentError('SNAPSHOTS_UNSUPPORTED', `the ${driver.backend} backend has no snapshots`);
}

/**
 * A volume for the dataset made from the snapshot, at least as big as the snapshot (the
 * configured size may be unknown or smaller when the snapshot was not taken yet at the
 * clone's request). SNAPSHOT_NOT_READY and UNKNOWN_SNAPSHOT fail the step: retried with backoff.
 */
async function createClone(
  driver: BlockDeviceApi,
  snapshotId: string,
  datasetId: string,
  size: number,
  options: CreateVolumeOptions,
): Promise<BlockDeviceVolume> {
  if (driver.createVolumeFromSnapshot === undefined || driver.listSnapshots === undefined) throw noSnapshots(driver);
  const snapshot = (await driver.listSnapshots()).find((s) => s.snapshotId === snapshotId);
  if (snapshot === undefined) {
    throw new StorageError(
      'UNKNOWN_SNAPSHOT',
      `the ${driver.backend} backend has no snapshot ${snapshotId} (yet: its source's primary node takes it; or it is in another backend)`,
    );
  }
  const unit = driver.allocationUnit();
  const atLeast = Math.max(size, Math.ceil(snapshot.size / unit) * unit);
  return driver.createVolumeFromSnapshot(snapshotId, datasetId, atLeast, options);
}

/**
 * Takes the snapshot; a mounted file system is frozen (fsfreeze) from just before to just
 * after, so the copy holds everything synced before and nothing half-written. The thaw
 * runs whatever happens; an agent killed in between thaws at its next start.
 */
async function takeSnapshot(action: Extract<Action, { kind: 'takeSnapshot' }>, ctx: ExecutionContext): Promise<void> {
  const { driver, host } = ctx;
  if (driver.createSnapshot === undefined) throw noSnapshots(driver);
  const create = driver.createSnapshot.bind(driver);
  if (action.mountPath === undefined) {
    await create(action.blockdeviceId, action.snapshotId);
    return;
  }
  const mountPath = action.mountPath;
  await host.freeze(mountPath);
  const frozenAt = performance.now();
  let thawed: Promise<void> | undefined;
  // Once: as soon as the driver says the point in time is fixed, else after createSnapshot.
  const thaw = (): Promise<void> =>
    (thawed ??= (async () => {
      try {
        await host.thaw(mountPath);
      } finally {
        ctx.logger?.info('file system frozen for a snapshot', {
          datasetId: action.datasetId,
          snapshotId: action.snapshotId,
          mountPath,
          frozenMs: Math.round((performance.now() - frozenAt) * 1000) / 1000,
        });
      }
    })());
  try {
    await create(action.blockdeviceId, action.snapshotId, { pointInTimeFixed: thaw });
  } finally {
    await thaw();
  }
}

/** Where the driver has it, a detach then destroy is its one operation (loopback: one lock hold, one device scan). */
async function destroy(driver: BlockDeviceApi, blockdeviceId: string, detachFirst: boolean): Promise<void> {
  if (detachFirst && driver.detachAndDestroyVolume !== undefined) {
    const both = driver.detachAndDestroyVolume.bind(driver);
    await ignoring(['UNKNOWN_VOLUME'], () => both(blockdeviceId));
    return;
  }
  if (detachFirst) await detach(driver, blockdeviceId, false);
  await ignoring(['UNKNOWN_VOLUME'], () => driver.destroyVolume(blockdeviceId));
}

async function detach(driver: BlockDeviceApi, blockdeviceId: string, force: boolean): Promise<void> {
  await ignoring(['UNATTACHED', 'UNKNOWN_VOLUME'], () =>
    driver.detachVolume(blockdeviceId, force ? { force: true } : {}),
  );
}

/**
 * Runs fn, taking a StorageError with one of `codes` for "already done": the
 * idempotence of an action whose effect a crashed or concurrent run already made.
 * Any other error is thrown on.
 */
export async function ignoring(codes: readonly StorageErrorCode[], fn: () => Promise<unknown>): Promise<void> {
  try {
    await fn();
  } catch (e) {
    if (codes.some((code) => isStorageError(e, code))) return;
    throw e;
  }
}

async function attachedTo(driver: BlockDeviceApi, blockdeviceId: string): Promise<string | null | undefined> {
  return (await driver.listVolumes()).find((v) => v.blockdeviceId === blockdeviceId)?.attachedTo;
}

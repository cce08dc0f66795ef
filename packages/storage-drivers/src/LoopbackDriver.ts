import { createHash, randomBytes, randomUUID } from 'node:crypto';
import {
  closeSync,
  constants as fsConstants,
  existsSync,
  fstatSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  renameSync,
  rmSync,
  statSync,
  watch,
  promises as fs,
} from 'node:fs';
import * as path from 'node:path';
import { errorMessage, FreshRead } from '@flocker/runtime';
import winston from 'winston';
import { z } from 'zod';
import {
  roundUpToUnit,
  StorageError,
  type BlockDeviceApi,
  type BlockDeviceSnapshot,
  type OpenedSnapshot,
  type SnapshotOptions,
  type BlockDeviceVolume,
  type CreateVolumeOptions,
  type DetachOptions,
  type PoolIdentity,
  type PoolListing,
  type VolumeProblem,
} from './BlockDeviceApi';
import { growthReserveArgs, isDeviceBusy, listMounts } from './blockdev';
import { execFileExec, runChecked, type ExecFn } from './exec';
import {
  copyTempName,
  fencedImageName,
  fencedInUseFromFirstLook,
  isFencedBinding,
  nextFenceSequence,
  planFenceRecovery,
  removableFencedImages,
} from './fencing';
import {
  ImmutableFlagError,
  immutableFailureReason,
  isImmutable,
  setImmutable,
  type ImmutableOptions,
} from './immutable';
import {
  attachLoop,
  detachLoop,
  findLoopDevices,
  isReadOnly,
  listLoopBindings,
  listSizedLoopBindings,
  loopBindingOf,
  LoopIoctls,
  parseBackingFile,
  refreshLoopCapacity,
  type AttachLoopOptions,
  type LoopBinding,
  type LoopServing,
} from './losetup';
import { copyImage, LoopbackSnapshots, unknownSnapshot } from './loopbackSnapshots';
import {
  devicesOfSpare,
  makingFiles,
  makingFilesToRemove,
  makingName,
  readExt4Superblock,
  SPARE_MTIME,
  spareDevicesToDetach,
  spareIds,
  sparesWithoutDevice,
  spareImageName,
  spareVerdict,
  type ClaimedSpare,
  type SpareCapable,
  type SpareVolume,
} from './loopbackSpares';
import { PoolLock } from './PoolLock';
import {
  commitTemp,
  fsyncDir,
  VolumeRecord,
  writeFileAtomic,
  writeSyncedTemp,
  type AtomicWriteOptions,
} from './VolumeRecord';

export const DEFAULT_ALLOCATION_UNIT = 1024 * 1024;

export interface LoopbackDriverOptions {
  /** The pool directory, shared by every (simulated) host using this backend. */
  readonly rootPath: string;
  /** This host's compute instance id. */
  readonly instanceId: string;
  /** Sizes are rounded up to this many bytes; default 1 MiB. */
  readonly allocationUnit?: number;
  readonly logger?: winston.Logger;
  /** Runs losetup, cp, …; injectable for tests. */
  readonly exec?: ExecFn;
  /** How long to wait for the pool lock before failing; default 60 s. */
  readonly lockTimeoutMs?: number;
  /**
   * How loop devices are found, attached and detached: 'sysfs' (default) reads
   * /sys/block/loopN/loop/backing_file and attaches/detaches with ioctls in
   * flocker-syshelper (losetup where it cannot run); 'losetup' spawns losetup (-j, --find --show, -d) each time.
   */
  readonly loopDiscovery?: 'sysfs' | 'losetup';
  /** How the pool lock is taken; see PoolLockOptions.mode. */
  readonly lockMode?: 'helper' | 'flock';
}

export interface RepairReport {
  /** Volumes recorded as attached here whose loop device was missing and has been re-created. */
  readonly reattached: string[];
  /** Loop devices of volumes not attached anywhere (or no longer existing) that were detached. */
  readonly detachedStale: string[];
  /** Stale loop devices that could not be detached because they are in use. */
  readonly busy: string[];
  /** Volumes whose interrupted fence (a crash during a force detach) was finished: `<id>.img` copied again from the fenced file. */
  readonly finishedFences: string[];
  /** Loop devices of fenced (or deleted) images, no longer in use, that were detached (see releaseFenced). */
  readonly releasedDevices: string[];
  /** Fenced images no loop device used any more, removed (see releaseFenced). */
  readonly removedFencedImages: string[];
  /**
   * Backing files without a record, untouched for ORPHAN_AGE_MS and used by no loop device:
   * left by a create or destroy that crashed half-way (a failed create removes its own). Removed.
   */
  readonly removedOrphanImages: string[];
  /**
   * Record temp files (`<id>.json.tmp-<pid>-<hex>`) untouched for ORPHAN_AGE_MS: left by a create, a spare's
   * claim, an attach or a detach killed between writing the record and renaming it into place (issue 23). Removed.
   */
  readonly removedRecordTemps: string[];
}

/** What `device` serves in `bindings` (a look at the kernel's), for a detach checked against it. */
function servingOf(bindings: readonly LoopBinding[], device: string): LoopServing | undefined {
  const b = bindings.find((x) => x.device === device);
  return b === undefined ? undefined : { file: b.backingFile, deleted: b.deleted };
}

/** A backing file without a record is an orphan once this old (a create in progress has one for milliseconds). */
const ORPHAN_AGE_MS = 10 * 60 * 1000;

/** Probe files of immutableStopsOpenFiles. */
const IMMUTABLE_PROBE = /^\.immutable-probe-\d+-[0-9a-f]{8}$/;
const ID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * Block storage backed by sparse files in a shared directory, attached as loop
 * devices: a local stand-in for EBS/Cinder. Several agents (different
 * instanceIds, one kernel) share the pool the way cloud instances share a
 * block storage service.
 *
 * Layout: `<root>/volumes/<id>.img` (sparse backing file), `<id>.json`
 * (VolumeRecord), `<root>/pool.lock` (flock, held for every read-modify-write).
 *
 * The record is the truth about who holds a volume; the kernel is the truth
 * about which loop device serves it (always asked afresh, from sysfs: the
 * backing file's canonical path, a replaced file marked " (deleted)" not
 * counting, like `losetup -j`; before re-creating a missing device, `losetup -j`
 * itself confirms, as it also matches by inode). The
 * kernel would happily attach one file twice, so exclusivity is enforced here.
 * Both attach and detach change the loop device first and rename the record
 * into place after (the record's new version is written and flushed to a temp
 * file meanwhile, starting before the pool lock is taken: the fsync is their
 * slowest step), so a crash leaves a device of a volume still recorded as
 * detached (removed by the next attach on any host, destroy or repair()), or a
 * record of a volume attached here without a device (re-created by
 * getDevicePath or repair()), and a record temp file (removed by repair() once
 * old). Under the pool lock nobody sees the step between.
 *
 * Force detach fencing: a loop device still mounted (say in a dead host's mount
 * namespace) cannot be detached, and `blockdev --setro` does not stop writes
 * (kernel 6.x only warns "Trying to write to read-only block-device" and lets
 * them through; the flag even outlives the detach). So force detach renames
 * the backing file aside to `<id>.img.fenced-<seq>-<stamp>-<rand>` (the old device
 * follows the inode), sets the immutable flag on it (from then on every write
 * of the old device fails, and the old holder's fsync returns EIO), copies the
 * now frozen inode (through the page cache: everything the old holder wrote to
 * the device is in it) into a new `<id>.img`, and requests a deferred detach
 * of the old device (it disappears when finally unmounted). The copy is as
 * consistent as a crash of the old holder at the moment of the flag. A crash
 * in between is finished by repair(), releaseFenced() or the next operation on
 * the volume (see fencing.ts); releaseFenced() removes fenced images once no
 * loop device uses them. Without the immutable flag (no CAP_LINUX_IMMUTABLE,
 * or a filesystem without it) a device in use cannot be fenced, and force
 * detach fails with BACKEND_ERROR instead of pretending.
 * As a second safety net the agent may create filesystems with
 * `makeFilesystem(…, { multiMountProtection: true })` (ext4 MMP).
 *
 * Durability: a volume's existence (create, destroy) is fsynced down to the
 * directory entry. Its attachment is not: `attached_to` only means something
 * together with a loop device, and loop devices live in the one kernel every
 * host of the pool shares, so a power loss that forgets a rename of the record
 * also forgets every loop device and mount. After the reboot either version of
 * the record converges (repair() re-creates the device of a volume recorded as
 * attached; an unattached one is simply attached again). The record file itself
 * is always fsynced before the rename, so it is never torn.
 */
export class LoopbackDriver implements BlockDeviceApi, SpareCapable {
  readonly backend = 'loopback';
  readonly rootPath: string;
  readonly volumesPath: string;
  /** `<root>/spares/` (issue 23): see loopbackSpares.ts. */
  readonly sparesPath: string;
  private readonly instanceId: string;
  private readonly unit: number;
  private readonly logger: winston.Logger;
  private readonly exec: ExecFn;
  private readonly lock: PoolLock;
  private dirsReady: Promise<void> | undefined;
  private canonicalVolumes: Promise<string> | undefined;
  private canonicalSpares: Promise<string> | undefined;
  private readonly loopDiscovery: 'sysfs' | 'losetup';
  /** sysfs scans shared by concurrent callers, never one begun before the call (it may have to see its own detach). */
  private readonly loopScanner = new FreshRead(() => listLoopBindings());
  /** The same for the devices that can hold data (see listSizedLoopBindings): a volume's devices (loopsOf). */
  private readonly sizedLoopScanner = new FreshRead(() => listSizedLoopBindings());
  private readonly attachOptions: AttachLoopOptions;
  private readonly detachOptions: { ioctls?: LoopIoctls };
  private readonly ioctls: LoopIoctls | undefined;
  private readonly flagOptions: ImmutableOptions;
  /** See immutableStopsOpenFiles; undefined until probed. */
  private flagStopsOpenFiles: boolean | undefined;
  /** The device each volume was last found on: checked (one sysfs read) before scanning every device. */
  private readonly lastDevice = new Map<string, string>();
  /** maximumVolumeSize(), probed once. */
  private maxVolumeSize: Promise<number> | undefined;
  /** Unreadable records already logged (a bad record is logged once, not at every listing). */
  private readonly loggedProblems = new Set<string>();
  /** `<root>/snapshots/` (issue 20): see loopbackSnapshots.ts. */
  private readonly snapshotStore: LoopbackSnapshots;

  constructor(options: LoopbackDriverOptions) {
    if (!options.instanceId) throw new Error('LoopbackDriver needs an instanceId');
    const unit = options.allocationUnit ?? DEFAULT_ALLOCATION_UNIT;
    if (!Number.isInteger(unit) || unit <= 0 || unit % 512 !== 0) {
      throw new Error(`allocationUnit must be a positive multiple of 512 bytes, got ${unit}`);
    }
    this.rootPath = path.resolve(options.rootPath);
    this.volumesPath = path.join(this.rootPath, 'volumes');
    this.sparesPath = path.join(this.rootPath, 'spares');
    this.instanceId = options.instanceId;
    this.unit = unit;
    this.logger = options.logger ?? winston.createLogger({ silent: true });
    this.exec = options.exec ?? execFileExec;
    this.lock = new PoolLock(path.join(this.rootPath, 'pool.lock'), {
      ...(options.lockTimeoutMs !== undefined ? { timeoutMs: options.lockTimeoutMs } : {}),
      ...(options.lockMode !== undefined ? { mode: options.lockMode } : {}),
    });
    this.loopDiscovery = options.loopDiscovery ?? 'sysfs';
    const ioctls = this.loopDiscovery === 'sysfs' ? new LoopIoctls() : undefined;
    // sysfs also says whether a fresh device is read-only; usually not, which saves `blockdev --setrw`.
    this.attachOptions = {
      readOnly: (device: string) => isReadOnly(device),
      ...(ioctls !== undefined ? { ioctls } : {}),
    };
    this.detachOptions = ioctls !== undefined ? { ioctls } : {};
    this.ioctls = ioctls;
    this.flagOptions = { exec: this.exec, ...(ioctls !== undefined ? { ioctls } : {}) };
    this.snapshotStore = new LoopbackSnapshots({ rootPath: this.rootPath, exec: this.exec, logger: this.logger });
  }

  allocationUnit(): number {
    return this.unit;
  }

  /**
   * Ends the driver's helper processes (the pool lock's once its queued critical sections are over, the loop
   * ioctls' once it has answered the requests sent). Each driver keeps up to two for its life; an agent has one driver, a test makes many. Using the
   * driver again starts them again.
   */
  async close(): Promise<void> {
    await Promise.all([this.lock.close(), this.ioctls?.close()]);
  }

  async computeInstanceId(): Promise<string> {
    return this.instanceId;
  }

  async createVolume(datasetId: string, size: number, options: CreateVolumeOptions = {}): Promise<BlockDeviceVolume> {
    const rounded = await this.checkSizeWithinLimit(size);
    if (!datasetId) throw new StorageError('BACKEND_ERROR', 'a volume needs a dataset id');
    await this.ensureDirs();
    const id = randomUUID();
    const record: VolumeRecord = {
      version: 1,
      blockdevice_id: id,
      dataset_id: datasetId,
      size: rounded,
      ...(options.profile !== undefined ? { profile: options.profile } : {}),
      attached_to: null,
      created: new Date().toISOString(),
    };
    // Backing file first: a crash before the record leaves an invisible orphan file, never a record without data.
    // The image and the record's temp file are flushed together; the record is renamed into place only then.
    const content = recordText(record);
    let tmp: string;
    const handle = await fs.open(this.imagePath(id), 'wx', 0o600);
    try {
      try {
        await handle.truncate(rounded);
        tmp = await writeSyncedTemp(this.recordPath(id), content, () => handle.sync());
      } finally {
        await handle.close();
      }
      await this.withPoolLock(async () => {
        if (options.onlyVolume === true) await this.refuseSecondVolume(datasetId).catch(dropTemp(tmp));
        await commitTemp(tmp, this.recordPath(id));
      });
    } catch (e) {
      // Never an orphan: a failed create takes back its image (and its record, if the rename got through).
      await this.removeFailedCreate(id);
      throw tooLarge(e, rounded, this.rootPath) ?? e;
    }
    this.logger.info('volume created', { blockdeviceId: id, datasetId, size: rounded, profile: options.profile });
    return toVolume(record);
  }

  /**
   * Under the pool lock, before a new volume's record is committed: one dataset, one volume. Two
   * hosts can both decide to create a dataset's volume (its primary moved while the first was
   * creating it, neither had listed the other's yet); the pool lock makes this check and the
   * commit one step, so the second is refused (DATASET_HAS_VOLUME) and its agent finds the
   * first volume at its next look. An unreadable record naming the dataset counts too.
   */
  private async refuseSecondVolume(datasetId: string): Promise<void> {
    const other = await this.volumeOfDataset(datasetId);
    if (other !== undefined) {
      throw new StorageError(
        'DATASET_HAS_VOLUME',
        `dataset ${datasetId} already has volume ${other} in the pool (made meanwhile by another host); not making a second one`,
        other,
      );
    }
  }

  /**
   * The volume listPool() would name for a dataset: the first by creation of the readable records naming it, else
   * the first by id of the unreadable ones whose text still names it. The records are read synchronously (a few
   * hundred bytes each from the page cache, tens of microseconds, against four thread-pool hops per record of an
   * asynchronous read: 0.3 ms median each on a loaded 2-core host), and only a text that can name the dataset is
   * parsed: without a backslash every JSON string in it is literal, so a record or problem naming the dataset
   * contains its id (the problem's match ignores case).
   */
  private async volumeOfDataset(datasetId: string): Promise<string | undefined> {
    await this.ensureDirs();
    const needle = datasetId.toLowerCase();
    const records: VolumeRecord[] = [];
    const problems: string[] = [];
    let read = 0;
    for (const name of readdirSync(this.volumesPath)) {
      const m = /^(.+)\.json$/.exec(name);
      if (!m || !ID_PATTERN.test(m[1])) continue;
      const id = m[1];
      // A large pool does not hold the event loop for long: a turn for others every GUARD_READS_PER_TURN records.
      if (++read % GUARD_READS_PER_TURN === 0) await new Promise<void>((resolve) => setImmediate(resolve));
      try {
        const text = this.readRecordTextNow(id);
        if (!text.includes('\\') && !text.toLowerCase().includes(needle)) continue;
        const record = this.parseRecord(id, text);
        if (record.dataset_id === datasetId) records.push(record);
      } catch (e) {
        // Destroyed between readdir and read: simply gone.
        if (e instanceof StorageError && e.code === 'UNKNOWN_VOLUME') continue;
        if ((await this.problemOf(id, e)).datasetId === datasetId) problems.push(id);
      }
    }
    records.sort((a, b) => a.created.localeCompare(b.created) || a.blockdevice_id.localeCompare(b.blockdevice_id));
    return records[0]?.blockdevice_id ?? problems.sort()[0];
  }

  async destroyVolume(blockdeviceId: string): Promise<void> {
    await this.withPoolLock(async () => {
      const { record } = this.readRecordNow(blockdeviceId);
      if (record.attached_to !== null) {
        throw new StorageError(
          'VOLUME_ATTACHED',
          `volume ${blockdeviceId} is attached to ${record.attached_to}; detach it before destroying it`,
          blockdeviceId,
        );
      }
      await this.removeStaleLoops(blockdeviceId);
      await this.removeVolumeFiles(blockdeviceId);
    });
    this.logger.info('volume destroyed', { blockdeviceId });
  }

  /**
   * detachVolume then destroyVolume under one lock hold (issue 23): one device scan instead of two, and no detached
   * record written, flushed and renamed just before the record goes. A kill in between leaves a volume recorded as
   * attached here with no device (or, as destroyVolume's, an image without a record): what a killed detach leaves,
   * which this call again (the agent's next look still asks for it) or repair() takes on.
   */
  async detachAndDestroyVolume(blockdeviceId: string): Promise<void> {
    let from: string | null = null;
    await this.withPoolLock(async () => {
      const { record } = this.readRecordNow(blockdeviceId);
      from = record.attached_to;
      if (record.attached_to === null) {
        await this.removeStaleLoops(blockdeviceId);
      } else if (record.attached_to !== this.instanceId) {
        throw new StorageError(
          'NOT_ATTACHED_HERE',
          `volume ${blockdeviceId} is attached to instance ${record.attached_to}, not to this instance ${this.instanceId}; it cannot be destroyed from here`,
          blockdeviceId,
        );
      } else {
        await this.detachOwnLoops(blockdeviceId);
      }
      await this.removeVolumeFiles(blockdeviceId);
    });
    this.logger.info('volume detached and destroyed', { blockdeviceId, from });
  }

  /** Record first: once it is gone the volume no longer exists; a leftover image is only wasted space. */
  private async removeVolumeFiles(blockdeviceId: string): Promise<void> {
    // The record's unlink is synchronous (a directory entry); the image's frees its extents, which takes a while for
    // a large one.
    rmSync(this.recordPath(blockdeviceId), { force: true });
    await fs.unlink(this.imagePath(blockdeviceId)).catch(ignoreMissing);
    await fsyncDir(this.volumesPath);
  }

  async attachVolume(blockdeviceId: string, instanceId: string): Promise<BlockDeviceVolume> {
    // Made once the lock's request is out (issue 23, session 16: made before it, its file's creation held the request
    // back 0.3-8 ms, median ~2, on a move's critical path: the old holder's rename and fsync keep the journal busy).
    let early = NO_EARLY_RECORD;
    const prepare = (): void => {
      early = this.earlyRecord(blockdeviceId, (r) =>
        r.attached_to === null ? { ...r, attached_to: instanceId } : null,
      );
    };
    try {
      return await this.withPoolLock(async () => {
        const { record, text } = this.readRecordNow(blockdeviceId);
        if (record.attached_to !== null) {
          throw new StorageError(
            'ALREADY_ATTACHED',
            `volume ${blockdeviceId} is already attached to ${record.attached_to === instanceId ? 'this instance' : 'instance'} ${record.attached_to}`,
            blockdeviceId,
          );
        }
        const attached: VolumeRecord = { ...record, attached_to: instanceId };
        // Written and flushed while the kernel attaches (or before the lock: see earlyRecord).
        const tmp = early.take(text) ?? this.recordTemp(attached);
        let device: string | undefined;
        try {
          await this.finishInterruptedFence(blockdeviceId);
          await this.removeStaleLoops(blockdeviceId);
          // The device before the record: a crash in between leaves a device of a volume recorded as detached, which
          // the next attach (on any host) or repair() detaches, and a record temp that repair() removes once old.
          device = await attachLoop(this.exec, this.imagePath(blockdeviceId), blockdeviceId, this.attachOptions);
          await commitTemp(await tmp, this.recordPath(blockdeviceId), ATTACHMENT);
        } catch (e) {
          await removeTemp(tmp);
          if (device !== undefined) {
            await this.detachServing(device, blockdeviceId, { file: this.imagePath(blockdeviceId) }).catch(
              (undo: unknown) =>
                this.logger.error('could not detach the loop device of a failed attach', {
                  blockdeviceId,
                  device,
                  error: String(undo),
                }),
            );
          }
          throw e;
        }
        // getDevicePath checks this hint in sysfs before trusting it.
        if (instanceId === this.instanceId) this.lastDevice.set(blockdeviceId, device);
        this.logger.info('volume attached', { blockdeviceId, instanceId, device });
        return toVolume(attached);
      }, prepare);
    } finally {
      await early.discard();
    }
  }

  async detachVolume(blockdeviceId: string, options: DetachOptions = {}): Promise<void> {
    const force = options.force === true;
    // A force detach may fence (copy the image: seconds); its record is written after, as it always was. Else made
    // once the lock's request is out, as attachVolume's.
    let early = NO_EARLY_RECORD;
    const prepare = (): void => {
      if (!force)
        early = this.earlyRecord(blockdeviceId, (r) =>
          r.attached_to === this.instanceId ? { ...r, attached_to: null } : null,
        );
    };
    try {
      await this.withPoolLock(async () => {
        const { record, text } = this.readRecordNow(blockdeviceId);
        if (record.attached_to === null) {
          throw new StorageError('UNATTACHED', `volume ${blockdeviceId} is not attached`, blockdeviceId);
        }
        const detached: VolumeRecord = { ...record, attached_to: null };
        if (force) {
          await this.forceDetachLoops(blockdeviceId, record.attached_to);
          this.lastDevice.delete(blockdeviceId);
          await this.writeRecord(detached, ATTACHMENT);
        } else {
          if (record.attached_to !== this.instanceId) {
            throw new StorageError(
              'NOT_ATTACHED_HERE',
              `volume ${blockdeviceId} is attached to instance ${record.attached_to}, not to this instance ${this.instanceId}; use force to detach it from a dead instance`,
              blockdeviceId,
            );
          }
          // Written and flushed while the kernel detaches (or before the lock: see earlyRecord).
          const tmp = early.take(text) ?? this.recordTemp(detached);
          try {
            await this.detachOwnLoops(blockdeviceId);
            // The record after the device: a crash in between leaves a volume recorded as attached here without a
            // device, which getDevicePath or repair() attaches again (and a record temp that repair() removes once
            // old).
            await commitTemp(await tmp, this.recordPath(blockdeviceId), ATTACHMENT);
          } catch (e) {
            await removeTemp(tmp);
            throw e;
          }
        }
        this.logger.info('volume detached', { blockdeviceId, from: record.attached_to, force });
      }, prepare);
    } finally {
      await early.discard();
    }
  }

  /** Every readable volume; unreadable records are left out (and logged once): see listPool. */
  async listVolumes(): Promise<BlockDeviceVolume[]> {
    return (await this.listPool()).volumes;
  }

  /**
   * The volumes, and separately every record that cannot be read (torn, not
   * JSON, malformed, unreadable): one bad record never fails the listing. A
   * problem names the dataset when what is left of the record still does, and
   * the loop devices still serving the volume's image.
   */
  async listPool(): Promise<PoolListing> {
    await this.ensureDirs();
    const records: VolumeRecord[] = [];
    const problems: VolumeProblem[] = [];
    let read = 0;
    // Synchronous reads, as volumeOfDataset's (issue 23: a worker's look lists the pool, and the look after a move's
    // unmount is on its critical path): a record is a few hundred bytes in a local directory, while an asynchronous
    // read is four thread-pool hops. A large pool still gives the event loop a turn every GUARD_READS_PER_TURN.
    for (const name of readdirSync(this.volumesPath)) {
      const m = /^(.+)\.json$/.exec(name);
      if (!m || !ID_PATTERN.test(m[1])) continue;
      if (++read % GUARD_READS_PER_TURN === 0) await new Promise<void>((resolve) => setImmediate(resolve));
      try {
        records.push(this.readRecordNow(m[1]).record);
      } catch (e) {
        // Destroyed between readdir and read: simply gone.
        if (e instanceof StorageError && e.code === 'UNKNOWN_VOLUME') continue;
        problems.push(await this.problemOf(m[1], e));
      }
    }
    records.sort((a, b) => a.created.localeCompare(b.created) || a.blockdevice_id.localeCompare(b.blockdevice_id));
    problems.sort((a, b) => a.blockdeviceId.localeCompare(b.blockdeviceId));
    for (const p of problems) {
      if (this.loggedProblems.has(p.message)) continue;
      this.loggedProblems.add(p.message);
      this.logger.error('unreadable volume record: leaving the volume alone', { ...p });
    }
    return { volumes: records.map(toVolume), problems };
  }

  /**
   * The largest volume this pool can hold: the pool filesystem's largest file
   * (ext4 with 4 KiB blocks: 16 TiB - 4 KiB; xfs, btrfs, tmpfs: far beyond
   * Number.MAX_SAFE_INTEGER), rounded down to the allocation unit. Found once
   * by a probe: a sparse temp file in the pool is truncated to sizes found by
   * bisection (EFBIG above the limit; no data is written).
   */
  async maximumVolumeSize(): Promise<number> {
    this.maxVolumeSize ??= this.probeMaximumSize().catch((e: unknown) => {
      this.maxVolumeSize = undefined;
      throw e;
    });
    return this.maxVolumeSize;
  }

  /** `<root>/pool.json`: the cluster this pool belongs to; null while unclaimed. */
  async poolIdentity(): Promise<PoolIdentity | null> {
    let text: string;
    try {
      text = await fs.readFile(this.poolFile, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw new StorageError('BACKEND_ERROR', `cannot read ${this.poolFile}: ${(e as Error).message}`);
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (e) {
      throw new StorageError(
        'CORRUPT_RECORD',
        `${this.poolFile} is not valid JSON (${(e as Error).message}); it names the cluster this pool belongs to: restore it, or remove it to let the next agent claim the pool again`,
      );
    }
    const parsed = PoolFile.safeParse(json);
    if (!parsed.success) {
      const issues = parsed.error.issues.map((i) => `${i.path.join('.') || '(top level)'}: ${i.message}`).join('; ');
      throw new StorageError(
        'CORRUPT_RECORD',
        `${this.poolFile} is malformed (${issues}); restore it, or remove it to let the next agent claim the pool again`,
      );
    }
    const { cluster_id: clusterId, created, pool_id: poolId } = parsed.data;
    return { clusterId, created, ...(poolId !== undefined ? { poolId } : {}) };
  }

  /** Writes pool.json unless the pool already has one (under the pool lock); answers the pool's identity. */
  async claimPool(clusterId: string | null): Promise<PoolIdentity> {
    return this.withPoolLock(async () => {
      const existing = await this.poolIdentity();
      if (existing !== null) return existing;
      const identity: PoolIdentity = { clusterId, created: new Date().toISOString(), poolId: randomUUID() };
      await this.writePoolFile(identity);
      this.logger.info('claimed the pool for this cluster', { rootPath: this.rootPath, clusterId });
      return identity;
    });
  }

  /**
   * The pool's id as the storage zone: every node sharing the pool can take each of its
   * volumes. A pool.json written before pool ids existed gets one (under the pool lock, one
   * atomic write: a crash leaves the old file, and the next call adds it). Undefined while
   * the pool is unclaimed (claiming is the agent's decision, not this one's).
   */
  async storageZone(): Promise<string | undefined> {
    const found = await this.poolIdentity();
    if (found === null || found.poolId !== undefined) return found?.poolId;
    return this.withPoolLock(async () => {
      const identity = await this.poolIdentity();
      if (identity === null || identity.poolId !== undefined) return identity?.poolId;
      const poolId = randomUUID();
      await this.writePoolFile({ ...identity, poolId });
      this.logger.info('gave the pool an id (its storage zone)', { rootPath: this.rootPath, poolId });
      return poolId;
    });
  }

  /** Free bytes of the pool's file system (what a non-root writer may still use). */
  async availableBytes(): Promise<number> {
    try {
      const s = await fs.statfs(this.rootPath);
      return s.bavail * s.bsize;
    } catch (e) {
      throw new StorageError('BACKEND_ERROR', `cannot statfs pool ${this.rootPath}: ${errorMessage(e)}`);
    }
  }

  private async writePoolFile(identity: PoolIdentity): Promise<void> {
    const json = {
      version: 1,
      cluster_id: identity.clusterId,
      created: identity.created,
      ...(identity.poolId !== undefined ? { pool_id: identity.poolId } : {}),
    };
    await writeFileAtomic(this.poolFile, JSON.stringify(json, null, 2) + '\n');
  }

  async getDevicePath(blockdeviceId: string): Promise<string> {
    const { record } = this.readRecordNow(blockdeviceId);
    this.checkAttachedHere(record);
    const hint = this.lastDevice.get(blockdeviceId);
    if (hint !== undefined && (await this.serves(hint, blockdeviceId))) return hint;
    const devices = await this.loopsOf(blockdeviceId);
    if (devices.length > 0) {
      if (devices.length > 1) this.logger.warn('volume has several loop devices', { blockdeviceId, devices });
      this.lastDevice.set(blockdeviceId, devices[0]);
      return devices[0];
    }
    this.lastDevice.delete(blockdeviceId);
    // Recorded as attached here but no device: an attach crashed after writing the record. Finish it.
    return this.withPoolLock(async () => {
      this.checkAttachedHere(await this.readRecord(blockdeviceId));
      await this.finishInterruptedFence(blockdeviceId);
      // Rare path: ask losetup itself (it also matches by inode) before adding a device.
      const again = await findLoopDevices(this.exec, this.imagePath(blockdeviceId));
      if (again.length > 0) return again[0];
      const device = await attachLoop(this.exec, this.imagePath(blockdeviceId), blockdeviceId, this.attachOptions);
      this.logger.warn('re-created missing loop device of a volume attached here', { blockdeviceId, device });
      return device;
    });
  }

  async resizeVolume(blockdeviceId: string, size: number): Promise<BlockDeviceVolume> {
    const rounded = await this.checkSizeWithinLimit(size);
    return this.withPoolLock(async () => {
      const record = await this.readRecord(blockdeviceId);
      if (rounded < record.size) {
        throw new StorageError(
          'INVALID_SIZE',
          `volume ${blockdeviceId} is ${record.size} bytes; shrinking to ${rounded} bytes is not supported`,
          blockdeviceId,
        );
      }
      if (rounded === record.size) return toVolume(record);
      await this.finishInterruptedFence(blockdeviceId);
      // File before record: a crash leaves a file larger than recorded, which the next resize simply fixes.
      try {
        await fs.truncate(this.imagePath(blockdeviceId), rounded);
      } catch (e) {
        throw tooLarge(e, rounded, this.rootPath, blockdeviceId) ?? e;
      }
      const grown: VolumeRecord = { ...record, size: rounded };
      await this.writeRecord(grown);
      for (const device of await this.loopsOf(blockdeviceId)) {
        await refreshLoopCapacity(this.exec, device, blockdeviceId);
      }
      this.logger.info('volume resized', { blockdeviceId, from: record.size, to: rounded });
      return toVolume(grown);
    });
  }

  /**
   * A copy of the volume's image in `<root>/snapshots/` (reflink or sparse copy, see
   * loopbackSnapshots.ts), made under the pool lock (no attach, detach, fence, resize or
   * destroy of the volume runs meanwhile; a sparse copy of a large image holds the lock, and
   * the caller's frozen file system, for as long as it takes). Ready when it returns.
   */
  async createSnapshot(
    blockdeviceId: string,
    snapshotId: string,
    options: SnapshotOptions = {},
  ): Promise<BlockDeviceSnapshot> {
    return this.withPoolLock(async () => {
      const taken = await this.snapshotStore.find(snapshotId);
      if (taken !== undefined) return taken;
      const record = await this.readRecord(blockdeviceId);
      await this.finishInterruptedFence(blockdeviceId);
      return this.snapshotStore.takeLocked(record, this.imagePath(blockdeviceId), snapshotId, options);
    });
  }

  async listSnapshots(): Promise<BlockDeviceSnapshot[]> {
    return this.snapshotStore.list();
  }

  async destroySnapshot(snapshotId: string): Promise<void> {
    await this.withPoolLock(() => this.snapshotStore.destroyLocked(snapshotId));
  }

  /** The snapshot's read-only image (issue 20: backups read it); nothing to release. */
  async openSnapshot(snapshotId: string): Promise<OpenedSnapshot> {
    const snapshot = await this.snapshotStore.get(snapshotId);
    return { path: this.snapshotStore.imagePath(snapshotId), size: snapshot.size, release: async () => {} };
  }

  /**
   * A new volume whose image is a copy of the snapshot's (reflink or sparse), extended to the
   * size. As createVolume: the image first (invisible without a record; repair() removes one a
   * crash left), the record last, under the pool lock. The copy itself needs no lock: a
   * snapshot's image never changes, and one destroyed meanwhile stays readable to the copy.
   */
  async createVolumeFromSnapshot(
    snapshotId: string,
    datasetId: string,
    size: number,
    options: CreateVolumeOptions = {},
  ): Promise<BlockDeviceVolume> {
    const snapshot = await this.snapshotStore.get(snapshotId);
    const rounded = await this.checkSizeWithinLimit(size);
    if (rounded < snapshot.size) {
      throw new StorageError(
        'INVALID_SIZE',
        `a volume made from snapshot ${snapshotId} needs at least its ${snapshot.size} bytes, not ${rounded}`,
      );
    }
    if (!datasetId) throw new StorageError('BACKEND_ERROR', 'a volume needs a dataset id');
    await this.ensureDirs();
    const id = randomUUID();
    const record: VolumeRecord = {
      version: 1,
      blockdevice_id: id,
      dataset_id: datasetId,
      size: rounded,
      ...(options.profile !== undefined ? { profile: options.profile } : {}),
      attached_to: null,
      created: new Date().toISOString(),
    };
    const started = Date.now();
    try {
      let copy: string;
      try {
        copy = await copyImage(this.exec, this.snapshotStore.imagePath(snapshotId), this.imagePath(id));
      } catch (e) {
        if ((await this.snapshotStore.find(snapshotId)) === undefined) throw unknownSnapshot(snapshotId);
        throw e;
      }
      let tmp: string;
      // The copy has the snapshot's mode (0400): writable again before it is opened for writing.
      await fs.chmod(this.imagePath(id), 0o600);
      const handle = await fs.open(this.imagePath(id), 'r+');
      try {
        await handle.truncate(rounded);
        tmp = await writeSyncedTemp(this.recordPath(id), recordText(record), () => handle.sync());
      } finally {
        await handle.close();
      }
      await this.withPoolLock(async () => {
        if (options.onlyVolume === true) await this.refuseSecondVolume(datasetId).catch(dropTemp(tmp));
        await commitTemp(tmp, this.recordPath(id));
      });
      this.logger.info('volume created from snapshot', {
        blockdeviceId: id,
        datasetId,
        snapshotId,
        size: rounded,
        copy,
        ms: Date.now() - started,
      });
    } catch (e) {
      await this.removeFailedCreate(id);
      throw tooLarge(e, rounded, this.rootPath) ?? e;
    }
    return toVolume(record);
  }

  /**
   * Calls onChange (soon, possibly more than once) whenever a volume record in
   * the pool is written or removed, by any instance: on a shared pool, another
   * host's detach becomes visible at once instead of at our next look. Only a
   * hint to look again; returns a function that stops watching. Without
   * inotify (or on error) it simply never calls.
   */
  watchPool(onChange: () => void): () => void {
    let watcher: ReturnType<typeof watch> | undefined;
    let stopped = false;
    void this.ensureDirs().then(
      () => {
        if (stopped) return;
        try {
          watcher = watch(this.volumesPath, { persistent: false }, (_event, name) => {
            // Records are replaced by rename onto <id>.json; temp files and images do not matter.
            if (name === null || /\.json$/.test(name)) onChange();
          });
          watcher.on('error', (e) => this.logger.warn('stopped watching the pool', { error: String(e) }));
        } catch (e) {
          this.logger.warn('cannot watch the pool; changes by other hosts are seen at the next look', {
            error: String(e),
          });
        }
      },
      () => undefined,
    );
    return () => {
      stopped = true;
      watcher?.close();
    };
  }

  /**
   * Brings the kernel in line with the records after a crash: finishes
   * interrupted fences, re-creates loop devices of volumes recorded as attached
   * here, detaches loop devices of pool files that are not attached anywhere or
   * whose record is gone, and releases what fences left behind (releaseFenced).
   */
  async repair(): Promise<RepairReport> {
    await this.ensureDirs();
    return this.withPoolLock(async () => {
      const finishedFences = await this.finishInterruptedFences();
      const report = { reattached: [] as string[], detachedStale: [] as string[], busy: [] as string[] };
      const byId = new Map<string, string[]>();
      const serving = new Map<string, LoopServing>();
      for (const { device, backingFile, deleted } of await this.poolBindings()) {
        // A replaced or unlinked image (" (deleted)") is never a volume's device: releaseFenced's business.
        const m = /^([0-9a-f-]{36})\.img$/.exec(path.basename(backingFile));
        if (!m || deleted) continue;
        byId.set(m[1], [...(byId.get(m[1]) ?? []), device]);
        serving.set(device, { file: backingFile });
      }
      const { volumes, problems } = await this.listPool();
      const known = new Map(volumes.map((v) => [v.blockdeviceId, v]));
      // A volume whose record cannot be read is left exactly as it is: its device may be in use.
      for (const p of problems) byId.delete(p.blockdeviceId);
      for (const v of volumes) {
        if (
          v.attachedTo === this.instanceId &&
          (await findLoopDevices(this.exec, this.imagePath(v.blockdeviceId))).length === 0
        ) {
          const device = await attachLoop(
            this.exec,
            this.imagePath(v.blockdeviceId),
            v.blockdeviceId,
            this.attachOptions,
          );
          report.reattached.push(v.blockdeviceId);
          this.logger.warn('repair: re-created loop device', { blockdeviceId: v.blockdeviceId, device });
        }
      }
      for (const [id, devices] of byId) {
        const v = known.get(id);
        if (v !== undefined && v.attachedTo !== null) continue;
        for (const device of devices) {
          if (await isDeviceBusy(device)) {
            report.busy.push(device);
            this.logger.warn('repair: stale loop device is in use; leaving it', { blockdeviceId: id, device });
            continue;
          }
          if ((await this.detachServing(device, id, serving.get(device))) === 'gone') continue;
          report.detachedStale.push(device);
          this.logger.warn('repair: detached stale loop device', { blockdeviceId: id, device });
        }
      }
      const released = await this.releaseFencedLocked();
      const removedOrphanImages = await this.removeOrphanImages();
      const removedRecordTemps = await this.removeStaleRecordTemps();
      return {
        ...report,
        finishedFences,
        releasedDevices: released.devices,
        removedFencedImages: released.images,
        removedOrphanImages,
        removedRecordTemps,
      };
    });
  }

  /**
   * Cleans up after fences (force detaches of devices still in use): detaches
   * loop devices whose backing file is a fenced image (`<id>.img.fenced-…`) or
   * a deleted (unlinked or replaced) pool image and that nothing uses any more
   * (not mounted in any mount namespace: the O_EXCL check), and removes fenced
   * images that no loop device uses (clearing the immutable flag first). A
   * device still mounted somewhere, and its image, are left alone. Also
   * finishes interrupted fences first. The agent calls it after unmounting
   * stale mounts; repair() calls it too. Returns the detached devices
   * (/dev/loopN) and the removed images (full paths).
   */
  async releaseFenced(): Promise<{ devices: string[]; images: string[] }> {
    await this.ensureDirs();
    return this.withPoolLock(async () => {
      await this.finishInterruptedFences();
      return this.releaseFencedLocked();
    });
  }

  // ---- spare volumes (issue 23, see loopbackSpares.ts) ----------------------

  async listSpares(): Promise<SpareVolume[]> {
    return this.listSparesNow();
  }

  /**
   * listSpares, synchronously: a readdir and a stat per spare (a handful) in tens of microseconds, against a
   * thread-pool hop each (0.3 ms median on a loaded 2-core host) on the path of every claim.
   */
  private listSparesNow(): SpareVolume[] {
    let names: string[];
    try {
      names = readdirSync(this.sparesPath);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw e;
    }
    const spares: (SpareVolume & { mtime: number })[] = [];
    for (const id of spareIds(names)) {
      try {
        const st = statSync(path.join(this.sparesPath, spareImageName(id)));
        spares.push({ id, size: st.size, mtime: st.ctimeMs });
      } catch {
        // Claimed or destroyed meanwhile.
      }
    }
    return spares.sort((a, b) => a.mtime - b.mtime).map(({ id, size }) => ({ id, size }));
  }

  /**
   * mkfs.ext4 on a new image under a `.making-` name, then mtime SPARE_MTIME, a loop device bound to it,
   * rename, fsync: see loopbackSpares.ts. A failed attach leaves the spare without a device (its claim attaches).
   */
  async makeSpare(size: number): Promise<SpareVolume> {
    const rounded = await this.checkSizeWithinLimit(size);
    await fs.mkdir(this.sparesPath, { recursive: true });
    const id = randomUUID();
    const making = path.join(this.sparesPath, makingName(this.spareTag(), id));
    let device: string | undefined;
    try {
      const handle = await fs.open(making, 'wx', 0o600);
      try {
        await handle.truncate(rounded);
      } finally {
        await handle.close();
      }
      // The agent's own mkfs arguments for a device of this size: a claimed spare is what its format would have made.
      await runChecked(
        this.exec,
        'mkfs.ext4',
        ['-q', '-F', ...growthReserveArgs(rounded), making],
        `making a spare volume (${making})`,
      );
      // One fsync for mkfs's blocks and the sentinel mtime together: every write that moves mtime (mkfs's writes and
      // discards) ended with its process, and writeback never touches timestamps, so the mtime set now stays.
      const handle2 = await fs.open(making, 'r+');
      try {
        await handle2.utimes(SPARE_MTIME, SPARE_MTIME);
        await handle2.sync();
      } finally {
        await handle2.close();
      }
      // Bound before the rename: a spare listed as `<id>.img` already has its device (never a claim racing the attach).
      device = await attachLoop(this.exec, making, undefined, this.attachOptions).catch((e: unknown) => {
        this.logger.warn('cannot bind a loop device to a spare volume; its claim will', {
          spareId: id,
          error: String(e),
        });
        return undefined;
      });
      await fs.rename(making, path.join(this.sparesPath, spareImageName(id)));
      await fsyncDir(this.sparesPath);
    } catch (e) {
      if (device !== undefined) await this.detachQuietly(device, { file: making }, id);
      await fs.rm(making, { force: true });
      throw tooLarge(e, rounded, this.rootPath) ?? e;
    }
    this.logger.debug('spare volume made', { spareId: id, size: rounded, device });
    return { id, size: rounded };
  }

  async claimSpare(
    datasetId: string,
    size: number,
    options: CreateVolumeOptions & { attach?: boolean } = {},
  ): Promise<ClaimedSpare | undefined> {
    const rounded = this.checkSize(size);
    if (!datasetId) throw new StorageError('BACKEND_ERROR', 'a volume needs a dataset id');
    const candidates = this.listSparesNow().filter((s) => s.size === rounded);
    if (candidates.length === 0) return undefined;
    const attachTo = options.attach === true ? this.instanceId : null;
    const recordOf = (id: string): VolumeRecord => ({
      version: 1,
      blockdevice_id: id,
      dataset_id: datasetId,
      size: rounded,
      ...(options.profile !== undefined ? { profile: options.profile } : {}),
      attached_to: attachTo,
      created: new Date().toISOString(),
    });
    // The first candidate's record is written and flushed while the lock is taken and the spare checked (its fsync
    // and the device's flush may share one journal commit); renamed into place only under the lock, after the check.
    // Unused (refused, the spare gone or failing its check), it is removed.
    const first = candidates[0];
    const firstRecord = recordOf(first.id);
    const early = writeSyncedTemp(this.recordPath(first.id), recordText(firstRecord));
    early.catch(() => undefined); // awaited below (or dropped in finally)
    let earlyUsed = false;
    try {
      return await this.withPoolLock(async () => {
        if (options.onlyVolume === true) await this.refuseSecondVolume(datasetId);
        const dirs = await this.spareDirs();
        for (const candidate of candidates) {
          const image = path.join(this.sparesPath, spareImageName(candidate.id));
          // A spare's device serves an image of at least a unit, so the scan of the devices that can hold data finds it.
          const devices = devicesOfSpare(await this.bindingsIn(dirs, { sized: true }), dirs, candidate.id);
          const spareImage = { file: image };
          // Its devices first: each exclusive (not mounted, not held open), and flushed, so what any opener wrote is in
          // the image. Every one of them, not only the kept one: a second device (bound by hand, or left over) would
          // otherwise carry an opener's writes into the dataset's volume.
          let busyDevice: string | undefined;
          for (const d of devices) {
            if (await this.flushSpareDevice(d)) {
              busyDevice = d;
              break;
            }
          }
          const verdict =
            busyDevice !== undefined
              ? { ok: false as const, reason: `its loop device ${busyDevice} is in use` }
              : this.spareCheck(image);
          if (verdict === undefined) continue; // claimed by another host meanwhile
          if (!verdict.ok) {
            this.logger.warn('spare volume fails the never-written check: destroyed, not handed out', {
              spareId: candidate.id,
              reason: verdict.reason,
            });
            await this.detachSpareDevices(devices, () => spareImage, candidate.id);
            await fs.rm(image, { force: true });
            continue;
          }
          // One device per volume: the spare's lowest; without attach, none (an unattached volume has no device).
          const keep = attachTo !== null ? devices.slice(0, 1) : [];
          await this.detachSpareDevices(
            devices.filter((d) => !keep.includes(d)),
            () => spareImage,
            candidate.id,
          );
          const record = candidate === first ? firstRecord : recordOf(candidate.id);
          let tmp: string;
          if (candidate === first) {
            tmp = await early;
            earlyUsed = true;
          } else {
            tmp = await writeSyncedTemp(this.recordPath(candidate.id), recordText(record));
          }
          try {
            // Image first: a crash before the record leaves an orphan image (repair removes it, and detaches its
            // device), never a record without one. The device follows the image (the kernel names it by its path).
            // Synchronous: a rename changes directory entries only (no disk wait), cheaper than a thread-pool hop.
            renameSync(image, this.imagePath(candidate.id));
          } catch (e) {
            await fs.rm(tmp, { force: true });
            if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue;
            throw e;
          }
          // Durable (directory fsynced) before the volume is used: on a pool file system whose fsync of one file does
          // not carry other renames with it (btrfs's log tree), data fsynced into the volume could otherwise outlive
          // its record after a power loss, and repair() would remove the image as an orphan.
          await commitTemp(tmp, this.recordPath(candidate.id));
          let device = keep[0];
          if (attachTo !== null && device === undefined) {
            // No device bound at the make (or not on this kernel): as attachVolume, record first, then the device.
            try {
              device = await attachLoop(this.exec, this.imagePath(candidate.id), candidate.id, this.attachOptions);
            } catch (e) {
              await this.writeRecord({ ...record, attached_to: null }, ATTACHMENT).catch((undo: unknown) =>
                this.logger.error('could not undo attachment record', {
                  blockdeviceId: candidate.id,
                  error: String(undo),
                }),
              );
              this.logger.warn('volume claimed from a spare, not attached', {
                blockdeviceId: candidate.id,
                error: String(e),
              });
              return toVolume({ ...record, attached_to: null });
            }
          }
          if (device !== undefined) this.lastDevice.set(candidate.id, device);
          this.logger.info('volume claimed from a spare', {
            blockdeviceId: candidate.id,
            datasetId,
            size: rounded,
            ...(device !== undefined ? { device, preAttached: keep.length > 0 } : {}),
          });
          return {
            ...toVolume(record),
            ...(device !== undefined ? { devicePath: device } : {}),
            filesystem: { fstype: 'ext4', size: verdict.bytes },
          };
        }
        return undefined;
      });
    } finally {
      if (!earlyUsed)
        await early.then(
          (tmp) => fs.rm(tmp, { force: true }),
          () => undefined,
        );
    }
  }

  async destroySpare(id: string): Promise<void> {
    if (!ID_PATTERN.test(id)) return;
    const dirs = await this.spareDirs();
    const image = { file: path.join(this.sparesPath, spareImageName(id)) };
    await this.detachSpareDevices(devicesOfSpare(await this.bindingsIn(dirs), dirs, id), () => image, id);
    await fs.rm(image.file, { force: true });
    await fsyncDir(this.sparesPath).catch(() => undefined);
  }

  /**
   * Removes `.making-` files of this instance (its makes ended with its last process) and old ones of others, and
   * detaches the spares directory's loop devices no spare needs (spareDevicesToDetach).
   */
  async tidySpares(): Promise<string[]> {
    const names = await this.spareNames();
    const now = Date.now();
    const files = [];
    for (const f of makingFiles(names)) {
      const st = await fs.stat(path.join(this.sparesPath, f.name)).catch(() => null);
      if (st !== null) files.push({ ...f, ageMs: now - st.mtimeMs });
    }
    const removing = makingFilesToRemove(files, this.spareTag(), ORPHAN_AGE_MS);
    const dirs = await this.spareDirs();
    const bindings = await this.bindingsIn(dirs);
    const detach = spareDevicesToDetach(bindings, dirs, removing);
    await this.detachSpareDevices(detach, (device) => servingOf(bindings, device));
    if (detach.length > 0) this.logger.warn('detached loop devices no spare volume needs', { devices: detach });
    const removed: string[] = [];
    for (const name of removing) {
      await fs.rm(path.join(this.sparesPath, name), { force: true });
      removed.push(name);
    }
    if (removed.length > 0) {
      await fsyncDir(this.sparesPath);
      this.logger.warn('removed spare volumes an interrupted make left', { files: removed });
    }
    return removed;
  }

  /**
   * Binds a loop device to each ready spare without one (let go by `./dev down`, a reboot, `losetup -D`): see
   * loopbackSpares.ts. Under the pool lock, one spare at a time (a claim waits one bind at most), looked at again
   * there: a claim may have moved it, another host bound it. Binding writes nothing into the image.
   */
  async bindSpares(): Promise<string[]> {
    const dirs = await this.spareDirs();
    const bound: string[] = [];
    // The devices that can hold data are enough for this first look (a spare's device always can; a scan of them skips
    // the walk of every /sys/block/loopN, and this runs before every refill): it finds at least every spare without a
    // device, and the look under the lock below, of every device, decides.
    const withoutDevice = sparesWithoutDevice(
      await this.bindingsIn(dirs, { sized: true }),
      dirs,
      spareIds(await this.spareNames()),
    );
    for (const id of withoutDevice) {
      const device = await this.withPoolLock(async () => {
        const image = path.join(this.sparesPath, spareImageName(id));
        if (devicesOfSpare(await this.bindingsIn(dirs), dirs, id).length > 0) return undefined;
        if ((await fs.stat(image).catch(() => null)) === null) return undefined;
        return attachLoop(this.exec, image, id, this.attachOptions).catch((e: unknown) => {
          this.logger.warn('cannot bind a loop device to a spare volume; its claim will', {
            spareId: id,
            error: String(e),
          });
          return undefined;
        });
      });
      if (device !== undefined) bound.push(id);
    }
    if (bound.length > 0) this.logger.info('loop devices bound again to spare volumes', { spareIds: bound });
    return bound;
  }

  /**
   * Opens a spare's device exclusively (refused while it is mounted anywhere on this kernel) and flushes it, so
   * that whatever an opener wrote through it is in the image before the never-written check reads the image.
   * True when it is in use.
   */
  private async flushSpareDevice(device: string): Promise<boolean> {
    // The helper's BLKFLSBUF writes the dirty pages down without the disk flush an fsync adds (one pipe round trip).
    const helped = await this.ioctls?.flushBuffers(device);
    if (helped === 'busy' || helped === 'flushed') return helped === 'busy';
    let handle: Awaited<ReturnType<typeof fs.open>>;
    try {
      handle = await fs.open(device, fsConstants.O_RDONLY | fsConstants.O_EXCL);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EBUSY') return true;
      throw e;
    }
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
    return false;
  }

  /** Detaches spare devices not in use (one in use goes with its last user: its image is gone or going). */
  private async detachSpareDevices(
    devices: readonly string[],
    serving: (device: string) => LoopServing | undefined,
    spareId?: string,
  ): Promise<void> {
    for (const device of devices) {
      if (await isDeviceBusy(device).catch(() => true)) {
        this.logger.warn('a spare volume’s loop device is in use: left for a later tidy', { device, spareId });
        continue;
      }
      await this.detachQuietly(device, serving(device), spareId);
    }
  }

  /**
   * detachLoop of a device seen serving `serving` (checked by the helper, see LoopIoctls.detach): a number freed and
   * bound by another process since the look is left alone ('gone', logged), never detached.
   */
  private async detachServing(
    device: string,
    blockdeviceId: string | undefined,
    serving: LoopServing | undefined,
  ): Promise<'detached' | 'gone'> {
    const done = await detachLoop(this.exec, device, blockdeviceId, {
      ...this.detachOptions,
      ...(serving !== undefined ? { serving } : {}),
    });
    if (done === 'gone')
      this.logger.warn('loop device no longer serves what it served when looked at: left alone', {
        blockdeviceId,
        device,
        file: serving?.file,
      });
    return done;
  }

  private async detachQuietly(device: string, serving: LoopServing | undefined, id?: string): Promise<void> {
    await this.detachServing(device, id, serving).catch((e: unknown) =>
      this.logger.warn('cannot detach a spare volume’s loop device', { device, spareId: id, error: String(e) }),
    );
  }

  /** The spares directory as given and as the kernel prints it (symlinks resolved). */
  private async spareDirs(): Promise<string[]> {
    this.canonicalSpares ??= fs
      .mkdir(this.sparesPath, { recursive: true })
      .then(() => fs.realpath(this.sparesPath))
      .catch((e: unknown) => {
        this.canonicalSpares = undefined;
        throw new StorageError('BACKEND_ERROR', `cannot resolve spares directory ${this.sparesPath}: ${String(e)}`);
      });
    const canonical = await this.canonicalSpares;
    return canonical === this.sparesPath ? [canonical] : [this.sparesPath, canonical];
  }

  private async spareNames(): Promise<string[]> {
    try {
      return await fs.readdir(this.sparesPath);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw e;
    }
  }

  /** This instance's tag in `.making-` names. */
  private spareTag(): string {
    return createHash('sha256').update(this.instanceId).digest('hex').slice(0, 8);
  }

  /**
   * spareVerdict of an image: one 2-KiB read and one stat; undefined when it is gone. Synchronous: the superblock of
   * a spare made while the agent was idle is in the page cache, where four thread-pool hops cost more than the read.
   */
  private spareCheck(image: string): ReturnType<typeof spareVerdict> | undefined {
    let fd: number;
    try {
      fd = openSync(image, 'r');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
    try {
      const buf = Buffer.alloc(2048);
      const bytesRead = readSync(fd, buf, 0, 2048, 0);
      const st = fstatSync(fd);
      const sb = bytesRead === 2048 ? readExt4Superblock(buf.subarray(1024)) : null;
      return spareVerdict(sb, { size: st.size, mtimeSec: st.mtimeMs / 1000 });
    } finally {
      closeSync(fd);
    }
  }

  // ---- internals -----------------------------------------------------------

  /** checkSize, and no larger than maximumVolumeSize() (when the probe worked). */
  private async checkSizeWithinLimit(size: number): Promise<number> {
    const rounded = this.checkSize(size);
    let max: number | undefined;
    try {
      max = await this.maximumVolumeSize();
    } catch (e) {
      this.logger.warn('cannot find the largest volume size of the pool', {
        rootPath: this.rootPath,
        error: String(e),
      });
    }
    if (max !== undefined && rounded > max) {
      throw new StorageError(
        'INVALID_SIZE',
        `volume size ${rounded} bytes is larger than pool ${this.rootPath} can hold: at most ${max} bytes (the largest file its filesystem allows)`,
      );
    }
    return rounded;
  }

  private async probeMaximumSize(): Promise<number> {
    await this.ensureDirs();
    const probe = path.join(this.volumesPath, `.size-probe-${process.pid}-${randomBytes(4).toString('hex')}`);
    const handle = await fs.open(probe, 'wx', 0o600);
    try {
      const fits = async (units: number): Promise<boolean> => {
        try {
          await handle.truncate(units * this.unit);
          return true;
        } catch (e) {
          const code = (e as NodeJS.ErrnoException).code;
          if (code === 'EFBIG' || code === 'EINVAL') return false;
          throw e;
        }
      };
      let hi = Math.floor(Number.MAX_SAFE_INTEGER / this.unit);
      if (await fits(hi)) return hi * this.unit;
      let lo = 0; // fits(lo) holds, fits(hi) does not
      while (hi - lo > 1) {
        const mid = Math.floor((lo + hi) / 2);
        if (await fits(mid)) lo = mid;
        else hi = mid;
      }
      this.logger.info('largest volume of the pool', { rootPath: this.rootPath, bytes: lo * this.unit });
      return lo * this.unit;
    } finally {
      await handle.close();
      await fs.rm(probe, { force: true });
    }
  }

  /** See RepairReport.removedRecordTemps. Under the pool lock only. */
  private async removeStaleRecordTemps(): Promise<string[]> {
    const removed: string[] = [];
    for (const name of await fs.readdir(this.volumesPath)) {
      const m = /^(.+)\.json\.tmp-\d+-[0-9a-f]{8}$/.exec(name);
      if (!m || !ID_PATTERN.test(m[1])) continue;
      const file = path.join(this.volumesPath, name);
      try {
        const st = await fs.stat(file);
        if (Date.now() - st.mtimeMs < ORPHAN_AGE_MS) continue;
        await fs.rm(file);
        removed.push(file);
        this.logger.warn('repair: removed a record temp file (left by a crashed create, claim, attach or detach)', {
          file,
        });
      } catch (e) {
        this.logger.warn('repair: cannot remove a record temp file', { file, error: String(e) });
      }
    }
    return removed;
  }

  /** See RepairReport.removedOrphanImages. Under the pool lock only. */
  private async removeOrphanImages(): Promise<string[]> {
    const names = await fs.readdir(this.volumesPath);
    const inUse = new Set((await this.poolBindings()).map((b) => path.basename(b.backingFile)));
    const removed: string[] = [];
    for (const name of names) {
      const m = /^(.+)\.img$/.exec(name);
      if (!m || !ID_PATTERN.test(m[1]) || names.includes(`${m[1]}.json`) || inUse.has(name)) continue;
      const file = path.join(this.volumesPath, name);
      try {
        const st = await fs.stat(file);
        if (Date.now() - st.mtimeMs < ORPHAN_AGE_MS) continue;
        // Re-checked at the last moment: a record appearing means a volume after all.
        if (
          await fs.access(this.recordPath(m[1])).then(
            () => true,
            () => false,
          )
        )
          continue;
        await fs.rm(file);
        removed.push(file);
        this.logger.warn('repair: removed a backing file without a record (left by a crashed create or destroy)', {
          file,
        });
      } catch (e) {
        this.logger.warn('repair: cannot remove an orphan backing file', { file, error: String(e) });
      }
    }
    if (removed.length > 0) await fsyncDir(this.volumesPath);
    return removed;
  }

  /** After a failed create: removes what it left (its record only while no one has attached it), under the pool lock. */
  private async removeFailedCreate(id: string): Promise<void> {
    try {
      await this.withPoolLock(async () => {
        const record = await this.readRecord(id).catch(() => null);
        if (record !== null && record.attached_to !== null) return;
        await fs.rm(this.recordPath(id), { force: true });
        await fs.rm(this.imagePath(id), { force: true });
        await fsyncDir(this.volumesPath);
      });
    } catch (e) {
      this.logger.error('cannot remove what a failed create left in the pool', { blockdeviceId: id, error: String(e) });
    }
  }

  /** A record that cannot be read, as a problem: with its dataset when the text still names one, and its loop devices. */
  private async problemOf(id: string, e: unknown): Promise<VolumeProblem> {
    const text = await fs.readFile(this.recordPath(id), 'utf8').catch(() => '');
    const datasetId =
      /"dataset_id"\s*:\s*"([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})"/
        .exec(text)?.[1]
        ?.toLowerCase();
    const devices = await this.loopsOf(id).catch(() => []);
    const reason = errorMessage(e);
    return {
      code: 'CORRUPT_RECORD',
      blockdeviceId: id,
      ...(datasetId !== undefined ? { datasetId } : {}),
      ...(devices.length > 0 ? { devices } : {}),
      message: `volume ${id}: ${reason}; the volume is left alone (no second volume is created for its dataset) until the record is repaired`,
    };
  }

  private checkSize(size: number): number {
    if (!Number.isFinite(size) || size <= 0) {
      throw new StorageError('INVALID_SIZE', `volume size must be a positive number of bytes, got ${size}`);
    }
    const rounded = roundUpToUnit(size, this.unit);
    if (!Number.isSafeInteger(rounded)) throw new StorageError('INVALID_SIZE', `volume size ${size} is too large`);
    return rounded;
  }

  private checkAttachedHere(record: VolumeRecord): void {
    const id = record.blockdevice_id;
    if (record.attached_to === null) {
      throw new StorageError('UNATTACHED', `volume ${id} is not attached, so it has no device path`, id);
    }
    if (record.attached_to !== this.instanceId) {
      throw new StorageError(
        'NOT_ATTACHED_HERE',
        `volume ${id} is attached to instance ${record.attached_to}, not to this instance ${this.instanceId}`,
        id,
      );
    }
  }

  /** The loop devices of a volume attached here, detached (DEVICE_BUSY, none detached, while one is in use). */
  private async detachOwnLoops(blockdeviceId: string): Promise<void> {
    const devices = await this.loopsOf(blockdeviceId);
    if (devices.length === 1) {
      await this.detachIfIdle(blockdeviceId, devices[0]);
    } else {
      for (const device of devices) await this.refuseIfBusy(blockdeviceId, device);
      const image = { file: this.imagePath(blockdeviceId) };
      for (const device of devices) await this.detachServing(device, blockdeviceId, image);
    }
    await this.verifyNoLoops(blockdeviceId, devices);
    this.lastDevice.delete(blockdeviceId);
  }

  /** Loop devices of a volume recorded as detached: left by a crash. Remove them unless something uses them. */
  private async removeStaleLoops(blockdeviceId: string): Promise<void> {
    const devices = await this.loopsOf(blockdeviceId);
    for (const device of devices) {
      await this.refuseIfBusy(blockdeviceId, device);
      this.logger.warn('detaching stale loop device of a detached volume', { blockdeviceId, device });
      await this.detachServing(device, blockdeviceId, { file: this.imagePath(blockdeviceId) });
    }
    if (devices.length > 0) await this.verifyNoLoops(blockdeviceId, devices);
  }

  /**
   * `losetup -d` on a mounted device only schedules the detach for later, so
   * check first: an exclusive open fails while the device is mounted in any
   * mount namespace of this kernel.
   */
  private async refuseIfBusy(blockdeviceId: string, device: string): Promise<void> {
    if (await isDeviceBusy(device)) throw await this.busyError(blockdeviceId, device);
  }

  /**
   * refuseIfBusy, then the detach: one helper request where it runs (LoopIoctls.detachIdle), which detaches the
   * device only if it still serves the volume's image ('gone': no longer ours; verifyNoLoops looks again).
   */
  private async detachIfIdle(blockdeviceId: string, device: string): Promise<void> {
    const done =
      this.ioctls === undefined
        ? null
        : await this.ioctls.detachIdle(device, this.imagePath(blockdeviceId), blockdeviceId);
    if (done === 'detached') return;
    if (done === 'gone') {
      this.logger.warn('loop device no longer serves the volume: left alone', { blockdeviceId, device });
      return;
    }
    if (done === 'busy') throw await this.busyError(blockdeviceId, device);
    await this.refuseIfBusy(blockdeviceId, device);
    await this.detachServing(device, blockdeviceId, { file: this.imagePath(blockdeviceId) });
  }

  private async busyError(blockdeviceId: string, device: string): Promise<StorageError> {
    const here = (await listMounts()).filter((m) => m.device === device).map((m) => m.mountPoint);
    // A mount elsewhere cannot be unmounted by the user: a container's, whose mount goes when it stops (T3 finding 3).
    return new StorageError(
      'DEVICE_BUSY',
      // "block device", not "volume": people know the volume by its name or dataset id (review TN F9).
      `loop device ${device} of block device ${blockdeviceId} is in use (${
        here.length > 0
          ? `mounted on ${here.join(', ')}); unmount it first`
          : "mounted in another mount namespace, a container's most often, or held open); whatever uses it must stop first"
      }`,
      blockdeviceId,
    );
  }

  /**
   * After detaching `detached` (every device the volume had, found under the
   * pool lock, so no new one can have appeared): checks just those in sysfs
   * rather than scanning every loop device again.
   */
  private async verifyNoLoops(blockdeviceId: string, detached: readonly string[]): Promise<void> {
    const left = await this.waitForDetach(blockdeviceId, detached);
    if (left.length > 0) {
      throw new StorageError(
        'DEVICE_BUSY',
        `loop device(s) ${left.join(', ')} of block device ${blockdeviceId} are still present after detaching (the kernel deferred the detach because the device is in use)`,
        blockdeviceId,
      );
    }
  }

  /** The devices among `detached` that still serve the volume after a short wait (a deferred detach). */
  private async waitForDetach(blockdeviceId: string, detached: readonly string[]): Promise<string[]> {
    const remaining = async (): Promise<string[]> => {
      if (this.loopDiscovery !== 'sysfs') return this.loopsOf(blockdeviceId);
      const left: string[] = [];
      for (const device of detached) if (await this.serves(device, blockdeviceId)) left.push(device);
      return left;
    };
    let left = await remaining();
    // A short-lived opener (udev's blkid probe, say) turns losetup -d into a
    // deferred detach that completes when it closes; give that a moment (about
    // half a second in all), looking often at first: such openers are quick.
    for (const delay of VERIFY_DETACH_DELAYS_MS) {
      if (left.length === 0) break;
      await new Promise((r) => setTimeout(r, delay));
      left = await remaining();
    }
    return left;
  }

  /** See the class comment: detach what can be detached, fence what cannot. */
  private async forceDetachLoops(blockdeviceId: string, holder: string): Promise<void> {
    await this.finishInterruptedFence(blockdeviceId);
    const busy: string[] = [];
    // Every device, even one bound to no sector yet (a fence is rare, and leaves nothing a later `losetup -c` could revive).
    const devices = await this.loopsOf(blockdeviceId, { every: true });
    for (const device of devices) {
      if (await isDeviceBusy(device)) {
        busy.push(device);
        continue;
      }
      await this.detachServing(device, blockdeviceId, { file: this.imagePath(blockdeviceId) });
    }
    if (busy.length === 0) {
      // Not mounted, but a process may hold the device open (a raw-device user): then the kernel only
      // deferred the detach and the device still serves the image. Fence it like a mounted one.
      busy.push(...(await this.waitForDetach(blockdeviceId, devices)));
      if (busy.length === 0) return;
    }
    const fenced = await this.fenceImage(blockdeviceId, busy, holder);
    for (const device of busy) {
      // Deferred: the device goes away by itself once the last user unmounts it (else releaseFenced detaches it).
      // The fence holds without it; a device that went away meanwhile (ENXIO) is fine too.
      // It serves the fenced file now (renamed): a number freed meanwhile (a detach deferred earlier, its last user
      // gone during the copy) and bound by someone else is left alone.
      await this.detachServing(device, blockdeviceId, { file: fenced }).catch((e: unknown) =>
        this.logger.warn(
          'could not request the deferred detach of a fenced loop device; releaseFenced will detach it',
          { blockdeviceId, device, error: String(e) },
        ),
      );
    }
    this.logger.warn('force detach fenced loop devices still in use: their writes now fail', {
      blockdeviceId,
      holder,
      devices: busy,
      fencedImage: fenced,
    });
    await this.verifyNoLoops(blockdeviceId, devices);
  }

  /**
   * Steps 1-3 of a fence (see fencing.ts): rename aside, immutable, copy back.
   * Without the immutable flag the rename is undone and nothing has changed.
   */
  private async fenceImage(blockdeviceId: string, busy: readonly string[], holder: string): Promise<string> {
    const image = this.imagePath(blockdeviceId);
    // Numbered after the volume's earlier fences (under the pool lock): recovery picks the largest number, not the latest clock.
    const seq = nextFenceSequence(await fs.readdir(this.volumesPath), blockdeviceId);
    const fenced = path.join(
      this.volumesPath,
      fencedImageName(blockdeviceId, seq, new Date(), randomBytes(4).toString('hex')),
    );
    await fs.rename(image, fenced);
    await fsyncDir(this.volumesPath);
    // Why the copy below needs no wait for writes of the old device still "in flight" (issue 17 #6): when
    // FS_IOC_SETFLAGS (flocker-syshelper's ioctl, and chattr's) returns, every write of the old loop device
    // has either failed or its data is in the inode. The loop device (attached without O_DIRECT, so
    // buffered) writes through the backing file's ->write_iter; ext4_buffered_write_iter holds the inode
    // lock (i_rwsem, exclusive) from the IS_IMMUTABLE check (ext4_generic_write_checks, EPERM → the
    // device's EIO) to the end of generic_perform_write, the copy into the page cache. vfs_fileattr_set
    // (fs/file_attr.c, fs/ioctl.c before 6.17) takes the same lock exclusively around ->fileattr_set, so
    // the flag change waits for any write past the check, and every later write sees the flag. And
    // ext4_ioctl_setflags, when it turns the flag on for a regular file, also calls inode_dio_wait (waits
    // for direct I/O in flight: a device switched to direct I/O, whose async writes outlive the lock) and
    // filemap_write_and_wait, before setting it. cp then reads through the page cache, which holds it
    // all. So an old holder whose fsync succeeded has its data in the copy; a write that lost the race
    // fails (tested: 'every write a raw-device writer had fsynced before the fence is in the copy' in
    // LoopbackDriver.fencing.test.ts). Needs a filesystem that checks the flag on writes through open
    // files: ext4 does; tmpfs (6.18) does not, which immutableStopsOpenFiles finds out (then: refused).
    try {
      // After the rename (a crash while probing leaves S1, which recovery finishes), before the flag.
      if (!(await this.immutableStopsOpenFiles())) {
        throw new ImmutableFlagError(
          'ENOTENFORCED',
          fenced,
          'the pool filesystem sets the immutable flag but does not refuse writes through files opened before (tmpfs does this), so a fence would not stop them',
        );
      }
      await setImmutable(fenced, true, this.flagOptions);
    } catch (e) {
      await fs.rename(fenced, image);
      await fsyncDir(this.volumesPath);
      const reason = e instanceof ImmutableFlagError ? `${immutableFailureReason(e.errno)}: ${e.message}` : String(e);
      throw new StorageError(
        'BACKEND_ERROR',
        `cannot force-detach volume ${blockdeviceId} from ${holder}: its loop device(s) ${busy.join(', ')} are still in use, ` +
          `and fencing them needs the immutable flag on the backing file, which cannot be set: ${reason}. ` +
          `Nothing was changed; unmount the volume on ${holder} (or fix the pool) and retry`,
        blockdeviceId,
      );
    }
    await this.copyFencedIntoImage(blockdeviceId, fenced);
    return fenced;
  }

  /**
   * Whether the immutable flag stops writes through a file opened before it was set (what a fence relies on: the
   * loop device's backing file is such a file). ext4 checks the flag on every write; tmpfs (6.18) does not. Found
   * once per driver with a probe file in the pool directory: open, set the flag, try to write a byte. A failure to
   * set the flag at all is thrown (the fence reports it like its own).
   */
  private async immutableStopsOpenFiles(): Promise<boolean> {
    if (this.flagStopsOpenFiles !== undefined) return this.flagStopsOpenFiles;
    const probe = path.join(this.volumesPath, `.immutable-probe-${process.pid}-${randomBytes(4).toString('hex')}`);
    const handle = await fs.open(probe, 'wx');
    let stops: boolean;
    try {
      await setImmutable(probe, true, this.flagOptions);
      try {
        await handle.write(Buffer.from('x'), 0, 1, 0);
        stops = false;
      } catch (e) {
        stops = (e as NodeJS.ErrnoException).code === 'EPERM';
      }
    } finally {
      await setImmutable(probe, false, this.flagOptions).catch(() => undefined);
      await handle.close();
      await fs.rm(probe, { force: true });
    }
    if (!stops)
      this.logger.error(
        'the pool filesystem does not enforce the immutable flag on open files: force detach of devices in use is refused',
        { volumesPath: this.volumesPath },
      );
    this.flagStopsOpenFiles = stops;
    return stops;
  }

  /** Copies a fenced (immutable, so frozen) image into a new `<id>.img`: temp, fsync, rename, fsync the directory. */
  private async copyFencedIntoImage(blockdeviceId: string, fenced: string): Promise<void> {
    const tmp = path.join(this.volumesPath, copyTempName(blockdeviceId, process.pid, randomBytes(4).toString('hex')));
    try {
      await runChecked(
        this.exec,
        'cp',
        ['--reflink=auto', '--sparse=always', '--', fenced, tmp],
        `copying the fenced image ${fenced}`,
        'BACKEND_ERROR',
        blockdeviceId,
      );
      const handle = await fs.open(tmp, 'r+');
      try {
        await handle.sync();
        const [copied, original] = await Promise.all([handle.stat(), fs.stat(fenced)]);
        if (copied.size !== original.size) {
          throw new StorageError(
            'BACKEND_ERROR',
            `copy of ${fenced} has ${copied.size} bytes, not ${original.size}`,
            blockdeviceId,
          );
        }
      } finally {
        await handle.close();
      }
      await fs.rename(tmp, this.imagePath(blockdeviceId));
    } catch (e) {
      await fs.rm(tmp, { force: true });
      throw e;
    }
    await fsyncDir(this.volumesPath);
  }

  /**
   * Under the pool lock, before using `<id>.img`: if it is missing because a
   * fence was interrupted, finish that fence. One stat when nothing is wrong.
   */
  private async finishInterruptedFence(blockdeviceId: string): Promise<void> {
    // One stat, synchronously (see readRecordNow); missing: look for a fenced file.
    if (existsSync(this.imagePath(blockdeviceId))) return;
    await this.finishInterruptedFences(blockdeviceId);
  }

  /**
   * Finishes interrupted fences (of one volume, or of all, which logs and
   * skips failures instead of throwing): removes copy temps and copies the
   * newest fenced file of a volume without `<id>.img` again, setting the
   * immutable flag first if the crash came before it. If the flag cannot be
   * set, the fence never took effect: the file is renamed back. Returns the
   * volumes whose image was restored. Under the pool lock only.
   */
  private async finishInterruptedFences(onlyId?: string): Promise<string[]> {
    const restored: string[] = [];
    const names = await fs.readdir(this.volumesPath);
    for (const name of names.filter((n) => IMMUTABLE_PROBE.test(n))) {
      // Probes run under the pool lock, which we hold: this one's prober crashed.
      const probe = path.join(this.volumesPath, name);
      await setImmutable(probe, false, this.flagOptions).catch(() => undefined);
      await fs
        .rm(probe, { force: true })
        .catch((e: unknown) =>
          this.logger.warn('cannot remove a stale immutable probe', { file: probe, error: String(e) }),
        );
    }
    for (const plan of planFenceRecovery(names, onlyId)) {
      try {
        for (const temp of plan.removeTemps) {
          await fs.rm(path.join(this.volumesPath, temp), { force: true });
          this.logger.warn('removed the copy temp of an interrupted fence', { blockdeviceId: plan.id, file: temp });
        }
        if (plan.restoreFrom === null) continue;
        const fenced = path.join(this.volumesPath, plan.restoreFrom);
        if (!(await isImmutable(fenced, this.flagOptions).catch(() => false))) {
          try {
            await setImmutable(fenced, true, this.flagOptions);
          } catch (e) {
            await fs.rename(fenced, this.imagePath(plan.id));
            await fsyncDir(this.volumesPath);
            this.logger.error(
              'an interrupted fence cannot be finished without the immutable flag: renamed the image back, the volume is NOT fenced',
              {
                blockdeviceId: plan.id,
                file: plan.restoreFrom,
                error: String(e),
              },
            );
            continue;
          }
        }
        await this.copyFencedIntoImage(plan.id, fenced);
        restored.push(plan.id);
        this.logger.warn('finished an interrupted fence: copied the fenced image again', {
          blockdeviceId: plan.id,
          fencedImage: plan.restoreFrom,
        });
      } catch (e) {
        if (onlyId !== undefined) throw e;
        this.logger.error('cannot finish an interrupted fence', { blockdeviceId: plan.id, error: String(e) });
      }
    }
    return restored;
  }

  /** See releaseFenced. Under the pool lock only. */
  private async releaseFencedLocked(): Promise<{ devices: string[]; images: string[] }> {
    const dirs = [this.volumesPath, await this.canonicalVolumesPath()];
    const devices: string[] = [];
    const firstLook = await this.poolBindings();
    for (const binding of firstLook) {
      if (!isFencedBinding(binding, dirs)) continue;
      try {
        if (await isDeviceBusy(binding.device)) continue;
        // A fenced device goes away by itself once its last user is gone (its deferred detach), and the number may be
        // bound by another process at once: detached only if it still serves what this look saw.
        const serving = { file: binding.backingFile, deleted: binding.deleted };
        if ((await this.detachServing(binding.device, undefined, serving)) === 'gone') continue;
        devices.push(binding.device);
        this.logger.info('released the loop device of a fenced image', {
          device: binding.device,
          backingFile: binding.backingFile,
          deleted: binding.deleted,
        });
      } catch (e) {
        this.logger.warn('cannot release the loop device of a fenced image', {
          device: binding.device,
          error: String(e),
        });
      }
    }
    const names = await fs.readdir(this.volumesPath);
    // A fresh look only after a fenced binding (a detach above may have been deferred by a short-lived opener): a full
    // sysfs walk costs ~0.5 ms of CPU on a host with a few dozen loop devices, and this runs every resync interval.
    const inUse =
      fencedInUseFromFirstLook(firstLook, dirs) ??
      new Set((await this.poolBindings()).filter((b) => !b.deleted).map((b) => path.basename(b.backingFile)));
    const records = new Set(
      names.flatMap((n) => /^(.+)\.json$/.exec(n)?.[1] ?? []).filter((id) => ID_PATTERN.test(id)),
    );
    const images: string[] = [];
    for (const name of removableFencedImages(names, inUse, records)) {
      const file = path.join(this.volumesPath, name);
      try {
        await setImmutable(file, false, this.flagOptions);
        await fs.rm(file);
        images.push(file);
        this.logger.info('removed a fenced image no loop device uses', { file });
      } catch (e) {
        this.logger.warn('cannot remove a fenced image', { file, error: String(e) });
      }
    }
    if (images.length > 0) await fsyncDir(this.volumesPath);
    return { devices, images };
  }

  /**
   * The loop devices serving this volume's backing file (not a replaced one),
   * in device-number order. Reads sysfs for the devices that can hold data
   * (a device of a volume always can: its image has at least an allocation
   * unit), or with `every` for every bound device; a scan is shared with
   * concurrent callers but always starts after the call.
   */
  private async loopsOf(blockdeviceId: string, options: { every?: boolean } = {}): Promise<string[]> {
    const scanner = options.every === true ? this.loopScanner : this.sizedLoopScanner;
    const bindings = this.loopDiscovery === 'sysfs' ? await scanner.get() : null;
    if (bindings === null) return findLoopDevices(this.exec, this.imagePath(blockdeviceId));
    // The kernel prints the path with symlinks resolved.
    const file = path.join(await this.canonicalVolumesPath(), `${blockdeviceId}.img`);
    return bindings
      .filter((b) => !b.deleted && b.backingFile === file)
      .map((b) => b.device)
      .sort((x, y) => Number(x.slice('/dev/loop'.length)) - Number(y.slice('/dev/loop'.length)));
  }

  /** Whether the kernel says this device serves the volume's (current) backing file now. */
  private async serves(device: string, blockdeviceId: string): Promise<boolean> {
    if (this.loopDiscovery !== 'sysfs') return false;
    const binding = loopBindingOf(device);
    return (
      binding !== null &&
      !binding.deleted &&
      binding.backingFile === path.join(await this.canonicalVolumesPath(), `${blockdeviceId}.img`)
    );
  }

  private canonicalVolumesPath(): Promise<string> {
    this.canonicalVolumes ??= this.ensureDirs()
      .then(() => fs.realpath(this.volumesPath))
      .catch((e: unknown) => {
        this.canonicalVolumes = undefined;
        throw new StorageError('BACKEND_ERROR', `cannot resolve pool directory ${this.volumesPath}: ${String(e)}`);
      });
    return this.canonicalVolumes;
  }

  /**
   * Every bound loop device whose backing file is in this pool (including
   * fenced and deleted ones), from sysfs or else from `losetup --list`.
   */
  private async poolBindings(): Promise<LoopBinding[]> {
    return this.bindingsIn([this.volumesPath, await this.canonicalVolumesPath()]);
  }

  /**
   * Every bound loop device whose backing file lies directly in one of `dirs` (a fresh sysfs scan, or losetup); with
   * `sized`, only those that can hold data (listSizedLoopBindings: no look at every unbound /sys/block/loopN).
   */
  private async bindingsIn(dirs: readonly string[], options: { sized?: boolean } = {}): Promise<LoopBinding[]> {
    const scanner = options.sized === true ? this.sizedLoopScanner : this.loopScanner;
    let bindings = this.loopDiscovery === 'sysfs' ? await scanner.get() : null;
    if (bindings === null) {
      const out = await runChecked(
        this.exec,
        'losetup',
        ['--list', '--noheadings', '--raw', '--output', 'NAME,BACK-FILE'],
        'listing loop devices',
      );
      bindings = [];
      for (const line of out.split('\n')) {
        const m = /^(\/dev\/loop\d+) (.*)$/.exec(line.trim());
        // --raw escapes spaces as \x20; a replaced or removed file shows " (deleted)".
        if (m)
          bindings.push(
            parseBackingFile(
              m[1],
              m[2].replace(/\\x([0-9a-f]{2})/gi, (_, h: string) => String.fromCharCode(parseInt(h, 16))),
            ),
          );
      }
    }
    return bindings.filter((b) => dirs.includes(path.dirname(b.backingFile)));
  }

  private get poolFile(): string {
    return path.join(this.rootPath, 'pool.json');
  }

  private imagePath(id: string): string {
    return path.join(this.volumesPath, `${id}.img`);
  }

  private recordPath(id: string): string {
    return path.join(this.volumesPath, `${id}.json`);
  }

  private async readRecord(id: string): Promise<VolumeRecord> {
    return (await this.readRecordText(id)).record;
  }

  /** The record and its text as read. */
  private async readRecordText(id: string): Promise<{ record: VolumeRecord; text: string }> {
    // Never build a path from an id that is not ours: ".." would escape the pool.
    if (!ID_PATTERN.test(id)) throw new StorageError('UNKNOWN_VOLUME', `no volume with id ${JSON.stringify(id)}`, id);
    let text: string;
    try {
      text = await fs.readFile(this.recordPath(id), 'utf8');
    } catch (e) {
      throw this.unreadableRecord(id, e);
    }
    return { record: this.parseRecord(id, text), text };
  }

  /**
   * readRecordText on the path of an attach, a detach and getDevicePath, synchronously: a record is a few hundred
   * bytes in a local directory, read in tens of microseconds, while each of the four thread-pool hops of an
   * asynchronous read waits for a thread and then the main thread to get a CPU (0.3 ms median, several ms at the
   * 90th percentile on a loaded 2-core host).
   */
  private readRecordNow(id: string): { record: VolumeRecord; text: string } {
    const text = this.readRecordTextNow(id);
    return { record: this.parseRecord(id, text), text };
  }

  /** A record's text, read synchronously (see readRecordNow), not parsed. */
  private readRecordTextNow(id: string): string {
    if (!ID_PATTERN.test(id)) throw new StorageError('UNKNOWN_VOLUME', `no volume with id ${JSON.stringify(id)}`, id);
    try {
      return readFileSync(this.recordPath(id), 'utf8');
    } catch (e) {
      throw this.unreadableRecord(id, e);
    }
  }

  private unreadableRecord(id: string, e: unknown): StorageError {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
      return new StorageError('UNKNOWN_VOLUME', `no volume with id ${id} in pool ${this.rootPath}`, id);
    }
    return new StorageError('BACKEND_ERROR', `cannot read the record of volume ${id}: ${(e as Error).message}`, id);
  }

  private parseRecord(id: string, text: string): VolumeRecord {
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (e) {
      throw new StorageError(
        'CORRUPT_RECORD',
        `record ${this.recordPath(id)} is not valid JSON: ${(e as Error).message}`,
        id,
      );
    }
    const parsed = VolumeRecord.safeParse(json);
    if (!parsed.success) {
      throw new StorageError(
        'CORRUPT_RECORD',
        `record ${this.recordPath(id)} is malformed: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(top level)'}: ${i.message}`).join('; ')}`,
        id,
      );
    }
    return parsed.data;
  }

  /** A synced temp file of the record's new version (see VolumeRecord.writeSyncedTemp); its failure is awaited later. */
  private recordTemp(record: VolumeRecord): Promise<string> {
    const tmp = writeSyncedTemp(this.recordPath(record.blockdevice_id), recordText(record));
    tmp.catch(() => undefined);
    return tmp;
  }

  /**
   * The record's next version (`next` of the record as read now, without the lock; null: no change to prepare),
   * written to a synced temp file while the pool lock is taken: the fsync is the slowest step of an attach or a
   * detach. Under the lock, `take` hands it out only if the record is still the text it was made from (else the
   * caller writes a fresh one); an unused one is removed by `discard`.
   */
  private earlyRecord(id: string, next: (record: VolumeRecord) => VolumeRecord | null): EarlyRecord {
    let basis: string;
    let tmp: Promise<string>;
    try {
      if (!ID_PATTERN.test(id)) return NO_EARLY_RECORD;
      basis = readFileSync(this.recordPath(id), 'utf8');
      const record = next(this.parseRecord(id, basis));
      if (record === null) return NO_EARLY_RECORD;
      tmp = this.recordTemp(record);
    } catch {
      return NO_EARLY_RECORD; // the read under the lock reports it
    }
    let taken = false;
    return {
      take: (current) => {
        if (current !== basis || taken) return undefined;
        taken = true;
        return tmp;
      },
      discard: async () => {
        if (!taken) await removeTemp(tmp);
      },
    };
  }

  private async writeRecord(record: VolumeRecord, options?: AtomicWriteOptions): Promise<void> {
    await writeFileAtomic(this.recordPath(record.blockdevice_id), recordText(record), options);
  }

  /** `whileWaiting`: see PoolLock.withLock. */
  private async withPoolLock<T>(fn: () => Promise<T>, whileWaiting?: () => void): Promise<T> {
    await this.ensureDirs();
    return this.lock.withLock(fn, whileWaiting);
  }

  private ensureDirs(): Promise<void> {
    this.dirsReady ??= fs.mkdir(this.volumesPath, { recursive: true }).then(
      () => undefined,
      (e: unknown) => {
        this.dirsReady = undefined;
        throw new StorageError('BACKEND_ERROR', `cannot create pool directory ${this.volumesPath}: ${String(e)}`);
      },
    );
    return this.dirsReady;
  }
}

/** volumeOfDataset's and listPool's synchronous reads between two turns of the event loop (~2–5 ms of reads). */
const GUARD_READS_PER_TURN = 128;

const VERIFY_DETACH_DELAYS_MS: readonly number[] = [1, 2, 4, 8, 16, 32, 50, 50, 50, 50, 50, 50, 50, 50, 50];

/** Record writes that only change attached_to: see "Durability" in the class comment. */
const ATTACHMENT: AtomicWriteOptions = { durableRename: false };

/** `<root>/pool.json`. */
const PoolFile = z
  .object({
    version: z.literal(1),
    cluster_id: z.string().min(1).nullable(),
    created: z.string(),
    /** Added later (optional: older pools gain it on the first storageZone()). */
    pool_id: z.string().min(1).optional(),
  })
  .strict();

/** EFBIG (the pool's filesystem cannot hold a file that large) as INVALID_SIZE; undefined for other errors. */
function tooLarge(e: unknown, size: number, rootPath: string, blockdeviceId?: string): StorageError | undefined {
  if ((e as NodeJS.ErrnoException | null)?.code !== 'EFBIG') return undefined;
  return new StorageError(
    'INVALID_SIZE',
    `volume size ${size} bytes is larger than pool ${rootPath} can hold (EFBIG: the largest file its filesystem allows is smaller)`,
    blockdeviceId,
  );
}

function recordText(record: VolumeRecord): string {
  return JSON.stringify(record, null, 2) + '\n';
}

function toVolume(record: VolumeRecord): BlockDeviceVolume {
  return {
    blockdeviceId: record.blockdevice_id,
    size: record.size,
    attachedTo: record.attached_to,
    datasetId: record.dataset_id,
    ...(record.profile !== undefined ? { profile: record.profile } : {}),
  };
}

/** See LoopbackDriver.earlyRecord. */
interface EarlyRecord {
  take(current: string): Promise<string> | undefined;
  discard(): Promise<void>;
}

const NO_EARLY_RECORD: EarlyRecord = { take: () => undefined, discard: async () => undefined };

/** For an unlink whose file may already be gone (fs.rm's force, without its lstat first). */
function ignoreMissing(e: unknown): void {
  if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
}

/** Removes a record temp file once written (a failed write left none). */
async function removeTemp(tmp: Promise<string>): Promise<void> {
  await tmp.then(
    (file) => fs.rm(file, { force: true }),
    () => undefined,
  );
}

/** Removes a record's temp file, then throws on what a refusal threw (a refused create leaves nothing). */
function dropTemp(tmp: string): (e: unknown) => Promise<never> {
  return async (e) => {
    await fs.rm(tmp, { force: true });
    throw e;
  };
}

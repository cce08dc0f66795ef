/**
 * Snapshots of the loopback pool (issue 20): `<root>/snapshots/<id>.img`, a read-only copy of
 * a volume's image (a reflink where the pool file system can share extents, else a sparse
 * copy), and `<id>.json`, its record. Kept out of `<root>/volumes/`, so the volume listing,
 * repair, orphan removal and fencing never see them; no loop device ever serves a snapshot.
 *
 * Crash safety: the image is copied to a temp name, fsynced, renamed to `<id>.img` and the
 * directory fsynced; the record is written (atomically) last, so a snapshot is listed only
 * once its image is whole. A crash leaves a temp or an image without a record: both are
 * invisible, and removed by the next createSnapshot or destroySnapshot (under the pool lock,
 * which every snapshot write holds, so no such file can belong to a copy in progress).
 */
import { randomBytes } from 'node:crypto';
import { constants as fsConstants, promises as fs } from 'node:fs';
import * as path from 'node:path';
import { errorMessage } from '@flocker/runtime';
import type winston from 'winston';
import { z } from 'zod';
import { StorageError, type BlockDeviceSnapshot, type SnapshotOptions } from './BlockDeviceApi';
import { runChecked, type ExecFn } from './exec';
import { fsyncDir, writeFileAtomic, type VolumeRecord } from './VolumeRecord';

/** `<root>/snapshots/<id>.json`. */
export const SnapshotRecord = z
  .object({
    version: z.literal(1),
    snapshot_id: z.string().min(1),
    dataset_id: z.string().min(1),
    source_blockdevice_id: z.string().min(1),
    size: z.number().int().positive(),
    created: z.string(),
    /** How the image was made (see copyImage). */
    copy: z.enum(['reflink', 'sparse-copy']),
  })
  .strict();
export type SnapshotRecord = z.infer<typeof SnapshotRecord>;

export type CopyMethod = SnapshotRecord['copy'];

const ID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const TEMP_PATTERN = /\.tmp-\d+-[0-9a-f]{8}$/;

/** Errors of FICLONE that mean "this file system cannot share extents here" (not a failed copy). */
const NO_REFLINK = new Set(['ENOTSUP', 'EOPNOTSUPP', 'EXDEV', 'EINVAL', 'ENOSYS', 'ENOTTY']);

/**
 * Copies src to a new file dst: a reflink (FICLONE, via copyFile's COPYFILE_FICLONE_FORCE: shares
 * the extents, holes stay holes, milliseconds for any size) where the file system has it (btrfs,
 * xfs with reflink=1), else `cp --reflink=never --sparse=always` (copies data extents, skips holes
 * and writes no all-zero block: the copy is at most as allocated as the source). copyFile's own
 * fallback is not used: it writes every byte, holes included. dst must not exist.
 */
export async function copyImage(exec: ExecFn, src: string, dst: string): Promise<CopyMethod> {
  try {
    await fs.copyFile(src, dst, fsConstants.COPYFILE_FICLONE_FORCE | fsConstants.COPYFILE_EXCL);
    return 'reflink';
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === undefined || !NO_REFLINK.has(code)) throw e;
    await fs.rm(dst, { force: true });
  }
  await runChecked(exec, 'cp', ['--reflink=never', '--sparse=always', '--', src, dst], `copying ${src}`);
  return 'sparse-copy';
}

/** A temp name beside `file` for a copy in progress (the same form as the records' temps). */
function tempName(file: string): string {
  return `${file}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
}

export interface LoopbackSnapshotsOptions {
  readonly rootPath: string;
  readonly exec: ExecFn;
  readonly logger: winston.Logger;
}

/** The snapshot directory of one pool. Methods named …Locked must run under the pool lock. */
export class LoopbackSnapshots {
  readonly snapshotsPath: string;
  private dirReady: Promise<void> | undefined;
  private readonly logged = new Set<string>();

  constructor(private readonly options: LoopbackSnapshotsOptions) {
    this.snapshotsPath = path.join(options.rootPath, 'snapshots');
  }

  /** The snapshot's record, or undefined when there is none (an id that is not a UUID never has one). */
  async find(snapshotId: string): Promise<BlockDeviceSnapshot | undefined> {
    if (!ID_PATTERN.test(snapshotId)) return undefined;
    const record = await this.readRecord(snapshotId);
    return record === undefined ? undefined : toSnapshot(record);
  }

  /** The snapshot, ready for a clone; UNKNOWN_SNAPSHOT when there is none. */
  async get(snapshotId: string): Promise<BlockDeviceSnapshot> {
    const found = await this.find(snapshotId);
    if (found === undefined) throw unknownSnapshot(snapshotId);
    return found;
  }

  imagePath(snapshotId: string): string {
    return path.join(this.snapshotsPath, `${snapshotId}.img`);
  }

  async list(): Promise<BlockDeviceSnapshot[]> {
    await this.ensureDir();
    const found: SnapshotRecord[] = [];
    for (const name of await fs.readdir(this.snapshotsPath)) {
      const m = /^(.+)\.json$/.exec(name);
      if (!m || !ID_PATTERN.test(m[1])) continue;
      const record = await this.readRecord(m[1]).catch((e: unknown) => {
        const message = errorMessage(e);
        if (!this.logged.has(message)) {
          this.logged.add(message);
          this.options.logger.error('unreadable snapshot record: leaving it out of the listing', { message });
        }
        return undefined;
      });
      if (record !== undefined) found.push(record);
    }
    found.sort((a, b) => a.created.localeCompare(b.created) || a.snapshot_id.localeCompare(b.snapshot_id));
    return found.map(toSnapshot);
  }

  /**
   * Takes the snapshot of a volume whose record and image (`image`, of record.size bytes or more)
   * the caller has checked under the pool lock (an interrupted fence finished). The image is read
   * through the page cache, so whatever a loop device of the volume wrote before is in the copy.
   */
  async takeLocked(
    volume: VolumeRecord,
    image: string,
    snapshotId: string,
    options: SnapshotOptions = {},
  ): Promise<BlockDeviceSnapshot> {
    if (!ID_PATTERN.test(snapshotId)) {
      throw new StorageError('BACKEND_ERROR', `snapshot id ${JSON.stringify(snapshotId)} is not a lower-case UUID`);
    }
    await this.ensureDir();
    await this.sweepLocked();
    const target = this.imagePath(snapshotId);
    const tmp = tempName(target);
    const started = process.hrtime.bigint();
    let copy: CopyMethod;
    try {
      copy = await copyImage(this.options.exec, image, tmp);
      // The copy is a file of its own now (shared extents are copied on write): the volume may
      // take writes again while the copy is made durable.
      await options.pointInTimeFixed?.();
      const handle = await fs.open(tmp, 'r+');
      try {
        // A file larger than recorded (a resize that crashed before its record) is cut to the volume's size.
        if ((await handle.stat()).size !== volume.size) await handle.truncate(volume.size);
        await handle.sync();
        await handle.chmod(0o400);
      } finally {
        await handle.close();
      }
      await fs.rename(tmp, target);
      await fsyncDir(this.snapshotsPath);
    } catch (e) {
      await fs.rm(tmp, { force: true }).catch(() => undefined);
      if ((e as NodeJS.ErrnoException).code === 'ENOSPC') {
        throw new StorageError(
          'BACKEND_ERROR',
          `no space in pool ${this.options.rootPath} for a copy of volume ${volume.blockdevice_id}: ${errorMessage(e)}`,
          volume.blockdevice_id,
        );
      }
      throw e;
    }
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    const record: SnapshotRecord = {
      version: 1,
      snapshot_id: snapshotId,
      dataset_id: volume.dataset_id,
      source_blockdevice_id: volume.blockdevice_id,
      size: volume.size,
      created: new Date().toISOString(),
      copy,
    };
    await writeFileAtomic(this.recordPath(snapshotId), JSON.stringify(record, null, 2) + '\n');
    this.options.logger.info('snapshot taken', {
      snapshotId,
      blockdeviceId: volume.blockdevice_id,
      datasetId: volume.dataset_id,
      size: volume.size,
      copy,
      copyMs: Math.round(ms * 10) / 10,
    });
    return toSnapshot(record);
  }

  /** Removes the snapshot: its record first (then it no longer exists), then its image. Idempotent. */
  async destroyLocked(snapshotId: string): Promise<void> {
    if (!ID_PATTERN.test(snapshotId)) return;
    await this.ensureDir();
    const existed = await fs.rm(this.recordPath(snapshotId)).then(
      () => true,
      (e: unknown) => {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
        throw e;
      },
    );
    await fs.rm(this.imagePath(snapshotId), { force: true });
    await fsyncDir(this.snapshotsPath);
    await this.sweepLocked();
    if (existed) this.options.logger.info('snapshot destroyed', { snapshotId });
  }

  /** Removes what a crashed take or destroy left: temps, and images without a record. */
  private async sweepLocked(): Promise<void> {
    const names = await fs.readdir(this.snapshotsPath);
    let removed = false;
    for (const name of names) {
      const image = /^(.+)\.img$/.exec(name);
      const stale = TEMP_PATTERN.test(name) || (image !== null && !names.includes(`${image[1]}.json`));
      if (!stale) continue;
      await fs.rm(path.join(this.snapshotsPath, name), { force: true });
      removed = true;
      this.options.logger.warn('removed what an interrupted snapshot left', { file: name });
    }
    if (removed) await fsyncDir(this.snapshotsPath);
  }

  private recordPath(snapshotId: string): string {
    return path.join(this.snapshotsPath, `${snapshotId}.json`);
  }

  private async readRecord(snapshotId: string): Promise<SnapshotRecord | undefined> {
    let text: string;
    try {
      text = await fs.readFile(this.recordPath(snapshotId), 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new StorageError('BACKEND_ERROR', `cannot read the record of snapshot ${snapshotId}: ${errorMessage(e)}`);
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (e) {
      throw new StorageError(
        'CORRUPT_RECORD',
        `snapshot record ${this.recordPath(snapshotId)} is not valid JSON: ${errorMessage(e)}`,
      );
    }
    const parsed = SnapshotRecord.safeParse(json);
    if (!parsed.success || parsed.data.snapshot_id !== snapshotId) {
      const issues = parsed.success
        ? `snapshot_id ${parsed.data.snapshot_id} does not match its file name`
        : parsed.error.issues.map((i) => `${i.path.join('.') || '(top level)'}: ${i.message}`).join('; ');
      throw new StorageError(
        'CORRUPT_RECORD',
        `snapshot record ${this.recordPath(snapshotId)} is malformed: ${issues}`,
      );
    }
    return parsed.data;
  }

  private ensureDir(): Promise<void> {
    this.dirReady ??= fs.mkdir(this.snapshotsPath, { recursive: true }).then(
      () => undefined,
      (e: unknown) => {
        this.dirReady = undefined;
        throw new StorageError('BACKEND_ERROR', `cannot create snapshot directory ${this.snapshotsPath}: ${String(e)}`);
      },
    );
    return this.dirReady;
  }
}

export function unknownSnapshot(snapshotId: string): StorageError {
  return new StorageError('UNKNOWN_SNAPSHOT', `no snapshot with id ${JSON.stringify(snapshotId)}`);
}

function toSnapshot(record: SnapshotRecord): BlockDeviceSnapshot {
  return {
    snapshotId: record.snapshot_id,
    backendId: record.snapshot_id,
    datasetId: record.dataset_id,
    sourceBlockdeviceId: record.source_blockdevice_id,
    size: record.size,
    createdAt: record.created,
    // The record is written last: a listed snapshot is whole.
    status: 'ready',
  };
}

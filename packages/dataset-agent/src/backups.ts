/**
 * Backups to object storage and restores, the agent's part (issue 20).
 *
 * Backups: a backup request is a configured snapshot carrying its target (DesiredSnapshot.backup).
 * The source dataset's primary takes the snapshot as any other (frozen: snapshotChanges.ts);
 * then this node's BackupRunner reads the snapshot's data (driver.openSnapshot) and streams it
 * to the target with @flocker/backup (incremental against the dataset's newest backup there),
 * keeps the newest `keep`, and reports the backup's state in the node report. The control
 * service deletes the snapshot once the report says done or failed. One backup runs at a time.
 * A run cut off (kill -9) is simply run again at the next start: a backup whose manifest is
 * already stored is found (done), chunks already uploaded are not sent again.
 *
 * Restores are actions (calculateChanges: restore) that call restoreOnto.
 *
 * Pure: backupSettingsOf, backupJobs. I/O: BackupRunner, restoreOnto.
 */
import {
  backupVolume,
  isBackupError,
  latestBackup,
  listBackups,
  pruneBackups,
  restoreVolume,
  S3ObjectStore,
  type ObjectStore,
} from '@flocker/backup';
import type { ReportedBackup } from '@flocker/api';
import type { BlockDeviceApi, BlockDeviceSnapshot } from '@flocker/storage-drivers';
import type winston from 'winston';
import type { AgentConfig } from './config';
import { AgentError, errorCode, errorMessage } from './errors';
import type { Action, DesiredState } from './LocalState';

/** Where the S3 service is and who we are to it; the bucket and prefix are each backup's target. */
export interface BackupSettings {
  readonly endpoint?: string;
  readonly region?: string;
  readonly credentials?: { readonly accessKeyId: string; readonly secretAccessKey: string };
  readonly forcePathStyle?: boolean;
}

/**
 * The agent's S3 settings: agent.yml's `backup:` section, completed from the standard AWS_*
 * environment variables. Without the section, only credentials in the environment enable
 * backups (undefined otherwise: this agent runs no backups or restores).
 */
export function backupSettingsOf(
  section: AgentConfig['backup'],
  env: Readonly<Record<string, string | undefined>>,
): BackupSettings | undefined {
  const e = (name: string): string | undefined => (env[name] !== undefined && env[name] !== '' ? env[name] : undefined);
  const accessKeyId = section?.access_key_id ?? e('AWS_ACCESS_KEY_ID');
  const secretAccessKey = section?.secret_access_key ?? e('AWS_SECRET_ACCESS_KEY');
  if (section === undefined && (accessKeyId === undefined || secretAccessKey === undefined)) return undefined;
  const endpoint = section?.endpoint ?? e('AWS_ENDPOINT_URL_S3') ?? e('AWS_ENDPOINT_URL');
  const region = section?.region ?? e('AWS_REGION') ?? e('AWS_DEFAULT_REGION');
  return {
    ...(endpoint !== undefined ? { endpoint } : {}),
    ...(region !== undefined ? { region } : {}),
    ...(accessKeyId !== undefined && secretAccessKey !== undefined
      ? { credentials: { accessKeyId, secretAccessKey } }
      : {}),
    ...(section?.force_path_style !== undefined ? { forcePathStyle: section.force_path_style } : {}),
  };
}

export function s3StoreFor(settings: BackupSettings, target: string): ObjectStore {
  return new S3ObjectStore({ url: target, ...settings });
}

/** A backup this node is to run. */
export interface BackupJob {
  readonly backupId: string;
  readonly datasetId: string;
  readonly target: string;
  readonly keep?: number;
}

/**
 * What this node is to do about the configured backups: `ready` (its snapshot is held and
 * ready: run it), `pending` (not taken yet), `orphaned` (the dataset was deleted before its
 * snapshot was taken: it never will be). A backup is this node's when its dataset's primary
 * is this node (the node that takes the snapshot). Nothing is `ready` while the backend's
 * snapshots were not listed (held undefined).
 */
export function backupJobs(
  desired: DesiredState,
  held: readonly BlockDeviceSnapshot[] | undefined,
  self: string,
): { ready: BackupJob[]; pending: BackupJob[]; orphaned: BackupJob[] } {
  const out = { ready: [] as BackupJob[], pending: [] as BackupJob[], orphaned: [] as BackupJob[] };
  const datasets = new Map(desired.datasets.map((d) => [d.datasetId, d]));
  for (const s of desired.snapshots ?? []) {
    if (s.backup === undefined || s.deleted) continue;
    const dataset = datasets.get(s.datasetId);
    if (dataset?.primary !== self) continue;
    const job: BackupJob = {
      backupId: s.snapshotId,
      datasetId: s.datasetId,
      target: s.backup.target,
      ...(s.backup.keep !== undefined ? { keep: s.backup.keep } : {}),
    };
    const snapshot = held?.find((h) => h.snapshotId === s.snapshotId);
    if (snapshot?.status === 'ready') out.ready.push(job);
    else if (snapshot === undefined && held !== undefined && dataset.deleted) out.orphaned.push(job);
    else out.pending.push(job);
  }
  return out;
}

export interface BackupRunnerOptions {
  readonly driver: BlockDeviceApi;
  readonly settings: BackupSettings;
  readonly logger: winston.Logger;
  readonly now: () => number;
  /** A backup's state changed: report it. */
  readonly changed: () => void;
  /** The store of a target (default: S3ObjectStore with the settings). */
  readonly storeFor?: (target: string) => ObjectStore;
  /** How long stop() waits for an aborted backup to end before abandoning it (default STOP_WAIT_MS). */
  readonly stopWaitMs?: number;
}

/**
 * stop() waits this long for the running backup, once aborted, to end (T5 F2): a store call hung on S3 may not
 * end for minutes, and an agent stopping for a restart must not stay silent that long. What it abandons is run
 * again at the next start (resumable: chunks already stored are not sent again).
 */
export const STOP_WAIT_MS = 3000;

/** What a backup's state says beyond its identity. */
type BackupFields = Omit<ReportedBackup, 'backup_id' | 'dataset_id' | 'target' | 'updated_at'>;

/** Progress goes into the report at most this often per backup. */
const PROGRESS_MS = 1000;

/** Runs this node's backups one at a time and keeps their states for the node report. */
export class BackupRunner {
  private readonly states = new Map<string, ReportedBackup>();
  private readonly queue: BackupJob[] = [];
  /** The backup running; a cancelled one is dropped at once (its store calls end on its signal or time out). */
  private running: { id: string; abort: AbortController; done: Promise<void> } | undefined;
  private stopped = false;

  constructor(private readonly o: BackupRunnerOptions) {}

  /** Called at every full look with the desired state and the backend's snapshots. */
  update(desired: DesiredState, held: readonly BlockDeviceSnapshot[] | undefined, self: string): void {
    const { ready, pending, orphaned } = backupJobs(desired, held, self);
    for (const job of pending) if (!this.states.has(job.backupId)) this.set(job, { status: 'pending' });
    for (const job of orphaned) {
      if (this.states.get(job.backupId)?.status === 'failed') continue;
      this.set(job, {
        status: 'failed',
        error: { code: 'SNAPSHOT_SOURCE_DELETED', message: 'the dataset was deleted before its snapshot was taken' },
      });
    }
    for (const job of ready) {
      const status = this.states.get(job.backupId)?.status;
      if (status !== undefined && status !== 'pending') continue;
      if (this.queue.some((q) => q.backupId === job.backupId)) continue;
      this.queue.push(job);
    }
    // A backup whose snapshot is gone from the configuration is over: its state goes.
    this.cancelUnwanted(desired);
    const configured = new Set((desired.snapshots ?? []).map((s) => s.snapshotId));
    for (const id of [...this.states.keys()]) {
      if (!configured.has(id) && this.running?.id !== id) this.states.delete(id);
    }
    this.pump();
  }

  /**
   * Deleting a backup's request is the user's cancel (T5 F3): the running backup whose request is gone (or deleted)
   * is aborted and no longer holds up the others, which start at once; queued ones go. Called on every new
   * configuration too (no wait for a full look).
   */
  cancelUnwanted(desired: DesiredState): void {
    const wanted = new Set(
      (desired.snapshots ?? []).filter((s) => s.backup !== undefined && !s.deleted).map((s) => s.snapshotId),
    );
    for (let i = this.queue.length - 1; i >= 0; i--)
      if (!wanted.has(this.queue[i]?.backupId ?? '')) this.queue.splice(i, 1);
    const running = this.running;
    if (running === undefined || wanted.has(running.id)) return;
    this.running = undefined;
    running.abort.abort(new AgentError('ACTION_FAILED', 'the backup request was deleted'));
    this.states.delete(running.id);
    this.o.changed();
    this.o.logger.info('backup cancelled: its request was deleted', { backupId: running.id });
    this.pump();
  }

  /** The states for the node report (absent when none). */
  report(): ReportedBackup[] | undefined {
    return this.states.size > 0 ? [...this.states.values()] : undefined;
  }

  /**
   * Stops the running backup (its next start runs it again) and starts no other. Waits at most stopWaitMs for it
   * to end: a store call that ignores the abort (S3 hung) is abandoned, not waited for (T5 F2).
   */
  async stop(): Promise<void> {
    this.stopped = true;
    const running = this.running;
    if (running === undefined) return;
    running.abort.abort();
    let timer: NodeJS.Timeout | undefined;
    const ended = await Promise.race([
      running.done.then(() => true),
      new Promise<false>((resolve) => {
        timer = setTimeout(() => resolve(false), this.o.stopWaitMs ?? STOP_WAIT_MS);
      }),
    ]);
    clearTimeout(timer);
    if (!ended)
      this.o.logger.warn('stopping: the running backup did not end in time (its store is not answering); abandoned', {
        backupId: running.id,
        waitedMs: this.o.stopWaitMs ?? STOP_WAIT_MS,
      });
  }

  private set(job: BackupJob, fields: BackupFields): void {
    this.states.set(job.backupId, {
      backup_id: job.backupId,
      dataset_id: job.datasetId,
      target: job.target,
      ...fields,
      updated_at: new Date(this.o.now()).toISOString(),
    });
    this.o.changed();
  }

  private pump(): void {
    if (this.running !== undefined || this.stopped) return;
    const job = this.queue.shift();
    if (job === undefined) return;
    const abort = new AbortController();
    const entry = { id: job.backupId, abort, done: Promise.resolve() };
    entry.done = this.run(job, abort.signal).finally(() => {
      if (this.running !== entry) return; // cancelled: the next one started already
      this.running = undefined;
      this.pump();
    });
    this.running = entry;
  }

  private async run(job: BackupJob, signal: AbortSignal): Promise<void> {
    const { driver, logger } = this.o;
    const log = { backupId: job.backupId, datasetId: job.datasetId, target: job.target };
    // Once aborted (cancelled or stopping), nothing more is reported: a late progress would bring a cancelled one back.
    const report = (fields: BackupFields): void => {
      if (!signal.aborted) this.set(job, fields);
    };
    report({ status: 'running', bytes_read: 0 });
    logger.info('backup started', log);
    try {
      if (driver.openSnapshot === undefined)
        throw new AgentError('BACKUP_UNSUPPORTED', `the ${driver.backend} backend cannot read snapshots for a backup`);
      const store = (this.o.storeFor ?? ((t: string) => s3StoreFor(this.o.settings, t)))(job.target);
      // Stored already (a run killed after writing the manifest): done, nothing sent again.
      const stored = (await listBackups(store, job.datasetId, { signal })).find((b) => b.snapshotId === job.backupId);
      let manifest = stored?.manifest;
      if (manifest === undefined) {
        const previous = await latestBackup(store, job.datasetId, { signal });
        const opened = await driver.openSnapshot(job.backupId);
        let lastProgress = 0;
        try {
          manifest = await backupVolume(opened.path, store, {
            volumeId: job.datasetId,
            snapshotId: job.backupId,
            size: opened.size,
            label: 'flocker',
            ...(previous !== undefined ? { previous } : {}),
            signal,
            onProgress: (p) => {
              if (this.o.now() - lastProgress < PROGRESS_MS) return;
              lastProgress = this.o.now();
              report({ status: 'running', bytes_read: p.bytesRead, size: p.bytesTotal });
            },
          });
        } finally {
          await opened.release();
        }
      }
      signal.throwIfAborted();
      // Retention is secondary: the backup is stored either way (a failed prune is tried again next time). The
      // backup just stored is never pruned, whatever other nodes' clocks stamped theirs (T5 F1); what went wrong
      // is said in the backup's state (error, on a done backup: a warning), not only in the log.
      const warning = job.keep === undefined ? undefined : await this.prune(store, job, manifest.backupId, signal);
      signal.throwIfAborted();
      report({
        status: 'done',
        size: manifest.size,
        bytes_read: manifest.size,
        stored_backup_id: manifest.backupId,
        data_bytes: manifest.stats.dataBytes,
        uploaded_bytes: manifest.stats.uploadedBytes,
        ...(warning !== undefined ? { error: warning } : {}),
      });
      logger.info('backup done', { ...log, storedBackupId: manifest.backupId, stats: manifest.stats });
    } catch (e) {
      if (signal.aborted) {
        if (this.stopped) this.states.delete(job.backupId); // stopping: the next start runs it again
        return; // cancelled: update() dropped its state already
      }
      const code = isBackupError(e) ? e.code : errorCode(e);
      report({ status: 'failed', error: { code, message: errorMessage(e) } });
      logger.warn('backup failed', { ...log, code, error: errorMessage(e) });
    }
  }

  /** Keeps the job's newest `keep` backups (and the one just stored); a warning when not all went well. */
  private async prune(
    store: ObjectStore,
    job: BackupJob,
    stored: string,
    signal: AbortSignal,
  ): Promise<{ code: string; message: string } | undefined> {
    const log = { backupId: job.backupId, datasetId: job.datasetId, target: job.target, keep: job.keep };
    try {
      const result = await pruneBackups(store, job.datasetId, job.keep ?? 1, { protect: [stored], signal });
      if (result.warnings.length === 0) return undefined;
      this.o.logger.warn('pruning old backups: not all went well', { ...log, warnings: result.warnings });
      return { code: 'RETENTION_WARNING', message: `stored; keeping ${job.keep}: ${result.warnings.join('; ')}` };
    } catch (e) {
      signal.throwIfAborted();
      const code = isBackupError(e) ? e.code : errorCode(e);
      this.o.logger.warn('pruning old backups failed', { ...log, code, error: errorMessage(e) });
      return {
        code: 'RETENTION_FAILED',
        message: `stored, but older backups were not pruned (tried again by the next backup): ${code}: ${errorMessage(e)}`,
      };
    }
  }
}

/**
 * The restores running here, each abortable (T5 F3b): a restore hung on S3 holds its dataset's work until its
 * requests time out (minutes), so deleting the dataset, moving it away or stopping the agent aborts it. An aborted
 * restore never mounts; whatever it wrote is written over by the next restore, or goes with the volume.
 */
export class RestoreAborts {
  private readonly running = new Map<string, { readonly action: RestoreAction; readonly abort: AbortController }>();

  /** Runs a restore with a signal aborted by update() or abortAll(). */
  async run<T>(action: RestoreAction, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const entry = { action, abort: new AbortController() };
    this.running.set(action.datasetId, entry);
    try {
      return await fn(entry.abort.signal);
    } finally {
      if (this.running.get(action.datasetId) === entry) this.running.delete(action.datasetId);
    }
  }

  /** Aborts the restores the desired state no longer wants here; returns their dataset ids. */
  update(desired: DesiredState, self: string): string[] {
    const datasets = new Map(desired.datasets.map((d) => [d.datasetId, d]));
    const aborted: string[] = [];
    for (const [id, { action, abort }] of this.running) {
      const d = datasets.get(id);
      const why =
        d === undefined || d.deleted
          ? 'the dataset was deleted'
          : d.primary !== self
            ? 'the dataset was moved to another node'
            : d.restoreFrom?.backupId !== action.backupId || d.restoreFrom.target !== action.target
              ? 'the dataset is no longer to be restored from this backup'
              : undefined;
      if (why === undefined) continue;
      abort.abort(new AgentError('ACTION_FAILED', `restore abandoned: ${why}`));
      aborted.push(id);
    }
    return aborted;
  }

  /** Aborts every restore (the agent stops: the next start restores again). */
  abortAll(): void {
    for (const { abort } of this.running.values())
      abort.abort(new AgentError('ACTION_FAILED', 'restore abandoned: the agent is stopping'));
  }
}

type RestoreAction = Extract<Action, { kind: 'restore' }>;

/** Below this many free bytes in the pool, an I/O error of a restore's writes is taken for a full pool (T5 F7). */
export const POOL_FULL_BYTES = 64 * 1024 * 1024;

/**
 * Writes the stored backup onto the freshly created device, every chunk verified before it
 * is written (CHUNK_CORRUPT, CHUNK_MISSING, MANIFEST_CORRUPT, BACKUP_NOT_FOUND otherwise:
 * the action fails, the dataset's error says which object, and it is not mounted). The
 * device reads as zeros wherever no restore wrote, so holes are skipped. An EIO or ENOSPC
 * while the pool has (next to) no free space is said as such: POOL_FULL (a sparse pool's
 * writes fail with EIO on the loop device once its file system is full).
 */
export async function restoreOnto(
  store: ObjectStore,
  action: RestoreAction,
  logger: winston.Logger,
  options: { readonly signal?: AbortSignal; readonly poolFreeBytes?: () => Promise<number | undefined> } = {},
): Promise<void> {
  const log = { datasetId: action.datasetId, backupId: action.backupId, target: action.target };
  logger.info('restore started', log);
  try {
    // A BackupError fails the action with its own code (CHUNK_CORRUPT…), which the report carries.
    const result = await restoreVolume(store, action.backupId, action.devicePath, {
      assumeZeroed: true,
      ...(options.signal !== undefined ? { signal: options.signal } : {}),
    });
    logger.info('restore written', { ...log, bytesWritten: result.bytesWritten, size: result.manifest.size });
  } catch (e) {
    if (ioFailure(e) && options.poolFreeBytes !== undefined) {
      const full = poolFullError(e, await options.poolFreeBytes().catch(() => undefined));
      if (full !== undefined) throw full;
    }
    throw e;
  }
}

/** An EIO or ENOSPC, itself or as the cause of a BackupError (TARGET_UNUSABLE wraps a failed write). */
function ioFailure(e: unknown): boolean {
  for (let c: unknown = e, depth = 0; c !== undefined && c !== null && depth < 5; depth++) {
    const code = errorCode(c);
    if (code === 'EIO' || code === 'ENOSPC') return true;
    c = c instanceof Error ? c.cause : undefined;
  }
  return false;
}

/**
 * A restore's write that failed with EIO or ENOSPC while the pool has (next to) no free space: POOL_FULL, a message
 * saying so (T5 F7); undefined otherwise (free unknown, or space left: the error stands as it is).
 */
export function poolFullError(e: unknown, freeBytes: number | undefined): AgentError | undefined {
  if (!ioFailure(e) || freeBytes === undefined || freeBytes >= POOL_FULL_BYTES) return undefined;
  return new AgentError(
    'POOL_FULL',
    `the storage pool of this node is full (${freeBytes} bytes free): ${errorMessage(e)}; free space in the pool: the restore is retried`,
  );
}

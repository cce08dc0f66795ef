import { randomUUID } from 'node:crypto';
import { type Clock, errorMessage, pollUntil, systemClock } from '@flocker/runtime';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import winston from 'winston';
import { z } from 'zod';
import {
  roundUpToUnit,
  StorageError,
  type BlockDeviceApi,
  type BlockDeviceSnapshot,
  type BlockDeviceVolume,
  type CreateVolumeOptions,
  type DetachOptions,
  type OpenedSnapshot,
  isStorageError,
} from '../BlockDeviceApi';
import { isDeviceBusy } from '../blockdev';
import { execFileExec, type ExecFn } from '../exec';
import { refreshLoopCapacity } from '../losetup';
import { CinderClient, type HostConnector } from './CinderClient';
import { ConnectorSide } from './connector';
import { JsonHttp, OpenStackConnectionError, OpenStackHttpError, type RetryPolicy } from './http';
import { KeystoneSession, NoAuthTokenSource, type TokenSource } from './keystone';
import { RackspaceSession } from './rackspace';
import {
  CinderDriverOptionsSchema,
  isUuid,
  type CinderDriverOptions,
  type CinderDriverOptionsInput,
  type Attachment,
  type Snapshot,
  type Volume,
} from './schemas';

export const GIB = 1024 * 1024 * 1024;

export const META_CLUSTER = 'flocker-cluster-id';
export const META_DATASET = 'flocker-dataset-id';
export const META_PROFILE = 'flocker-profile';
/**
 * cinder mode: who holds the volume. Cinder shows an attachment's host only to
 * admins, so the holder is also written here once our attachment exists.
 */
export const META_ATTACHED_TO = 'flocker-attached-to';
/** cinder mode: the id of the attachment META_ATTACHED_TO names, written with it right after the reservation. */
export const META_ATTACHMENT_ID = 'flocker-attachment-id';
/**
 * cinder mode: `flocker-attaching-<instance>` is written before reserving the volume for that instance and
 * removed once the attachment is complete or gone. A non-admin cannot see whose a reservation is (Cinder shows
 * the connector's host to admins only), so this names the reserver of an attach killed before completion.
 */
export const META_ATTACHING_PREFIX = 'flocker-attaching-';
export function attachingMarkerKey(instanceId: string): string {
  return `${META_ATTACHING_PREFIX}${instanceId}`;
}
/** A fresh id per create call, so a create whose answer was lost can be found again. */
export const META_CREATE_TOKEN = 'flocker-create-token';

/** On a Cinder snapshot (issue 20): the Flocker snapshot id; with META_CLUSTER and META_DATASET as on volumes. */
export const META_SNAPSHOT = 'flocker-snapshot-id';
/**
 * On a temporary volume openSnapshot made (issue 20: backups read it): `backup-<snapshotId>`.
 * listVolumes never shows a volume carrying it, so the agent never adopts, mounts or destroys it.
 */
export const META_TEMPORARY = 'flocker-temporary';
/** On a temporary volume: the ISO time it was made (its age bounds how long it may stay; see openSnapshot). */
export const META_TEMPORARY_SINCE = 'flocker-temporary-since';
/** Default bound on a temporary volume's age before any node's openSnapshot deletes it as a crash's leftover. */
export const DEFAULT_TEMPORARY_MAX_AGE_MS = 24 * 3600_000;

/** The META_TEMPORARY value of a snapshot's temporary volume. */
export function temporaryMark(snapshotId: string): string {
  return `backup-${snapshotId}`;
}

/** Cinder snapshot states as BlockDeviceSnapshot statuses (backing-up: still usable for clones). */
export function cinderSnapshotStatus(status: string): BlockDeviceSnapshot['status'] {
  if (status === 'available' || status === 'backing-up') return 'ready';
  if (status === 'error' || status === 'error_deleting') return 'error';
  return 'creating';
}

/** Cinder answers UTC times without a zone ("2026-12-04T07:01:02.000000"); NaN for '' or garbage. */
export function cinderTime(s: string | null | undefined): number {
  if (!s) return NaN;
  return Date.parse(/Z|[+-]\d\d:?\d\d$/.test(s) ? s : `${s}Z`);
}

/** The driver's view of a Cinder snapshot; null for snapshots that are not ours to show. */
export function toBlockDeviceSnapshot(s: Snapshot): BlockDeviceSnapshot | null {
  const snapshotId = s.metadata[META_SNAPSHOT];
  const datasetId = s.metadata[META_DATASET];
  if (snapshotId === undefined || datasetId === undefined) return null;
  return {
    snapshotId,
    backendId: s.id,
    datasetId,
    sourceBlockdeviceId: s.volume_id,
    size: s.size * GIB,
    createdAt: new Date(cinderTime(s.created_at)).toISOString(),
    status: cinderSnapshotStatus(s.status),
  };
}

/** Volume states in which a volume is taken (reserved or attached) for a non-multiattach volume. */
const TAKEN_STATES = new Set(['reserved', 'attaching', 'in-use', 'detaching']);

export interface CinderDriverDeps {
  readonly logger?: winston.Logger;
  readonly exec?: ExecFn;
  readonly retry?: RetryPolicy;
  readonly sleep?: (ms: number) => Promise<void>;
  /** Monotonic and wall time (tests); deps.sleep, when given, replaces its sleep. */
  readonly clock?: Clock;
  /** The node's instance id when not configured (nova mode): defaults to asking the metadata service. */
  readonly discoverInstanceId?: () => Promise<string>;
  /** See openSnapshot: a temporary volume older than this is a crash's leftover. Default 24 h. */
  readonly temporaryMaxAgeMs?: number;
}

/** Stands for a holder that cannot be named (attached by someone else, or a crash before the metadata write). */
export const UNKNOWN_HOLDER = 'unknown';

/**
 * Who holds a volume: nobody without attachments (a stale metadata entry is
 * ignored); else the attachment's server id (Nova), its host (shown to admins
 * only), or our metadata entry.
 */
export function holderOf(v: Volume): string | null {
  const a = v.attachments[0];
  if (a === undefined) return null;
  return a.server_id ?? a.host_name ?? v.metadata[META_ATTACHED_TO] ?? UNKNOWN_HOLDER;
}

/** Volume states of a reservation not yet completed (it is not among the volume's attachments then). */
const PENDING_STATES = new Set(['reserved', 'attaching']);

/** Whether pendingHolder may name a holder: a pending volume carrying one of our attach marks. */
function mayHavePendingHolder(v: Volume): boolean {
  return (
    v.attachments.length === 0 &&
    PENDING_STATES.has(v.status) &&
    Object.keys(v.metadata).some((k) => k === META_ATTACHMENT_ID || k.startsWith(META_ATTACHING_PREFIX))
  );
}

/**
 * How far the clock dating a mark (Cinder's Date header as cinderAttach reads it, or an older agent's own clock)
 * and the one stamping attached_at (cinder-volume's) may differ for a mark to prove anything.
 */
export const MARK_CLOCK_SKEW_MS = 60_000;
/**
 * A marking attach has Cinder reserve within this of its mark's time: cinderAttach gives up (and drops the mark)
 * when the mark's write alone took MARK_WRITE_BUDGET_MS, and the POST /attachments is not re-sent after an
 * ambiguous failure. A reservation Cinder stamps later than this after a mark is not that mark's.
 */
export const MARK_RESERVES_WITHIN_MS = 120_000;
export const MARK_WRITE_BUDGET_MS = 30_000;

/** Whether an attach mark written at markValue (ISO, writer's clock) can be the maker of a reservation stamped at reservedAt. */
export function markProvesReservation(markValue: string, reservedAt: number): boolean {
  const markedAt = Date.parse(markValue);
  if (!Number.isFinite(markedAt) || !Number.isFinite(reservedAt)) return false;
  return (
    reservedAt >= markedAt - MARK_CLOCK_SKEW_MS && reservedAt <= markedAt + MARK_RESERVES_WITHIN_MS + MARK_CLOCK_SKEW_MS
  );
}

/**
 * The instance that made a volume's uncompleted reservation (an attach killed between reservation and
 * completion), or null when that cannot be proved. Proof: the one live reservation is the attachment id written
 * with the holder right after it was made; or, before that write, exactly one attach mark written shortly before
 * Cinder stamped the reservation (attached_at, from the detail view; see markProvesReservation). Every reserver of
 * this version marks before reserving and reserves within MARK_RESERVES_WITHIN_MS, so the reservation is that
 * marker's, unless an agent without marks (older) reserved within that time of a mark an attach killed before
 * reserving left: the one case still misnamed (a kill in a ~ms window and an older agent's attach of the same
 * volume within minutes). A stale mark (older) proves nothing; a reservation without attached_at, one of an older
 * agent (no mark) and two fitting marks are never named.
 */
export function pendingHolder(v: Volume, attachments: readonly Attachment[]): string | null {
  if (!mayHavePendingHolder(v)) return null;
  const live = attachments.filter((a) => a.status !== 'attached' && a.status !== 'detached');
  if (live.length !== 1 || live[0] === undefined) return null;
  const holder = v.metadata[META_ATTACHED_TO];
  if (holder !== undefined && v.metadata[META_ATTACHMENT_ID] === live[0].id) return holder;
  const reservedAt = cinderTime(live[0].attached_at);
  const marks = Object.entries(v.metadata).filter(
    ([k, value]) => k.startsWith(META_ATTACHING_PREFIX) && markProvesReservation(value, reservedAt),
  );
  if (marks.length !== 1 || marks[0] === undefined) return null;
  return marks[0][0].slice(META_ATTACHING_PREFIX.length) || null;
}

/** The driver's view of a Cinder volume; null for volumes that are not ours to show. */
export function toBlockDeviceVolume(v: Volume, pending: string | null = null): BlockDeviceVolume | null {
  const datasetId = v.metadata[META_DATASET];
  if (datasetId === undefined) return null;
  const profile = v.metadata[META_PROFILE];
  return {
    blockdeviceId: v.id,
    size: v.size * GIB,
    attachedTo: holderOf(v) ?? pending,
    datasetId,
    ...(profile !== undefined ? { profile } : {}),
  };
}

/** Classifies a failed attachment/attach request: Cinder refuses reserving a taken volume with 400 "Invalid volume". */
export function isAlreadyTakenError(e: unknown): e is OpenStackHttpError {
  return (
    e instanceof OpenStackHttpError &&
    (e.status === 400 || e.status === 409) &&
    /status must be|already attached|in-use|reserved|attaching|Invalid volume/i.test(e.serviceMessage)
  );
}

/**
 * OpenStack Cinder block storage. Volumes carry metadata flocker-cluster-id and
 * flocker-dataset-id (ownership; only this cluster's volumes are listed).
 *
 * attach_mode nova: the node is a Nova server, attached through Nova's
 * os-volume_attachments; the device is found by its virtio serial.
 * attach_mode cinder: bare metal; Cinder's attachments API (create with this
 * host's connector, connect locally, complete) and the host connector of
 * ./connector.ts. Cinder's conditional status update (available → reserved)
 * makes concurrent attaches safe: exactly one wins, the others get a 400.
 */
export class CinderDriver implements BlockDeviceApi {
  readonly backend = 'openstack';
  readonly options: CinderDriverOptions;
  readonly client: CinderClient;
  private readonly http: JsonHttp;
  private readonly logger: winston.Logger;
  private readonly exec: ExecFn;
  private readonly connectorSide: ConnectorSide;
  /** Deadlines on the monotonic clock; sleeps through deps.sleep (tests shorten them). */
  private readonly clock: Clock;
  private readonly discoverInstanceId: () => Promise<string>;
  private instanceId: Promise<string> | undefined;
  private readonly temporaryMaxAgeMs: number;
  /** cinder mode: volumes with an attach of this process between its mark and its end (their marks are live). */
  private readonly marking = new Set<string>();
  /** cinder mode: per volume, the attachEpoch its latest attach started or ended at (see clearOwnStaleMarks). */
  private readonly attachTouched = new Map<string, number>();
  private attachEpoch = 0;
  /** cinder mode: removals of our own stale marks in flight; an attach of the volume waits for its removal first. */
  private readonly clearing = new Map<string, Promise<void>>();

  constructor(input: CinderDriverOptionsInput, deps: CinderDriverDeps = {}) {
    const parsed = CinderDriverOptionsSchema.safeParse(input);
    if (!parsed.success)
      throw new Error(
        `invalid openstack dataset options: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
      );
    const o = parsed.data;
    this.options = o;
    this.logger = deps.logger ?? winston.createLogger({ silent: true });
    this.exec = deps.exec ?? execFileExec;
    const clock = deps.clock ?? systemClock;
    this.clock = deps.sleep === undefined ? clock : { ...clock, sleep: deps.sleep };
    this.http = new JsonHttp({
      verifyPeer: o.verify_peer,
      caPath: o.verify_ca_path,
      timeoutMs: o.request_timeout_seconds * 1000,
      retry: deps.retry,
      sleep: deps.sleep,
      onRetry: (info) => this.logger.warn('retrying OpenStack request', info),
    });
    const tokens: TokenSource =
      o.auth_plugin === 'noauth'
        ? new NoAuthTokenSource(o.project_id ?? '')
        : o.auth_plugin === 'rackspace'
          ? new RackspaceSession(this.http, o)
          : new KeystoneSession(this.http, o);
    this.client = new CinderClient(this.http, tokens, {
      region: o.region,
      interface: o.interface,
      cinderUrl: o.cinder_url,
      volumeServiceType: o.volume_service_type ?? (o.auth_plugin === 'rackspace' ? 'volume' : 'volumev3'),
    });
    this.connectorSide = new ConnectorSide({ exec: this.exec, nfsMountBase: o.nfs_mount_base });
    this.discoverInstanceId = deps.discoverInstanceId ?? (() => novaInstanceIdFromMetadataService(this.http));
    this.temporaryMaxAgeMs = deps.temporaryMaxAgeMs ?? DEFAULT_TEMPORARY_MAX_AGE_MS;
  }

  async close(): Promise<void> {
    await this.http.close();
  }

  allocationUnit(): number {
    return GIB;
  }

  /**
   * The configured availability_zone volumes are created in; undefined without one (volumes
   * go to Cinder's default zone, which this driver does not ask about: all nodes alike).
   */
  async storageZone(): Promise<string | undefined> {
    return this.options.availability_zone;
  }

  async computeInstanceId(): Promise<string> {
    if (this.options.instance_id !== undefined) return this.options.instance_id;
    this.instanceId ??= this.discoverInstanceId().catch((e: unknown) => {
      this.instanceId = undefined;
      throw e;
    });
    return this.instanceId;
  }

  private get timeoutMs(): number {
    return this.options.operation_timeout_seconds * 1000;
  }

  private checkSize(size: number): number {
    if (!Number.isFinite(size) || size <= 0)
      throw new StorageError('INVALID_SIZE', `size must be a positive number of bytes, got ${size}`);
    return roundUpToUnit(size, GIB);
  }

  /** The connector for the given instance (cinder mode: the instance id is the connector's host). */
  private connector(instanceId: string): HostConnector {
    const c = this.options.connector;
    return {
      host: instanceId,
      ...(c.ip !== undefined ? { ip: c.ip } : {}),
      ...(c.initiator !== undefined ? { initiator: c.initiator } : {}),
      platform: process.arch === 'x64' ? 'x86_64' : process.arch,
      os_type: 'linux',
      multipath: false,
    };
  }

  /** Any OpenStack failure as a StorageError with the service's message. */
  private wrap(e: unknown, what: string, blockdeviceId?: string): never {
    if (e instanceof StorageError) throw e;
    if (e instanceof OpenStackHttpError)
      throw new StorageError(
        'BACKEND_ERROR',
        `${what}: OpenStack answered HTTP ${e.status}: ${e.serviceMessage}`,
        blockdeviceId,
      );
    throw new StorageError('BACKEND_ERROR', `${what}: ${errorMessage(e)}`, blockdeviceId);
  }

  /** Ours (this cluster's) or UNKNOWN_VOLUME. */
  private async ownVolume(blockdeviceId: string): Promise<Volume> {
    if (!isUuid(blockdeviceId)) throw new StorageError('UNKNOWN_VOLUME', `no volume ${blockdeviceId}`, blockdeviceId);
    let v: Volume | null;
    try {
      v = await this.client.getVolume(blockdeviceId);
    } catch (e) {
      this.wrap(e, `looking up volume ${blockdeviceId}`, blockdeviceId);
    }
    if (
      v === null ||
      v.metadata[META_CLUSTER] !== this.options.cluster_id ||
      v.metadata[META_DATASET] === undefined ||
      v.status === 'deleting'
    ) {
      throw new StorageError(
        'UNKNOWN_VOLUME',
        `no volume ${blockdeviceId} in cluster ${this.options.cluster_id}`,
        blockdeviceId,
      );
    }
    return v;
  }

  /** Polls the volume until done() says so; null when it disappeared. */
  private async waitFor(
    id: string,
    what: string,
    done: (v: Volume) => boolean,
    failed: (v: Volume) => boolean = () => false,
  ): Promise<Volume> {
    let status = '';
    return pollUntil(
      async () => {
        const v = await this.client.getVolume(id);
        if (v === null)
          throw new StorageError('UNKNOWN_VOLUME', `volume ${id} disappeared while waiting for ${what}`, id);
        if (done(v)) return v;
        if (failed(v))
          throw new StorageError(
            'BACKEND_ERROR',
            `volume ${id} went to status ${v.status} while waiting for ${what}`,
            id,
          );
        status = v.status;
        return undefined;
      },
      {
        timeoutMs: this.timeoutMs,
        backoff: { initialMs: 100, maxMs: 2000, jitter: true },
        clock: this.clock,
        onTimeout: () => {
          throw new StorageError(
            'BACKEND_ERROR',
            `timed out after ${this.options.operation_timeout_seconds} s waiting for ${what} of volume ${id} (status ${status})`,
            id,
          );
        },
      },
    );
  }

  async createVolume(datasetId: string, size: number, options: CreateVolumeOptions = {}): Promise<BlockDeviceVolume> {
    return this.create(datasetId, size, options);
  }

  private async create(
    datasetId: string,
    size: number,
    options: CreateVolumeOptions,
    fromSnapshot?: string,
    extraMetadata: Record<string, string> = {},
  ): Promise<BlockDeviceVolume> {
    const bytes = this.checkSize(size);
    if (!datasetId) throw new StorageError('BACKEND_ERROR', 'a volume needs a dataset id');
    const createToken = randomUUID();
    const metadata: Record<string, string> = {
      [META_CLUSTER]: this.options.cluster_id,
      [META_DATASET]: datasetId,
      [META_CREATE_TOKEN]: createToken,
      ...(options.profile !== undefined ? { [META_PROFILE]: options.profile } : {}),
      ...extraMetadata,
    };
    const volumeType =
      options.profile === undefined
        ? undefined
        : (this.options.profile_volume_types[options.profile] ?? options.profile);
    let created: Volume | undefined;
    try {
      created = await this.client.createVolume({
        size: bytes / GIB,
        name: `flocker-${datasetId}`,
        description: `Flocker dataset ${datasetId}`,
        volumeType,
        availabilityZone: this.options.availability_zone,
        metadata,
        ...(fromSnapshot !== undefined ? { snapshotId: fromSnapshot } : {}),
      });
    } catch (e) {
      const ambiguous =
        e instanceof OpenStackConnectionError ? e.ambiguous : e instanceof OpenStackHttpError && e.status >= 500;
      if (!ambiguous) this.wrap(e, `creating a volume for dataset ${datasetId}`);
      // The answer was lost: the volume may exist all the same. Find it by our token rather than leak it.
      created = await this.findByCreateToken(createToken).catch(() => undefined);
      if (created === undefined) this.wrap(e, `creating a volume for dataset ${datasetId}`);
      this.logger.warn('adopting a volume whose create answer was lost', { blockdeviceId: created.id, datasetId });
    }
    const id = created.id;
    try {
      const ready = await this.waitFor(
        id,
        'creation',
        (v) => v.status === 'available',
        (v) => v.status === 'error',
      );
      const volume = toBlockDeviceVolume(ready);
      if (volume === null) throw new StorageError('BACKEND_ERROR', `volume ${id} lost its flocker metadata`, id);
      this.logger.info('volume created', {
        blockdeviceId: id,
        datasetId,
        size: volume.size,
        profile: options.profile,
        ...(fromSnapshot !== undefined ? { fromSnapshot } : {}),
      });
      return volume;
    } catch (e) {
      // Never leave a half-made volume behind: whatever went wrong, delete it.
      await this.client
        .deleteVolume(id)
        .catch((undo: unknown) =>
          this.logger.error('could not delete failed volume', { blockdeviceId: id, error: String(undo) }),
        );
      this.wrap(e, `creating volume ${id} for dataset ${datasetId}`, id);
    }
  }

  private async findByCreateToken(token: string): Promise<Volume | undefined> {
    // The create may still be in flight on the server: look a few times.
    return pollUntil(
      async () => {
        const found = await this.client.listVolumes({
          [META_CLUSTER]: this.options.cluster_id,
          [META_CREATE_TOKEN]: token,
        });
        // Two with one token cannot come from us, but keep one and drop any extra.
        for (const extra of found.slice(1)) await this.client.deleteVolume(extra.id).catch(() => undefined);
        return found[0];
      },
      {
        timeoutMs: Math.min(this.timeoutMs, 30_000),
        backoff: { initialMs: 250, maxMs: 4000, jitter: true },
        clock: this.clock,
        onTimeout: () => undefined,
      },
    );
  }

  async destroyVolume(blockdeviceId: string): Promise<void> {
    const v = await this.ownVolume(blockdeviceId);
    if (v.attachments.length > 0 || TAKEN_STATES.has(v.status)) {
      throw new StorageError(
        'VOLUME_ATTACHED',
        `volume ${blockdeviceId} is attached to ${holderOf(v) ?? '(an attachment in progress)'}; detach it before destroying it`,
        blockdeviceId,
      );
    }
    // Cinder keeps a snapshot only together with its volume (a delete is refused while it has any).
    const pinned = (await this.listSnapshots()).filter((s) => s.sourceBlockdeviceId === blockdeviceId);
    if (pinned.length > 0)
      throw new StorageError(
        'BACKEND_ERROR',
        `volume ${blockdeviceId} has snapshots (${pinned.map((s) => s.snapshotId).join(', ')}); Cinder deletes a volume only after its snapshots: destroy them first`,
        blockdeviceId,
      );
    try {
      await this.client.deleteVolume(blockdeviceId);
    } catch (e) {
      if (e instanceof OpenStackHttpError && e.status === 400) {
        const now = await this.client.getVolume(blockdeviceId).catch(() => null);
        if (now !== null && (now.attachments.length > 0 || TAKEN_STATES.has(now.status))) {
          throw new StorageError(
            'VOLUME_ATTACHED',
            `volume ${blockdeviceId} was attached meanwhile: ${e.serviceMessage}`,
            blockdeviceId,
          );
        }
      }
      this.wrap(e, `deleting volume ${blockdeviceId}`, blockdeviceId);
    }
    // Wait until it is gone, so nobody lists a volume we said was destroyed.
    try {
      await this.waitFor(
        blockdeviceId,
        'deletion',
        () => false,
        (x) => x.status === 'error_deleting',
      );
    } catch (e) {
      if (e instanceof StorageError && e.code === 'UNKNOWN_VOLUME') {
        this.logger.info('volume destroyed', { blockdeviceId });
        return;
      }
      this.wrap(e, `deleting volume ${blockdeviceId}`, blockdeviceId);
    }
  }

  /**
   * POST /snapshots with the Flocker metadata (force for an in-use volume), then waits until
   * Cinder has taken it ("available"): on Cinder the point in time is fixed by the backend
   * during "creating", so the caller's freeze must last that long. A snapshot that fails
   * ("error") is deleted and the call fails. Idempotent by the metadata (a lost answer is
   * found again, never taken twice).
   */
  async createSnapshot(blockdeviceId: string, snapshotId: string): Promise<BlockDeviceSnapshot> {
    let found = await this.findSnapshot(snapshotId);
    if (found === undefined) {
      const v = await this.ownVolume(blockdeviceId);
      const datasetId = v.metadata[META_DATASET] ?? '';
      const metadata = {
        [META_CLUSTER]: this.options.cluster_id,
        [META_DATASET]: datasetId,
        [META_SNAPSHOT]: snapshotId,
      };
      try {
        found = await this.client.createSnapshot({
          volumeId: blockdeviceId,
          name: `flocker-snapshot-${snapshotId}`,
          description: `Flocker snapshot ${snapshotId} of dataset ${datasetId}`,
          metadata,
          force: v.attachments.length > 0 || TAKEN_STATES.has(v.status),
        });
      } catch (e) {
        const ambiguous =
          e instanceof OpenStackConnectionError ? e.ambiguous : e instanceof OpenStackHttpError && e.status >= 500;
        if (!ambiguous) this.wrap(e, `snapshotting volume ${blockdeviceId}`, blockdeviceId);
        found = await this.findSnapshot(snapshotId).catch(() => undefined);
        if (found === undefined) this.wrap(e, `snapshotting volume ${blockdeviceId}`, blockdeviceId);
        this.logger.warn('adopting a snapshot whose create answer was lost', { snapshotId, backendId: found.id });
      }
    }
    const id = found.id;
    const settled = await this.waitForSnapshot(id, 'its creation', (s) => s.status !== 'creating');
    const snapshot = settled === null ? null : toBlockDeviceSnapshot(settled);
    if (settled === null || snapshot === null)
      throw new StorageError('BACKEND_ERROR', `snapshot ${snapshotId} (Cinder ${id}) disappeared while being taken`);
    if (snapshot.status === 'error') {
      await this.client
        .deleteSnapshot(id)
        .catch((undo: unknown) =>
          this.logger.error('could not delete a failed snapshot', { snapshotId, backendId: id, error: String(undo) }),
        );
      throw new StorageError(
        'BACKEND_ERROR',
        `Cinder failed snapshot ${snapshotId} of volume ${blockdeviceId} (status ${settled.status}; on an NFS backend an in-use volume needs Nova's assisted snapshots); it was deleted`,
        blockdeviceId,
      );
    }
    this.logger.info('snapshot taken', { snapshotId, backendId: id, blockdeviceId, status: settled.status });
    return snapshot;
  }

  async listSnapshots(): Promise<BlockDeviceSnapshot[]> {
    let snapshots: Snapshot[];
    try {
      snapshots = await this.client.listSnapshots({ [META_CLUSTER]: this.options.cluster_id });
    } catch (e) {
      this.wrap(e, 'listing snapshots');
    }
    const seen = new Set<string>();
    const listed: BlockDeviceSnapshot[] = [];
    for (const s of snapshots.filter((x) => x.status !== 'deleting').sort(byCreation)) {
      const snapshot = toBlockDeviceSnapshot(s);
      if (snapshot === null || seen.has(snapshot.snapshotId)) continue;
      seen.add(snapshot.snapshotId);
      listed.push(snapshot);
    }
    return listed;
  }

  /** DELETE of every Cinder snapshot carrying the id; waits until they are gone. Idempotent. */
  async destroySnapshot(snapshotId: string): Promise<void> {
    let found: Snapshot[];
    try {
      found = await this.snapshotsWithId(snapshotId);
      for (const s of found) await this.client.deleteSnapshot(s.id);
    } catch (e) {
      this.wrap(e, `deleting snapshot ${snapshotId}`);
    }
    for (const s of found) {
      const left = await this.waitForSnapshot(s.id, 'its deletion', (x) => x.status === 'error_deleting');
      if (left !== null)
        throw new StorageError('BACKEND_ERROR', `Cinder could not delete snapshot ${s.id} (status ${left.status})`);
    }
    if (found.length > 0) this.logger.info('snapshot destroyed', { snapshotId, backendIds: found.map((s) => s.id) });
  }

  /**
   * The snapshot's data on this host (issue 20: backups read it): a temporary volume made from it
   * at its size, with metadata flocker-temporary=backup-<snapshotId> (listVolumes never shows it),
   * attached here; release() detaches and deletes it. Crash safety: first, every temporary volume
   * of the cluster older than temporaryMaxAgeMs, or whose snapshot is gone, is detached (forced if
   * held elsewhere) and deleted; then a temporary volume of this snapshot that is unattached or
   * attached here is adopted instead of making another. One reader per snapshot per instance at a time.
   */
  async openSnapshot(snapshotId: string): Promise<OpenedSnapshot> {
    const me = await this.computeInstanceId();
    await this.cleanUpTemporaries(me);
    const found = await this.findSnapshot(snapshotId);
    const snapshot = found === undefined ? null : toBlockDeviceSnapshot(found);
    if (found === undefined || snapshot === null)
      throw new StorageError('UNKNOWN_SNAPSHOT', `no snapshot ${snapshotId} in cluster ${this.options.cluster_id}`);
    if (snapshot.status !== 'ready')
      throw new StorageError(
        snapshot.status === 'creating' ? 'SNAPSHOT_NOT_READY' : 'BACKEND_ERROR',
        `Cinder snapshot ${found.id} is "${found.status}": it cannot be read`,
      );
    const mark = temporaryMark(snapshotId);
    const candidates = (await this.temporaries()).filter((v) => v.metadata[META_TEMPORARY] === mark);
    const adopted =
      candidates.find((v) => holderOf(v) === me) ??
      candidates.find((v) => holderOf(v) === null && v.status === 'available');
    let id: string;
    if (adopted !== undefined) {
      id = adopted.id;
      this.logger.warn('adopting the temporary volume of a snapshot an earlier open left', { snapshotId, id });
    } else {
      const made = await this.create(snapshot.datasetId, snapshot.size, {}, found.id, {
        [META_TEMPORARY]: mark,
        [META_TEMPORARY_SINCE]: new Date().toISOString(),
      });
      id = made.blockdeviceId;
    }
    const release = async (): Promise<void> => {
      await this.removeTemporary(id, me);
      this.logger.info('temporary snapshot volume released', { snapshotId, blockdeviceId: id });
    };
    try {
      if (holderOf(await this.ownVolume(id)) === null) await this.attachVolume(id, me);
      const path = await this.getDevicePath(id);
      this.logger.info('snapshot opened on a temporary volume', { snapshotId, blockdeviceId: id, path });
      return { path, size: snapshot.size, release };
    } catch (e) {
      await release().catch((undo: unknown) =>
        this.logger.error('could not remove a temporary snapshot volume', { blockdeviceId: id, error: String(undo) }),
      );
      throw e;
    }
  }

  /** Ids of this cluster's temporary volumes (openSnapshot's), not being deleted. */
  async temporaryVolumes(): Promise<string[]> {
    return (await this.temporaries()).map((v) => v.id);
  }

  private async temporaries(): Promise<Volume[]> {
    let volumes: Volume[];
    try {
      volumes = await this.client.listVolumes({ [META_CLUSTER]: this.options.cluster_id });
    } catch (e) {
      this.wrap(e, 'listing temporary volumes');
    }
    return volumes.filter(
      (v) =>
        v.status !== 'deleting' && v.metadata[META_TEMPORARY] !== undefined && v.metadata[META_DATASET] !== undefined,
    );
  }

  /** Detaches (forced when held by another instance) and deletes a temporary volume; gone already is fine. */
  private async removeTemporary(blockdeviceId: string, me: string): Promise<void> {
    try {
      const v = await this.ownVolume(blockdeviceId);
      const holder = holderOf(v);
      if (holder !== null) {
        try {
          await this.detachVolume(blockdeviceId, { force: holder !== me });
        } catch (e) {
          if (!isStorageError(e, 'UNATTACHED')) throw e;
        }
      }
      await this.destroyVolume(blockdeviceId);
    } catch (e) {
      if (!isStorageError(e, 'UNKNOWN_VOLUME')) throw e;
    }
  }

  /**
   * A crash between openSnapshot and release leaves a temporary volume: one older than
   * temporaryMaxAgeMs, or whose snapshot no longer exists, is removed here. A failure is logged
   * (an open must not fail for somebody else's leftover) and tried again next time.
   */
  private async cleanUpTemporaries(me: string): Promise<void> {
    const temporaries = await this.temporaries();
    if (temporaries.length === 0) return;
    const live = new Set((await this.listSnapshots()).map((s) => s.snapshotId));
    const now = Date.now();
    for (const v of temporaries) {
      const mark = v.metadata[META_TEMPORARY] ?? '';
      const since = Date.parse(v.metadata[META_TEMPORARY_SINCE] ?? '') || 0;
      const orphaned = !live.has(mark.replace(/^backup-/, ''));
      const stale = now - since > this.temporaryMaxAgeMs;
      if (!orphaned && !stale) continue;
      try {
        await this.removeTemporary(v.id, me);
        this.logger.warn('removed a temporary snapshot volume a crash left', {
          blockdeviceId: v.id,
          mark,
          orphaned,
          stale,
        });
      } catch (e) {
        this.logger.warn('could not remove a leftover temporary snapshot volume', {
          blockdeviceId: v.id,
          mark,
          error: errorMessage(e),
        });
      }
    }
  }

  /** POST /volumes with snapshot_id: Cinder copies (or clones, backend-dependent) the snapshot's data. */
  async createVolumeFromSnapshot(
    snapshotId: string,
    datasetId: string,
    size: number,
    options: CreateVolumeOptions = {},
  ): Promise<BlockDeviceVolume> {
    const found = await this.findSnapshot(snapshotId);
    const snapshot = found === undefined ? null : toBlockDeviceSnapshot(found);
    if (found === undefined || snapshot === null)
      throw new StorageError('UNKNOWN_SNAPSHOT', `no snapshot ${snapshotId} in cluster ${this.options.cluster_id}`);
    const bytes = this.checkSize(size);
    if (bytes < snapshot.size)
      throw new StorageError(
        'INVALID_SIZE',
        `a volume made from snapshot ${snapshotId} needs at least its ${snapshot.size / GIB} GiB, not ${bytes / GIB} GiB`,
      );
    if (snapshot.status === 'creating')
      throw new StorageError('SNAPSHOT_NOT_READY', `Cinder snapshot ${found.id} is still "${found.status}"`);
    if (snapshot.status === 'error')
      throw new StorageError(
        'BACKEND_ERROR',
        `Cinder snapshot ${found.id} is "${found.status}": it cannot be cloned; destroy it and take another`,
      );
    // Made at the snapshot's size, then extended: Cinder's NFS driver (27) copies a snapshot into a
    // larger volume without growing the image, and then refuses to attach it (virtual size mismatch).
    const clone = await this.create(datasetId, snapshot.size, options, found.id);
    if (bytes === clone.size) return clone;
    try {
      const grown = await this.extend(clone.blockdeviceId, bytes / GIB, 'available');
      const volume = toBlockDeviceVolume(grown);
      if (volume === null) throw new StorageError('BACKEND_ERROR', `volume ${grown.id} lost its flocker metadata`);
      return volume;
    } catch (e) {
      // A clone of the wrong size must not stay: the caller looks for a volume of the dataset first.
      await this.client.deleteVolume(clone.blockdeviceId).catch((undo: unknown) =>
        this.logger.error('could not delete a clone that failed to grow', {
          blockdeviceId: clone.blockdeviceId,
          error: String(undo),
        }),
      );
      throw e;
    }
  }

  /** Every Cinder snapshot of this cluster carrying the Flocker snapshot id (not being deleted), oldest first. */
  private async snapshotsWithId(snapshotId: string): Promise<Snapshot[]> {
    const found = await this.client.listSnapshots({
      [META_CLUSTER]: this.options.cluster_id,
      [META_SNAPSHOT]: snapshotId,
    });
    return found.filter((s) => s.status !== 'deleting').sort(byCreation);
  }

  private async findSnapshot(snapshotId: string): Promise<Snapshot | undefined> {
    try {
      return (await this.snapshotsWithId(snapshotId))[0];
    } catch (e) {
      this.wrap(e, `looking up snapshot ${snapshotId}`);
    }
  }

  /** Polls the snapshot until done() says so; null once it is gone. */
  private async waitForSnapshot(id: string, what: string, done: (s: Snapshot) => boolean): Promise<Snapshot | null> {
    let status = '';
    return pollUntil(
      async () => {
        const s = await this.client.getSnapshot(id);
        if (s === null || done(s)) return s;
        status = s.status;
        return undefined;
      },
      {
        timeoutMs: this.timeoutMs,
        backoff: { initialMs: 100, maxMs: 2000, jitter: true },
        clock: this.clock,
        onTimeout: () => {
          throw new StorageError(
            'BACKEND_ERROR',
            `timed out after ${this.options.operation_timeout_seconds} s waiting for ${what} of snapshot ${id} (status ${status})`,
          );
        },
      },
    );
  }

  async attachVolume(blockdeviceId: string, instanceId: string): Promise<BlockDeviceVolume> {
    const v = await this.ownVolume(blockdeviceId);
    const pending = await this.pendingReservation(v);
    if (
      pending !== undefined &&
      pending.holder === instanceId &&
      this.options.attach_mode === 'cinder' &&
      instanceId === (await this.computeInstanceId())
    ) {
      // Our own attach was killed after reserving: finish it (nobody else can be using an uncompleted
      // reservation, and only this host makes its device).
      this.logger.warn('finishing an attach of this instance that was interrupted after its reservation', {
        blockdeviceId,
        attachmentId: pending.attachment.id,
      });
      await this.finishOwnAttachment(blockdeviceId, pending.attachment, instanceId);
      return this.attached(blockdeviceId, instanceId);
    }
    if (v.attachments.length > 0 || TAKEN_STATES.has(v.status)) {
      const holder = holderOf(v) ?? pending?.holder ?? null;
      throw new StorageError(
        'ALREADY_ATTACHED',
        `volume ${blockdeviceId} is already attached to ${holder === instanceId ? 'this instance ' : ''}${holder ?? '(an attachment in progress)'}`,
        blockdeviceId,
      );
    }
    if (v.status !== 'available')
      throw new StorageError(
        'BACKEND_ERROR',
        `volume ${blockdeviceId} cannot be attached in status ${v.status}`,
        blockdeviceId,
      );
    if (this.options.attach_mode === 'nova') await this.novaAttach(blockdeviceId, instanceId);
    else await this.cinderAttach(blockdeviceId, instanceId);
    return this.attached(blockdeviceId, instanceId);
  }

  /** Waits for the attachment to show and answers the attached volume. */
  private async attached(blockdeviceId: string, instanceId: string): Promise<BlockDeviceVolume> {
    const attached = await this.waitFor(
      blockdeviceId,
      'attachment',
      (x) => x.status === 'in-use' && holderOf(x) !== null,
      // In cinder mode the attachment is complete when we get here, so "available" means it was undone.
      (x) => x.status === 'error_attaching' || (this.options.attach_mode === 'cinder' && x.status === 'available'),
    );
    const volume = toBlockDeviceVolume(attached);
    if (volume === null)
      throw new StorageError('BACKEND_ERROR', `volume ${blockdeviceId} lost its flocker metadata`, blockdeviceId);
    this.logger.info('volume attached', { blockdeviceId, instanceId, mode: this.options.attach_mode });
    return volume;
  }

  private async novaAttach(blockdeviceId: string, instanceId: string): Promise<void> {
    try {
      await this.client.novaAttach(instanceId, blockdeviceId);
    } catch (e) {
      if (isAlreadyTakenError(e))
        throw new StorageError(
          'ALREADY_ATTACHED',
          `volume ${blockdeviceId} is already attached: ${e.serviceMessage}`,
          blockdeviceId,
        );
      this.wrap(e, `attaching volume ${blockdeviceId} to server ${instanceId}`, blockdeviceId);
    }
  }

  private async cinderAttach(blockdeviceId: string, instanceId: string): Promise<void> {
    this.marking.add(blockdeviceId);
    this.attachTouched.set(blockdeviceId, ++this.attachEpoch);
    try {
      await this.clearing.get(blockdeviceId);
      await this.markAndAttach(blockdeviceId, instanceId);
    } finally {
      this.marking.delete(blockdeviceId);
      this.attachTouched.set(blockdeviceId, ++this.attachEpoch);
    }
  }

  private async markAndAttach(blockdeviceId: string, instanceId: string): Promise<void> {
    const mark = attachingMarkerKey(instanceId);
    const started = this.clock.now();
    try {
      // Dated by Cinder's clock (which also stamps the reservation), so this host's clock does not matter to the
      // proof; this host's only when Cinder sends no Date.
      const markedAt = (await this.client.serverTime(blockdeviceId)) ?? this.clock.wallNow();
      // Before the reservation, so a kill right after it leaves the reserver named (see pendingHolder).
      await this.client.setVolumeMetadata(blockdeviceId, { [mark]: new Date(markedAt).toISOString() });
    } catch (e) {
      await this.dropMark(blockdeviceId, mark);
      this.wrap(e, `marking volume ${blockdeviceId} as being attached to ${instanceId}`, blockdeviceId);
    }
    // The mark proves only a reservation made soon after it (pendingHolder): after a slow write, do not reserve.
    const took = this.clock.now() - started;
    if (took > MARK_WRITE_BUDGET_MS) {
      await this.dropMark(blockdeviceId, mark);
      throw new StorageError(
        'BACKEND_ERROR',
        `Cinder took ${Math.round(took / 1000)} s to mark volume ${blockdeviceId} as being attached to ${instanceId}; not reserving it this time`,
        blockdeviceId,
      );
    }
    let attachment: Attachment;
    try {
      attachment = await this.client.createAttachment(blockdeviceId, null, this.connector(instanceId));
    } catch (e) {
      if (isAlreadyTakenError(e)) {
        await this.dropMark(blockdeviceId, mark);
        throw new StorageError(
          'ALREADY_ATTACHED',
          `volume ${blockdeviceId} is already attached: ${e.serviceMessage}`,
          blockdeviceId,
        );
      }
      await this.undoAttachment(blockdeviceId, undefined, e, instanceId);
      this.wrap(e, `attaching volume ${blockdeviceId} to ${instanceId}`, blockdeviceId);
    }
    await this.finishAttachment(blockdeviceId, attachment, instanceId);
  }

  /**
   * From our reservation on: name the holder, connect here (only this host can make the device; another
   * instance connects on its first getDevicePath), complete. On failure the reservation is undone.
   */
  private async finishAttachment(blockdeviceId: string, attachment: Attachment, instanceId: string): Promise<void> {
    try {
      // The reservation is ours alone (Cinder made it atomically), so writing the holder cannot race.
      await this.client.setVolumeMetadata(blockdeviceId, {
        [META_ATTACHED_TO]: instanceId,
        [META_ATTACHMENT_ID]: attachment.id,
      });
      if (instanceId === (await this.computeInstanceId())) {
        if (!attachment.connection_info)
          throw new StorageError(
            'BACKEND_ERROR',
            `Cinder gave no connection info for volume ${blockdeviceId}`,
            blockdeviceId,
          );
        const device = await this.connectorSide.connect(attachment.connection_info, blockdeviceId);
        this.logger.info('volume connected', { blockdeviceId, device });
      }
      await this.client.completeAttachment(attachment.id);
    } catch (e) {
      await this.undoAttachment(blockdeviceId, attachment.id, e, instanceId);
      this.wrap(e, `attaching volume ${blockdeviceId} to ${instanceId}`, blockdeviceId);
    }
    // Complete: the attachment is now among the volume's, so the mark is no longer needed.
    await this.dropMark(blockdeviceId, attachingMarkerKey(instanceId));
  }

  /** Finishes our own reservation a killed attach left (with its connection info, which the list omits). */
  private async finishOwnAttachment(blockdeviceId: string, pending: Attachment, instanceId: string): Promise<void> {
    let full: Attachment | null;
    try {
      full = pending.connection_info ? pending : await this.client.getAttachment(pending.id);
    } catch (e) {
      this.wrap(e, `reading attachment ${pending.id} of volume ${blockdeviceId}`, blockdeviceId);
    }
    await this.finishAttachment(blockdeviceId, full ?? pending, instanceId);
  }

  /** The uncompleted reservation of a volume and the instance that provably made it (see pendingHolder). */
  private async pendingReservation(v: Volume): Promise<{ attachment: Attachment; holder: string } | undefined> {
    if (this.options.attach_mode !== 'cinder' || !mayHavePendingHolder(v)) return undefined;
    let attachments: Attachment[];
    try {
      // The detail view: attached_at dates the reservation (a mark proves only one made soon after it).
      attachments = await this.client.listAttachmentDetails(v.id);
    } catch (e) {
      this.wrap(e, `listing the attachments of volume ${v.id}`, v.id);
    }
    const holder = pendingHolder(v, attachments);
    const attachment = attachments.find((a) => a.status !== 'attached' && a.status !== 'detached');
    return holder === null || attachment === undefined ? undefined : { attachment, holder };
  }

  /** Removes an attach mark; a failure only leaves it for the next attach or detach to overwrite/remove. */
  private async dropMark(blockdeviceId: string, key: string): Promise<void> {
    await this.client.deleteVolumeMetadataKey(blockdeviceId, key).catch((e: unknown) => {
      this.logger.warn('could not remove an attach mark', { blockdeviceId, key, error: errorMessage(e) });
    });
  }

  /**
   * After a failed attach: drop our attachment, including one Cinder made but
   * could not finish (it leaves the volume reserved), so the volume is free again.
   */
  private async undoAttachment(
    blockdeviceId: string,
    attachmentId: string | undefined,
    failure: unknown,
    instanceId: string,
  ): Promise<void> {
    const mark = attachingMarkerKey(instanceId);
    try {
      if (attachmentId !== undefined) {
        await this.client.deleteAttachment(attachmentId);
        // The holder entries only if still ours: a failover may have taken the volume meanwhile.
        const v = await this.client.getVolume(blockdeviceId);
        if (v !== null && v.metadata[META_ATTACHMENT_ID] === attachmentId) {
          await this.client.deleteVolumeMetadataKey(blockdeviceId, META_ATTACHED_TO);
          await this.client.deleteVolumeMetadataKey(blockdeviceId, META_ATTACHMENT_ID);
        }
        await this.client.deleteVolumeMetadataKey(blockdeviceId, mark);
        return;
      }
      // A refused reservation (4xx) made nothing. After a 5xx Cinder may have reserved the volume for us
      // and failed later; only one reservation can exist on a non-multiattach volume, so a reserved one is ours.
      if (!(failure instanceof OpenStackHttpError && failure.status < 500)) {
        const reserved = (await this.client.listAttachments(blockdeviceId)).filter((a) => a.status === 'reserved');
        for (const a of reserved) await this.client.deleteAttachment(a.id);
        // A reservation that may be ours is still there: the mark stays to name us (see pendingHolder).
        const live = (await this.client.listAttachments(blockdeviceId)).filter((a) => a.status !== 'detached');
        if (live.length > 0) return;
      }
      await this.client.deleteVolumeMetadataKey(blockdeviceId, mark);
    } catch (undo) {
      this.logger.error('could not undo a failed attachment', { blockdeviceId, attachmentId, error: String(undo) });
    }
  }

  async detachVolume(blockdeviceId: string, options: DetachOptions = {}): Promise<void> {
    const v = await this.ownVolume(blockdeviceId);
    // An attach killed after its reservation is detached like a complete one: by its holder, or forced.
    const holder = holderOf(v) ?? (await this.pendingReservation(v))?.holder ?? null;
    if (holder === null) {
      if (TAKEN_STATES.has(v.status))
        throw new StorageError(
          'BACKEND_ERROR',
          `volume ${blockdeviceId} is ${v.status}; try again when the attachment settles`,
          blockdeviceId,
        );
      throw new StorageError('UNATTACHED', `volume ${blockdeviceId} is not attached`, blockdeviceId);
    }
    const me = await this.computeInstanceId();
    const force = options.force === true;
    if (!force && holder !== me) {
      throw new StorageError(
        'NOT_ATTACHED_HERE',
        `volume ${blockdeviceId} is attached to instance ${holder}, not to this instance ${me}; use force to detach it from a dead instance`,
        blockdeviceId,
      );
    }
    try {
      if (this.options.attach_mode === 'nova') {
        if (!force) await this.refuseIfNovaDeviceBusy(blockdeviceId);
        await this.client.novaDetach(holder, blockdeviceId);
      } else {
        const attachments = await this.client.listAttachments(blockdeviceId);
        for (const a of attachments) {
          const full = a.connection_info ? a : await this.client.getAttachment(a.id);
          // Our local device goes first (busy → DEVICE_BUSY before Cinder is told anything).
          if (full?.connection_info)
            await this.connectorSide.disconnect(full.connection_info, blockdeviceId, force || holder !== me);
        }
        for (const a of attachments) await this.client.deleteAttachment(a.id);
        await this.client.deleteVolumeMetadataKey(blockdeviceId, META_ATTACHED_TO);
        await this.client.deleteVolumeMetadataKey(blockdeviceId, META_ATTACHMENT_ID);
        await this.client.deleteVolumeMetadataKey(blockdeviceId, attachingMarkerKey(holder));
      }
    } catch (e) {
      this.wrap(e, `detaching volume ${blockdeviceId}`, blockdeviceId);
    }
    try {
      await this.waitFor(
        blockdeviceId,
        'detachment',
        (x) => x.status === 'available' && x.attachments.length === 0,
        (x) => x.status === 'error_detaching',
      );
    } catch (e) {
      this.wrap(e, `detaching volume ${blockdeviceId}`, blockdeviceId);
    }
    this.logger.info('volume detached', { blockdeviceId, from: holder, force });
  }

  async listVolumes(): Promise<BlockDeviceVolume[]> {
    const epoch = this.attachEpoch;
    let volumes: Volume[];
    try {
      volumes = await this.client.listVolumes({ [META_CLUSTER]: this.options.cluster_id });
    } catch (e) {
      this.wrap(e, 'listing volumes');
    }
    await this.clearOwnStaleMarks(volumes, epoch);
    const shown = volumes.filter((v) => v.status !== 'deleting' && v.metadata[META_TEMPORARY] === undefined);
    // A reservation left by a killed attach shows no attachment: name its maker when provable (rare: one
    // attachment list per such volume), so its node attaches it and a failover can force-detach it.
    const pending = await Promise.all(shown.map(async (v) => (await this.pendingReservation(v))?.holder ?? null));
    return shown
      .map((v, i) => toBlockDeviceVolume(v, pending[i] ?? null))
      .filter((v): v is BlockDeviceVolume => v !== null);
  }

  /**
   * Removes this instance's attach marks from available volumes that no attach of this process was busy with
   * since the list began (epoch): an attach killed between its mark and its reservation leaves one, and nothing
   * else would ever remove it once the volume moves elsewhere. Only our own: another instance's may be a live
   * attach's. A failure is logged and tried again at the next list.
   */
  private async clearOwnStaleMarks(volumes: readonly Volume[], epoch: number): Promise<void> {
    const me = this.options.instance_id;
    if (this.options.attach_mode !== 'cinder' || me === undefined) return;
    const mark = attachingMarkerKey(me);
    const stale = volumes.filter(
      (v) =>
        v.metadata[mark] !== undefined &&
        v.status === 'available' &&
        v.attachments.length === 0 &&
        !this.marking.has(v.id) &&
        (this.attachTouched.get(v.id) ?? 0) <= epoch &&
        !this.clearing.has(v.id),
    );
    await Promise.all(
      stale.map(async (v) => {
        const removal = this.client.deleteVolumeMetadataKey(v.id, mark).then(
          () => {
            this.logger.warn('removed a stale attach mark of this instance', { blockdeviceId: v.id, key: mark });
          },
          (e: unknown) => {
            this.logger.warn('could not remove a stale attach mark', {
              blockdeviceId: v.id,
              key: mark,
              error: errorMessage(e),
            });
          },
        );
        this.clearing.set(v.id, removal);
        try {
          await removal;
        } finally {
          this.clearing.delete(v.id);
        }
      }),
    );
  }

  async getDevicePath(blockdeviceId: string): Promise<string> {
    let v = await this.ownVolume(blockdeviceId);
    const me = await this.computeInstanceId();
    const pending = await this.pendingReservation(v);
    if (pending?.holder === me) {
      // listVolumes named us for our own interrupted attach: finish it, then find the device as usual.
      await this.attachVolume(blockdeviceId, me);
      v = await this.ownVolume(blockdeviceId);
    }
    const holder = holderOf(v) ?? pending?.holder ?? null;
    if (holder === null) throw new StorageError('UNATTACHED', `volume ${blockdeviceId} is not attached`, blockdeviceId);
    if (holder !== me)
      throw new StorageError(
        'NOT_ATTACHED_HERE',
        `volume ${blockdeviceId} is attached to instance ${holder}, not to this instance ${me}`,
        blockdeviceId,
      );
    if (this.options.attach_mode === 'nova') return this.novaDevicePath(blockdeviceId);
    const attachmentId = v.attachments[0]?.attachment_id;
    try {
      const attachment = attachmentId ? await this.client.getAttachment(attachmentId) : null;
      if (!attachment?.connection_info)
        throw new StorageError(
          'BACKEND_ERROR',
          `Cinder has no connection info for the attachment of volume ${blockdeviceId}`,
          blockdeviceId,
        );
      // Connects if needed: after a reboot or crash the local device is re-created here.
      return await this.connectorSide.connect(attachment.connection_info, blockdeviceId);
    } catch (e) {
      this.wrap(e, `finding the device of volume ${blockdeviceId}`, blockdeviceId);
    }
  }

  /** Waits briefly for the device: udev may not have made the by-id link yet right after the attach. */
  private async novaDevicePath(blockdeviceId: string): Promise<string> {
    return pollUntil(async () => (await this.findNovaDevice(blockdeviceId)) ?? undefined, {
      timeoutMs: Math.min(this.timeoutMs, 60_000),
      intervalMs: 500,
      clock: this.clock,
      onTimeout: () => {
        throw new StorageError(
          'BACKEND_ERROR',
          `volume ${blockdeviceId} is attached here, but no /dev/disk/by-id link names it`,
          blockdeviceId,
        );
      },
    });
  }

  /** Nova exposes the volume id (its first 20 characters for virtio) as the disk serial. */
  private async findNovaDevice(blockdeviceId: string): Promise<string | null> {
    const names = [
      `virtio-${blockdeviceId.slice(0, 20)}`,
      `scsi-0QEMU_QEMU_HARDDISK_${blockdeviceId.slice(0, 20)}`,
      `nvme-OpenStack_Nova_${blockdeviceId}`,
    ];
    for (const name of names) {
      const real = await fs.realpath(path.join(this.options.device_by_id_dir, name)).catch(() => null);
      if (real !== null) return real;
    }
    return null;
  }

  private async refuseIfNovaDeviceBusy(blockdeviceId: string): Promise<void> {
    const device = await this.findNovaDevice(blockdeviceId);
    if (device !== null && (await isDeviceBusy(device))) {
      throw new StorageError(
        'DEVICE_BUSY',
        `volume ${blockdeviceId} is in use on ${device}; unmount it before detaching`,
        blockdeviceId,
      );
    }
  }

  async resizeVolume(blockdeviceId: string, size: number): Promise<BlockDeviceVolume> {
    const bytes = this.checkSize(size);
    const v = await this.ownVolume(blockdeviceId);
    const newGiB = bytes / GIB;
    const current = toBlockDeviceVolume(v);
    if (current === null) throw new StorageError('UNKNOWN_VOLUME', `no volume ${blockdeviceId}`, blockdeviceId);
    if (newGiB === v.size) return current;
    if (newGiB < v.size)
      throw new StorageError(
        'INVALID_SIZE',
        `volume ${blockdeviceId} is ${v.size} GiB; Cinder cannot shrink it to ${newGiB} GiB`,
        blockdeviceId,
      );
    const holder = holderOf(v);
    if (holder !== null && this.options.extend_attached === 'reattach') {
      // The backend cannot grow in-use volumes (e.g. NFS): detach, grow, attach again.
      await this.detachVolume(blockdeviceId);
      await this.extend(blockdeviceId, newGiB, 'available');
      return this.attachVolume(blockdeviceId, holder);
    }
    const grown = await this.extend(blockdeviceId, newGiB, holder === null ? 'available' : 'in-use');
    if (holder !== null && holder === (await this.computeInstanceId()) && this.options.attach_mode === 'cinder')
      await this.refreshLocalDevice(blockdeviceId);
    const volume = toBlockDeviceVolume(grown);
    if (volume === null)
      throw new StorageError('BACKEND_ERROR', `volume ${blockdeviceId} lost its flocker metadata`, blockdeviceId);
    return volume;
  }

  private async extend(blockdeviceId: string, newGiB: number, settled: string): Promise<Volume> {
    try {
      await this.client.extendVolume(blockdeviceId, newGiB);
      return await this.waitFor(
        blockdeviceId,
        'extension',
        (x) => x.status === settled && x.size >= newGiB,
        (x) => x.status.startsWith('error'),
      );
    } catch (e) {
      this.wrap(e, `extending volume ${blockdeviceId} to ${newGiB} GiB`, blockdeviceId);
    }
  }

  /** A loop device keeps its old size until told to re-read the file's. */
  private async refreshLocalDevice(blockdeviceId: string): Promise<void> {
    const v = await this.ownVolume(blockdeviceId);
    const attachmentId = v.attachments[0]?.attachment_id;
    const attachment = attachmentId ? await this.client.getAttachment(attachmentId) : null;
    if (!attachment?.connection_info) return;
    const device = await this.connectorSide.connectedDevice(attachment.connection_info, blockdeviceId);
    if (device !== null && /^\/dev\/loop\d+$/.test(device)) await refreshLoopCapacity(this.exec, device, blockdeviceId);
  }
}

/** The Nova server UUID from the metadata service (config drive not read). */
function byCreation(a: Snapshot, b: Snapshot): number {
  return a.created_at.localeCompare(b.created_at) || a.id.localeCompare(b.id);
}

async function novaInstanceIdFromMetadataService(http: JsonHttp): Promise<string> {
  const res = await http.request('GET', 'http://169.254.169.254/openstack/latest/meta_data.json');
  const parsed = z.object({ uuid: z.string() }).safeParse(res.body);
  const uuid = parsed.success ? parsed.data.uuid : undefined;
  if (uuid === undefined || !isUuid(uuid))
    throw new StorageError('BACKEND_ERROR', 'the metadata service gave no instance uuid; set instance_id in agent.yml');
  return uuid;
}

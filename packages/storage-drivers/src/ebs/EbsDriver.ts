import { createHash, randomUUID } from 'node:crypto';
import { backoffDelay, systemClock } from '@flocker/runtime';
import {
  AttachVolumeCommand,
  CreateSnapshotCommand,
  CreateVolumeCommand,
  type CreateVolumeCommandInput,
  DeleteSnapshotCommand,
  DeleteVolumeCommand,
  DescribeInstancesCommand,
  DescribeSnapshotsCommand,
  DescribeVolumesCommand,
  DetachVolumeCommand,
  EC2Client,
  type EC2ClientResolvedConfig,
  ModifyVolumeCommand,
  type ServiceInputTypes,
  type ServiceOutputTypes,
  type $Command,
  type Filter,
  type Snapshot,
  type Volume,
  type VolumeAttachment,
} from '@aws-sdk/client-ec2';
import winston from 'winston';
import {
  StorageError,
  type BlockDeviceApi,
  type BlockDeviceSnapshot,
  type BlockDeviceVolume,
  type CreateVolumeOptions,
  type DetachOptions,
  type OpenedSnapshot,
  type StorageErrorCode,
  isStorageError,
} from '../BlockDeviceApi';
import { linuxEbsHost, pickDeviceName, type EbsHost } from './devices';
import { awsErrorCode, isTransientAwsError, providerMessage } from './errors';
import { fetchInstanceIdFromImds } from './imds';
import { ebsDatasetConfigSchema, type EbsDatasetConfig } from './options';
import { GiB, volumeTypeForProfile } from './profiles';
import { defaultSleep, pollUntil } from './retry';

export const TAG_CLUSTER = 'flocker-cluster-id';
export const TAG_DATASET = 'flocker-dataset-id';
export const TAG_PROFILE = 'flocker-profile';
/** A per-createVolume token, so a create whose answer was lost can be found and adopted. */
export const TAG_CREATE_TOKEN = 'flocker-create-token';
/** On an EBS snapshot: the Flocker snapshot id (issue 20); with TAG_CLUSTER and TAG_DATASET as on volumes. */
export const TAG_SNAPSHOT = 'flocker-snapshot-id';
/** On an EBS snapshot: the volume it was taken of (EC2's own VolumeId may name a deleted volume oddly). */
export const TAG_SOURCE_VOLUME = 'flocker-source-volume-id';
/**
 * On a temporary volume openSnapshot made (issue 20: backups read it): `backup-<snapshotId>`.
 * listVolumes never shows a volume carrying it, so the agent never adopts, mounts or destroys it.
 */
export const TAG_TEMPORARY = 'flocker-temporary';
/** On a temporary volume: the ISO time it was made (its age bounds how long it may stay; see openSnapshot). */
export const TAG_TEMPORARY_SINCE = 'flocker-temporary-since';

/** The TAG_TEMPORARY value of a snapshot's temporary volume. */
export function temporaryMark(snapshotId: string): string {
  return `backup-${snapshotId}`;
}

/** EBS snapshot states as BlockDeviceSnapshot statuses: pending (copying to S3, not clonable) is "creating". */
export function snapshotStatus(state: string | undefined): BlockDeviceSnapshot['status'] {
  if (state === 'completed') return 'ready';
  if (state === 'error') return 'error';
  return 'creating';
}

/** gp3/sc1 limit; larger requests fail up front instead of at AWS. */
export const MAX_VOLUME_GIB = 16_384;

const VOLUME_ID = /^vol-[0-9a-f]{8,17}$/;

/**
 * Waits between DescribeInstances asks while EC2 answers NotFound for the metadata service's instance id
 * (review FR F9): 30 s in all, as EC2's eventual consistency for a launched instance is documented in seconds.
 */
export const IMDS_NOT_FOUND_RETRY_DELAYS_MS: readonly number[] = [1_000, 2_000, 4_000, 8_000, 15_000];

/** Generations of an onlyVolume create's token tried before falling back to a random token (the old way). */
export const ONLY_VOLUME_GENERATIONS = 8;
/** A CreateVolume answer made this long before the request replays an earlier create of its token. */
export const REPLAY_AGE_MS = 10 * 60_000;

/** What an onlyVolume create's token stands for (with the cluster and zone): EC2 must see the same request again. */
export interface OnlyVolumeParams {
  readonly datasetId: string;
  readonly sizeGiB: number;
  readonly profile?: string;
  readonly fromSnapshot?: string;
}

/**
 * The ClientToken (and create-token tag) of an onlyVolume create: the same for every agent and every restart
 * creating the dataset's volume with these parameters, so EC2's ClientToken idempotency answers a retry, a
 * restarted agent's retry or another host's create with the first volume. The generation moves on once a
 * token's volume is gone (see createOnlyVolume). At most 64 ASCII characters (EC2's limit).
 */
export function onlyVolumeToken(
  config: Pick<EbsDatasetConfig, 'cluster_id' | 'zone'>,
  params: OnlyVolumeParams,
  generation: number,
): string {
  const digest = createHash('sha256')
    .update(
      JSON.stringify([
        'flocker-ebs-only-volume-1',
        config.cluster_id,
        config.zone,
        params.datasetId,
        params.sizeGiB,
        params.profile ?? null,
        params.fromSnapshot ?? null,
        generation,
      ]),
    )
    .digest('hex');
  return `fov1-${digest.slice(0, 56)}`;
}

export interface EbsTiming {
  /** Attempts per EC2 call when errors are transient (throttling, 5xx, network). */
  readonly maxAttempts: number;
  readonly retryBaseMs: number;
  readonly retryMaxMs: number;
  /** Polling of volume state transitions. */
  readonly pollBaseMs: number;
  readonly pollMaxMs: number;
  /** Bound on waiting for creating→available, attaching→attached, detaching→available, deleting→gone. */
  readonly stateTimeoutMs: number;
  /** Bound on waiting for the block device to appear on (or leave) this host. */
  readonly deviceTimeoutMs: number;
  /** Per HTTP request to EC2. */
  readonly requestTimeoutMs: number;
  /** How long a volume EC2 named may be missing from DescribeVolumes before it counts as gone (listing lag). */
  readonly listingLagMs: number;
  /** DescribeVolumes MaxResults (5…500). */
  readonly pageSize: number;
  /**
   * A temporary volume (openSnapshot) older than this is taken for a crash's leftover and deleted
   * by the next openSnapshot on any node: it bounds how long one backup may read a snapshot.
   */
  readonly temporaryMaxAgeMs: number;
}

export const DEFAULT_EBS_TIMING: EbsTiming = {
  maxAttempts: 8,
  retryBaseMs: 250,
  retryMaxMs: 20_000,
  pollBaseMs: 500,
  pollMaxMs: 5_000,
  stateTimeoutMs: 300_000,
  deviceTimeoutMs: 120_000,
  requestTimeoutMs: 30_000,
  listingLagMs: 30_000,
  pageSize: 100,
  temporaryMaxAgeMs: 24 * 3600_000,
};

export interface EbsDriverOptions {
  /** The agent.yml `dataset:` section (backend: aws), validated again here. */
  readonly config: EbsDatasetConfig;
  /** Use this client instead of building one from config (tests add middleware to it). */
  readonly ec2?: EC2Client;
  /** Host side: finding the block device, busy checks. Default: /dev and /sys of this machine. */
  readonly host?: EbsHost;
  /** How to learn this instance's id when config.instance_id is absent. Default: IMDSv2. */
  readonly fetchInstanceId?: () => Promise<string>;
  readonly logger?: winston.Logger;
  readonly timing?: Partial<EbsTiming>;
  /** Injectable for deterministic tests. */
  readonly random?: () => number;
  readonly sleep?: (ms: number) => Promise<void>;
  /** Wall-clock milliseconds (tests): compared with EC2's CreateTime to tell a replayed CreateVolume answer. */
  readonly now?: () => number;
}

/** The EC2 client for a validated config: explicit keys if given, else the SDK's default chain (env, files, instance role). */
export function createEc2Client(
  config: EbsDatasetConfig,
  requestTimeoutMs = DEFAULT_EBS_TIMING.requestTimeoutMs,
): EC2Client {
  return new EC2Client({
    region: config.region,
    ...(config.endpoint === undefined ? {} : { endpoint: config.endpoint }),
    ...(config.access_key_id !== undefined && config.secret_access_key !== undefined
      ? {
          credentials: {
            accessKeyId: config.access_key_id,
            secretAccessKey: config.secret_access_key,
            ...(config.session_token === undefined ? {} : { sessionToken: config.session_token }),
          },
        }
      : {}),
    // The driver retries itself (bounded, jittered, with recovery checks for non-idempotent calls).
    maxAttempts: 1,
    // The driver bounds each request as a whole too (EbsDriver.send); these end the socket itself. Without
    // throwOnRequestTimeout, @smithy/node-http-handler 4.x only logs a warning at requestTimeout.
    requestHandler: {
      requestTimeout: requestTimeoutMs,
      throwOnRequestTimeout: true,
      connectionTimeout: Math.min(requestTimeoutMs, 10_000),
      socketTimeout: requestTimeoutMs,
    },
  });
}

/** The live attachment of a volume, if any ("detached" records are history). */
function attachmentOf(v: Volume): VolumeAttachment | undefined {
  return (v.Attachments ?? []).find((a) => a.State !== 'detached' && a.InstanceId !== undefined);
}

function tagOf(v: Pick<Volume, 'Tags'>, key: string): string | undefined {
  return v.Tags?.find((t) => t.Key === key)?.Value;
}

/** Runs tasks one after another per key (device-name choice on one instance). */
class KeyedMutex {
  private readonly tails = new Map<string, Promise<unknown>>();
  async run<T>(key: string, task: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(key) ?? Promise.resolve();
    const result = previous.catch(() => undefined).then(task);
    const tail = result.catch(() => undefined);
    this.tails.set(key, tail);
    try {
      return await result;
    } finally {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    }
  }
}

/**
 * AWS EBS volumes as BlockDeviceApi. Only volumes tagged with this cluster's
 * id are listed or touched; each carries its dataset id (and profile) in tags,
 * so EC2 itself is the only state. EC2 enforces single attachment: a second
 * AttachVolume fails with VolumeInUse/IncorrectState, mapped to ALREADY_ATTACHED.
 */
export class EbsDriver implements BlockDeviceApi {
  readonly backend = 'aws';
  readonly config: EbsDatasetConfig;
  private readonly ec2: EC2Client;
  private readonly host: EbsHost;
  private readonly logger: winston.Logger;
  private readonly timing: EbsTiming;
  private readonly random: () => number;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly fetchInstanceId: () => Promise<string>;
  private instanceIdPromise: Promise<string> | undefined;
  private readonly deviceMutex = new KeyedMutex();
  /**
   * The token of each create whose outcome is unknown (every answer lost, the volume not yet listed), by its
   * parameters: the next create of the same dataset with the same parameters uses it again, so EC2's ClientToken
   * idempotency (and the token tag) give the first volume back instead of a second one of the dataset.
   */
  private readonly uncertainCreates = new Map<string, string>();
  /** onlyVolume tokens EC2 answers with a dead volume or refuses (IdempotentParameterMismatch): next generation. */
  private readonly burntTokens = new Set<string>();
  /** Volumes this process deleted: a CreateVolume answer naming one replays a dead create. */
  private readonly deletedVolumes = new Set<string>();
  private readonly now: () => number;

  constructor(options: EbsDriverOptions) {
    this.config = ebsDatasetConfigSchema.parse(options.config);
    this.timing = { ...DEFAULT_EBS_TIMING, ...options.timing };
    if (this.timing.pageSize < 5 || this.timing.pageSize > 500)
      throw new Error('timing.pageSize must be within 5…500 (EC2 DescribeVolumes MaxResults)');
    this.ec2 = options.ec2 ?? createEc2Client(this.config, this.timing.requestTimeoutMs);
    this.host = options.host ?? linuxEbsHost();
    this.logger = options.logger ?? winston.createLogger({ silent: true });
    this.random = options.random ?? Math.random;
    this.sleep = options.sleep ?? defaultSleep;
    this.now = options.now ?? Date.now;
    this.fetchInstanceId = options.fetchInstanceId ?? (() => fetchInstanceIdFromImds());
  }

  allocationUnit(): number {
    return GiB;
  }

  /** 16 TiB: gp2/gp3/st1/sc1's limit, and what this driver creates (io2 Block Express would allow 64 TiB). */
  async maximumVolumeSize(): Promise<number> {
    return MAX_VOLUME_GIB * GiB;
  }

  /** The configured availability zone: volumes are created there and attach only to instances in it. */
  async storageZone(): Promise<string> {
    return this.config.zone;
  }

  /**
   * This instance's id (config, else IMDS), checked once against EC2: the agent learns it at start, so a wrong
   * `instance_id` or `zone` stops the start with a message naming the setting instead of failing every attach.
   */
  computeInstanceId(): Promise<string> {
    // Cache success only: a failed metadata fetch or a refused check is tried again next time.
    this.instanceIdPromise ??= (async () => {
      const id = this.config.instance_id ?? (await this.fetchInstanceId());
      await this.checkPlacement(id);
      return id;
    })().catch((e: unknown) => {
      this.instanceIdPromise = undefined;
      throw e;
    });
    return this.instanceIdPromise;
  }

  /**
   * Refuses an instance EC2 says does not exist (or is terminated) or that is in another zone than
   * config.zone (volumes are made there; EBS attaches only within a zone). One DescribeInstances, bounded
   * in time; when EC2 gives no clear answer the check is skipped with a warning (the start is not held up).
   * An id from the instance metadata service is this machine's own, so NotFound for it is first taken for
   * EC2's eventual consistency (a freshly launched instance): asked again for ~30 s before refusing.
   */
  private async checkPlacement(instanceId: string): Promise<void> {
    const fromImds = this.config.instance_id === undefined;
    const delays = fromImds ? IMDS_NOT_FOUND_RETRY_DELAYS_MS : [];
    let placement: { zone: string | undefined; state: string | undefined } | undefined;
    let waited = 0;
    for (let attempt = 0; ; attempt++) {
      try {
        placement = await this.describePlacement(instanceId);
      } catch (e) {
        const code = awsErrorCode(e);
        if (code !== 'InvalidInstanceID.NotFound' && code !== 'InvalidInstanceID.Malformed') {
          this.logger.warn('could not check this instance and dataset.zone with EC2 DescribeInstances; going on', {
            instanceId,
            error: providerMessage(e),
          });
          return;
        }
        placement = undefined;
        if (code === 'InvalidInstanceID.Malformed') break;
      }
      const delay = delays[attempt];
      if (placement !== undefined || delay === undefined) break;
      this.logger.warn('EC2 does not know this instance yet (a fresh one may take a while); asking again', {
        instanceId,
        inMs: delay,
      });
      await this.sleep(delay);
      waited += delay;
    }
    if (placement === undefined || placement.state === 'terminated') {
      const running = placement === undefined ? '' : 'running ';
      throw new StorageError(
        'BACKEND_ERROR',
        fromImds
          ? `the instance metadata service says this machine is instance ${instanceId}, but EC2 has no ${running}instance ${instanceId} in region ${this.config.region}${waited > 0 ? ` (asked for ${waited / 1000} s)` : ''}; set dataset.region to this machine's region`
          : `dataset.instance_id: EC2 has no ${running}instance ${instanceId} in region ${this.config.region}; set dataset.instance_id (and dataset.region) to this machine's instance`,
      );
    }
    if (placement.zone !== undefined && placement.zone !== this.config.zone)
      throw new StorageError(
        'BACKEND_ERROR',
        `dataset.zone: instance ${instanceId} is in zone ${placement.zone}, not in the configured zone ${this.config.zone} (EBS volumes attach only within their zone); set dataset.zone: ${placement.zone}`,
      );
  }

  /** One bounded DescribeInstances: the instance's zone and state, undefined when not listed. */
  private async describePlacement(
    instanceId: string,
  ): Promise<{ zone: string | undefined; state: string | undefined } | undefined> {
    const out = await this.send(
      new DescribeInstancesCommand({ InstanceIds: [instanceId] }),
      Math.min(this.timing.requestTimeoutMs, 5_000),
    );
    const found = (out.Reservations ?? []).flatMap((r) => r.Instances ?? []).find((i) => i.InstanceId === instanceId);
    return found && { zone: found.Placement?.AvailabilityZone, state: found.State?.Name };
  }

  async listVolumes(): Promise<BlockDeviceVolume[]> {
    const volumes = await this.describeAll([{ Name: `tag:${TAG_CLUSTER}`, Values: [this.config.cluster_id] }]);
    return volumes
      .filter(
        (v) =>
          this.isOurs(v) && tagOf(v, TAG_TEMPORARY) === undefined && v.State !== 'deleting' && v.State !== 'deleted',
      )
      .map((v) => this.toVolume(v));
  }

  async createVolume(datasetId: string, size: number, options: CreateVolumeOptions = {}): Promise<BlockDeviceVolume> {
    return this.create(datasetId, size, options);
  }

  /**
   * CreateSnapshot of the volume, tagged with the cluster, dataset and Flocker snapshot id. EBS
   * fixes the point in time when CreateSnapshot returns (the copy to S3 goes on while "pending",
   * listed as "creating"), so the caller's freeze need last only that long. Idempotent by the
   * snapshot tag (also after a lost answer); concurrent creates of one id may leave two EBS
   * snapshots: the oldest is the one answered, destroySnapshot deletes both.
   */
  async createSnapshot(blockdeviceId: string, snapshotId: string): Promise<BlockDeviceSnapshot> {
    const taken = await this.findSnapshot(snapshotId);
    if (taken !== undefined) return this.toSnapshot(taken);
    const v = await this.describeOwned(blockdeviceId);
    const datasetId = tagOf(v, TAG_DATASET) ?? '';
    const tags = [
      { Key: TAG_CLUSTER, Value: this.config.cluster_id },
      { Key: TAG_DATASET, Value: datasetId },
      { Key: TAG_SNAPSHOT, Value: snapshotId },
      { Key: TAG_SOURCE_VOLUME, Value: blockdeviceId },
      { Key: 'Name', Value: `flocker-snapshot-${snapshotId}` },
    ];
    let created: Snapshot;
    try {
      created = await this.call(
        'CreateSnapshot',
        () =>
          this.send(
            new CreateSnapshotCommand({
              VolumeId: blockdeviceId,
              Description: `Flocker snapshot ${snapshotId} of dataset ${datasetId}`,
              TagSpecifications: [{ ResourceType: 'snapshot', Tags: tags }],
            }),
          ),
        { recover: () => this.findSnapshot(snapshotId) },
      );
    } catch (e) {
      const adopted = isTransientAwsError(e) ? await this.findSnapshot(snapshotId).catch(() => undefined) : undefined;
      if (adopted === undefined) throw this.toStorageError(e, `snapshotting volume ${blockdeviceId}`, blockdeviceId);
      created = adopted;
    }
    // CreateSnapshot answers without the tags on some emulators: the answer is completed from what we sent.
    const snapshot = this.toSnapshot({ ...created, Tags: created.Tags?.length ? created.Tags : tags });
    this.logger.info('snapshot taken', {
      snapshotId,
      backendId: snapshot.backendId,
      blockdeviceId,
      datasetId,
      state: created.State,
    });
    return snapshot;
  }

  /** DescribeSnapshots of our own snapshots with this cluster's tag; one per Flocker snapshot id. */
  async listSnapshots(): Promise<BlockDeviceSnapshot[]> {
    const all = await this.describeSnapshots([{ Name: `tag:${TAG_CLUSTER}`, Values: [this.config.cluster_id] }]);
    const seen = new Set<string>();
    const listed: BlockDeviceSnapshot[] = [];
    for (const s of all) {
      const snapshot = this.toSnapshot(s);
      if (snapshot.snapshotId === '' || seen.has(snapshot.snapshotId)) continue;
      seen.add(snapshot.snapshotId);
      listed.push(snapshot);
    }
    return listed;
  }

  /** DeleteSnapshot of every EBS snapshot carrying the id; waits until none is listed. Idempotent. */
  async destroySnapshot(snapshotId: string): Promise<void> {
    const found = await this.describeSnapshots(this.snapshotFilters(snapshotId));
    for (const s of found) {
      const id = s.SnapshotId ?? '';
      try {
        await this.call('DeleteSnapshot', () => this.send(new DeleteSnapshotCommand({ SnapshotId: id })), {
          recover: async () =>
            (await this.describeSnapshots(this.snapshotFilters(snapshotId))).some((x) => x.SnapshotId === id)
              ? undefined
              : true,
        });
      } catch (e) {
        if (awsErrorCode(e) === 'InvalidSnapshot.NotFound') continue;
        throw this.toStorageError(e, `deleting snapshot ${id} (Flocker snapshot ${snapshotId})`);
      }
    }
    if (found.length === 0) return;
    await pollUntil(
      async () => ((await this.findSnapshot(snapshotId)) === undefined ? true : undefined),
      this.pollOptions(`snapshot ${snapshotId} to be deleted`),
    );
    this.logger.info('snapshot destroyed', { snapshotId, backendIds: found.map((s) => s.SnapshotId) });
  }

  /** CreateVolume with the snapshot's SnapshotId (EBS loads the data lazily from S3). */
  async createVolumeFromSnapshot(
    snapshotId: string,
    datasetId: string,
    size: number,
    options: CreateVolumeOptions = {},
  ): Promise<BlockDeviceVolume> {
    return this.fromSnapshot(snapshotId, datasetId, size, options);
  }

  /**
   * The snapshot's data on this host (issue 20: backups read it): a temporary volume made from it,
   * tagged TAG_TEMPORARY=backup-<snapshotId> (listVolumes never shows it), attached here; release()
   * detaches and deletes it. Crash safety: first, every temporary volume of the cluster older than
   * timing.temporaryMaxAgeMs, or whose snapshot is gone, is detached (forced if held elsewhere) and
   * deleted; then a temporary volume of this snapshot that is unattached or attached here is adopted
   * instead of making another. One reader per snapshot per instance at a time.
   */
  async openSnapshot(snapshotId: string): Promise<OpenedSnapshot> {
    const me = await this.computeInstanceId();
    await this.cleanUpTemporaries(me);
    const found = await this.findSnapshot(snapshotId);
    if (found === undefined)
      throw new StorageError('UNKNOWN_SNAPSHOT', `no snapshot ${snapshotId} in cluster ${this.config.cluster_id}`);
    const snapshot = this.toSnapshot(found);
    const mark = temporaryMark(snapshotId);
    const candidates = (await this.describeTemporaries()).filter(
      (v) => tagOf(v, TAG_TEMPORARY) === mark && v.State !== 'deleting',
    );
    const adopted =
      candidates.find((v) => attachmentOf(v)?.InstanceId === me) ??
      candidates.find((v) => attachmentOf(v) === undefined);
    let id: string;
    if (adopted?.VolumeId !== undefined) {
      id = adopted.VolumeId;
      this.logger.warn('adopting the temporary volume of a snapshot an earlier open left', { snapshotId, id });
    } else {
      const made = await this.fromSnapshot(snapshotId, snapshot.datasetId || 'backup', snapshot.size, {}, [
        { Key: TAG_TEMPORARY, Value: mark },
        { Key: TAG_TEMPORARY_SINCE, Value: new Date().toISOString() },
      ]);
      id = made.blockdeviceId;
    }
    const release = async (): Promise<void> => {
      await this.removeTemporary(id, me);
      this.logger.info('temporary snapshot volume released', { snapshotId, blockdeviceId: id });
    };
    try {
      const v = await this.describeOwned(id);
      if (attachmentOf(v) === undefined) await this.attachVolume(id, me);
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
    return (await this.describeTemporaries())
      .filter((v) => v.State !== 'deleting')
      .map((v) => v.VolumeId ?? '')
      .filter((id) => id !== '');
  }

  private async describeTemporaries(): Promise<Volume[]> {
    const all = await this.describeAll([{ Name: `tag:${TAG_CLUSTER}`, Values: [this.config.cluster_id] }]);
    return all.filter((v) => this.isOurs(v) && tagOf(v, TAG_TEMPORARY) !== undefined && v.State !== 'deleted');
  }

  /** Detaches (forced when held by another instance) and deletes a temporary volume; gone already is fine. */
  private async removeTemporary(blockdeviceId: string, me: string): Promise<void> {
    const v = await this.describeMaybe(blockdeviceId);
    if (v === undefined || v.State === 'deleting') return;
    const att = attachmentOf(v);
    if (att !== undefined) {
      try {
        await this.detachVolume(blockdeviceId, { force: att.InstanceId !== me });
      } catch (e) {
        if (!isStorageError(e, 'UNATTACHED') && !isStorageError(e, 'UNKNOWN_VOLUME')) throw e;
      }
    }
    try {
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
    const temporaries = (await this.describeTemporaries()).filter((v) => v.State !== 'deleting');
    if (temporaries.length === 0) return;
    const live = new Set((await this.listSnapshots()).map((s) => s.snapshotId));
    const now = Date.now();
    for (const v of temporaries) {
      const id = v.VolumeId ?? '';
      const mark = tagOf(v, TAG_TEMPORARY) ?? '';
      const since = Date.parse(tagOf(v, TAG_TEMPORARY_SINCE) ?? '') || (v.CreateTime?.getTime() ?? 0);
      const orphaned = !live.has(mark.replace(/^backup-/, ''));
      const stale = now - since > this.timing.temporaryMaxAgeMs;
      if (id === '' || (!orphaned && !stale)) continue;
      try {
        await this.removeTemporary(id, me);
        this.logger.warn('removed a temporary snapshot volume a crash left', {
          blockdeviceId: id,
          mark,
          orphaned,
          stale,
        });
      } catch (e) {
        this.logger.warn('could not remove a leftover temporary snapshot volume', {
          blockdeviceId: id,
          mark,
          error: providerMessage(e),
        });
      }
    }
  }

  private async fromSnapshot(
    snapshotId: string,
    datasetId: string,
    size: number,
    options: CreateVolumeOptions,
    extraTags: { Key: string; Value: string }[] = [],
  ): Promise<BlockDeviceVolume> {
    const found = await this.findSnapshot(snapshotId);
    if (found === undefined)
      throw new StorageError('UNKNOWN_SNAPSHOT', `no snapshot ${snapshotId} in cluster ${this.config.cluster_id}`);
    const snapshot = this.toSnapshot(found);
    const sizeGiB = this.sizeInGiB(size);
    if (sizeGiB * GiB < snapshot.size)
      throw new StorageError(
        'INVALID_SIZE',
        `a volume made from snapshot ${snapshotId} needs at least its ${snapshot.size / GiB} GiB, not ${sizeGiB} GiB`,
      );
    if (snapshot.status === 'creating')
      throw new StorageError('SNAPSHOT_NOT_READY', `EBS snapshot ${snapshot.backendId} is still "${found.State}"`);
    if (snapshot.status === 'error')
      throw new StorageError(
        'BACKEND_ERROR',
        `EBS snapshot ${snapshot.backendId} is in the "error" state: it cannot be cloned; destroy it and take another`,
      );
    return this.create(datasetId, size, options, snapshot.backendId, extraTags);
  }

  private async create(
    datasetId: string,
    size: number,
    options: CreateVolumeOptions,
    fromSnapshot?: string,
    extraTags: { Key: string; Value: string }[] = [],
  ): Promise<BlockDeviceVolume> {
    const sizeGiB = this.sizeInGiB(size);
    if (datasetId === '' || datasetId.length > 255)
      throw new StorageError('BACKEND_ERROR', `dataset id must be 1…255 characters to fit an EC2 tag`);
    if (options.onlyVolume === true && extraTags.length === 0) {
      const made = await this.createOnlyVolume(datasetId, sizeGiB, options, fromSnapshot);
      if (made !== undefined) return made;
    }
    const key = JSON.stringify([datasetId, sizeGiB, options.profile ?? null, fromSnapshot ?? null, extraTags]);
    let retried = this.uncertainCreates.get(key);
    let earlier: Volume | undefined;
    if (retried !== undefined) {
      earlier = (await this.byCreateToken(retried))[0];
      // Deleted since: EC2 would answer the token with that volume; start afresh.
      if (earlier?.State === 'deleting' || earlier?.State === 'deleted') [retried, earlier] = [undefined, undefined];
    }
    const token = retried ?? randomUUID();
    const findByToken = () => this.findByToken(token, datasetId);
    if (earlier !== undefined)
      this.logger.warn('adopting a volume whose create answer was lost', {
        blockdeviceId: earlier.VolumeId,
        datasetId,
      });
    let created: Volume | undefined = earlier;
    try {
      created ??= await this.sendCreate(
        this.createRequest(datasetId, sizeGiB, options, token, fromSnapshot, extraTags),
        findByToken,
      );
    } catch (e) {
      // The request may have reached EC2 even though every answer was lost.
      const adopted = isTransientAwsError(e) ? await findByToken().catch(() => undefined) : undefined;
      if (adopted === undefined) {
        // Lost answers: the volume may exist though not yet listed (EC2 lags); the next try keeps the token.
        if (isTransientAwsError(e)) this.uncertainCreates.set(key, token);
        else this.uncertainCreates.delete(key);
        throw this.toStorageError(e, `creating a ${sizeGiB} GiB volume for dataset ${datasetId}`);
      }
      created = adopted;
    }
    this.uncertainCreates.delete(key);
    return this.settleCreated(created, datasetId, sizeGiB, options, fromSnapshot);
  }

  /**
   * An onlyVolume create (the agent's): its token is onlyVolumeToken's, the same for every agent, restart and
   * host creating this dataset's volume with these parameters. First one DescribeVolumes by the tokens of all
   * generations: a live volume of one is adopted (no create); "error" ones are deleted; dead ones (deleting,
   * deleted) move the generation past theirs. Then CreateVolume with the generation's ClientToken: EC2 makes the
   * volume, or answers a retry (also after a restart, or another host's create) with the first one. An answer
   * naming a dead volume (listed dead, deleted by this process, or made over REPLAY_AGE_MS before the request and
   * no longer there) or IdempotentParameterMismatch burns the token: next generation. Undefined once every
   * generation is burnt (the caller then creates with a random token, as without onlyVolume).
   */
  private async createOnlyVolume(
    datasetId: string,
    sizeGiB: number,
    options: CreateVolumeOptions,
    fromSnapshot: string | undefined,
  ): Promise<BlockDeviceVolume | undefined> {
    const params = { datasetId, sizeGiB, ...(options.profile === undefined ? {} : { profile: options.profile }) };
    const tokens = Array.from({ length: ONLY_VOLUME_GENERATIONS }, (_, g) =>
      onlyVolumeToken(this.config, { ...params, ...(fromSnapshot === undefined ? {} : { fromSnapshot }) }, g),
    );
    const generationOf = (v: Volume) => tokens.indexOf(tagOf(v, TAG_CREATE_TOKEN) ?? '');
    const found = (
      await this.describeAll([
        { Name: `tag:${TAG_CLUSTER}`, Values: [this.config.cluster_id] },
        { Name: `tag:${TAG_CREATE_TOKEN}`, Values: tokens },
      ])
    )
      .filter((v) => generationOf(v) >= 0)
      .sort((a, b) => generationOf(a) - generationOf(b));
    const live = found.find((v) => v.State !== 'deleting' && v.State !== 'deleted' && v.State !== 'error');
    if (live !== undefined) {
      this.logger.warn('adopting the volume of an earlier create of this dataset with the same parameters', {
        blockdeviceId: live.VolumeId,
        datasetId,
      });
      return this.settleCreated(live, datasetId, sizeGiB, options, fromSnapshot, tokens[generationOf(live)]);
    }
    for (const v of found.filter((x) => x.State === 'error' && x.VolumeId !== undefined)) {
      const id = v.VolumeId ?? '';
      this.deletedVolumes.add(id);
      this.logger.warn('deleting a volume of this dataset left in the "error" state', { blockdeviceId: id, datasetId });
      await this.deleteFailedCreate(id, new Error(`volume ${id} is in the "error" state`));
    }
    const dead = new Set(found.map((v) => v.VolumeId));
    for (let g = Math.max(-1, ...found.map(generationOf)) + 1; g < tokens.length; g++) {
      const token = tokens[g] ?? '';
      if (this.burntTokens.has(token)) continue;
      const findByToken = () => this.findByToken(token, datasetId);
      const requestedAt = this.now();
      let created: Volume | undefined;
      try {
        created = await this.sendCreate(
          this.createRequest(datasetId, sizeGiB, options, token, fromSnapshot),
          findByToken,
        );
      } catch (e) {
        if (awsErrorCode(e) === 'IdempotentParameterMismatch') {
          this.logger.warn('EC2 knows this create token with other parameters; trying the next', { datasetId, g });
          this.burntTokens.add(token);
          continue;
        }
        // The request may have reached EC2 though every answer was lost; the next try sends the same token.
        const adopted = isTransientAwsError(e) ? await findByToken().catch(() => undefined) : undefined;
        if (adopted === undefined)
          throw this.toStorageError(e, `creating a ${sizeGiB} GiB volume for dataset ${datasetId}`);
        created = adopted;
      }
      if (await this.replaysDeadVolume(created, dead, requestedAt)) {
        this.logger.warn('EC2 answered this create token with a volume that is gone; trying the next', {
          blockdeviceId: created.VolumeId,
          datasetId,
          g,
        });
        this.burntTokens.add(token);
        continue;
      }
      return this.settleCreated(created, datasetId, sizeGiB, options, fromSnapshot, token);
    }
    this.logger.warn('every create token of this dataset is used up; creating with a random one', { datasetId });
    return undefined;
  }

  /** Whether a CreateVolume answer names a volume that is gone (see createOnlyVolume). */
  private async replaysDeadVolume(created: Volume, dead: ReadonlySet<string | undefined>, requestedAt: number) {
    const id = created.VolumeId;
    if (id === undefined) return false;
    if (dead.has(id) || this.deletedVolumes.has(id)) return true;
    if (created.State === 'deleting' || created.State === 'deleted') return true;
    const madeAt = created.CreateTime?.getTime();
    if (madeAt === undefined || madeAt >= requestedAt - REPLAY_AGE_MS) return false;
    // An answer made long before this request replays an earlier create: its volume may be long gone. A new one
    // (our clock far ahead of EC2's) shows up within EC2's listing lag: wait that long before calling it gone.
    const deadline = systemClock.now() + this.timing.listingLagMs;
    for (let attempt = 0; ; attempt++) {
      const v = await this.describeMaybe(id);
      if (v !== undefined) return v.State === 'deleting';
      if (systemClock.now() >= deadline) return true;
      const initialMs = this.timing.pollBaseMs;
      await this.sleep(backoffDelay(attempt, { initialMs, maxMs: this.timing.pollMaxMs, jitter: true }, this.random));
    }
  }

  private createRequest(
    datasetId: string,
    sizeGiB: number,
    options: CreateVolumeOptions,
    token: string,
    fromSnapshot?: string,
    extraTags: { Key: string; Value: string }[] = [],
  ): CreateVolumeCommandInput {
    const type = volumeTypeForProfile(options.profile, sizeGiB);
    const tags = [
      { Key: TAG_CLUSTER, Value: this.config.cluster_id },
      { Key: TAG_DATASET, Value: datasetId },
      { Key: 'Name', Value: `flocker-${datasetId}` },
      { Key: TAG_CREATE_TOKEN, Value: token },
      ...(options.profile === undefined ? [] : [{ Key: TAG_PROFILE, Value: options.profile }]),
      ...extraTags,
    ];
    return {
      AvailabilityZone: this.config.zone,
      Size: sizeGiB,
      VolumeType: type.VolumeType,
      ...(type.Iops === undefined ? {} : { Iops: type.Iops }),
      TagSpecifications: [{ ResourceType: 'volume', Tags: tags }],
      ...(fromSnapshot === undefined ? {} : { SnapshotId: fromSnapshot }),
      // EC2 makes CreateVolume idempotent per token; the token tag covers emulators that don't.
      ClientToken: token,
    };
  }

  private sendCreate(input: CreateVolumeCommandInput, recover: () => Promise<Volume | undefined>): Promise<Volume> {
    return this.call('CreateVolume', () => this.send(new CreateVolumeCommand(input)), { recover });
  }

  /** The (first) volume carrying the create token, logged as adopted. */
  private async findByToken(token: string, datasetId: string): Promise<Volume | undefined> {
    const found = await this.byCreateToken(token);
    if (found[0] !== undefined)
      this.logger.warn('adopting a volume whose create answer was lost', {
        blockdeviceId: found[0].VolumeId,
        datasetId,
      });
    return found[0];
  }

  /**
   * Waits for a created (or adopted) volume to be available. One that goes into "error" is deleted (EC2 never
   * repairs it; left tagged, the agent would take it for the dataset's volume and try to attach it for ever).
   * With an onlyVolume token, a failed wait burns it (the next create moves on, unless the volume shows up alive).
   */
  private async settleCreated(
    created: Volume,
    datasetId: string,
    sizeGiB: number,
    options: CreateVolumeOptions,
    fromSnapshot: string | undefined,
    onlyVolumeToken?: string,
  ): Promise<BlockDeviceVolume> {
    const id = created.VolumeId;
    if (id === undefined) throw new StorageError('BACKEND_ERROR', 'CreateVolume answered without a VolumeId');
    let failed = false;
    const ready = await this.waitForVolume(
      id,
      'to become available',
      (v) => {
        if (v.State !== 'error') return v.State === 'available' ? v : undefined;
        failed = true;
        throw new StorageError('BACKEND_ERROR', `volume ${id} went into the "error" state while being created`, id);
      },
      true,
    ).catch(async (e: unknown) => {
      if (onlyVolumeToken !== undefined) this.burntTokens.add(onlyVolumeToken);
      if (failed) {
        this.deletedVolumes.add(id);
        throw await this.deleteFailedCreate(id, e);
      }
      throw e;
    });
    this.logger.info('volume created', {
      blockdeviceId: id,
      datasetId,
      sizeGiB,
      volumeType: volumeTypeForProfile(options.profile, sizeGiB).VolumeType,
      profile: options.profile,
      ...(fromSnapshot === undefined ? {} : { fromSnapshot }),
    });
    return this.toVolume(ready);
  }

  private byCreateToken(token: string): Promise<Volume[]> {
    return this.describeAll([
      { Name: `tag:${TAG_CLUSTER}`, Values: [this.config.cluster_id] },
      { Name: `tag:${TAG_CREATE_TOKEN}`, Values: [token] },
    ]);
  }

  /** Deletes a volume whose create ended in "error"; the error to throw says whether that worked. */
  private async deleteFailedCreate(blockdeviceId: string, cause: unknown): Promise<StorageError> {
    const what = isStorageError(cause) ? cause.message : String(cause);
    try {
      await this.call('DeleteVolume', () => this.send(new DeleteVolumeCommand({ VolumeId: blockdeviceId })), {
        recover: async () => ((await this.describeMaybe(blockdeviceId)) === undefined ? true : undefined),
      });
    } catch (e) {
      if (awsErrorCode(e) !== 'InvalidVolume.NotFound') {
        this.logger.error('could not delete a volume whose create failed', {
          blockdeviceId,
          error: providerMessage(e),
        });
        return new StorageError(
          'BACKEND_ERROR',
          `${what}; deleting it failed too (${providerMessage(e)}): delete it by hand`,
          blockdeviceId,
        );
      }
    }
    this.logger.warn('deleted a volume whose create ended in "error"', { blockdeviceId });
    return new StorageError('BACKEND_ERROR', `${what}; it was deleted`, blockdeviceId);
  }

  async destroyVolume(blockdeviceId: string): Promise<void> {
    const v = await this.describeOwned(blockdeviceId);
    const att = attachmentOf(v);
    if (att !== undefined)
      throw new StorageError(
        'VOLUME_ATTACHED',
        `volume ${blockdeviceId} is attached to ${att.InstanceId}; detach it first`,
        blockdeviceId,
      );
    try {
      await this.call('DeleteVolume', () => this.send(new DeleteVolumeCommand({ VolumeId: blockdeviceId })), {
        recover: async () => ((await this.describeMaybe(blockdeviceId)) === undefined ? true : undefined),
      });
    } catch (e) {
      const code = awsErrorCode(e);
      if (code === 'VolumeInUse')
        throw new StorageError(
          'VOLUME_ATTACHED',
          `volume ${blockdeviceId} is attached: ${providerMessage(e)}`,
          blockdeviceId,
        );
      throw this.toStorageError(e, `deleting volume ${blockdeviceId}`, blockdeviceId);
    }
    // EC2 would answer its create token with it still: an onlyVolume create must not take it (see createOnlyVolume).
    this.deletedVolumes.add(blockdeviceId);
    await pollUntil(
      async () => ((await this.describeMaybe(blockdeviceId)) === undefined ? true : undefined),
      this.pollOptions(`volume ${blockdeviceId} to be deleted`, blockdeviceId),
    );
    this.logger.info('volume destroyed', { blockdeviceId });
  }

  async attachVolume(blockdeviceId: string, instanceId: string): Promise<BlockDeviceVolume> {
    let v = await this.describeOwned(blockdeviceId);
    if (v.State === 'creating')
      v = await this.waitForVolume(blockdeviceId, 'to become available', (x) =>
        x.State === 'creating' ? undefined : x,
      );
    const held = attachmentOf(v);
    if (held !== undefined) throw this.alreadyAttached(blockdeviceId, held.InstanceId);
    if (v.State !== 'available')
      throw new StorageError(
        'BACKEND_ERROR',
        `volume ${blockdeviceId} is "${v.State}", not available for attaching`,
        blockdeviceId,
      );
    // One device-name choice at a time per instance: two attaches must not pick the same /dev/sdX.
    const device = await this.deviceMutex.run(instanceId, async () => {
      const inUse = await this.deviceNamesInUse(instanceId);
      for (;;) {
        const name = pickDeviceName(inUse);
        if (name === undefined)
          throw new StorageError(
            'BACKEND_ERROR',
            `instance ${instanceId} has no free device name left in /dev/sdf…/dev/sdp`,
            blockdeviceId,
          );
        try {
          await this.call(
            'AttachVolume',
            () => this.send(new AttachVolumeCommand({ VolumeId: blockdeviceId, InstanceId: instanceId, Device: name })),
            {
              // A retried attach whose first try went through would otherwise look like someone else's.
              recover: async () => {
                const now = await this.describeMaybe(blockdeviceId);
                const att = now === undefined ? undefined : attachmentOf(now);
                return att?.InstanceId === instanceId && att.Device === name ? true : undefined;
              },
            },
          );
          return name;
        } catch (e) {
          const code = awsErrorCode(e);
          const message = providerMessage(e);
          if (code === 'InvalidParameterValue' && /already in use/i.test(message)) {
            inUse.push(name); // taken behind our back (say, by hand): try the next name
            continue;
          }
          if (code === 'VolumeInUse' || code === 'IncorrectState' || code === 'InvalidVolume.ZoneMismatch') {
            const now = await this.describeMaybe(blockdeviceId);
            const att = now === undefined ? undefined : attachmentOf(now);
            if (att !== undefined) throw this.alreadyAttached(blockdeviceId, att.InstanceId);
          }
          if (code === 'InvalidInstanceID.NotFound')
            throw new StorageError('BACKEND_ERROR', `no instance ${instanceId}: ${message}`, blockdeviceId);
          throw this.toStorageError(e, `attaching ${blockdeviceId} to ${instanceId}`, blockdeviceId);
        }
      }
    });
    const attached = await this.waitForVolume(blockdeviceId, `to be attached to ${instanceId}`, (x) => {
      const att = attachmentOf(x);
      // Lost a race EC2 let through (an emulator, or an attachment replaced at once).
      if (att !== undefined && att.InstanceId !== instanceId) throw this.alreadyAttached(blockdeviceId, att.InstanceId);
      return att?.State === 'attached' && x.State === 'in-use' ? x : undefined;
    });
    if (instanceId === (await this.computeInstanceId()))
      await this.host.waitForDevice(blockdeviceId, device, this.timing.deviceTimeoutMs);
    this.logger.info('volume attached', { blockdeviceId, instanceId, device });
    return this.toVolume(attached);
  }

  async detachVolume(blockdeviceId: string, options: DetachOptions = {}): Promise<void> {
    const force = options.force === true;
    const v = await this.describeOwned(blockdeviceId);
    const att = attachmentOf(v);
    if (att?.InstanceId === undefined)
      throw new StorageError('UNATTACHED', `volume ${blockdeviceId} is not attached`, blockdeviceId);
    const me = await this.computeInstanceId();
    const here = att.InstanceId === me;
    if (!here && !force) {
      throw new StorageError(
        'NOT_ATTACHED_HERE',
        `volume ${blockdeviceId} is attached to ${att.InstanceId}, not to this instance ${me}`,
        blockdeviceId,
      );
    }
    if (here && !force) {
      // EC2 would leave a detach of a mounted device hanging in "busy"; refuse up front.
      const dev = await this.host.findDevice(blockdeviceId, att.Device);
      if (dev !== undefined && (await this.host.isBusy(dev))) {
        throw new StorageError(
          'DEVICE_BUSY',
          `volume ${blockdeviceId} is in use at ${dev} (mounted?); unmount it first`,
          blockdeviceId,
        );
      }
    }
    const holder = att.InstanceId;
    try {
      await this.call(
        'DetachVolume',
        () =>
          this.send(
            new DetachVolumeCommand({
              VolumeId: blockdeviceId,
              InstanceId: holder,
              ...(att.Device === undefined ? {} : { Device: att.Device }),
              Force: force,
            }),
          ),
        {
          recover: async () => {
            const now = await this.describeMaybe(blockdeviceId);
            return now === undefined || attachmentOf(now) === undefined ? true : undefined;
          },
        },
      );
    } catch (e) {
      const code = awsErrorCode(e);
      if (code === 'IncorrectState' || code === 'InvalidAttachment.NotFound') {
        const now = await this.describeMaybe(blockdeviceId);
        if (now !== undefined && attachmentOf(now) === undefined)
          throw new StorageError('UNATTACHED', `volume ${blockdeviceId} is not attached (any more)`, blockdeviceId);
      }
      throw this.toStorageError(e, `detaching ${blockdeviceId} from ${holder}`, blockdeviceId);
    }
    await this.waitForVolume(blockdeviceId, 'to be detached', (x) =>
      attachmentOf(x) === undefined && x.State === 'available' ? x : undefined,
    );
    if (here) await this.host.waitForDeviceGone(blockdeviceId, att.Device, this.timing.deviceTimeoutMs);
    this.logger.info('volume detached', { blockdeviceId, from: holder, force });
  }

  async getDevicePath(blockdeviceId: string): Promise<string> {
    let v = await this.describeOwned(blockdeviceId);
    let att = attachmentOf(v);
    if (att?.InstanceId === undefined)
      throw new StorageError('UNATTACHED', `volume ${blockdeviceId} is not attached`, blockdeviceId);
    const me = await this.computeInstanceId();
    if (att.InstanceId !== me)
      throw new StorageError(
        'NOT_ATTACHED_HERE',
        `volume ${blockdeviceId} is attached to ${att.InstanceId}, not to this instance ${me}`,
        blockdeviceId,
      );
    if (att.State !== 'attached') {
      v = await this.waitForVolume(blockdeviceId, 'to finish attaching', (x) =>
        attachmentOf(x)?.State === 'attaching' ? undefined : x,
      );
      att = attachmentOf(v);
      if (att?.InstanceId !== me)
        throw new StorageError('UNATTACHED', `volume ${blockdeviceId} is no longer attached here`, blockdeviceId);
    }
    return this.host.waitForDevice(blockdeviceId, att.Device, this.timing.deviceTimeoutMs);
  }

  async resizeVolume(blockdeviceId: string, size: number): Promise<BlockDeviceVolume> {
    const sizeGiB = this.sizeInGiB(size);
    const v = await this.describeOwned(blockdeviceId);
    const current = v.Size ?? 0;
    if (sizeGiB < current)
      throw new StorageError(
        'INVALID_SIZE',
        `volume ${blockdeviceId} is ${current} GiB; EBS volumes cannot shrink to ${sizeGiB} GiB`,
        blockdeviceId,
      );
    if (sizeGiB === current) return this.toVolume(v);
    try {
      await this.call(
        'ModifyVolume',
        () => this.send(new ModifyVolumeCommand({ VolumeId: blockdeviceId, Size: sizeGiB })),
        {
          recover: async () => (((await this.describeMaybe(blockdeviceId))?.Size ?? 0) >= sizeGiB ? true : undefined),
        },
      );
    } catch (e) {
      throw this.toStorageError(e, `growing ${blockdeviceId} to ${sizeGiB} GiB`, blockdeviceId);
    }
    const grown = await this.waitForVolume(blockdeviceId, `to grow to ${sizeGiB} GiB`, (x) =>
      (x.Size ?? 0) >= sizeGiB ? x : undefined,
    );
    this.logger.info('volume resized', { blockdeviceId, sizeGiB });
    return this.toVolume(grown);
  }

  // ---- helpers ----

  private sizeInGiB(size: number): number {
    if (!Number.isFinite(size) || size <= 0)
      throw new StorageError('INVALID_SIZE', `size must be a positive number of bytes, got ${size}`);
    const gib = Math.ceil(size / GiB);
    if (gib > MAX_VOLUME_GIB)
      throw new StorageError('INVALID_SIZE', `EBS volumes are at most ${MAX_VOLUME_GIB} GiB, asked for ${gib} GiB`);
    return gib;
  }

  private isOurs(v: Volume): boolean {
    return tagOf(v, TAG_CLUSTER) === this.config.cluster_id && tagOf(v, TAG_DATASET) !== undefined;
  }

  private toVolume(v: Volume): BlockDeviceVolume {
    const profile = tagOf(v, TAG_PROFILE);
    return {
      blockdeviceId: v.VolumeId ?? '',
      size: (v.Size ?? 0) * GiB,
      attachedTo: attachmentOf(v)?.InstanceId ?? null,
      datasetId: tagOf(v, TAG_DATASET) ?? '',
      ...(profile === undefined ? {} : { profile }),
    };
  }

  private toSnapshot(s: Snapshot): BlockDeviceSnapshot {
    return {
      snapshotId: tagOf(s, TAG_SNAPSHOT) ?? '',
      backendId: s.SnapshotId ?? '',
      datasetId: tagOf(s, TAG_DATASET) ?? '',
      sourceBlockdeviceId: tagOf(s, TAG_SOURCE_VOLUME) ?? s.VolumeId ?? '',
      size: (s.VolumeSize ?? 0) * GiB,
      createdAt: (s.StartTime ?? new Date(0)).toISOString(),
      status: snapshotStatus(s.State),
    };
  }

  private snapshotFilters(snapshotId: string): Filter[] {
    return [
      { Name: `tag:${TAG_CLUSTER}`, Values: [this.config.cluster_id] },
      { Name: `tag:${TAG_SNAPSHOT}`, Values: [snapshotId] },
    ];
  }

  /** The (oldest) EBS snapshot of this cluster carrying the Flocker snapshot id, if any. */
  private async findSnapshot(snapshotId: string): Promise<Snapshot | undefined> {
    return (await this.describeSnapshots(this.snapshotFilters(snapshotId)))[0];
  }

  /**
   * Our own snapshots (OwnerIds self: without it EC2 lists every public snapshot too) matching
   * the filters, following NextToken, oldest first.
   */
  private async describeSnapshots(filters: Filter[]): Promise<Snapshot[]> {
    const all: Snapshot[] = [];
    let token: string | undefined;
    do {
      const page = await this.call('DescribeSnapshots', () =>
        this.send(
          new DescribeSnapshotsCommand({
            OwnerIds: ['self'],
            Filters: filters,
            MaxResults: this.timing.pageSize,
            ...(token === undefined ? {} : { NextToken: token }),
          }),
        ),
      ).catch((e: unknown) => {
        throw this.toStorageError(e, 'listing snapshots');
      });
      all.push(...(page.Snapshots ?? []));
      token = page.NextToken === '' ? undefined : page.NextToken;
    } while (token !== undefined);
    return all
      .filter((s) => tagOf(s, TAG_CLUSTER) === this.config.cluster_id && tagOf(s, TAG_SNAPSHOT) !== undefined)
      .sort(
        (a, b) =>
          (a.StartTime?.getTime() ?? 0) - (b.StartTime?.getTime() ?? 0) ||
          (a.SnapshotId ?? '').localeCompare(b.SnapshotId ?? ''),
      );
  }

  private alreadyAttached(blockdeviceId: string, holder: string | undefined): StorageError {
    return new StorageError(
      'ALREADY_ATTACHED',
      `volume ${blockdeviceId} is already attached to ${holder ?? 'an instance'}`,
      blockdeviceId,
    );
  }

  /** Maps an EC2 failure to a StorageError (StorageErrors pass through). */
  private toStorageError(e: unknown, doing: string, blockdeviceId?: string): StorageError {
    if (e instanceof StorageError) return e;
    const code = awsErrorCode(e);
    const map: Record<string, StorageErrorCode> = {
      'InvalidVolume.NotFound': 'UNKNOWN_VOLUME',
      'InvalidVolumeID.Malformed': 'UNKNOWN_VOLUME',
      'InvalidSnapshot.NotFound': 'UNKNOWN_SNAPSHOT',
      VolumeInUse: 'VOLUME_ATTACHED',
    };
    return new StorageError(
      (code !== undefined ? map[code] : undefined) ?? 'BACKEND_ERROR',
      `${doing} failed: ${providerMessage(e)}`,
      blockdeviceId,
    );
  }

  /**
   * One EC2 request, bounded as a whole: connecting, the answer's headers and its body within timeoutMs (the
   * handler's requestTimeout stops at the headers, and a body that stops half way was bounded only by the
   * socket's 15 min idle timeout). On expiry the request's socket is destroyed and a TimeoutError (transient:
   * call() retries it) says so.
   */
  private async send<I extends ServiceInputTypes, O extends ServiceOutputTypes>(
    command: $Command<I, O, EC2ClientResolvedConfig, ServiceInputTypes, ServiceOutputTypes>,
    timeoutMs = this.timing.requestTimeoutMs,
  ): Promise<O> {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), timeoutMs);
    try {
      return await this.ec2.send(command, { abortSignal: controller.signal });
    } catch (e) {
      if (!controller.signal.aborted) throw e;
      throw Object.assign(
        new Error(`the EC2 request timed out after ${timeoutMs} ms (no answer, or an answer that stopped)`),
        { name: 'TimeoutError', cause: e },
      );
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * One EC2 call with bounded, jittered retries of transient failures. Before a
   * retry, recover() may find that the failed attempt did take effect (its answer
   * was lost); its value is then the result.
   */
  private async call<T, R = never>(
    op: string,
    send: () => Promise<T>,
    options: { recover?: () => Promise<R | undefined> } = {},
  ): Promise<T | R> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await send();
      } catch (e) {
        if (!isTransientAwsError(e) || attempt >= this.timing.maxAttempts) throw e;
        const delay = backoffDelay(
          attempt - 1,
          { initialMs: this.timing.retryBaseMs, maxMs: this.timing.retryMaxMs, jitter: true },
          this.random,
        );
        this.logger.warn('transient EC2 error; retrying', { op, attempt, delayMs: delay, error: providerMessage(e) });
        await this.sleep(delay);
        if (options.recover !== undefined) {
          const recovered = await options.recover().catch(() => undefined);
          if (recovered !== undefined) return recovered;
        }
      }
    }
  }

  /** Every volume matching the filters, following NextToken. */
  private async describeAll(filters: Filter[]): Promise<Volume[]> {
    const all: Volume[] = [];
    let token: string | undefined;
    do {
      const page = await this.call('DescribeVolumes', () =>
        this.send(
          new DescribeVolumesCommand({
            Filters: filters,
            MaxResults: this.timing.pageSize,
            ...(token === undefined ? {} : { NextToken: token }),
          }),
        ),
      ).catch((e: unknown) => {
        throw this.toStorageError(e, 'listing volumes');
      });
      all.push(...(page.Volumes ?? []));
      token = page.NextToken === '' ? undefined : page.NextToken;
    } while (token !== undefined);
    return all;
  }

  /** The volume if it exists, is not deleted and is this cluster's; else undefined. */
  private async describeMaybe(blockdeviceId: string): Promise<Volume | undefined> {
    if (!VOLUME_ID.test(blockdeviceId)) return undefined;
    let volumes: Volume[];
    try {
      volumes =
        (
          await this.call('DescribeVolumes', () =>
            this.send(new DescribeVolumesCommand({ VolumeIds: [blockdeviceId] })),
          )
        ).Volumes ?? [];
    } catch (e) {
      const code = awsErrorCode(e);
      if (code === 'InvalidVolume.NotFound' || code === 'InvalidVolumeID.Malformed') return undefined;
      throw this.toStorageError(e, `describing volume ${blockdeviceId}`, blockdeviceId);
    }
    const v = volumes.find((x) => x.VolumeId === blockdeviceId);
    if (v === undefined || v.State === 'deleted' || !this.isOurs(v)) return undefined;
    return v;
  }

  /** Like describeMaybe but UNKNOWN_VOLUME when absent, deleting, or another cluster's (never touched). */
  private async describeOwned(blockdeviceId: string): Promise<Volume> {
    const v = await this.describeMaybe(blockdeviceId);
    if (v === undefined || v.State === 'deleting')
      throw new StorageError(
        'UNKNOWN_VOLUME',
        `no volume ${blockdeviceId} in cluster ${this.config.cluster_id}`,
        blockdeviceId,
      );
    return v;
  }

  private pollOptions(what: string, blockdeviceId?: string) {
    return {
      baseMs: this.timing.pollBaseMs,
      maxMs: this.timing.pollMaxMs,
      timeoutMs: this.timing.stateTimeoutMs,
      random: this.random,
      sleep: this.sleep,
      what,
      ...(blockdeviceId === undefined ? {} : { blockdeviceId }),
    };
  }

  /**
   * Polls the volume until check gives a value; UNKNOWN_VOLUME if it vanishes
   * meanwhile. A just-created volume may be missing from DescribeVolumes for a
   * moment (EC2 is eventually consistent): missingIsPending waits that out.
   */
  private waitForVolume(
    blockdeviceId: string,
    what: string,
    check: (v: Volume) => Volume | undefined,
    missingIsPending = false,
  ): Promise<Volume> {
    return pollUntil(
      async () => {
        const v = await this.describeMaybe(blockdeviceId);
        if (v === undefined) {
          if (missingIsPending) return undefined;
          throw new StorageError(
            'UNKNOWN_VOLUME',
            `volume ${blockdeviceId} disappeared while waiting for it ${what}`,
            blockdeviceId,
          );
        }
        return check(v);
      },
      this.pollOptions(`volume ${blockdeviceId} ${what}`, blockdeviceId),
    );
  }

  /** Device names EC2 lists for the instance (root and data volumes, any state). */
  private async deviceNamesInUse(instanceId: string): Promise<string[]> {
    let reservations;
    try {
      reservations =
        (
          await this.call('DescribeInstances', () =>
            this.send(new DescribeInstancesCommand({ InstanceIds: [instanceId] })),
          )
        ).Reservations ?? [];
    } catch (e) {
      if (awsErrorCode(e) === 'InvalidInstanceID.NotFound' || awsErrorCode(e) === 'InvalidInstanceID.Malformed') {
        throw new StorageError('BACKEND_ERROR', `no instance ${instanceId}: ${providerMessage(e)}`);
      }
      throw this.toStorageError(e, `describing instance ${instanceId}`);
    }
    const names: string[] = [];
    for (const r of reservations) {
      for (const i of r.Instances ?? []) {
        if (i.RootDeviceName !== undefined) names.push(i.RootDeviceName);
        for (const m of i.BlockDeviceMappings ?? []) if (m.DeviceName !== undefined) names.push(m.DeviceName);
      }
    }
    return names;
  }
}

/**
 * EMC ScaleIO / Dell PowerFlex block storage (backend: scaleio) through the REST gateway.
 *
 * A volume belongs to this cluster by its name (see names.ts: no metadata in ScaleIO); it is
 * attached by mapping it to this host's SDC (addMappedSdc with sdcId; the instance id of a node
 * is its SDC id), and the SDC's udev rules then name the device
 * <device_by_id_dir>/emc-vol-<systemId>-<volumeId> (goscaleio getVolumeMapping reads exactly
 * that). Sizes are 8 GiB units; profiles are storage pools. The gateway refuses a second mapping
 * without allowMultipleMappings, so of two concurrent attaches exactly one wins.
 *
 * Snapshots are ScaleIO snapshots (volumes of the source's vTree with ancestorVolumeId, taken read-only),
 * named by the snapshot id (names.ts); a clone is a writable snapshot of the snapshot, named as a volume
 * (as Cinder's PowerFlex driver makes a volume from a snapshot). A snapshot's name has no room for its
 * dataset, which is read from its source: so a volume with snapshots is kept until they are destroyed.
 */
import { type Clock, errorMessage, pollUntil, systemClock } from '@flocker/runtime';
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import winston from 'winston';
import {
  StorageError,
  type BlockDeviceApi,
  type BlockDeviceSnapshot,
  type BlockDeviceVolume,
  type CreateVolumeOptions,
  type DetachOptions,
  type OpenedSnapshot,
  type SnapshotOptions,
} from '../BlockDeviceApi';
import { blockDeviceSize, isDeviceBusy } from '../blockdev';
import { OpenStackConnectionError, type RetryPolicy } from '../cinder/http';
import { ScaleIoApiError, ScaleIoClient } from './client';
import {
  datasetOfName,
  deviceLinkName,
  isSnapshotId,
  SCALEIO_UNIT,
  sizeInKb,
  snapshotIdOfName,
  snapshotName,
  VOLUME_ID,
  volumeName,
} from './names';
import { ScaleIoOptionsSchema, type ScaleIoOptions, type ScaleIoOptionsInput, type ScaleIoVolume } from './schemas';

export interface ScaleIoDriverDeps {
  readonly logger?: winston.Logger;
  readonly retry?: RetryPolicy;
  readonly sleep?: (ms: number) => Promise<void>;
  /** This host's SDC GUID when neither sdc_guid nor sdc_ip is configured: default drv_cfg --query_guid. */
  readonly queryGuid?: () => Promise<string>;
}

const DRV_CFG = '/opt/emc/scaleio/sdc/bin/drv_cfg';

async function drvCfgGuid(): Promise<string> {
  const { stdout } = await promisify(execFile)(DRV_CFG, ['--query_guid']);
  return stdout.trim();
}

export class ScaleIoDriver implements BlockDeviceApi {
  readonly backend = 'scaleio';
  readonly options: ScaleIoOptions;
  readonly client: ScaleIoClient;
  private readonly logger: winston.Logger;
  private readonly clock: Clock;
  private readonly queryGuid: () => Promise<string>;
  private sdcId: Promise<string> | undefined;
  private systemId: Promise<string> | undefined;
  private readonly poolProfiles: Map<string, string>;

  constructor(input: ScaleIoOptionsInput, deps: ScaleIoDriverDeps = {}) {
    const parsed = ScaleIoOptionsSchema.safeParse(input);
    if (!parsed.success)
      throw new Error(
        `invalid scaleio dataset options: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
      );
    const o = parsed.data;
    this.options = o;
    this.logger = deps.logger ?? winston.createLogger({ silent: true });
    this.clock = deps.sleep === undefined ? systemClock : { ...systemClock, sleep: deps.sleep };
    this.queryGuid = deps.queryGuid ?? drvCfgGuid;
    this.client = new ScaleIoClient({
      gatewayUrl: o.gateway_url,
      username: o.username,
      password: o.password,
      verifyPeer: o.verify_peer,
      ...(o.verify_ca_path !== undefined ? { caPath: o.verify_ca_path } : {}),
      timeoutMs: o.request_timeout_seconds * 1000,
      ...(deps.retry !== undefined ? { retry: deps.retry } : {}),
      ...(deps.sleep !== undefined ? { sleep: deps.sleep } : {}),
      onRetry: (info) => this.logger.warn('retrying ScaleIO gateway request', info),
    });
    this.poolProfiles = new Map(Object.entries(o.profile_storage_pools).map(([profile, pool]) => [pool, profile]));
  }

  async close(): Promise<void> {
    await this.client.close();
  }

  allocationUnit(): number {
    return SCALEIO_UNIT;
  }

  /** Volumes move between the SDCs of one ScaleIO system. */
  async storageZone(): Promise<string | undefined> {
    return `scaleio:${await this.system()}`;
  }

  private system(): Promise<string> {
    this.systemId ??= this.gateway('reading the system id', () => this.client.system()).catch((e: unknown) => {
      this.systemId = undefined;
      throw e;
    });
    return this.systemId;
  }

  /** This host's SDC id: by the configured GUID or IP, else the GUID drv_cfg reports. */
  async computeInstanceId(): Promise<string> {
    this.sdcId ??= this.findSdc().catch((e: unknown) => {
      this.sdcId = undefined;
      throw e;
    });
    return this.sdcId;
  }

  private async findSdc(): Promise<string> {
    const { sdc_guid: configuredGuid, sdc_ip: ip } = this.options;
    const guid = configuredGuid ?? (ip === undefined ? await this.queryGuid() : undefined);
    const sdcs = await this.gateway('listing SDCs', () => this.client.sdcs());
    const found = sdcs.find((s) =>
      guid !== undefined
        ? s.sdcGuid?.toLowerCase() === guid.toLowerCase()
        : s.sdcIp === ip || (s.sdcIps ?? []).includes(ip ?? ''),
    );
    if (found === undefined)
      throw new StorageError(
        'BACKEND_ERROR',
        `no SDC with ${guid !== undefined ? `GUID ${guid}` : `IP ${ip}`} is known to the ScaleIO system (found ${sdcs.length} SDCs)`,
      );
    return found.id;
  }

  private toVolume(v: ScaleIoVolume): BlockDeviceVolume | null {
    const datasetId = datasetOfName(this.options.cluster_id, v.name);
    if (datasetId === undefined) return null;
    const profile = this.poolProfiles.get(v.storagePoolId);
    return {
      blockdeviceId: v.id,
      size: v.sizeInKb * 1024,
      attachedTo: v.mappedSdcInfo?.[0]?.sdcId ?? null,
      datasetId,
      ...(profile !== undefined ? { profile } : {}),
    };
  }

  /** Runs a gateway call; failures become BACKEND_ERROR with the gateway's message (what node state shows). */
  private async gateway<T>(what: string, call: () => Promise<T>, blockdeviceId?: string): Promise<T> {
    try {
      return await call();
    } catch (e) {
      if (e instanceof StorageError) throw e;
      throw new StorageError('BACKEND_ERROR', `ScaleIO ${what}: ${errorMessage(e)}`, blockdeviceId);
    }
  }

  /** Our volume by id, or UNKNOWN_VOLUME (also for ids that are not ScaleIO ids, or other clusters' volumes). */
  private async ours(blockdeviceId: string): Promise<{ raw: ScaleIoVolume; volume: BlockDeviceVolume }> {
    const unknown = () => new StorageError('UNKNOWN_VOLUME', `no volume ${blockdeviceId}`, blockdeviceId);
    if (!VOLUME_ID.test(blockdeviceId)) throw unknown();
    const raw = await this.gateway('reading a volume', () => this.client.volume(blockdeviceId), blockdeviceId);
    const volume = raw === undefined ? null : this.toVolume(raw);
    if (raw === undefined || volume === null) throw unknown();
    return { raw, volume };
  }

  private checkSize(size: number): number {
    if (!Number.isFinite(size) || size <= 0)
      throw new StorageError('INVALID_SIZE', `size must be a positive number of bytes, got ${size}`);
    return sizeInKb(size);
  }

  async listVolumes(): Promise<BlockDeviceVolume[]> {
    const all = await this.gateway('listing volumes', () => this.client.volumes());
    return all.map((v) => this.toVolume(v)).filter((v): v is BlockDeviceVolume => v !== null);
  }

  async createVolume(datasetId: string, size: number, options: CreateVolumeOptions = {}): Promise<BlockDeviceVolume> {
    const kb = this.checkSize(size);
    const pools = this.options.profile_storage_pools;
    const pool = options.profile === undefined ? this.options.storage_pool_id : pools[options.profile];
    // The profile is read back from the pool, so a profile without one cannot be kept: refuse it.
    if (pool === undefined)
      throw new StorageError(
        'BACKEND_ERROR',
        `no storage pool for profile ${options.profile} (profile_storage_pools has: ${Object.keys(pools).join(', ') || 'none'})`,
      );
    if (options.onlyVolume && (await this.listVolumes()).some((v) => v.datasetId === datasetId))
      throw new StorageError('DATASET_HAS_VOLUME', `dataset ${datasetId} has a volume already`);
    const name = volumeName(this.options.cluster_id, datasetId);
    let id: string;
    try {
      id = await this.client.createVolume({
        storagePoolId: pool,
        name,
        sizeInKb: kb,
        volumeType: this.options.volume_type,
      });
    } catch (e) {
      // The answer may be lost after the gateway made it (a timeout, a reset, a proxy's 5xx): the name is this
      // call's own, so find it and adopt it; never leave it behind. The gateway may still be making it then: look
      // until the operation timeout. An MDM refusal (a 5xx with the gateway's error body) made nothing, but one
      // look costs little and also covers a volume made before an internal error.
      const lost =
        (e instanceof OpenStackConnectionError && e.ambiguous) ||
        (e instanceof ScaleIoApiError && e.status >= 500 && e.errorCode === undefined);
      const refused = e instanceof ScaleIoApiError && e.status >= 500 && e.errorCode !== undefined;
      const found = lost || refused ? await this.findCreated(name, lost) : undefined;
      if (found === undefined)
        throw new StorageError('BACKEND_ERROR', `ScaleIO creating volume ${name}: ${errorMessage(e)}`);
      this.logger.warn('adopted a volume whose create answer was lost', {
        name,
        blockdeviceId: found,
        error: errorMessage(e),
      });
      id = found;
    }
    return (await this.ours(id)).volume;
  }

  /** Looks for a create's volume by its name: once, or (poll) until the operation timeout. */
  private async findCreated(name: string, poll: boolean): Promise<string | undefined> {
    if (!poll) return this.client.volumeIdByName(name).catch(() => undefined);
    return pollUntil(
      async () => {
        try {
          return await this.client.volumeIdByName(name);
        } catch {
          return undefined; // the gateway is still unwell: look again
        }
      },
      {
        timeoutMs: Math.min(this.options.operation_timeout_seconds * 1000, 30_000),
        backoff: { initialMs: 200, maxMs: 3000, jitter: true },
        clock: this.clock,
        onTimeout: () => undefined,
      },
    );
  }

  async destroyVolume(blockdeviceId: string): Promise<void> {
    const { volume } = await this.ours(blockdeviceId);
    if (volume.attachedTo !== null)
      throw new StorageError(
        'VOLUME_ATTACHED',
        `volume ${blockdeviceId} is mapped to SDC ${volume.attachedTo}`,
        blockdeviceId,
      );
    // A snapshot's dataset is read from its source (names.ts): keep the source while it has snapshots.
    const pinned = (await this.listSnapshots()).filter((s) => s.sourceBlockdeviceId === blockdeviceId);
    if (pinned.length > 0)
      throw new StorageError(
        'BACKEND_ERROR',
        `volume ${blockdeviceId} has snapshots (${pinned.map((s) => s.snapshotId).join(', ')}); ScaleIO volumes are kept until their snapshots are destroyed`,
        blockdeviceId,
      );
    try {
      await this.client.action(blockdeviceId, 'removeVolume', { removeMode: 'ONLY_ME' });
    } catch (e) {
      if (e instanceof ScaleIoApiError && e.notFound) return; // gone already (a retry after a lost answer)
      if (e instanceof ScaleIoApiError && /is mapped/i.test(e.gatewayMessage))
        throw new StorageError('VOLUME_ATTACHED', `volume ${blockdeviceId}: ${e.gatewayMessage}`, blockdeviceId);
      throw new StorageError(
        'BACKEND_ERROR',
        `ScaleIO removing volume ${blockdeviceId}: ${errorMessage(e)}`,
        blockdeviceId,
      );
    }
  }

  async attachVolume(blockdeviceId: string, instanceId: string): Promise<BlockDeviceVolume> {
    const { volume } = await this.ours(blockdeviceId);
    const taken = (holder: string) =>
      new StorageError('ALREADY_ATTACHED', `volume ${blockdeviceId} is mapped to SDC ${holder}`, blockdeviceId);
    if (volume.attachedTo !== null) throw taken(volume.attachedTo);
    try {
      await this.client.action(blockdeviceId, 'addMappedSdc', { sdcId: instanceId });
    } catch (e) {
      if (e instanceof ScaleIoApiError && /already mapped/i.test(e.gatewayMessage)) {
        const now = await this.ours(blockdeviceId);
        throw taken(now.volume.attachedTo ?? 'another SDC');
      }
      if (e instanceof ScaleIoApiError && e.notFound)
        throw new StorageError('UNKNOWN_VOLUME', `no volume ${blockdeviceId}`, blockdeviceId);
      throw new StorageError(
        'BACKEND_ERROR',
        `ScaleIO mapping ${blockdeviceId} to SDC ${instanceId}: ${errorMessage(e)}`,
        blockdeviceId,
      );
    }
    if (instanceId === (await this.computeInstanceId())) await this.waitForDevice(blockdeviceId);
    return { ...volume, attachedTo: instanceId };
  }

  async detachVolume(blockdeviceId: string, options: DetachOptions = {}): Promise<void> {
    const { volume } = await this.ours(blockdeviceId);
    const holder = volume.attachedTo;
    if (holder === null) throw new StorageError('UNATTACHED', `volume ${blockdeviceId} is not mapped`, blockdeviceId);
    const me = await this.computeInstanceId();
    if (holder !== me && !options.force)
      throw new StorageError(
        'NOT_ATTACHED_HERE',
        `volume ${blockdeviceId} is mapped to SDC ${holder}, not ${me}`,
        blockdeviceId,
      );
    if (holder === me) {
      const device = await this.devicePathIfPresent(blockdeviceId);
      if (device !== undefined && (await isDeviceBusy(device)))
        throw new StorageError('DEVICE_BUSY', `${device} (volume ${blockdeviceId}) is in use`, blockdeviceId);
    }
    try {
      await this.client.action(blockdeviceId, 'removeMappedSdc', { sdcId: holder });
    } catch (e) {
      if (!(e instanceof ScaleIoApiError && /not mapped/i.test(e.gatewayMessage)))
        throw new StorageError(
          'BACKEND_ERROR',
          `ScaleIO unmapping ${blockdeviceId} from SDC ${holder}: ${errorMessage(e)}`,
          blockdeviceId,
        );
    }
    if (holder === me) await this.waitForDeviceGone(blockdeviceId);
  }

  async getDevicePath(blockdeviceId: string): Promise<string> {
    const { volume } = await this.ours(blockdeviceId);
    if (volume.attachedTo === null)
      throw new StorageError('UNATTACHED', `volume ${blockdeviceId} is not mapped`, blockdeviceId);
    const me = await this.computeInstanceId();
    if (volume.attachedTo !== me)
      throw new StorageError(
        'NOT_ATTACHED_HERE',
        `volume ${blockdeviceId} is mapped to SDC ${volume.attachedTo}`,
        blockdeviceId,
      );
    return this.waitForDevice(blockdeviceId);
  }

  async resizeVolume(blockdeviceId: string, size: number): Promise<BlockDeviceVolume> {
    const kb = this.checkSize(size);
    const { volume } = await this.ours(blockdeviceId);
    if (kb * 1024 <= volume.size) return volume; // ScaleIO only grows ("Volume capacity can only be increased")
    try {
      await this.client.action(blockdeviceId, 'setVolumeSize', {
        sizeInGB: String((kb * 1024) / (1024 * 1024 * 1024)),
      });
    } catch (e) {
      throw new StorageError('BACKEND_ERROR', `ScaleIO growing ${blockdeviceId}: ${errorMessage(e)}`, blockdeviceId);
    }
    const grown = { ...volume, size: kb * 1024 };
    if (volume.attachedTo !== null && volume.attachedTo === (await this.computeInstanceId())) {
      const device = await this.waitForDevice(blockdeviceId);
      await pollUntil(async () => (((await blockDeviceSize(device)) ?? 0) >= grown.size ? true : undefined), {
        timeoutMs: this.options.operation_timeout_seconds * 1000,
        intervalMs: 100,
        clock: this.clock,
        onTimeout: () => {
          throw new StorageError('BACKEND_ERROR', `${device} did not grow to ${grown.size} bytes`, blockdeviceId);
        },
      });
    }
    return grown;
  }

  /** A snapshot as listed, from its volume and its source's (undefined when not ours or its source is gone). */
  private toSnapshot(v: ScaleIoVolume, byId: Map<string, ScaleIoVolume>): BlockDeviceSnapshot | undefined {
    const snapshotId = snapshotIdOfName(this.options.cluster_id, v.name);
    if (snapshotId === undefined || !v.ancestorVolumeId) return undefined;
    const source = byId.get(v.ancestorVolumeId);
    const datasetId = source === undefined ? undefined : datasetOfName(this.options.cluster_id, source.name);
    if (datasetId === undefined) {
      this.logger.warn('ScaleIO snapshot without its source volume is left out', { snapshotId, backendId: v.id });
      return undefined;
    }
    return {
      snapshotId,
      backendId: v.id,
      datasetId,
      sourceBlockdeviceId: v.ancestorVolumeId,
      size: v.sizeInKb * 1024,
      createdAt: new Date((v.creationTime ?? 0) * 1000).toISOString(),
      // The MDM takes a snapshot at once (no background copy): usable as soon as it exists.
      status: 'ready',
    };
  }

  async listSnapshots(): Promise<BlockDeviceSnapshot[]> {
    const all = await this.gateway('listing volumes', () => this.client.volumes());
    const byId = new Map(all.map((v) => [v.id, v]));
    return all.map((v) => this.toSnapshot(v, byId)).filter((s): s is BlockDeviceSnapshot => s !== undefined);
  }

  /** The snapshot's volume, or undefined. */
  private async snapshotVolume(snapshotId: string): Promise<ScaleIoVolume | undefined> {
    if (!isSnapshotId(snapshotId)) return undefined;
    const name = snapshotName(this.options.cluster_id, snapshotId.toLowerCase());
    const id = await this.gateway('looking up a snapshot', () => this.client.volumeIdByName(name));
    if (id === undefined) return undefined;
    return this.gateway('reading a snapshot', () => this.client.volume(id));
  }

  private async ourSnapshot(snapshotId: string): Promise<{ raw: ScaleIoVolume; snapshot: BlockDeviceSnapshot }> {
    const unknown = () => new StorageError('UNKNOWN_SNAPSHOT', `no snapshot ${snapshotId}`);
    const raw = await this.snapshotVolume(snapshotId);
    if (raw?.ancestorVolumeId == null) throw unknown();
    const source = await this.gateway('reading a volume', () => this.client.volume(raw.ancestorVolumeId ?? ''));
    const snapshot = this.toSnapshot(raw, new Map(source === undefined ? [] : [[source.id, source]]));
    if (snapshot === undefined) throw unknown();
    return { raw, snapshot };
  }

  /**
   * snapshotVolumes with a name of this call's own; a lost answer (timeout, reset, a 5xx without the gateway's
   * body) or an MDM refusal is looked up by that name, as createVolume does, so nothing is left behind.
   */
  private async snapshotNamed(
    what: string,
    req: { volumeId: string; snapshotName: string; accessModeLimit?: 'ReadOnly' },
  ): Promise<string> {
    const system = await this.system();
    try {
      return await this.client.snapshotVolume(system, req);
    } catch (e) {
      const lost =
        (e instanceof OpenStackConnectionError && e.ambiguous) ||
        (e instanceof ScaleIoApiError && e.status >= 500 && e.errorCode === undefined);
      const refused = e instanceof ScaleIoApiError && e.status >= 500 && e.errorCode !== undefined;
      if (e instanceof ScaleIoApiError && e.notFound && !lost)
        throw new StorageError('UNKNOWN_VOLUME', `no volume ${req.volumeId}`, req.volumeId);
      const found = lost || refused ? await this.findCreated(req.snapshotName, lost) : undefined;
      if (found === undefined) throw new StorageError('BACKEND_ERROR', `ScaleIO ${what}: ${errorMessage(e)}`);
      this.logger.warn('adopted a snapshot whose answer was lost', { name: req.snapshotName, id: found });
      return found;
    }
  }

  async createSnapshot(
    blockdeviceId: string,
    snapshotId: string,
    options: SnapshotOptions = {},
  ): Promise<BlockDeviceSnapshot> {
    if (!isSnapshotId(snapshotId)) throw new StorageError('BACKEND_ERROR', `snapshot id ${snapshotId} is not a UUID`);
    const taken = await this.snapshotVolume(snapshotId);
    if (taken !== undefined) return (await this.ourSnapshot(snapshotId)).snapshot;
    await this.ours(blockdeviceId); // UNKNOWN_VOLUME for anything not ours
    // Read-only: nothing may change a snapshot (accessModeLimit, goscaleio SnapshotVolumesParam).
    await this.snapshotNamed(`snapshotting volume ${blockdeviceId}`, {
      volumeId: blockdeviceId,
      snapshotName: snapshotName(this.options.cluster_id, snapshotId.toLowerCase()),
      accessModeLimit: 'ReadOnly',
    });
    // The MDM fixed the point in time when it answered; nothing more to do after it.
    await options.pointInTimeFixed?.();
    return (await this.ourSnapshot(snapshotId)).snapshot;
  }

  async destroySnapshot(snapshotId: string): Promise<void> {
    const raw = await this.snapshotVolume(snapshotId);
    if (raw === undefined) return;
    const me = await this.computeInstanceId();
    // An open (a backup reading it) or a crashed one's leftover mapping: unmap it first, as Cinder's remove_volume does.
    if ((raw.mappedSdcInfo ?? []).length > 0) {
      await this.client.action(raw.id, 'removeMappedSdc', { allSdcs: '' }).catch((e: unknown) => {
        if (!(e instanceof ScaleIoApiError && (e.notFound || /not mapped/i.test(e.gatewayMessage))))
          throw new StorageError('BACKEND_ERROR', `ScaleIO unmapping snapshot ${snapshotId}: ${errorMessage(e)}`);
      });
      if ((raw.mappedSdcInfo ?? []).some((m) => m.sdcId === me)) await this.waitForDeviceGone(raw.id);
    }
    try {
      await this.client.action(raw.id, 'removeVolume', { removeMode: 'ONLY_ME' });
    } catch (e) {
      if (e instanceof ScaleIoApiError && e.notFound) return;
      throw new StorageError('BACKEND_ERROR', `ScaleIO removing snapshot ${snapshotId}: ${errorMessage(e)}`);
    }
  }

  async createVolumeFromSnapshot(
    snapshotId: string,
    datasetId: string,
    size: number,
    options: CreateVolumeOptions = {},
  ): Promise<BlockDeviceVolume> {
    const kb = this.checkSize(size);
    const { raw } = await this.ourSnapshot(snapshotId);
    if (kb < raw.sizeInKb)
      throw new StorageError('INVALID_SIZE', `size ${size} is below the snapshot's ${raw.sizeInKb * 1024} bytes`);
    // A snapshot lives in its source's vTree, so in its storage pool: a clone cannot move to another pool.
    const pool =
      options.profile === undefined
        ? this.options.storage_pool_id
        : this.options.profile_storage_pools[options.profile];
    if (pool !== raw.storagePoolId)
      throw new StorageError(
        'BACKEND_ERROR',
        `snapshot ${snapshotId} is in storage pool ${raw.storagePoolId}, not the pool of profile ${options.profile ?? '(none)'} (${pool ?? 'none'}); ScaleIO makes a clone in its snapshot's pool`,
      );
    if (options.onlyVolume && (await this.listVolumes()).some((v) => v.datasetId === datasetId))
      throw new StorageError('DATASET_HAS_VOLUME', `dataset ${datasetId} has a volume already`);
    // A writable snapshot of the snapshot (Cinder's create_volume_from_snapshot), named as a volume.
    const id = await this.snapshotNamed(`cloning snapshot ${snapshotId}`, {
      volumeId: raw.id,
      snapshotName: volumeName(this.options.cluster_id, datasetId),
    }).catch((e: unknown) => {
      if (e instanceof StorageError && e.code === 'UNKNOWN_VOLUME')
        throw new StorageError('UNKNOWN_SNAPSHOT', `no snapshot ${snapshotId} (destroyed meanwhile)`);
      throw e;
    });
    if (kb > raw.sizeInKb) {
      try {
        await this.client.action(id, 'setVolumeSize', { sizeInGB: String((kb * 1024) / (1024 * 1024 * 1024)) });
      } catch (e) {
        // Never leave a clone of the wrong size behind: the caller would take it for the dataset's volume.
        await this.client.action(id, 'removeVolume', { removeMode: 'ONLY_ME' }).catch(() => undefined);
        throw new StorageError('BACKEND_ERROR', `ScaleIO growing the clone of ${snapshotId}: ${errorMessage(e)}`);
      }
    }
    return (await this.ours(id)).volume;
  }

  /**
   * Maps the snapshot itself to this SDC read-only (no temporary volume): allowMultipleMappings, as other hosts
   * may read it too. A crash's leftover mapping here is adopted; release() unmaps it (harmless when done already).
   */
  async openSnapshot(snapshotId: string): Promise<OpenedSnapshot> {
    const { raw } = await this.ourSnapshot(snapshotId);
    const me = await this.computeInstanceId();
    if (!(raw.mappedSdcInfo ?? []).some((m) => m.sdcId === me)) {
      try {
        await this.client.action(raw.id, 'addMappedSdc', {
          sdcId: me,
          accessMode: 'ReadOnly',
          allowMultipleMappings: 'TRUE',
        });
      } catch (e) {
        if (!(e instanceof ScaleIoApiError && /already mapped to this SDC/i.test(e.gatewayMessage)))
          throw new StorageError('BACKEND_ERROR', `ScaleIO mapping snapshot ${snapshotId} here: ${errorMessage(e)}`);
      }
    }
    const device = await this.waitForDevice(raw.id);
    return {
      path: device,
      size: raw.sizeInKb * 1024,
      release: async () => {
        try {
          await this.client.action(raw.id, 'removeMappedSdc', { sdcId: me });
        } catch (e) {
          if (!(e instanceof ScaleIoApiError && (e.notFound || /not mapped/i.test(e.gatewayMessage))))
            throw new StorageError('BACKEND_ERROR', `ScaleIO unmapping snapshot ${snapshotId}: ${errorMessage(e)}`);
        }
        await this.waitForDeviceGone(raw.id);
      },
    };
  }

  private async linkPath(blockdeviceId: string): Promise<string> {
    return path.join(this.options.device_by_id_dir, deviceLinkName(await this.system(), blockdeviceId));
  }

  private async devicePathIfPresent(blockdeviceId: string): Promise<string | undefined> {
    try {
      return await fs.realpath(await this.linkPath(blockdeviceId));
    } catch {
      return undefined;
    }
  }

  /** The SDC creates the device link shortly after the mapping. */
  private async waitForDevice(blockdeviceId: string): Promise<string> {
    const link = await this.linkPath(blockdeviceId);
    return pollUntil(() => this.devicePathIfPresent(blockdeviceId), {
      timeoutMs: this.options.operation_timeout_seconds * 1000,
      backoff: { initialMs: 20, maxMs: 1000, jitter: true },
      clock: this.clock,
      onTimeout: () => {
        throw new StorageError(
          'BACKEND_ERROR',
          `${link} did not appear after mapping volume ${blockdeviceId}`,
          blockdeviceId,
        );
      },
    });
  }

  private async waitForDeviceGone(blockdeviceId: string): Promise<void> {
    const link = await this.linkPath(blockdeviceId);
    await pollUntil(async () => ((await this.devicePathIfPresent(blockdeviceId)) === undefined ? true : undefined), {
      timeoutMs: this.options.operation_timeout_seconds * 1000,
      backoff: { initialMs: 20, maxMs: 1000, jitter: true },
      clock: this.clock,
      onTimeout: () => {
        throw new StorageError(
          'BACKEND_ERROR',
          `${link} is still there after unmapping volume ${blockdeviceId}`,
          blockdeviceId,
        );
      },
    });
  }
}

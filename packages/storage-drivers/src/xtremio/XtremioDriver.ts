/**
 * Dell EMC XtremIO over the XMS REST API v2, attached over iSCSI with the host's own initiator.
 *
 * - A Flocker volume is an XtremIO volume named flocker_<cluster_id>_<dataset>_<nonce>[_<profile>]
 *   (XtremIO volumes carry no metadata; names are unique): the name is the blockdeviceId, and a
 *   create whose answer was lost is found again by it (adopted), or destroyed when the create cannot
 *   be completed in time — never leaked.
 * - A compute instance is an initiator group named after the host's initiator IQN, holding that one
 *   initiator. Attached = mapped (lun-maps) to that group; the first mapping holds the volume (see
 *   holderMap), a concurrent later one removes itself and answers ALREADY_ATTACHED.
 * - XtremIO has no storage tiers (every volume lives in the one all-flash pool): a profile is
 *   recorded in the volume's name and reported back, and the create logs that it changes nothing.
 */
import { backoffDelay, errorMessage, pollUntil, systemClock, type Clock } from '@flocker/runtime';
import { promises as fs } from 'node:fs';
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
} from '../BlockDeviceApi';
import { isDeviceBusy } from '../blockdev';
import { execFileExec, type ExecFn } from '../exec';
import { ALREADY_MAPPED, indexOfHref, VOL_NOT_UNIQUE, XmsClient, XmsConnectionError, XmsError } from './client';
import { IscsiHost } from './iscsi';
import {
  holderMap,
  isSnapshotId,
  nameProblem,
  newNonce,
  normaliseNaa,
  parseInitiatorName,
  parseSnapshotName,
  parseVolumeName,
  snapshotName,
  volumeName,
  xmsSize,
} from './names';
import {
  contentOf,
  CreatedSchema,
  InitiatorGroupSchema,
  InitiatorSchema,
  IscsiPortalSchema,
  LunMapSchema,
  SnapshotContentSchema,
  VolumeContentSchema,
  XtremioDriverOptionsSchema,
  type IscsiPortal,
  type LunMap,
  type SnapshotContent,
  type VolumeContent,
  type XtremioDriverOptions,
  type XtremioDriverOptionsInput,
} from './schemas';

const GIB = 1024 * 1024 * 1024;
const KIB = 1024;

export const NO_TIERS_MESSAGE =
  'XtremIO has no storage tiers: every volume gets the same all-flash service; the profile is only recorded';

export interface XtremioDriverDeps {
  readonly logger?: winston.Logger;
  readonly exec?: ExecFn;
  readonly sleep?: (ms: number) => Promise<void>;
}

export class XtremioDriver implements BlockDeviceApi {
  readonly backend = 'xtremio';
  readonly options: XtremioDriverOptions;
  readonly client: XmsClient;
  private readonly logger: winston.Logger;
  private readonly host: IscsiHost;
  private readonly clock: Clock;
  private iqn: Promise<string> | undefined;
  private portals: Promise<IscsiPortal[]> | undefined;

  constructor(input: XtremioDriverOptionsInput, deps: XtremioDriverDeps = {}) {
    const parsed = XtremioDriverOptionsSchema.safeParse(input);
    if (!parsed.success)
      throw new Error(
        `invalid xtremio dataset options: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
      );
    const o = parsed.data;
    this.options = o;
    this.logger = deps.logger ?? winston.createLogger({ silent: true });
    this.clock = deps.sleep === undefined ? systemClock : { ...systemClock, sleep: deps.sleep };
    this.client = new XmsClient({
      baseUrl: o.xms_url,
      username: o.username,
      password: o.password,
      ...(o.xtremio_cluster_name !== undefined ? { clusterName: o.xtremio_cluster_name } : {}),
      verifyPeer: o.verify_peer,
      ...(o.verify_ca_path !== undefined ? { caPath: o.verify_ca_path } : {}),
      timeoutMs: o.request_timeout_seconds * 1000,
      attempts: o.request_attempts,
      ...(deps.sleep !== undefined ? { sleep: deps.sleep } : {}),
      onRetry: (info) => this.logger.warn('retrying XMS request', info),
    });
    this.host = new IscsiHost({
      exec: deps.exec ?? execFileExec,
      iscsiadm: o.iscsiadm_path,
      byIdDir: o.device_by_id_dir,
      timeoutMs: o.operation_timeout_seconds * 1000,
      clock: this.clock,
    });
  }

  async close(): Promise<void> {
    await this.client.close();
  }

  allocationUnit(): number {
    return GIB;
  }

  /** This host's initiator IQN (configured, or InitiatorName= of initiator_name_file). */
  async computeInstanceId(): Promise<string> {
    if (this.options.initiator_iqn !== undefined) return this.options.initiator_iqn;
    this.iqn ??= fs.readFile(this.options.initiator_name_file, 'utf8').then(
      (text) => {
        const iqn = parseInitiatorName(text);
        if (iqn === null)
          throw new StorageError('BACKEND_ERROR', `${this.options.initiator_name_file} has no InitiatorName= line`);
        return iqn;
      },
      (e: unknown) => {
        this.iqn = undefined;
        throw new StorageError(
          'BACKEND_ERROR',
          `cannot read this host's iSCSI initiator name from ${this.options.initiator_name_file} (is open-iscsi installed? or set initiator_iqn): ${errorMessage(e)}`,
        );
      },
    );
    return this.iqn;
  }

  /** Any failure as a StorageError carrying the array's message. */
  private wrap(e: unknown, what: string, blockdeviceId?: string): never {
    if (e instanceof StorageError) throw e;
    if (e instanceof XmsError)
      throw new StorageError(
        'BACKEND_ERROR',
        `${what}: XtremIO answered HTTP ${e.status}: ${e.xmsMessage}`,
        blockdeviceId,
      );
    throw new StorageError('BACKEND_ERROR', `${what}: ${errorMessage(e)}`, blockdeviceId);
  }

  private async call<T>(what: string, f: () => Promise<T>, blockdeviceId?: string): Promise<T> {
    try {
      return await f();
    } catch (e) {
      this.wrap(e, what, blockdeviceId);
    }
  }

  private checkSize(size: number): number {
    if (!Number.isFinite(size) || size <= 0)
      throw new StorageError('INVALID_SIZE', `size must be a positive number of bytes, got ${size}`);
    return roundUpToUnit(size, GIB);
  }

  private ours(name: string): boolean {
    return parseVolumeName(name)?.clusterId === this.options.cluster_id;
  }

  /** The volume by name, or null. */
  private async findVolume(name: string): Promise<VolumeContent | null> {
    try {
      return (await this.client.get('volumes', contentOf(VolumeContentSchema), { name })).content;
    } catch (e) {
      if (e instanceof XmsError && e.notFound) return null;
      throw e;
    }
  }

  /** This cluster's volume or UNKNOWN_VOLUME. */
  private async ownVolume(id: string): Promise<VolumeContent> {
    if (!this.ours(id))
      throw new StorageError('UNKNOWN_VOLUME', `no volume ${id} in cluster ${this.options.cluster_id}`, id);
    const v = await this.call(`looking up volume ${id}`, () => this.findVolume(id), id);
    if (v === null)
      throw new StorageError('UNKNOWN_VOLUME', `no volume ${id} in cluster ${this.options.cluster_id}`, id);
    return v;
  }

  private async lunMaps(volume?: string): Promise<LunMap[]> {
    const schema = z.object({ 'lun-maps': z.array(LunMapSchema) });
    const query = { full: 1, ...(volume !== undefined ? { filter: [`vol-name:eq:${volume}`] } : {}) };
    return (await this.client.get('lun-maps', schema, query))['lun-maps'];
  }

  private toVolume(v: VolumeContent, maps: readonly LunMap[]): BlockDeviceVolume {
    const p = parseVolumeName(v.name);
    if (p === null) throw new StorageError('BACKEND_ERROR', `volume ${v.name} is not a Flocker volume`, v.name);
    return {
      blockdeviceId: v.name,
      size: v['vol-size'] * KIB,
      attachedTo: holderMap(maps.filter((m) => m['vol-name'] === v.name))?.['ig-name'] ?? null,
      datasetId: p.datasetId,
      ...(p.profile !== undefined ? { profile: p.profile } : {}),
    };
  }

  async createVolume(datasetId: string, size: number, options: CreateVolumeOptions = {}): Promise<BlockDeviceVolume> {
    const bytes = this.checkSize(size);
    const problem = nameProblem(datasetId, options.profile, this.options.cluster_id);
    if (problem !== undefined) throw new StorageError('BACKEND_ERROR', problem);
    if (options.profile !== undefined) this.logger.warn(NO_TIERS_MESSAGE, { datasetId, profile: options.profile });
    if (options.onlyVolume === true && (await this.listVolumes()).some((v) => v.datasetId === datasetId))
      throw new StorageError('DATASET_HAS_VOLUME', `dataset ${datasetId} has a volume already`);
    const name = volumeName({
      clusterId: this.options.cluster_id,
      datasetId,
      nonce: newNonce(),
      profile: options.profile,
    });
    const deadline = this.clock.now() + this.options.operation_timeout_seconds * 1000;
    let lastError: unknown;
    // The name makes the create idempotent: after a lost answer the POST is sent again, and
    // vol_obj_name_not_unique means the first one was done (adopted).
    for (let attempt = 0; this.clock.now() < deadline; attempt++) {
      if (attempt > 0) await this.clock.sleep(backoffDelay(attempt - 1, { initialMs: 250, maxMs: 5000, jitter: true }));
      try {
        await this.client.send('POST', 'volumes', { body: { 'vol-name': name, 'vol-size': xmsSize(bytes) } });
        lastError = undefined;
        break;
      } catch (e) {
        if (e instanceof XmsError && e.status === 400 && e.xmsMessage === VOL_NOT_UNIQUE) {
          this.logger.warn('adopting a volume whose create answer was lost', { blockdeviceId: name, datasetId });
          lastError = undefined;
          break;
        }
        const ambiguous =
          (e instanceof XmsConnectionError && e.ambiguous) || (e instanceof XmsError && e.status >= 500);
        // A refusal after an unanswered attempt: that attempt may have made the volume (removed below).
        if (!ambiguous && lastError === undefined) this.wrap(e, `creating a volume for dataset ${datasetId}`);
        lastError = e;
        if (!ambiguous) break;
        this.logger.warn('create of a volume unanswered; sending it again', {
          blockdeviceId: name,
          error: errorMessage(e),
        });
      }
    }
    const v = await this.findVolume(name).catch(() => null);
    if (lastError !== undefined || v === null) {
      // Out of time: whatever the array did with our create must not stay behind unseen.
      await this.client.send('DELETE', 'volumes', { query: { name } }).catch((e: unknown) => {
        if (!(e instanceof XmsError && e.notFound))
          this.logger.error('could not remove a volume whose create did not complete', {
            blockdeviceId: name,
            error: errorMessage(e),
          });
      });
      this.wrap(
        lastError ?? new Error('the array does not show the created volume'),
        `creating a volume for dataset ${datasetId}`,
      );
    }
    const volume = this.toVolume(v, []);
    this.logger.info('volume created', { blockdeviceId: name, datasetId, size: volume.size, profile: options.profile });
    return volume;
  }

  async destroyVolume(blockdeviceId: string): Promise<void> {
    await this.ownVolume(blockdeviceId);
    const maps = await this.call('listing lun-maps', () => this.lunMaps(blockdeviceId), blockdeviceId);
    if (maps.length > 0)
      throw new StorageError(
        'VOLUME_ATTACHED',
        `volume ${blockdeviceId} is mapped to ${holderMap(maps)?.['ig-name']}; detach it first`,
        blockdeviceId,
      );
    await this.call(
      `deleting volume ${blockdeviceId}`,
      () =>
        this.client.send('DELETE', 'volumes', { query: { name: blockdeviceId } }).catch((e: unknown) => {
          if (!(e instanceof XmsError && e.notFound)) throw e;
        }),
      blockdeviceId,
    );
    this.logger.info('volume destroyed', { blockdeviceId });
  }

  /** The initiator group of instanceId (an IQN), with its initiator: made when missing. */
  private async initiatorGroup(iqn: string): Promise<string> {
    const inits = await this.client.get('initiators', z.object({ initiators: z.array(InitiatorSchema) }), {
      full: 1,
      filter: [`port-address:eq:${iqn}`],
    });
    const found = inits.initiators[0];
    if (found !== undefined) return found['ig-id'][1];
    const ig = await this.client
      .get('initiator-groups', contentOf(InitiatorGroupSchema), { name: iqn })
      .catch((e: unknown) => (e instanceof XmsError && e.notFound ? null : Promise.reject(e)));
    if (ig === null) {
      await this.client.send('POST', 'initiator-groups', { body: { 'ig-name': iqn } }).catch((e: unknown) => {
        // Made meanwhile (another attach of this host): fine.
        if (!(e instanceof XmsError && e.status === 400 && /not_unique|already/.test(e.xmsMessage))) throw e;
      });
    }
    await this.client
      .send('POST', 'initiators', { body: { 'initiator-name': iqn, 'ig-id': iqn, 'port-address': iqn } })
      .catch((e: unknown) => {
        if (!(e instanceof XmsError && e.status === 400 && /not_unique|already/.test(e.xmsMessage))) throw e;
      });
    return iqn;
  }

  async attachVolume(blockdeviceId: string, instanceId: string): Promise<BlockDeviceVolume> {
    const v = await this.ownVolume(blockdeviceId);
    const what = `attaching volume ${blockdeviceId} to ${instanceId}`;
    const before = await this.call(what, () => this.lunMaps(blockdeviceId), blockdeviceId);
    const held = holderMap(before);
    if (held !== null)
      throw new StorageError(
        'ALREADY_ATTACHED',
        `volume ${blockdeviceId} is attached to ${held['ig-name']}`,
        blockdeviceId,
      );
    const ig = await this.call(what, () => this.initiatorGroup(instanceId), blockdeviceId);
    await this.call(
      what,
      () =>
        this.client
          .send('POST', 'lun-maps', {
            body: { 'vol-id': blockdeviceId, 'ig-id': ig, 'tg-id': this.options.target_group },
          })
          .catch((e: unknown) => {
            // Cinder create_lun_map: already_mapped means our mapping exists (a retried POST).
            if (!(e instanceof XmsError && e.status === 400 && e.xmsMessage.includes(ALREADY_MAPPED))) throw e;
          }),
      blockdeviceId,
    );
    const after = await this.call(what, () => this.lunMaps(blockdeviceId), blockdeviceId);
    const holder = holderMap(after);
    if (holder === null) throw new StorageError('BACKEND_ERROR', `${what}: the lun-map disappeared`, blockdeviceId);
    if (holder['ig-name'] !== ig) {
      // Another instance mapped it first: take ours away again.
      await this.unmap(
        after.filter((m) => m['ig-name'] === ig),
        blockdeviceId,
      );
      throw new StorageError(
        'ALREADY_ATTACHED',
        `volume ${blockdeviceId} is attached to ${holder['ig-name']}`,
        blockdeviceId,
      );
    }
    if (instanceId === (await this.computeInstanceId())) await this.connect(v);
    this.logger.info('volume attached', { blockdeviceId, instanceId, lun: holder.lun });
    return this.toVolume(
      v,
      after.filter((m) => m.index === holder.index),
    );
  }

  private async unmap(maps: readonly LunMap[], blockdeviceId: string): Promise<void> {
    for (const m of maps)
      await this.call(
        `removing lun-map ${m.index} of ${blockdeviceId}`,
        () =>
          this.client.send('DELETE', `lun-maps/${m.index}`).catch((e: unknown) => {
            if (!(e instanceof XmsError && e.notFound)) throw e;
          }),
        blockdeviceId,
      );
  }

  private naaOf(v: VolumeContent): string {
    const naa = normaliseNaa(v['naa-name']);
    if (naa === null)
      throw new StorageError(
        'BACKEND_ERROR',
        `volume ${v.name} has no usable naa-name (${JSON.stringify(v['naa-name'])})`,
        v.name,
      );
    return naa;
  }

  private async iscsiPortals(): Promise<IscsiPortal[]> {
    this.portals ??= this.client
      .get('iscsi-portals', z.object({ 'iscsi-portals': z.array(IscsiPortalSchema) }), { full: 1 })
      .then((r) => {
        if (r['iscsi-portals'].length === 0)
          throw new StorageError('BACKEND_ERROR', 'XtremIO has no iSCSI portals configured');
        return r['iscsi-portals'];
      })
      .catch((e: unknown) => {
        this.portals = undefined;
        throw e;
      });
    return this.portals;
  }

  private async connect(v: VolumeContent): Promise<string> {
    const naa = this.naaOf(v);
    const portals = await this.call(`finding the iSCSI portals for ${v.name}`, () => this.iscsiPortals(), v.name);
    return this.host.connect(portals, naa, v.name);
  }

  async detachVolume(blockdeviceId: string, options: DetachOptions = {}): Promise<void> {
    const v = await this.ownVolume(blockdeviceId);
    const maps = await this.call(`detaching volume ${blockdeviceId}`, () => this.lunMaps(blockdeviceId), blockdeviceId);
    const holder = holderMap(maps);
    if (holder === null) throw new StorageError('UNATTACHED', `volume ${blockdeviceId} is not attached`, blockdeviceId);
    const here = holder['ig-name'] === (await this.computeInstanceId());
    if (!here && options.force !== true)
      throw new StorageError(
        'NOT_ATTACHED_HERE',
        `volume ${blockdeviceId} is attached to ${holder['ig-name']}, not to this host`,
        blockdeviceId,
      );
    const naa = normaliseNaa(v['naa-name']);
    const device = here && naa !== null ? await this.host.device(naa) : null;
    if (device !== null) {
      if (options.force !== true && (await isDeviceBusy(device)))
        throw new StorageError(
          'DEVICE_BUSY',
          `volume ${blockdeviceId} is in use on ${device} (mounted?)`,
          blockdeviceId,
        );
      await this.host.removeDevice(device);
    }
    // Unmapping is the fence: the old holder's initiator can no longer reach the LUN.
    await this.unmap(maps, blockdeviceId);
    if (here && naa !== null) await this.host.forget(naa);
    this.logger.info('volume detached', { blockdeviceId, from: holder['ig-name'], force: options.force === true });
  }

  async listVolumes(): Promise<BlockDeviceVolume[]> {
    return this.call('listing volumes', async () => {
      const [vols, maps] = await Promise.all([
        this.client.get('volumes', z.object({ volumes: z.array(VolumeContentSchema) }), { full: 1 }),
        this.lunMaps(),
      ]);
      return vols.volumes.filter((v) => this.ours(v.name)).map((v) => this.toVolume(v, maps));
    });
  }

  async getDevicePath(blockdeviceId: string): Promise<string> {
    const v = await this.ownVolume(blockdeviceId);
    const holder = holderMap(await this.call('listing lun-maps', () => this.lunMaps(blockdeviceId), blockdeviceId));
    if (holder === null) throw new StorageError('UNATTACHED', `volume ${blockdeviceId} is not attached`, blockdeviceId);
    if (holder['ig-name'] !== (await this.computeInstanceId()))
      throw new StorageError(
        'NOT_ATTACHED_HERE',
        `volume ${blockdeviceId} is attached to ${holder['ig-name']}`,
        blockdeviceId,
      );
    return (await this.host.device(this.naaOf(v))) ?? this.connect(v);
  }

  async resizeVolume(blockdeviceId: string, size: number): Promise<BlockDeviceVolume> {
    const bytes = this.checkSize(size);
    const v = await this.ownVolume(blockdeviceId);
    if (bytes > v['vol-size'] * KIB) {
      await this.call(
        `extending volume ${blockdeviceId}`,
        () =>
          this.client.send('PUT', 'volumes', { query: { name: blockdeviceId }, body: { 'vol-size': xmsSize(bytes) } }),
        blockdeviceId,
      );
    }
    const maps = await this.call('listing lun-maps', () => this.lunMaps(blockdeviceId), blockdeviceId);
    const holder = holderMap(maps);
    const grown = await this.ownVolume(blockdeviceId);
    if (holder !== null && holder['ig-name'] === (await this.computeInstanceId())) {
      const naa = this.naaOf(grown);
      const want = grown['vol-size'] * KIB;
      await this.host.rescan();
      await pollUntil(
        async () => {
          const device = await this.host.device(naa);
          if (device === null) return undefined;
          const handle = await fs.open(device, 'r');
          try {
            const { size: seen } = await handle.stat();
            return seen >= want || (await blockSize(device)) >= want ? true : undefined;
          } finally {
            await handle.close();
          }
        },
        {
          timeoutMs: this.options.operation_timeout_seconds * 1000,
          backoff: { initialMs: 50, maxMs: 1000, jitter: true },
          clock: this.clock,
          onTimeout: () => {
            throw new StorageError(
              'BACKEND_ERROR',
              `the device of ${blockdeviceId} did not grow to ${want} bytes`,
              blockdeviceId,
            );
          },
        },
      );
    }
    return this.toVolume(grown, holder === null ? [] : [holder]);
  }

  // ---------------------------------------------------------------- snapshots
  // XtremIO snapshots are volumes made instantly from another (POST snapshots, as Cinder's Client4.create_snapshot),
  // renamed afterwards (the array names them itself). A Flocker snapshot is a read-only one named
  // flockersnap_<cluster>_<dataset>_<snapshot id>; a clone is a regular snapshot of it, renamed into a Flocker
  // volume name. They are independent of their source: deleting the source keeps them.

  private snapshotOf(s: SnapshotContent): BlockDeviceSnapshot | null {
    const p = parseSnapshotName(s.name);
    if (p === null || p.clusterId !== this.options.cluster_id) return null;
    const t = s['creation-time'] === undefined ? Number.NaN : Date.parse(s['creation-time']);
    return {
      snapshotId: p.snapshotId,
      backendId: s.name,
      datasetId: p.datasetId,
      sourceBlockdeviceId: s['ancestor-vol-id']?.[1] ?? '',
      size: s['vol-size'] * KIB,
      createdAt: new Date(Number.isNaN(t) ? 0 : t).toISOString(),
      status: 'ready',
    };
  }

  private async snapshotContents(): Promise<SnapshotContent[]> {
    const r = await this.client.get('snapshots', z.object({ snapshots: z.array(SnapshotContentSchema) }), { full: 1 });
    return r.snapshots;
  }

  private async findSnapshot(snapshotId: string): Promise<SnapshotContent | null> {
    if (!isSnapshotId(snapshotId)) return null;
    const all = await this.call('listing snapshots', () => this.snapshotContents());
    return all.find((s) => this.snapshotOf(s)?.snapshotId === snapshotId) ?? null;
  }

  /**
   * POST snapshots of source, then the rename to name (undone when it fails, as Cinder does). A POST whose answer
   * was lost and is sent again meets vol_obj_name_not_unique: the object it made is then found by the array's own
   * name for it (<source>.<suffix>) and renamed.
   */
  private async snapshotAs(source: string, name: string, suffix: string, readonly: boolean): Promise<void> {
    let index: number;
    try {
      const body = await this.client.send('POST', 'snapshots', {
        body: {
          'volume-list': [source],
          'snapshot-set-name': name,
          'snap-suffix': suffix,
          'snapshot-type': readonly ? 'readonly' : 'regular',
        },
        idempotent: true,
      });
      index = indexOfHref(CreatedSchema.parse(body).links[0].href);
    } catch (e) {
      if (!(e instanceof XmsError && e.status === 400 && e.xmsMessage === VOL_NOT_UNIQUE)) throw e;
      const made = await this.findVolume(`${source}.${suffix}`);
      if (made === null) throw e;
      index = made.index;
    }
    try {
      await this.client.send('PUT', `snapshots/${index}`, { body: { name } });
    } catch (e) {
      this.logger.error('renaming a new snapshot failed; removing it', { index, name, error: errorMessage(e) });
      await this.client.send('DELETE', `snapshots/${index}`).catch(() => undefined);
      throw e;
    }
  }

  async createSnapshot(blockdeviceId: string, snapshotId: string): Promise<BlockDeviceSnapshot> {
    const existing = await this.findSnapshot(snapshotId);
    if (existing !== null) {
      const s = this.snapshotOf(existing);
      if (s !== null) return s;
    }
    if (!isSnapshotId(snapshotId))
      throw new StorageError('BACKEND_ERROR', `snapshot id ${JSON.stringify(snapshotId)} is not a UUID`, blockdeviceId);
    const v = await this.ownVolume(blockdeviceId);
    const p = parseVolumeName(v.name);
    if (p === null) throw new StorageError('UNKNOWN_VOLUME', `no volume ${blockdeviceId}`, blockdeviceId);
    const name = snapshotName(this.options.cluster_id, p.datasetId, snapshotId);
    await this.call(
      `snapshotting volume ${blockdeviceId}`,
      () => this.snapshotAs(v.name, name, snapshotId, true),
      blockdeviceId,
    );
    const taken = await this.call(
      `reading snapshot ${snapshotId}`,
      () => this.client.get('volumes', contentOf(SnapshotContentSchema), { name }),
      blockdeviceId,
    );
    const s = this.snapshotOf(taken.content);
    if (s === null) throw new StorageError('BACKEND_ERROR', `snapshot ${name} cannot be read back`, blockdeviceId);
    this.logger.info('snapshot taken', { blockdeviceId, snapshotId, name });
    return s;
  }

  async listSnapshots(): Promise<BlockDeviceSnapshot[]> {
    const all = await this.call('listing snapshots', () => this.snapshotContents());
    return all.flatMap((c) => {
      const s = this.snapshotOf(c);
      return s === null ? [] : [s];
    });
  }

  async destroySnapshot(snapshotId: string): Promise<void> {
    const s = await this.findSnapshot(snapshotId);
    if (s === null) return;
    // A mapped snapshot (an open one, or a crashed backup's leftover) is unmapped first: the array refuses otherwise.
    await this.closeSnapshot(s, null);
    // Cinder's delete_snapshot deletes through 'volumes' by name.
    await this.call(`deleting snapshot ${snapshotId}`, () =>
      this.client.send('DELETE', 'volumes', { query: { name: s.name } }).catch((e: unknown) => {
        if (!(e instanceof XmsError && e.notFound)) throw e;
      }),
    );
    this.logger.info('snapshot destroyed', { snapshotId });
  }

  /**
   * Maps the read-only snapshot itself to this host's initiator group and finds its LUN as attach does (no
   * temporary volume). Other hosts may map it too. A crash's leftover mapping here is adopted (already_mapped);
   * release() removes this host's mapping (harmless when done already).
   */
  async openSnapshot(snapshotId: string): Promise<OpenedSnapshot> {
    const snap = await this.findSnapshot(snapshotId);
    if (snap === null) throw new StorageError('UNKNOWN_SNAPSHOT', `no snapshot ${snapshotId}`);
    const what = `opening snapshot ${snapshotId}`;
    const ig = await this.call(what, async () => this.initiatorGroup(await this.computeInstanceId()));
    await this.call(what, () =>
      this.client
        .send('POST', 'lun-maps', { body: { 'vol-id': snap.name, 'ig-id': ig, 'tg-id': this.options.target_group } })
        .catch((e: unknown) => {
          if (!(e instanceof XmsError && e.status === 400 && e.xmsMessage.includes(ALREADY_MAPPED))) throw e;
        }),
    );
    const path = await this.connect(snap);
    return { path, size: snap['vol-size'] * KIB, release: () => this.closeSnapshot(snap, ig) };
  }

  /** Removes the snapshot's lun-maps (of initiator group ig only, or all for null), this host's device first. */
  private async closeSnapshot(snap: SnapshotContent, ig: string | null): Promise<void> {
    const maps = (await this.call('listing lun-maps', () => this.lunMaps(snap.name))).filter(
      (m) => ig === null || m['ig-name'] === ig,
    );
    if (maps.length === 0) return;
    const naa = normaliseNaa(snap['naa-name']);
    const device = naa === null ? null : await this.host.device(naa);
    if (device !== null) await this.host.removeDevice(device);
    await this.unmap(maps, snap.name);
    if (naa !== null && device !== null) await this.host.forget(naa);
  }

  async createVolumeFromSnapshot(
    snapshotId: string,
    datasetId: string,
    size: number,
    options: CreateVolumeOptions = {},
  ): Promise<BlockDeviceVolume> {
    const snap = await this.findSnapshot(snapshotId);
    if (snap === null) throw new StorageError('UNKNOWN_SNAPSHOT', `no snapshot ${snapshotId}`);
    const bytes = this.checkSize(size);
    if (bytes < snap['vol-size'] * KIB)
      throw new StorageError(
        'INVALID_SIZE',
        `a clone of snapshot ${snapshotId} needs at least ${snap['vol-size'] * KIB} bytes`,
      );
    const problem = nameProblem(datasetId, options.profile, this.options.cluster_id);
    if (problem !== undefined) throw new StorageError('BACKEND_ERROR', problem);
    if (options.profile !== undefined) this.logger.warn(NO_TIERS_MESSAGE, { datasetId, profile: options.profile });
    if (options.onlyVolume === true && (await this.listVolumes()).some((v) => v.datasetId === datasetId))
      throw new StorageError('DATASET_HAS_VOLUME', `dataset ${datasetId} has a volume already`);
    const nonce = newNonce();
    const name = volumeName({ clusterId: this.options.cluster_id, datasetId, nonce, profile: options.profile });
    const what = `cloning snapshot ${snapshotId} for dataset ${datasetId}`;
    await this.call(what, () => this.snapshotAs(snap.name, name, nonce, false));
    if (bytes > snap['vol-size'] * KIB) {
      await this.call(what, () =>
        this.client
          .send('PUT', 'volumes', { query: { name }, body: { 'vol-size': xmsSize(bytes) } })
          .catch(async (e: unknown) => {
            // Cinder reverts a clone it cannot extend: so do we.
            await this.client.send('DELETE', 'volumes', { query: { name } }).catch(() => undefined);
            throw e;
          }),
      );
    }
    const v = await this.call(what, () => this.findVolume(name));
    if (v === null) throw new StorageError('BACKEND_ERROR', `${what}: the clone ${name} is not listed`);
    this.logger.info('volume cloned from snapshot', { blockdeviceId: name, snapshotId, datasetId, size: bytes });
    return this.toVolume(v, []);
  }
}

/** A block device's size in bytes (sysfs size is in 512-byte sectors). */
async function blockSize(device: string): Promise<number> {
  const name = (await fs.realpath(device)).split('/').pop() ?? '';
  const sectors = Number((await fs.readFile(`/sys/class/block/${name}/size`, 'utf8').catch(() => '0')).trim());
  return sectors * 512;
}

/**
 * The narrow typed Cinder v3 (and Nova volume-attachment) client the driver
 * needs. Every response is zod-validated; a 401 renews the token once.
 */
import { z } from 'zod';
import { type HttpMethod, type JsonHttp, OpenStackHttpError, parseBody, type RequestOptions } from './http';
import { findEndpoint, type Token, type TokenSource } from './keystone';
import {
  type Attachment,
  AttachmentEnvelopeSchema,
  AttachmentListSchema,
  NovaVolumeAttachmentSchema,
  type Snapshot,
  SnapshotEnvelopeSchema,
  SnapshotListSchema,
  type Volume,
  VolumeEnvelopeSchema,
  VolumeListSchema,
} from './schemas';

const TypeListSchema = z.object({ volume_types: z.array(z.object({ id: z.string(), name: z.string() })) });

/** What call() gives, or `absent` when the server answers 404 (the thing is not there, or already gone). */
async function unlessNotFound<T, A>(absent: A, call: () => Promise<T>): Promise<T | A> {
  try {
    return await call();
  } catch (e) {
    if (e instanceof OpenStackHttpError && e.status === 404) return absent;
    throw e;
  }
}

/** 3.44 has attachment complete (3.27 brought the attachments API, 3.42 in-use extend). */
export const CINDER_MICROVERSION = '3.44';

export interface EndpointConfig {
  readonly region?: string;
  readonly interface: string;
  /** Override for the Cinder endpoint (…/v3, without project id). */
  readonly cinderUrl?: string;
  /** The catalog's type for the block storage API (default volumev3; Rackspace lists it as volume). */
  readonly volumeServiceType?: string;
}

export interface CreateVolumeRequest {
  readonly size: number; // GiB
  readonly name: string;
  readonly description?: string;
  readonly volumeType?: string;
  readonly availabilityZone?: string;
  readonly metadata: Record<string, string>;
  /** Make the volume from this snapshot (its data and, unless volumeType says otherwise, its type). */
  readonly snapshotId?: string;
}

export interface CreateSnapshotRequest {
  readonly volumeId: string;
  readonly name: string;
  readonly description?: string;
  readonly metadata: Record<string, string>;
  /** Snapshot an in-use volume (Cinder refuses without it). */
  readonly force: boolean;
}

export interface HostConnector {
  readonly host: string;
  readonly ip?: string;
  readonly initiator?: string;
  readonly platform: string;
  readonly os_type: string;
  readonly multipath: boolean;
}

export class CinderClient {
  constructor(
    private readonly http: JsonHttp,
    private readonly tokens: TokenSource,
    private readonly endpoints: EndpointConfig,
    /** Page size for listing. */
    private readonly pageSize = 100,
  ) {}

  private volumeBase(token: Token): string {
    if (this.endpoints.cinderUrl !== undefined) {
      const base = this.endpoints.cinderUrl.replace(/\/+$/, '');
      return token.projectId === undefined ? base : `${base}/${token.projectId}`;
    }
    const type = this.endpoints.volumeServiceType ?? 'volumev3';
    return findEndpoint(token.catalog, type, this.endpoints.interface, this.endpoints.region);
  }

  private computeBase(token: Token): string {
    return findEndpoint(token.catalog, 'compute', this.endpoints.interface, this.endpoints.region);
  }

  /** One authenticated call; a 401 means our token was revoked or expired early: renew once and repeat. */
  private async call(service: 'volume' | 'compute', method: HttpMethod, path: string, opts: RequestOptions = {}) {
    for (let attempt = 0; ; attempt++) {
      const token = await this.tokens.token();
      const base = service === 'volume' ? this.volumeBase(token) : this.computeBase(token);
      const headers: Record<string, string> = {
        'x-auth-token': token.id,
        ...(service === 'volume' ? { 'openstack-api-version': `volume ${CINDER_MICROVERSION}` } : {}),
        ...opts.headers,
      };
      try {
        return await this.http.request(method, `${base}${path}`, { ...opts, headers });
      } catch (e) {
        if (e instanceof OpenStackHttpError && e.status === 401 && attempt === 0) {
          this.tokens.invalidate(token);
          continue;
        }
        throw e;
      }
    }
  }

  async createVolume(req: CreateVolumeRequest): Promise<Volume> {
    const res = await this.call('volume', 'POST', '/volumes', {
      idempotent: false,
      body: {
        volume: {
          size: req.size,
          name: req.name,
          ...(req.description !== undefined ? { description: req.description } : {}),
          ...(req.volumeType !== undefined ? { volume_type: req.volumeType } : {}),
          ...(req.availabilityZone !== undefined ? { availability_zone: req.availabilityZone } : {}),
          ...(req.snapshotId !== undefined ? { snapshot_id: req.snapshotId } : {}),
          metadata: req.metadata,
        },
      },
    });
    return parseBody(VolumeEnvelopeSchema, res.body, 'volume').volume;
  }

  async createSnapshot(req: CreateSnapshotRequest): Promise<Snapshot> {
    const res = await this.call('volume', 'POST', '/snapshots', {
      idempotent: false,
      body: {
        snapshot: {
          volume_id: req.volumeId,
          name: req.name,
          ...(req.description !== undefined ? { description: req.description } : {}),
          metadata: req.metadata,
          force: req.force,
        },
      },
    });
    return parseBody(SnapshotEnvelopeSchema, res.body, 'snapshot').snapshot;
  }

  /** The snapshot, or null if Cinder does not know it. */
  async getSnapshot(id: string): Promise<Snapshot | null> {
    return unlessNotFound(null, async () => {
      const res = await this.call('volume', 'GET', `/snapshots/${encodeURIComponent(id)}`);
      return parseBody(SnapshotEnvelopeSchema, res.body, 'snapshot').snapshot;
    });
  }

  /** Deletes; false if the snapshot was already gone. */
  async deleteSnapshot(id: string): Promise<boolean> {
    return unlessNotFound(false, async () => {
      await this.call('volume', 'DELETE', `/snapshots/${encodeURIComponent(id)}`);
      return true;
    });
  }

  /** All snapshots whose metadata contains every given key/value (filter: 3.22+), following limit/marker pages. */
  async listSnapshots(metadata: Record<string, string>): Promise<Snapshot[]> {
    const all: Snapshot[] = [];
    let marker: string | undefined;
    for (;;) {
      const query = new URLSearchParams({ limit: String(this.pageSize), metadata: JSON.stringify(metadata) });
      if (marker !== undefined) query.set('marker', marker);
      const res = await this.call('volume', 'GET', `/snapshots/detail?${query.toString()}`);
      const page = parseBody(SnapshotListSchema, res.body, 'snapshot list');
      all.push(...page.snapshots);
      const hasNext = page.snapshots_links?.some((l) => l.rel === 'next') ?? false;
      if (!hasNext || page.snapshots.length === 0) break;
      const last = page.snapshots[page.snapshots.length - 1].id;
      if (last === marker) break;
      marker = last;
    }
    // Checked again here, as for volumes: a server ignoring the filter cannot leak foreign snapshots in.
    return all.filter((s) => Object.entries(metadata).every(([k, val]) => s.metadata[k] === val));
  }

  /** The volume, or null if Cinder does not know it. */
  async getVolume(id: string): Promise<Volume | null> {
    return unlessNotFound(null, async () => {
      const res = await this.call('volume', 'GET', `/volumes/${encodeURIComponent(id)}`);
      return parseBody(VolumeEnvelopeSchema, res.body, 'volume').volume;
    });
  }

  /** Cinder's clock (its Date header, whole seconds) at a GET of the volume; undefined without one. */
  async serverTime(volumeId: string): Promise<number | undefined> {
    const res = await this.call('volume', 'GET', `/volumes/${encodeURIComponent(volumeId)}`);
    const date = res.headers.date;
    const ms = typeof date === 'string' ? Date.parse(date) : NaN;
    return Number.isFinite(ms) ? ms : undefined;
  }

  /** Deletes; false if the volume was already gone. */
  async deleteVolume(id: string): Promise<boolean> {
    return unlessNotFound(false, async () => {
      await this.call('volume', 'DELETE', `/volumes/${encodeURIComponent(id)}`);
      return true;
    });
  }

  /** All volumes whose metadata contains every given key/value, following limit/marker pages. */
  async listVolumes(metadata: Record<string, string>): Promise<Volume[]> {
    const all: Volume[] = [];
    let marker: string | undefined;
    for (;;) {
      const query = new URLSearchParams({ limit: String(this.pageSize), metadata: JSON.stringify(metadata) });
      if (marker !== undefined) query.set('marker', marker);
      const res = await this.call('volume', 'GET', `/volumes/detail?${query.toString()}`);
      const page = parseBody(VolumeListSchema, res.body, 'volume list');
      all.push(...page.volumes);
      const hasNext = page.volumes_links?.some((l) => l.rel === 'next') ?? false;
      if (!hasNext || page.volumes.length === 0) break;
      const last = page.volumes[page.volumes.length - 1].id;
      if (last === marker) break; // a server that ignores the marker must not loop us forever
      marker = last;
    }
    // Cinder matches metadata server-side; check again so a server ignoring the filter cannot leak foreign volumes in.
    return all.filter((v) => Object.entries(metadata).every(([k, val]) => v.metadata[k] === val));
  }

  /** Merges keys into the volume's metadata. */
  async setVolumeMetadata(id: string, metadata: Record<string, string>): Promise<void> {
    await this.call('volume', 'POST', `/volumes/${encodeURIComponent(id)}/metadata`, {
      body: { metadata },
      idempotent: true,
    });
  }

  /** Removes one metadata key; absent keys are fine. */
  async deleteVolumeMetadataKey(id: string, key: string): Promise<void> {
    await unlessNotFound(undefined, () =>
      this.call('volume', 'DELETE', `/volumes/${encodeURIComponent(id)}/metadata/${encodeURIComponent(key)}`),
    );
  }

  async extendVolume(id: string, newSizeGiB: number): Promise<void> {
    await this.call('volume', 'POST', `/volumes/${encodeURIComponent(id)}/action`, {
      body: { 'os-extend': { new_size: newSizeGiB } },
      idempotent: true, // extending to the same size twice is refused, not doubled
    });
  }

  /**
   * Reserves the volume and, with a connector, exports it to that host. Bare
   * metal passes no instance: Cinder would otherwise insist on asking Nova
   * before letting the attachment be deleted (bug #2004555).
   */
  async createAttachment(volumeId: string, instanceUuid: string | null, connector: HostConnector): Promise<Attachment> {
    const res = await this.call('volume', 'POST', '/attachments', {
      idempotent: false,
      body: {
        attachment: {
          volume_uuid: volumeId,
          ...(instanceUuid !== null ? { instance_uuid: instanceUuid } : {}),
          connector,
        },
      },
    });
    return parseBody(AttachmentEnvelopeSchema, res.body, 'attachment').attachment;
  }

  async getAttachment(id: string): Promise<Attachment | null> {
    return unlessNotFound(null, async () => {
      const res = await this.call('volume', 'GET', `/attachments/${encodeURIComponent(id)}`);
      return parseBody(AttachmentEnvelopeSchema, res.body, 'attachment').attachment;
    });
  }

  async listAttachments(volumeId: string): Promise<Attachment[]> {
    const res = await this.call(
      'volume',
      'GET',
      `/attachments?${new URLSearchParams({ volume_id: volumeId }).toString()}`,
    );
    return parseBody(AttachmentListSchema, res.body, 'attachment list').attachments;
  }

  /** The detail view (with attached_at and connection_info) of a volume's attachments. */
  async listAttachmentDetails(volumeId: string): Promise<Attachment[]> {
    const res = await this.call(
      'volume',
      'GET',
      `/attachments/detail?${new URLSearchParams({ volume_id: volumeId }).toString()}`,
    );
    return parseBody(AttachmentListSchema, res.body, 'attachment list').attachments;
  }

  async completeAttachment(id: string): Promise<void> {
    await this.call('volume', 'POST', `/attachments/${encodeURIComponent(id)}/action`, {
      body: { 'os-complete': null },
      idempotent: true,
    });
  }

  /** Deletes an attachment; false if it was already gone. */
  async deleteAttachment(id: string): Promise<boolean> {
    return unlessNotFound(false, async () => {
      await this.call('volume', 'DELETE', `/attachments/${encodeURIComponent(id)}`);
      return true;
    });
  }

  async novaAttach(serverId: string, volumeId: string): Promise<void> {
    const res = await this.call('compute', 'POST', `/servers/${encodeURIComponent(serverId)}/os-volume_attachments`, {
      idempotent: false,
      body: { volumeAttachment: { volumeId } },
    });
    parseBody(NovaVolumeAttachmentSchema, res.body, 'Nova volume attachment');
  }

  async novaDetach(serverId: string, volumeId: string): Promise<boolean> {
    return unlessNotFound(false, async () => {
      await this.call(
        'compute',
        'DELETE',
        `/servers/${encodeURIComponent(serverId)}/os-volume_attachments/${encodeURIComponent(volumeId)}`,
      );
      return true;
    });
  }

  /** Admin call used by tests and set-up: make sure a volume type exists. */
  async ensureVolumeType(name: string, extraSpecs: Record<string, string> = {}): Promise<void> {
    const res = await this.call('volume', 'GET', '/types');
    const types = parseBody(TypeListSchema, res.body, 'volume type list').volume_types;
    if (types.some((t) => t.name === name)) return;
    await this.call('volume', 'POST', '/types', {
      body: { volume_type: { name, extra_specs: extraSpecs } },
      idempotent: false,
    });
  }
}

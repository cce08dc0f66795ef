/**
 * A wire-faithful simulator of the ScaleIO / PowerFlex REST gateway, for tests only (not exported
 * from the package). It runs as its own process (./main.ts) and keeps its state in memory; its
 * data path is real: a volume is a sparse file, a mapping to an SDC a loop device of it, and the
 * SDC's device link <byIdDir>/emc-vol-<systemId>-<volumeId> a symlink to that loop device.
 *
 * Sources for each behaviour, cited where it is implemented:
 *  [DOC]   Dell's PowerFlex REST API reference (developer.dell.com/apis/4008: /api/login,
 *          /api/types/<Type>/instances, /api/instances/<Type>::<id>/action/<action>).
 *  [CIN]   OpenStack Cinder, cinder/volume/drivers/dell_emc/powerflex/rest_client.py and its unit
 *          tests cinder/tests/unit/volume/drivers/dell_emc/powerflex/ (__init__.py, test_create_volume.py,
 *          test_delete_volume.py, test_sdc.py, mockup/query_sdc_instances_response.json, test_create_snapshot.py,
 *          test_create_volume_from_snapshot.py, test_delete_snapshot.py).
 *  [LXD]   Canonical LXD's PowerFlex driver (lxd/storage/drivers/driver_powerflex_utils.go: createVolumeSnapshot
 *          sends snapshotDefs with accessModeLimit ReadWrite or ReadOnly and reads volumeIdList; setVolumeName).
 *  [GO]    Dell's goscaleio: api.go (login), api_test.go, volume.go, volume_test.go, sdc.go,
 *          types/v1/types.go (field names), types/v1/code.properties.go (the MDM's error messages),
 *          system.go CreateSnapshotConsistencyGroup (POST <system self link>/action/snapshotVolumes),
 *          inttests/volume_test.go (snapshot of a volume, MapVolumeSdcParam accessMode ReadOnly).
 * Where the evidence gives a message but not its errorCode or HTTP status, the simulator says so
 * next to it; the driver must not key on those numbers (it keys on messages and on errorCode 79).
 */
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { z } from 'zod';
import { execFileExec } from '../../exec';

export const SimulatorConfigSchema = z.object({
  systemId: z.string().regex(/^[0-9a-f]{16}$/),
  /** Address to listen on (main.ts); 0.0.0.0 where hosts in other network namespaces reach it. */
  listen: z.string().default('127.0.0.1'),
  /** Port to listen on (main.ts); 0: any free one. */
  port: z.number().int().min(0).max(65535).default(0),
  username: z.string().min(1),
  password: z.string().min(1),
  /** Where volume files live (sparse). */
  dataDir: z.string().min(1),
  pools: z.array(z.object({ id: z.string(), name: z.string() })).min(1),
  /** The SDCs this "system" knows; each has its own device-link directory (its host's /dev/disk/by-id). */
  sdcs: z.array(z.object({ id: z.string(), guid: z.string(), ip: z.string(), byIdDir: z.string().min(1) })).min(1),
});
export type SimulatorConfig = z.input<typeof SimulatorConfigSchema>;

const GIB = 1024 * 1024 * 1024;

interface SimVolume {
  id: string;
  name: string;
  sizeInKb: number;
  storagePoolId: string;
  volumeType: string;
  creationTime: number;
  /** sdcId → loop device serving the mapping. */
  mapped: Map<string, string>;
  /** sdcId → the mapping's accessMode (ReadWrite or ReadOnly). */
  accessModes: Map<string, string>;
  /** The volume a snapshot was taken of; null for a volume [GO types.go Volume.AncestorVolumeID]. */
  ancestorVolumeId: string | null;
  /** A snapshot shares its source's vTree [GO types.go VTree.BaseVolumeID]. */
  vtreeId: string;
  /** ReadWrite, or ReadOnly for a snapshot taken with that limit [GO SnapshotVolumesParam.accessModeLimit]. */
  accessModeLimit: string;
}

/** An error the gateway answers: the body shape is goscaleio's types.Error [GO types.go], also Cinder's fixtures [CIN __init__.py]. */
class GatewayError extends Error {
  constructor(
    readonly status: number,
    readonly errorCode: number,
    message: string,
  ) {
    super(message);
  }
}

// [GO api_test.go]: {"message":"Unauthorized","httpStatusCode":401,"errorCode":0} for a request without a valid token.
const unauthorized = () => new GatewayError(401, 0, 'Unauthorized');
// [GO code.properties VOL_NOT_FOUND] message; errorCode 79 is Cinder's VOLUME_NOT_FOUND_ERROR [CIN rest_client.py];
// the HTTP status is not attested by either: 500, as for the other MDM refusals in [CIN __init__.py BAD_STATUS_RESPONSE].
const volumeNotFound = () => new GatewayError(500, 79, 'Could not find the volume');
// MDM refusals: messages from [GO code.properties]; their errorCodes are not attested anywhere we found: 0 here.
const mdm = (message: string) => new GatewayError(500, 0, message);

export interface Faults {
  /** Delay the answer of the next volume create this long (after making the volume): a lost answer. */
  createAnswerDelayMs?: number;
  /** Answer the next this many authenticated requests 503 (an overloaded gateway; injected, not from the evidence). */
  unavailableCount?: number;
}

export class GatewaySimulator {
  private readonly volumes = new Map<string, SimVolume>();
  private readonly tokens = new Set<string>();
  private nextId = 1;
  readonly faults: Faults = {};
  /** Serializes the data path (losetup, links) as the MDM serializes its commands. */
  private queue: Promise<unknown> = Promise.resolve();

  readonly config: z.output<typeof SimulatorConfigSchema>;

  constructor(config: SimulatorConfig) {
    this.config = SimulatorConfigSchema.parse(config);
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** Volume ids: 16 hex digits as in [CIN test_sdc.py] provider_id 3bd1f78800000019. */
  private newVolumeId(): string {
    return `${randomBytes(4).toString('hex')}${(this.nextId++).toString(16).padStart(8, '0')}`;
  }

  private volumeJson(v: SimVolume): unknown {
    // Field names: goscaleio types.Volume and MappedSdcInfo [GO types.go].
    const mappedSdcInfo = [...v.mapped.keys()].map((sdcId) => {
      const sdc = this.config.sdcs.find((s) => s.id === sdcId);
      const accessMode = v.accessModes.get(sdcId) ?? 'ReadWrite';
      return { sdcId, sdcIp: sdc?.ip ?? null, sdcName: null, limitIops: 0, limitBwInMbps: 0, accessMode };
    });
    return {
      id: v.id,
      name: v.name,
      sizeInKb: v.sizeInKb,
      storagePoolId: v.storagePoolId,
      volumeType: v.volumeType,
      creationTime: v.creationTime,
      // [GO types.go] mappedSdcInfo; Cinder's _unmap_volume_from_all_sdcs treats null as "not mapped" [CIN rest_client.py].
      mappedSdcInfo: mappedSdcInfo.length === 0 ? null : mappedSdcInfo,
      mappingToAllSdcsEnabled: false,
      vtreeId: v.vtreeId,
      ancestorVolumeId: v.ancestorVolumeId,
      accessModeLimit: v.accessModeLimit,
      links: [{ rel: 'self', href: `/api/instances/Volume::${v.id}` }],
    };
  }

  private sdcJson(s: z.output<typeof SimulatorConfigSchema>['sdcs'][number]): unknown {
    // Shape of [CIN mockup/query_sdc_instances_response.json].
    return {
      id: s.id,
      name: null,
      sdcGuid: s.guid,
      sdcIp: s.ip,
      sdcIps: [s.ip],
      systemId: this.config.systemId,
      mdmConnectionState: 'Connected',
      sdcApproved: true,
      osType: 'Linux',
      links: [{ rel: 'self', href: `/api/instances/Sdc::${s.id}` }],
    };
  }

  private volume(id: string): SimVolume {
    const v = this.volumes.get(id);
    if (v === undefined) throw volumeNotFound();
    return v;
  }

  private file(v: SimVolume): string {
    return path.join(this.config.dataDir, `${v.id}.img`);
  }

  private link(sdcId: string, volumeId: string): string {
    const sdc = this.config.sdcs.find((s) => s.id === sdcId);
    if (sdc === undefined) throw new Error(`no SDC ${sdcId}`);
    // The SDC's udev name, read by goscaleio getVolumeMapping as ^emc-vol-<systemId>-<volumeId>$ [GO volume.go].
    return path.join(sdc.byIdDir, `emc-vol-${this.config.systemId}-${volumeId}`);
  }

  private async map(v: SimVolume, sdcId: string, accessMode: string): Promise<void> {
    // A ReadOnly mapping is a read-only loop device: the host cannot write through it.
    const readOnly = accessMode === 'ReadOnly' ? ['--read-only'] : [];
    const { stdout } = await execFileExec('losetup', [...readOnly, '--find', '--show', this.file(v)]);
    const device = stdout.trim();
    const link = this.link(sdcId, v.id);
    await fs.mkdir(path.dirname(link), { recursive: true });
    await fs.rm(link, { force: true });
    await fs.symlink(device, link);
    v.mapped.set(sdcId, device);
    v.accessModes.set(sdcId, accessMode);
  }

  private async unmap(v: SimVolume, sdcId: string): Promise<void> {
    const device = v.mapped.get(sdcId);
    v.mapped.delete(sdcId);
    v.accessModes.delete(sdcId);
    await fs.rm(this.link(sdcId, v.id), { force: true });
    // A mounted device goes once its last user lets go (losetup -d sets autoclear then).
    if (device !== undefined) await execFileExec('losetup', ['-d', device]).catch(() => undefined);
  }

  /** Unmaps everything (process exit): no loop device or link outlives the simulator. */
  async shutdown(): Promise<void> {
    await this.serial(async () => {
      for (const v of this.volumes.values()) for (const sdcId of [...v.mapped.keys()]) await this.unmap(v, sdcId);
    });
  }

  private checkAuth(req: http.IncomingMessage): void {
    const [scheme, encoded] = (req.headers.authorization ?? '').split(' ');
    if (scheme !== 'Basic' || encoded === undefined) throw unauthorized();
    const decoded = Buffer.from(encoded, 'base64').toString();
    const secret = decoded.slice(decoded.indexOf(':') + 1);
    // The token is sent as the basic-auth password, with the user name [CIN rest_client.py] or an empty one [GO api/api.go].
    if (!this.tokens.has(secret)) throw unauthorized();
  }

  async handle(req: http.IncomingMessage, body: unknown): Promise<{ status: number; body?: unknown }> {
    const url = new URL(req.url ?? '/', 'http://x');
    const p = decodeURIComponent(url.pathname).replace(/\/+$/, '');
    const method = req.method ?? 'GET';

    // Test control, not part of the gateway's API.
    if (p === '/__sim/faults' && method === 'POST') {
      const f = z
        .object({
          createAnswerDelayMs: z.number().optional(),
          unavailableCount: z.number().int().optional(),
          /** Forget every session token (as a gateway restart does): the next requests answer 401. */
          expireSessions: z.boolean().optional(),
        })
        .parse(body);
      if (f.expireSessions === true) this.tokens.clear();
      if (f.createAnswerDelayMs !== undefined) this.faults.createAnswerDelayMs = f.createAnswerDelayMs;
      if (f.unavailableCount !== undefined) this.faults.unavailableCount = f.unavailableCount;
      return { status: 200, body: this.faults };
    }

    if (p === '/api/login' && method === 'GET') {
      // [GO api.go Authenticate]: GET api/login with basic auth user:password; the body is the token as a JSON string
      // [CIN rest_client.py _refresh_token: r.json()]; [CIN __init__.py] 'login': 'login_token'.
      const [scheme, encoded] = (req.headers.authorization ?? '').split(' ');
      const decoded = scheme === 'Basic' && encoded !== undefined ? Buffer.from(encoded, 'base64').toString() : '';
      if (decoded !== `${this.config.username}:${this.config.password}`) throw unauthorized();
      const token = randomBytes(24).toString('base64');
      this.tokens.add(token);
      return { status: 200, body: token };
    }
    this.checkAuth(req);
    if ((this.faults.unavailableCount ?? 0) > 0) {
      this.faults.unavailableCount = (this.faults.unavailableCount ?? 1) - 1;
      throw new GatewayError(503, 0, 'The system is busy. Retry later'); // message: [GO code.properties VOL_ALLOC_ERROR_BUSY]
    }

    if (p === '/api/version' && method === 'GET') return { status: 200, body: '3.5' }; // [CIN __init__.py] 'version': '3.5'
    if (p === '/api/types/System/instances' && method === 'GET')
      return { status: 200, body: [{ id: this.config.systemId, name: null, mdmClusterState: 'ClusteredNormal' }] };
    if (p === '/api/types/Sdc/instances' && method === 'GET')
      return { status: 200, body: this.config.sdcs.map((s) => this.sdcJson(s)) };
    if (p === '/api/types/StoragePool/instances' && method === 'GET')
      return {
        status: 200,
        body: this.config.pools.map((sp) => ({ id: sp.id, name: sp.name, zeroPaddingEnabled: true })),
      };
    if (p === '/api/types/Volume/instances' && method === 'GET')
      return { status: 200, body: [...this.volumes.values()].map((v) => this.volumeJson(v)) };
    if (p === '/api/types/Volume/instances' && method === 'POST') return this.create(body);
    if (p === '/api/types/Volume/instances/action/queryIdByKey' && method === 'POST') {
      // [GO volume.go FindVolumeID]: POST {name} answers the id as a JSON string; not found: [GO volume_test.go]
      // 404 {"message":"Not found","httpStatusCode":404,"errorCode":0}.
      const { name } = z.object({ name: z.string() }).parse(body);
      const v = [...this.volumes.values()].find((x) => x.name === name);
      if (v === undefined) throw new GatewayError(404, 0, 'Not found');
      return { status: 200, body: v.id };
    }
    const byName = /^\/api\/types\/Volume\/instances\/getByName::(.+)$/.exec(p);
    if (byName !== null && method === 'GET') {
      // [CIN test_create_volume.py] 'types/Volume/instances/getByName::<name>': '"<id>"'.
      const v = [...this.volumes.values()].find((x) => x.name === byName[1]);
      if (v === undefined) throw volumeNotFound();
      return { status: 200, body: v.id };
    }
    const instance = /^\/api\/instances\/Volume::([^/]+)$/.exec(p);
    if (instance !== null && method === 'GET') return { status: 200, body: this.volumeJson(this.volume(instance[1])) };
    // [GO system.go] POSTs to the system's self link /api/instances/System::<id>/action/snapshotVolumes; [CIN
    // rest_client.py snapshot_volume, test_create_snapshot.py] to /api/instances/System/action/snapshotVolumes.
    const snapshots = /^\/api\/instances\/System(?:::([^/]+))?\/action\/snapshotVolumes$/.exec(p);
    if (snapshots !== null && method === 'POST') {
      if (snapshots[1] !== undefined && snapshots[1] !== this.config.systemId)
        throw new GatewayError(404, 0, `no such resource: System::${snapshots[1]}`); // [SIM] message not evidenced
      return this.serial(() => this.snapshotVolumes(body));
    }
    const action = /^\/api\/instances\/Volume::([^/]+)\/action\/(\w+)$/.exec(p);
    if (action !== null && method === 'POST') return this.serial(() => this.volumeAction(action[1], action[2], body));
    // [GO volume_test.go] default route: 400 {"message":"no route handled",...}; a real gateway answers unknown paths 404.
    throw new GatewayError(404, 0, `no such resource: ${method} ${p}`);
  }

  private async create(body: unknown): Promise<{ status: number; body?: unknown }> {
    // Parameters: goscaleio types.VolumeParam [GO types.go]; volumeSizeInKb is a string [CIN rest_client.py create_volume].
    const r = z
      .object({
        storagePoolId: z.string(),
        name: z.string().optional(),
        volumeSizeInKb: z.string().regex(/^\d+$/),
        volumeType: z.enum(['ThinProvisioned', 'ThickProvisioned']).optional(),
        protectionDomainId: z.string().optional(),
      })
      .safeParse(body);
    if (!r.success) throw new GatewayError(400, 0, `Request message is not valid: ${r.error.issues[0]?.message}`);
    const { storagePoolId, name, volumeSizeInKb, volumeType } = r.data;
    if (!this.config.pools.some((sp) => sp.id === storagePoolId)) throw mdm('Invalid storage pool ID');
    const kb = Number(volumeSizeInKb);
    // [GO code.properties VOL_SIZE_ILLEGAL]; Cinder rounds to 8 GB itself [CIN test_create_volume_non_8_gran: 14 -> 16].
    if (kb <= 0 || (kb * 1024) % (8 * GIB) !== 0)
      throw mdm('The specified volume size is illegal. Volume size must be in 8 GB blocks');
    const volumeName = name ?? `vol-${this.nextId}`;
    // The MDM limits names to 31 characters [DOC]; the 24-character base64 names Cinder gives fit [CIN id_to_base64].
    if (volumeName.length > 31) throw new GatewayError(400, 0, 'Request message is not valid: name is too long');
    if ([...this.volumes.values()].some((v) => v.name === volumeName))
      throw mdm('Volume name already in use. Please use a different name.'); // [GO code.properties VOL_NAME_IN_USE]
    const v: SimVolume = {
      id: this.newVolumeId(),
      name: volumeName,
      sizeInKb: kb,
      storagePoolId,
      volumeType: volumeType ?? 'ThinProvisioned',
      creationTime: Math.floor(Date.now() / 1000),
      mapped: new Map(),
      accessModes: new Map(),
      ancestorVolumeId: null,
      vtreeId: '',
      accessModeLimit: 'ReadWrite',
    };
    v.vtreeId = `${v.id.slice(0, 8)}00000000`;
    await fs.mkdir(this.config.dataDir, { recursive: true });
    const handle = await fs.open(this.file(v), 'wx');
    await handle.truncate(kb * 1024);
    await handle.close();
    this.volumes.set(v.id, v);
    const delay = this.faults.createAnswerDelayMs;
    if (delay !== undefined) {
      delete this.faults.createAnswerDelayMs;
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
    return { status: 200, body: { id: v.id } }; // [CIN test_create_volume.py] {'id': …}; [GO types.go VolumeResp]
  }

  private async snapshotVolumes(body: unknown): Promise<{ status: number; body?: unknown }> {
    // [GO types.go SnapshotVolumesParam] {snapshotDefs: [{volumeId, snapshotName}], accessModeLimit?, retentionPeriodInMin?}.
    const r = z
      .object({
        snapshotDefs: z.array(z.object({ volumeId: z.string(), snapshotName: z.string().optional() })).min(1),
        accessModeLimit: z.enum(['ReadWrite', 'ReadOnly']).optional(),
        retentionPeriodInMin: z.string().optional(),
      })
      .safeParse(body);
    if (!r.success) throw new GatewayError(400, 0, `Request message is not valid: ${r.error.issues[0]?.message}`);
    const { snapshotDefs, accessModeLimit } = r.data;
    const sources = snapshotDefs.map((d) => this.volume(d.volumeId)); // [CIN rest_client.py]: 79 for an unknown volume
    const names = snapshotDefs.map((d, i) => d.snapshotName ?? `snapshot-${sources[i].id}-${this.nextId}`);
    for (const name of names) {
      // [LXD createVolumeSnapshot]: a name that is too long is answered 500 (its errorCode not evidenced: 0 here).
      if (name.length > 31) throw mdm('The name is too long');
      if ([...this.volumes.values()].some((v) => v.name === name) || new Set(names).size !== names.length)
        throw mdm('Volume name already in use. Please use a different name.'); // [GO code.properties VOL_NAME_IN_USE]
    }
    const made: SimVolume[] = sources.map((src, i) => ({
      id: this.newVolumeId(),
      name: names[i],
      sizeInKb: src.sizeInKb,
      storagePoolId: src.storagePoolId,
      volumeType: src.volumeType,
      creationTime: Math.floor(Date.now() / 1000),
      mapped: new Map(),
      accessModes: new Map(),
      ancestorVolumeId: src.id,
      vtreeId: src.vtreeId,
      accessModeLimit: accessModeLimit ?? 'ReadWrite',
    }));
    // The data path: the point in time is the copy (the MDM's is instant); sparse, or shared blocks where the file
    // system can. Writes through a mapped device reach the file once synced (the contract syncs them).
    for (const [i, v] of made.entries())
      await execFileExec('cp', ['--reflink=auto', '--sparse=always', this.file(sources[i]), this.file(v)]);
    for (const v of made) this.volumes.set(v.id, v);
    // [CIN test_create_snapshot.py] {'volumeIdList': [...], 'snapshotGroupId': ...}; [GO types.go SnapshotVolumesResp].
    return {
      status: 200,
      body: { volumeIdList: made.map((v) => v.id), snapshotGroupId: randomBytes(8).toString('hex') },
    };
  }

  private async volumeAction(id: string, action: string, body: unknown): Promise<{ status: number; body?: unknown }> {
    const v = this.volume(id);
    const params = z.record(z.string(), z.string()).safeParse(body ?? {});
    if (!params.success) throw new GatewayError(400, 0, 'Request message is not valid');
    const a = params.data;
    switch (action) {
      case 'addMappedSdc': {
        // [GO types.go MapVolumeSdcParam] sdcId, allowMultipleMappings ("TRUE"), allSdcs.
        const sdcId = a.sdcId ?? '';
        if (!this.config.sdcs.some((s) => s.id === sdcId)) throw mdm('Could not find the SDC');
        if (v.mapped.has(sdcId)) throw mdm('The volume is already mapped to this SDC'); // [GO VOL_ALREADY_MAPPED_TO_THIS_INI]
        if (v.mapped.size > 0 && a.allowMultipleMappings !== 'TRUE') throw mdm('The volume is already mapped to a SDC'); // [GO code.properties VOL_ALREADY_MAPPED_TO_AN_INI]
        // [GO inttests/volume_test.go] accessMode ReadOnly; a ReadWrite mapping of a ReadOnly-limited snapshot is
        // refused [SIM: the array enforces accessModeLimit; its message is not evidenced].
        const accessMode = a.accessMode ?? 'ReadWrite';
        if (accessMode !== 'ReadWrite' && accessMode !== 'ReadOnly')
          throw new GatewayError(400, 0, 'Invalid access mode');
        if (accessMode === 'ReadWrite' && v.accessModeLimit === 'ReadOnly')
          throw mdm('The requested access mode exceeds the volume access mode limit');
        await this.map(v, sdcId, accessMode);
        return { status: 200, body: {} };
      }
      case 'removeMappedSdc': {
        // [GO types.go UnmapVolumeSdcParam] sdcId or allSdcs (Cinder sends {"allSdcs": ""} [CIN rest_client.py]).
        if (a.allSdcs !== undefined) {
          for (const sdcId of [...v.mapped.keys()]) await this.unmap(v, sdcId);
          return { status: 200, body: {} };
        }
        const sdcId = a.sdcId ?? '';
        if (!v.mapped.has(sdcId)) throw mdm('The volume is not mapped to SDC'); // [GO VOL_NOT_MAPPED_TO_INI]
        await this.unmap(v, sdcId);
        return { status: 200, body: {} };
      }
      case 'setVolumeSize': {
        // [GO types.go SetVolumeSizeParam] {"sizeInGB": "16"}; [CIN rest_client.py extend_volume].
        const gb = Number(a.sizeInGB);
        if (!Number.isInteger(gb) || gb <= 0 || gb % 8 !== 0)
          throw mdm('The specified volume size is illegal. Volume size must be in 8 GB blocks');
        if (gb * 1024 * 1024 < v.sizeInKb) throw mdm('Volume capacity can only be increased'); // [GO VOL_DECREASE_NOT_SUPPORTED]
        v.sizeInKb = gb * 1024 * 1024;
        await fs.truncate(this.file(v), v.sizeInKb * 1024);
        for (const device of v.mapped.values()) await execFileExec('losetup', ['-c', device]);
        return { status: 200, body: {} };
      }
      case 'removeVolume': {
        // [GO types.go RemoveVolumeParam] removeMode (Cinder: ONLY_ME); [GO volume_test.go] 204 No Content.
        if (v.mapped.size > 0) throw mdm('Volume is mapped'); // [GO code.properties VOL_MAPPED]
        // Only ONLY_ME is simulated (what Cinder and the driver send); the others remove descendants too.
        if ((a.removeMode ?? 'ONLY_ME') !== 'ONLY_ME') throw new GatewayError(400, 0, 'removeMode not simulated');
        this.volumes.delete(v.id);
        // [SIM] its descendants stay (ONLY_ME), taking its ancestor as theirs: how a real vTree re-links them is
        // not evidenced; the driver reads a snapshot's source only while it exists (it keeps sources of snapshots).
        for (const d of this.volumes.values()) if (d.ancestorVolumeId === v.id) d.ancestorVolumeId = v.ancestorVolumeId;
        await fs.rm(this.file(v), { force: true });
        return { status: 204 };
      }
      default:
        throw new GatewayError(404, 0, `no such action: ${action}`);
    }
  }
}

/** The HTTP front: JSON in and out, errors in the gateway's body shape. */
export function gatewayServer(sim: GatewaySimulator): http.Server {
  return http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const send = (status: number, payload?: unknown) => {
        if (payload === undefined) {
          res.writeHead(status);
          res.end();
          return;
        }
        res.writeHead(status, { 'content-type': 'application/json;charset=UTF-8' });
        res.end(JSON.stringify(payload));
      };
      let body: unknown;
      try {
        const text = Buffer.concat(chunks).toString();
        body = text === '' ? undefined : JSON.parse(text);
      } catch {
        send(400, { message: 'Request message is not valid: malformed JSON', httpStatusCode: 400, errorCode: 0 });
        return;
      }
      sim.handle(req, body).then(
        (r) => send(r.status, r.body),
        (e: unknown) => {
          if (e instanceof GatewayError)
            send(e.status, { message: e.message, httpStatusCode: e.status, errorCode: e.errorCode });
          else if (e instanceof z.ZodError)
            send(400, {
              message: `Request message is not valid: ${e.issues[0]?.message}`,
              httpStatusCode: 400,
              errorCode: 0,
            });
          else send(500, { message: `Internal error: ${String(e)}`, httpStatusCode: 500, errorCode: 0 });
        },
      );
    });
  });
}

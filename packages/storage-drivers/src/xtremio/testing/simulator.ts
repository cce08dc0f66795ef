/**
 * A wire-faithful simulator of the parts of the XtremIO XMS REST API v2 the driver uses, for tests
 * only (run as its own process by simulatorMain.ts). Facts each answer rests on are cited inline:
 *   [REST] the XtremIO REST API guide (v2 paths /api/json/v2/types/<type>, ?name=, /<index>, full=1,
 *          filter=<prop>:<op>:<value>, basic auth, 201 + links on create);
 *   [CDRV] OpenStack Cinder's XtremIO driver, cinder/volume/drivers/dell_emc/xtremio.py (what it sends
 *          and which fields and error messages it reads);
 *   [CTST] its unit tests, cinder/tests/unit/volume/drivers/dell_emc/test_xtremio.py (fixtures: object
 *          ids [guid, name, index], lun-map names "<vol>_<ig>_<tg>", lun 1, the POST answer
 *          {"links": [{"href": "https://host/api/json/v2/types/snapshots/27", "rel": "self"}]},
 *          error bodies {"message": "too_many_objs", "error_code": 400}, filters eq/ne/gt/ge/lt/le);
 *   [SIM]  this simulator's own choice where no evidence was found (named as such).
 * The data path: each volume is a sparse file under dataDir; /_sim/host tells the iscsiadm stand-in
 * which LUNs an initiator may see (what an iSCSI target would present after login).
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { z } from 'zod';

const run = promisify(execFile);

type Oid = [string, string, number];
type Obj = Record<string, unknown> & { index: number; name: string };

const FaultSchema = z.object({
  op: z.string(),
  kind: z.enum(['busy', 'error', 'lost']),
  message: z.string().optional(),
  delayMs: z.number().optional(),
  times: z.number().int().positive().default(1),
});

interface Fault {
  /** "<METHOD> <type>", e.g. "POST volumes". */
  readonly op: string;
  /** busy: 400 system_is_busy [CDRV SYSTEM_BUSY]; error: 400 with message; lost: do it, then answer only after delayMs. */
  readonly kind: 'busy' | 'error' | 'lost';
  readonly message?: string;
  readonly delayMs?: number;
  times: number;
}

export interface SimulatorOptions {
  readonly dataDir: string;
  readonly username: string;
  readonly password: string;
  /** The target IQN the one iSCSI portal presents. */
  readonly targetIqn?: string;
}

const TYPES = [
  'volumes',
  'initiator-groups',
  'initiators',
  'lun-maps',
  'clusters',
  'iscsi-portals',
  'target-groups',
  'xms',
] as const;
type Type = (typeof TYPES)[number];

/** A body field as text ('' for anything that is not a string or number). */
function text(v: unknown, fallback = ''): string {
  return typeof v === 'string' ? v : typeof v === 'number' ? String(v) : fallback;
}

/** Request bodies: a JSON object (the XMS takes nothing else). */
const BodySchema = z.record(z.string(), z.unknown());

function guid(): string {
  return randomBytes(16).toString('hex'); // [CTST] "a91e8c81c2d14ae4865187ce4f866f8a": 32 hex digits
}

class XmsError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** [CTST]/[CDRV] the error body of every refusal: {"message": "<code>", "error_code": 400}. */
const notFound = (): XmsError => new XmsError(400, 'obj_not_found');

/** "1g", "512m", "1048576k", or KiB without a suffix → KiB [CDRV create_volume sends str(size) + 'g']. */
function parseSizeKiB(v: unknown): number | null {
  const m = /^(\d+)([kmgt]?)$/i.exec(text(v).trim());
  if (m === null) return null;
  const mult = { '': 1, k: 1, m: 1024, g: 1024 ** 2, t: 1024 ** 3 }[m[2].toLowerCase() as '' | 'k' | 'm' | 'g' | 't'];
  return Number(m[1]) * mult;
}

export class XmsSimulator {
  private readonly objects = new Map<Type, Map<number, Obj>>();
  private readonly nextIndex = new Map<Type, number>();
  private faults: Fault[] = [];
  readonly targetIqn: string;
  /** Requests seen, "<METHOD> <path>?<query>" (tests assert on them). */
  readonly log: string[] = [];

  constructor(private readonly o: SimulatorOptions) {
    this.targetIqn = o.targetIqn ?? 'iqn.2008-05.com.xtremio:001e67939c34'; // [CTST] iscsi-portals port-address
    for (const t of TYPES) this.objects.set(t, new Map());
    // [CTST] xms_init: one cluster "brick1" (sys-sw-version 4.0.0-…, ud-ssd-space in KiB as strings),
    // target group "Default", one iSCSI portal with ip-addr "<ip>/<prefix>", ip-port 3260.
    this.add('clusters', {
      name: 'brick1',
      'sys-sw-version': '4.0.0-devel_ba23ee5381eeab73',
      'ud-ssd-space': '8146708710',
      'ud-ssd-space-in-use': '708710',
      'chap-authentication-mode': 'disabled',
      'chap-discovery-mode': 'disabled',
    });
    this.add('xms', { name: 'xms', version: '4.2.0', 'sw-version': '4.2.0-33' });
    this.add('target-groups', { name: 'Default' });
    this.add('iscsi-portals', {
      name: '127.0.0.1/8',
      'ip-addr': '127.0.0.1/8',
      'ip-port': 3260,
      'port-address': this.targetIqn,
    });
  }

  addFault(f: Omit<Fault, 'times'> & { times?: number }): void {
    this.faults.push({ ...f, times: f.times ?? 1 });
  }

  private add(type: Type, fields: Record<string, unknown> & { name: string }): Obj {
    const index = this.nextIndex.get(type) ?? 1;
    this.nextIndex.set(type, index + 1); // [SIM] indexes only grow (never reused)
    const idKey = {
      volumes: 'vol-id',
      'initiator-groups': 'ig-id',
      initiators: 'initiator-id',
      'lun-maps': 'mapping-id',
    }[type as string];
    const obj: Obj = { ...fields, index, ...(idKey ? { [idKey]: [guid(), fields.name, index] as Oid } : {}) };
    this.objects.get(type)?.set(index, obj);
    return obj;
  }

  private all(type: Type): Obj[] {
    return [...(this.objects.get(type)?.values() ?? [])];
  }

  private byName(type: Type, name: string): Obj | undefined {
    return this.all(type).find((o) => o.name === name);
  }

  /** ?name= or /<index> [REST]; missing → 400 obj_not_found [CDRV handle_errors]. */
  private one(type: Type, name: string | null, index: number | null): Obj {
    const o = index !== null ? this.objects.get(type)?.get(index) : name !== null ? this.byName(type, name) : undefined;
    if (o === undefined) throw notFound();
    return o;
  }

  private volumeFile(v: Obj): string {
    return path.join(this.o.dataDir, `vol-${v.index}.img`);
  }

  /** Live view of an object as XMS shows it (lun-mapping-list and num-of-lun-mappings kept up to date). */
  private view(type: Type, o: Obj): Obj {
    if (type !== 'volumes') return o;
    const maps = this.all('lun-maps').filter((m) => m['vol-name'] === o.name);
    // [CDRV terminate_connection] lun-mapping-list entries: [ig oid, tg oid, lun]; ig index at [0][2].
    return {
      ...o,
      'lun-mapping-list': maps.map((m) => [m['ig-id-oid'], m['tg-id-oid'], m.lun]),
      'num-of-lun-mappings': maps.length,
    };
  }

  /** full=1 with filters (repeated: all must hold) [CTST xms_filters eq/ne/gt/ge/lt/le; CDRV Client4.find_lunmap]. */
  private list(type: Type, q: URLSearchParams, base: string): unknown {
    let objs = this.all(type).map((o) => this.view(type, o));
    for (const f of q.getAll('filter')) {
      for (const clause of [f]) {
        const [field, op, ...rest] = clause.split(':');
        const value = rest.join(':');
        const cmp: Record<string, (a: unknown) => boolean> = {
          eq: (a) => String(a) === value,
          ne: (a) => String(a) !== value,
          gt: (a) => Number(a) > Number(value),
          ge: (a) => Number(a) >= Number(value),
          lt: (a) => Number(a) < Number(value),
          le: (a) => Number(a) <= Number(value),
        };
        const c = cmp[op];
        if (c === undefined) throw new XmsError(400, 'invalid_filter'); // [SIM] message not evidenced
        objs = objs.filter((o) => c(o[field]));
      }
    }
    if (q.get('full') === '1') return { [type]: objs };
    // [CTST] without full: {"<type>": [{"href": ".../<type>/<index>", "name": …}]}
    return { [type]: objs.map((o) => ({ href: `${base}/${type}/${o.index}`, name: o.name })) };
  }

  /** GET snapshots: the volumes that have an ancestor, listed as under their own type. */
  private listSnapshots(q: URLSearchParams, base: string): unknown {
    const all = this.list('volumes', q, base) as { volumes: { name: string }[] };
    const snaps = new Set(
      this.all('volumes')
        .filter((v) => v['ancestor-vol-id'] !== undefined)
        .map((v) => v.name),
    );
    return {
      snapshots: all.volumes
        .filter((v) => snaps.has(v.name))
        .map((v) => ('href' in v ? { ...v, href: String(v.href).replace('/volumes/', '/snapshots/') } : v)),
    };
  }

  private created(base: string, type: string, o: Obj): unknown {
    return { links: [{ href: `${base}/${type}/${o.index}`, rel: 'self' }] }; // [CTST] POST answer
  }

  private async post(type: Type, body: Record<string, unknown>, base: string): Promise<unknown> {
    switch (type) {
      case 'volumes': {
        const name = text(body['vol-name']);
        const kib = parseSizeKiB(body['vol-size']);
        if (!name || kib === null || kib <= 0) throw new XmsError(400, 'invalid_input'); // [SIM]
        if (this.byName('volumes', name)) throw new XmsError(400, 'vol_obj_name_not_unique'); // [CDRV VOL_NOT_UNIQUE_ERR]
        // [SIM] naa-name: NAA 5 with XtremIO's OUI 00:14:f0:c5 ("514f0c5…", 16 hex digits as udev's wwn-0x…).
        const naa = `514f0c5${randomBytes(5).toString('hex').slice(0, 9)}`;
        const v = this.add('volumes', { name, 'vol-size': String(kib), 'naa-name': naa, 'created-from-volume': '' });
        const fh = await fs.open(this.volumeFile(v), 'w');
        await fh.truncate(kib * 1024); // sparse
        await fh.close();
        return this.created(base, 'volumes', v);
      }
      case 'initiator-groups': {
        const name = text(body['ig-name']);
        if (!name) throw new XmsError(400, 'invalid_input');
        if (this.byName('initiator-groups', name)) throw new XmsError(400, 'ig_obj_name_not_unique'); // [SIM] by analogy with vol_obj_name_not_unique
        return this.created(base, type, this.add('initiator-groups', { name }));
      }
      case 'initiators': {
        // [CDRV _create_initiator] {'initiator-name', 'ig-id' (the group's name), 'port-address'}
        const name = text(body['initiator-name']);
        const port = text(body['port-address']);
        const ig = this.byName('initiator-groups', text(body['ig-id']));
        if (ig === undefined) throw notFound();
        if (this.byName('initiators', name) || this.all('initiators').some((i) => i['port-address'] === port))
          throw new XmsError(400, 'initiator_obj_name_not_unique'); // [SIM]
        // [CDRV initialize_connection] reads ig-id[1] and chap-…-initiator-password of an initiator.
        return this.created(
          base,
          type,
          this.add('initiators', {
            name,
            'port-address': port,
            'ig-id': ig['ig-id'],
            'chap-authentication-initiator-password': null,
            'chap-discovery-initiator-password': null,
          }),
        );
      }
      case 'lun-maps': {
        // [CDRV create_lun_map] {'ig-id': ig name, 'vol-id': volume name}
        const vol = this.byName('volumes', text(body['vol-id']));
        if (vol === undefined) throw new XmsError(400, 'vol_obj_not_found'); // [CDRV VOL_OBJ_NOT_FOUND_ERR]
        const ig = this.byName('initiator-groups', text(body['ig-id']));
        if (ig === undefined) throw notFound();
        const tg = this.byName('target-groups', text(body['tg-id'], 'Default'));
        if (tg === undefined) throw notFound();
        const maps = this.all('lun-maps');
        if (maps.some((m) => m['vol-name'] === vol.name && m['ig-name'] === ig.name))
          throw new XmsError(400, 'already_mapped'); // [CDRV ALREADY_MAPPED_ERR]
        // [CTST fix_data] lun 1 for the first map of a group; the next free one after that ([CDRV _get_free_lun]).
        const used = new Set(maps.filter((m) => m['ig-name'] === ig.name).map((m) => Number(m.lun)));
        let lun = 1;
        while (used.has(lun)) lun++;
        // [CTST fix_data] name "<vol index>_<ig index>_<tg index>"; [CDRV Client3.find_lunmap] ig-name, vol-name.
        const m = this.add('lun-maps', {
          name: `${vol.index}_${ig.index}_${tg.index}`,
          'vol-name': vol.name,
          'ig-name': ig.name,
          'tg-name': tg.name,
          'vol-index': vol.index,
          'ig-index': ig.index,
          'tg-index': tg.index,
          lun,
        });
        m['ig-id-oid'] = ig['ig-id'];
        m['tg-id-oid'] = [guid(), tg.name, tg.index];
        return this.created(base, type, m);
      }
      case 'clusters':
      case 'iscsi-portals':
      case 'target-groups':
      case 'xms':
        throw new XmsError(400, 'command_not_supported'); // [SIM]
    }
  }

  /**
   * POST snapshots [CDRV Client4.create_snapshot]: {'snapshot-set-name', 'snap-suffix', 'volume-list': [source],
   * 'snapshot-type': 'readonly' | 'regular'}; the answer's href names the new object under snapshots
   * [CTST xms_failed_rename_snapshot_request: ".../types/snapshots/27"], which the client then renames with a PUT.
   * Snapshots are volumes [CTST xms_request maps 'snapshots' to 'volumes'; CDRV delete_snapshot deletes through
   * 'volumes'] with ancestor-vol-id = the source's oid [CTST test_manage_snapshot fixture]. [SIM] the new
   * object's name before the rename: "<source>.<snap-suffix>"; the data is a copy of the source's file.
   */
  private async postSnapshot(body: Record<string, unknown>, base: string): Promise<unknown> {
    const list = body['volume-list'];
    const src = Array.isArray(list) && list.length === 1 ? this.byName('volumes', text(list[0])) : undefined;
    if (src === undefined) throw new XmsError(400, 'vol_obj_not_found');
    const name = `${src.name}.${text(body['snap-suffix'], 'snap')}`;
    if (this.byName('volumes', name)) throw new XmsError(400, 'vol_obj_name_not_unique');
    const naa = `514f0c5${randomBytes(5).toString('hex').slice(0, 9)}`;
    const v = this.add('volumes', {
      name,
      'vol-size': src['vol-size'],
      'naa-name': naa,
      'created-from-volume': src.name,
      'ancestor-vol-id': src['vol-id'],
      'snapshot-type': text(body['snapshot-type'], 'regular'),
      'creation-time': new Date().toISOString(), // [SIM] field form not evidenced
    });
    await run('cp', ['--sparse=always', '--reflink=auto', this.volumeFile(src), this.volumeFile(v)]);
    return this.created(base, 'snapshots', v);
  }

  private async put(type: Type, o: Obj, body: Record<string, unknown>): Promise<void> {
    if (type !== 'volumes') throw new XmsError(400, 'command_not_supported'); // [SIM]
    if (body['vol-size'] !== undefined) {
      // [CDRV extend_volume] PUT {'vol-size': '<n>g'}
      const kib = parseSizeKiB(body['vol-size']);
      if (kib === null || kib < Number(o['vol-size'])) throw new XmsError(400, 'invalid_vol_size'); // [SIM] shrinking refused
      o['vol-size'] = String(kib);
      await fs.truncate(this.volumeFile(o), kib * 1024);
    }
    if (typeof body.name === 'string' || typeof body['vol-name'] === 'string') {
      const name = String(body.name ?? body['vol-name']); // [CDRV update_migrated_volume / manage_existing]
      if (this.byName('volumes', name)) throw new XmsError(400, 'vol_obj_name_not_unique');
      o.name = name;
    }
  }

  private async del(type: Type, o: Obj): Promise<void> {
    if (type === 'volumes') {
      // [SIM] a mapped volume cannot be deleted (the array refuses; message not evidenced).
      if (this.all('lun-maps').some((m) => m['vol-name'] === o.name)) throw new XmsError(400, 'vol_is_mapped');
      await fs.rm(this.volumeFile(o), { force: true });
    }
    if (type === 'initiator-groups' && this.all('lun-maps').some((m) => m['ig-name'] === o.name))
      throw new XmsError(400, 'ig_has_mappings'); // [SIM]
    this.objects.get(type)?.delete(o.index);
  }

  /** What an initiator sees through the target: the LUNs mapped to its group, with their data files. */
  hostView(iqn: string): {
    target: string;
    portal: string;
    luns: { naa: string; lun: number; file: string; bytes: number; readOnly: boolean }[];
  } {
    const init = this.all('initiators').find((i) => i['port-address'] === iqn);
    const igName = init === undefined ? undefined : (init['ig-id'] as Oid)[1];
    const luns = this.all('lun-maps')
      .filter((m) => m['ig-name'] === igName)
      .map((m) => {
        const v = this.byName('volumes', String(m['vol-name'])) as Obj;
        return {
          naa: String(v['naa-name']),
          lun: Number(m.lun),
          file: this.volumeFile(v),
          bytes: Number(v['vol-size']) * 1024,
          // [CDRV create_snapshot 'snapshot-type': 'readonly'] a read-only snapshot's LUN refuses writes [SIM: how
          // the host sees it (write-protected SCSI disk) is not evidenced by the fixtures].
          readOnly: v['snapshot-type'] === 'readonly',
        };
      });
    return { target: this.targetIqn, portal: '127.0.0.1:3260', luns };
  }

  /** The request handler. */
  async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://sim');
    const method = req.method ?? 'GET';
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const raw = Buffer.concat(chunks).toString('utf8');
    const send = (status: number, body?: unknown): void => {
      const text = body === undefined ? '' : JSON.stringify(body);
      res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
      res.end(text);
    };
    this.log.push(`${method} ${url.pathname}${url.search}`);
    // Test control, not part of XMS.
    if (url.pathname === '/_sim/fault' && method === 'POST') {
      this.addFault(FaultSchema.parse(JSON.parse(raw)));
      return send(200, {});
    }
    if (url.pathname === '/_sim/host') return send(200, this.hostView(url.searchParams.get('iqn') ?? ''));
    if (url.pathname === '/_sim/log') return send(200, this.log);
    // [REST] basic authentication on every request; [SIM] body of the 401.
    const expected = `Basic ${Buffer.from(`${this.o.username}:${this.o.password}`).toString('base64')}`;
    if (req.headers.authorization !== expected) return send(401, { message: 'Unauthorized', error_code: 401 });
    const m = /^\/api\/json\/v2\/types\/([a-z-]+)(?:\/(\d+))?\/?$/.exec(url.pathname);
    if (m === null || !(m[1] === 'snapshots' || (TYPES as readonly string[]).includes(m[1])))
      return send(404, { message: 'not_found', error_code: 404 }); // [SIM]
    const snapshots = m[1] === 'snapshots';
    const type = (snapshots ? 'volumes' : m[1]) as Type;
    const index = m[2] !== undefined ? Number(m[2]) : null;
    const name = url.searchParams.get('name');
    const base = `http://${req.headers.host ?? 'localhost'}/api/json/v2/types`;
    const fault = this.faults.find((f) => f.times > 0 && f.op === `${method} ${m[1]}`);
    if (fault !== undefined) fault.times--;
    if (fault?.kind === 'busy') return send(400, { message: 'system_is_busy', error_code: 400 });
    if (fault?.kind === 'error') return send(400, { message: fault.message ?? 'internal_error', error_code: 400 });
    try {
      let status = 200;
      let out: unknown;
      const parsedBody = BodySchema.safeParse(raw.trim() === '' ? {} : JSON.parse(raw));
      if (!parsedBody.success) return send(400, { message: 'invalid_input', error_code: 400 }); // [SIM]
      const body = parsedBody.data;
      if (method === 'GET')
        out =
          index !== null || name !== null
            ? { content: this.view(type, this.one(type, name, index)) }
            : snapshots
              ? this.listSnapshots(url.searchParams, base)
              : this.list(type, url.searchParams, base);
      else if (method === 'POST') {
        out = snapshots ? await this.postSnapshot(body, base) : await this.post(type, body, base);
        status = 201; // [REST] create answers 201 Created with links
      } else if (method === 'PUT') await this.put(type, this.one(type, name, index), body);
      else if (method === 'DELETE') await this.del(type, this.one(type, name, index));
      else return send(405, { message: 'method_not_allowed', error_code: 405 });
      if (fault?.kind === 'lost') {
        // Done, but the answer comes too late for the client (a lost answer).
        await new Promise((r) => setTimeout(r, fault.delayMs ?? 5000));
      }
      // [CDRV req] PUT and DELETE answers carry no body the client reads.
      return send(status, method === 'GET' || method === 'POST' ? out : undefined);
    } catch (e) {
      if (e instanceof XmsError) return send(e.status, { message: e.message, error_code: e.status });
      return send(500, { message: String(e), error_code: 500 });
    }
  }
}

export async function startSimulator(
  o: SimulatorOptions,
  port = 0,
  host = '127.0.0.1',
): Promise<{ server: http.Server; sim: XmsSimulator; port: number }> {
  await fs.mkdir(o.dataDir, { recursive: true });
  const sim = new XmsSimulator(o);
  const server = http.createServer((req, res) => {
    sim.handle(req, res).catch((e: unknown) => {
      res.writeHead(500);
      res.end(String(e));
    });
  });
  await new Promise<void>((resolve) => server.listen(port, host, resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no address');
  return { server, sim, port: address.port };
}

/**
 * The XtremIO driver against the XtremIO simulator (a separate process, testing/simulator.ts) with
 * the iscsiadm stand-in giving real loop devices under per-host by-id directories: the shared
 * BlockDeviceApi contract, and the driver's own recovery cases.
 */
import { randomUUID } from 'node:crypto';
import { promises as fs } from 'node:fs';
import winston from 'winston';
import { blockDeviceApiContract, expectStorageError } from '../testing/contract';
import { z } from 'zod';
import { XmsClient } from './client';
import { LunMapSchema } from './schemas';
import { startSimulatedArray, type SimulatedArray } from './testing/harness';
import { NO_TIERS_MESSAGE, XtremioDriver } from './XtremioDriver';

jest.setTimeout(120_000);

blockDeviceApiContract('xtremio (simulator)', async () => {
  const array = await startSimulatedArray('contract');
  const a = new XtremioDriver(await array.host('a'));
  const b = new XtremioDriver(await array.host('b'));
  return {
    driver: a,
    driverOnOtherInstance: b,
    cleanup: async () => {
      await a.close();
      await b.close();
      await array.cleanup();
    },
  };
});

/** A logger that keeps what it is given. */
function capturing(): { logger: winston.Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const keep = winston.format((info) => {
    lines.push({ ...info });
    return false;
  });
  return { logger: winston.createLogger({ format: keep(), transports: [new winston.transports.Console()] }), lines };
}

describe('XtremioDriver against the simulator', () => {
  let array: SimulatedArray;
  const drivers: XtremioDriver[] = [];
  const make = async (host: string, extra = {}, logger?: winston.Logger): Promise<XtremioDriver> => {
    const d = new XtremioDriver(await array.host(host, extra), logger ? { logger } : {});
    drivers.push(d);
    return d;
  };

  beforeAll(async () => {
    array = await startSimulatedArray('own');
  });
  afterAll(async () => {
    for (const d of drivers) await d.close();
    await array.cleanup();
  });

  it('takes its instance id from the initiator name file', async () => {
    const d = await make('iqnfile');
    expect(await d.computeInstanceId()).toBe('iqn.1993-08.org.debian:01:iqnfile');
  });

  it('records a profile, saying that XtremIO has no tiers', async () => {
    const t = capturing();
    const d = await make('profiles', {}, t.logger);
    const v = await d.createVolume(randomUUID(), 1, { profile: 'gold' });
    expect(v.profile).toBe('gold');
    expect(t.lines.some((l) => l.message === NO_TIERS_MESSAGE && l.profile === 'gold')).toBe(true);
    await expectStorageError(d.createVolume(randomUUID(), 1, { profile: 'gold_fast' }), 'BACKEND_ERROR');
    await d.destroyVolume(v.blockdeviceId);
  });

  it('retries a busy array (400 system_is_busy) and succeeds', async () => {
    const d = await make('busy', {}, undefined);
    await array.fault({ op: 'POST volumes', kind: 'busy', times: 2 });
    const v = await d.createVolume(randomUUID(), 1);
    expect((await d.listVolumes()).map((l) => l.blockdeviceId)).toContain(v.blockdeviceId);
    await d.destroyVolume(v.blockdeviceId);
  });

  it('adopts the volume of a create whose answer was lost (one volume, no leak)', async () => {
    const d = await make('lost', { request_timeout_seconds: 0.5 });
    await array.fault({ op: 'POST volumes', kind: 'lost', delayMs: 1500 });
    const datasetId = randomUUID();
    const v = await d.createVolume(datasetId, 1);
    const ours = (await d.listVolumes()).filter((l) => l.datasetId === datasetId);
    expect(ours).toEqual([v]);
    await d.destroyVolume(v.blockdeviceId);
  });

  it('removes the volume of a lost create answer when the re-sent create is refused (no leak)', async () => {
    const d = await make('lost-refused', { request_timeout_seconds: 0.5 });
    await array.fault({ op: 'POST volumes', kind: 'lost', delayMs: 1500 });
    await array.fault({ op: 'POST volumes', kind: 'error', message: 'too_many_objs' });
    const datasetId = randomUUID();
    await expect(d.createVolume(datasetId, 1)).rejects.toThrow(/too_many_objs/);
    expect((await d.listVolumes()).filter((l) => l.datasetId === datasetId)).toEqual([]);
  });

  it('surfaces the array message of a refused create and leaves no volume', async () => {
    const d = await make('refused');
    await array.fault({ op: 'POST volumes', kind: 'error', message: 'too_many_objs' });
    const datasetId = randomUUID();
    await expect(d.createVolume(datasetId, 1)).rejects.toThrow(/XtremIO answered HTTP 400: too_many_objs/);
    expect((await d.listVolumes()).filter((l) => l.datasetId === datasetId)).toEqual([]);
  });

  it('refuses a second volume of a dataset with onlyVolume (DATASET_HAS_VOLUME)', async () => {
    const d = await make('only');
    const datasetId = randomUUID();
    const v = await d.createVolume(datasetId, 1, { onlyVolume: true });
    await expectStorageError(d.createVolume(datasetId, 1, { onlyVolume: true }), 'DATASET_HAS_VOLUME');
    await d.destroyVolume(v.blockdeviceId);
  });

  it('speaks the XMS wire format: basic auth required, errors as {"message", "error_code"}', async () => {
    const bad = new XmsClient({
      baseUrl: array.url,
      username: 'admin',
      password: 'wrong',
      verifyPeer: true,
      timeoutMs: 5000,
      attempts: 1,
    });
    await expect(bad.send('GET', 'volumes')).rejects.toMatchObject({ status: 401 });
    await bad.close();
    const res = await fetch(`${array.url}/api/json/v2/types/volumes?name=nothing`, {
      headers: { authorization: `Basic ${Buffer.from('admin:Xtrem10').toString('base64')}` },
    });
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({ message: 'obj_not_found', error_code: 400 });
  });

  it('attaches through the iscsiadm stand-in: the device is the wwn-0x<naa> link of the mapped LUN', async () => {
    const d = await make('wwn');
    const v = await d.createVolume(randomUUID(), 1);
    await d.attachVolume(v.blockdeviceId, await d.computeInstanceId());
    const device = await d.getDevicePath(v.blockdeviceId);
    const dir = d.options.device_by_id_dir;
    const links = (await fs.readdir(dir)).filter((e) => e.startsWith('wwn-0x514f0c5'));
    expect(links).toHaveLength(1);
    expect(await fs.realpath(`${dir}/${links[0]}`)).toBe(device);
    await d.detachVolume(v.blockdeviceId);
    expect((await fs.readdir(dir)).filter((e) => e.startsWith('wwn-0x'))).toEqual([]);
    await d.destroyVolume(v.blockdeviceId);
  });

  it('openSnapshot maps the read-only snapshot to this host (its wwn link, writes refused), on two hosts at once; destroySnapshot unmaps it first', async () => {
    const d = await make('open-a');
    const e = await make('open-b');
    const v = await d.createVolume(randomUUID(), 1);
    const snapshotId = randomUUID();
    const s = await d.createSnapshot(v.blockdeviceId, snapshotId);
    const here = await d.openSnapshot(snapshotId);
    const there = await e.openSnapshot(snapshotId);
    expect(here.size).toBe(v.size);
    const maps = await d.client.get('lun-maps', z.object({ 'lun-maps': z.array(LunMapSchema) }), { full: 1 });
    expect(
      maps['lun-maps']
        .filter((m) => m['vol-name'] === s.backendId)
        .map((m) => m['ig-name'])
        .sort(),
    ).toEqual([await d.computeInstanceId(), await e.computeInstanceId()].sort());
    const link = (await fs.readdir(d.options.device_by_id_dir)).filter((x) => x.startsWith('wwn-0x'));
    expect(link).toHaveLength(1);
    expect(await fs.realpath(`${d.options.device_by_id_dir}/${link[0]}`)).toBe(here.path);
    const handle = await fs.open(here.path, 'r+'); // a write-protected LUN opens, but refuses writes
    try {
      await expect(handle.write(Buffer.alloc(512), 0, 512, 0)).rejects.toMatchObject({ code: 'EPERM' });
    } finally {
      await handle.close();
    }
    await there.release();
    await d.destroySnapshot(snapshotId);
    expect(await d.listSnapshots()).toEqual([]);
    expect((await fs.readdir(d.options.device_by_id_dir)).filter((x) => x.startsWith('wwn-0x'))).toEqual([]);
    await here.release(); // late: harmless
    await expectStorageError(d.openSnapshot(snapshotId), 'UNKNOWN_SNAPSHOT');
    await d.destroyVolume(v.blockdeviceId);
  });
});

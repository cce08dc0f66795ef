/**
 * The BlockDeviceApi contract for backend scaleio against the gateway simulator running as its own
 * process (simulator/main.ts: the REST API as Cinder's and goscaleio's fixtures show it; volumes are
 * sparse files mapped as loop devices with emc-vol-<systemId>-<volumeId> links in each SDC's own
 * by-id directory). Two SDCs on this host stand for two nodes. Needs root (losetup).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { blockDeviceApiContract, expectStorageError } from '../testing/contract';
import { STALL_CASES, startStallProxy, type StallProxy } from '../testing/stallProxy';
import { destroyTempRoot } from '../testing/testSupport';
import { SCALEIO_UNIT } from './names';
import { ScaleIoDriver, type ScaleIoDriverDeps } from './ScaleIoDriver';
import type { ScaleIoOptionsInput } from './schemas';
import type { SimulatorConfig } from './simulator/gateway';

jest.setTimeout(5 * 60 * 1000);

const SYSTEM = '2c4a220db6e0520f';
const SDC_A = { id: '01f7117d0000000a', guid: '028888FA-502A-4FAC-A888-1FA3B256358C', ip: '192.0.2.10' };
const SDC_B = { id: '01f7117d0000000b', guid: '13BF228A-0001-4001-8001-000000000B0B', ip: '192.0.2.11' };
const POOL = 'a1b2c3d400000000';
const GOLD = 'a1b2c3d400000001';

interface Sim {
  url: string;
  root: string;
  child: ChildProcess;
}

async function startSimulator(): Promise<Sim> {
  const root = await fs.mkdtemp(path.join(os.tmpdir(), 'flocker-scaleio-'));
  const config: SimulatorConfig = {
    systemId: SYSTEM,
    username: 'admin',
    password: 'Scaleio123',
    dataDir: path.join(root, 'data'),
    pools: [
      { id: POOL, name: 'default' },
      { id: GOLD, name: 'ssd' },
    ],
    sdcs: [
      { ...SDC_A, byIdDir: path.join(root, 'host-a', 'by-id') },
      { ...SDC_B, byIdDir: path.join(root, 'host-b', 'by-id') },
    ],
  };
  const child = spawn(process.execPath, [path.join(__dirname, 'simulator', 'main.js'), JSON.stringify(config)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const first = await new Promise<string>((resolve, reject) => {
    readline.createInterface({ input: child.stdout }).once('line', resolve);
    child.once('exit', (code) => reject(new Error(`simulator exited with ${code}`)));
  });
  return { url: (JSON.parse(first) as { url: string }).url, root, child };
}

async function stopSimulator(sim: Sim): Promise<void> {
  const exited = new Promise((resolve) => sim.child.once('exit', resolve));
  sim.child.kill('SIGTERM');
  await exited;
  await destroyTempRoot(sim.root);
}

function options(
  sim: Sim,
  clusterId: string,
  host: 'a' | 'b',
  extra: Partial<ScaleIoOptionsInput> = {},
): ScaleIoOptionsInput {
  return {
    backend: 'scaleio',
    gateway_url: sim.url,
    username: 'admin',
    password: 'Scaleio123',
    cluster_id: clusterId,
    storage_pool_id: POOL,
    profile_storage_pools: { gold: GOLD },
    sdc_guid: host === 'a' ? SDC_A.guid : SDC_B.guid,
    device_by_id_dir: path.join(sim.root, `host-${host}`, 'by-id'),
    operation_timeout_seconds: 20,
    ...extra,
  };
}

const fast: ScaleIoDriverDeps = { retry: { attempts: 3, baseDelayMs: 20, maxDelayMs: 200 } };

let shared: Promise<Sim> | undefined;
let users = 0;
async function useSimulator(): Promise<Sim> {
  users++;
  shared ??= startSimulator();
  return shared;
}
async function releaseSimulator(): Promise<void> {
  users--;
  if (users === 0 && shared !== undefined) {
    const s = shared;
    shared = undefined;
    await stopSimulator(await s);
  }
}

blockDeviceApiContract(
  'scaleio (gateway simulator process, loop devices behind emc-vol links)',
  async () => {
    const sim = await useSimulator();
    const clusterId = randomUUID();
    const a = new ScaleIoDriver(options(sim, clusterId, 'a'), fast);
    const b = new ScaleIoDriver(options(sim, clusterId, 'b'), fast);
    return {
      driver: a,
      driverOnOtherInstance: b,
      cleanup: async () => {
        await a.close();
        await b.close();
        await releaseSimulator();
      },
    };
    // A snapshot's dataset is read from its source (no room in its name), so a volume with snapshots is kept.
  },
  { snapshotLimits: { snapshotsPinSource: true } },
);

describe('ScaleIoDriver against the simulator: beyond the contract', () => {
  let sim: Sim;
  let clusterId: string;
  let a: ScaleIoDriver;

  beforeAll(async () => {
    sim = await useSimulator();
    clusterId = randomUUID();
    a = new ScaleIoDriver(options(sim, clusterId, 'a'), fast);
  });
  afterAll(async () => {
    for (const v of await a.listVolumes()) await a.destroyVolume(v.blockdeviceId).catch(() => undefined);
    await a.close();
    await releaseSimulator();
  });

  it('finds its SDC by IP as well as by GUID, and names the device emc-vol-<system>-<volume>', async () => {
    const byIp = new ScaleIoDriver(options(sim, clusterId, 'a', { sdc_guid: undefined, sdc_ip: SDC_A.ip }), fast);
    try {
      expect(await byIp.computeInstanceId()).toBe(SDC_A.id);
      expect(await a.computeInstanceId()).toBe(SDC_A.id);
      const v = await a.createVolume(randomUUID(), 1);
      await a.attachVolume(v.blockdeviceId, SDC_A.id);
      const link = path.join(sim.root, 'host-a', 'by-id', `emc-vol-${SYSTEM}-${v.blockdeviceId}`);
      expect(await a.getDevicePath(v.blockdeviceId)).toBe(await fs.realpath(link));
      expect(await a.storageZone()).toBe(`scaleio:${SYSTEM}`);
      await a.detachVolume(v.blockdeviceId);
      await expect(fs.lstat(link)).rejects.toMatchObject({ code: 'ENOENT' });
      await a.destroyVolume(v.blockdeviceId);
    } finally {
      await byIp.close();
    }
  });

  it('refuses an unknown SDC clearly', async () => {
    const d = new ScaleIoDriver(options(sim, clusterId, 'a', { sdc_guid: 'no-such-guid' }), fast);
    try {
      await expect(d.computeInstanceId()).rejects.toThrow(/no SDC with GUID no-such-guid/);
    } finally {
      await d.close();
    }
  });

  it('rounds sizes to 8 GiB, maps profiles to storage pools and refuses a profile without one', async () => {
    const v = await a.createVolume(randomUUID(), 14 * 1024 ** 3, { profile: 'gold' });
    expect(v.size).toBe(2 * SCALEIO_UNIT);
    const raw = await a.client.volume(v.blockdeviceId);
    expect(raw).toMatchObject({ storagePoolId: GOLD, sizeInKb: 16 * 1024 * 1024 });
    await a.destroyVolume(v.blockdeviceId);
    await expect(a.createVolume(randomUUID(), 1, { profile: 'bronze' })).rejects.toThrow(
      /no storage pool for profile bronze \(profile_storage_pools has: gold\)/,
    );
  });

  it('adopts a volume whose create answer was lost (request timeout), leaving exactly one', async () => {
    const slow = new ScaleIoDriver(options(sim, clusterId, 'a', { request_timeout_seconds: 1 }), fast);
    try {
      await fault({ createAnswerDelayMs: 2500 });
      const datasetId = randomUUID();
      const v = await slow.createVolume(datasetId, SCALEIO_UNIT);
      expect((await a.listVolumes()).filter((x) => x.datasetId === datasetId)).toEqual([v]);
      await a.destroyVolume(v.blockdeviceId);
    } finally {
      await slow.close();
    }
  });

  async function fault(body: object): Promise<void> {
    const res = await fetch(`${sim.url}/__sim/faults`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    expect(res.status).toBe(200);
  }

  it('logs in again when the gateway forgets its session (401), and retries a busy gateway (503)', async () => {
    const v = await a.createVolume(randomUUID(), 1);
    await fault({ expireSessions: true });
    expect((await a.listVolumes()).map((x) => x.blockdeviceId)).toContain(v.blockdeviceId);
    await fault({ unavailableCount: 2 });
    await a.attachVolume(v.blockdeviceId, SDC_A.id); // its POST too: a 503 was refused before anything was done
    await a.detachVolume(v.blockdeviceId);
    await a.destroyVolume(v.blockdeviceId);
  });

  it("surfaces the gateway's own messages", async () => {
    const wrong = new ScaleIoDriver(options(sim, clusterId, 'a', { password: 'wrong' }), fast);
    const badPool = new ScaleIoDriver(options(sim, clusterId, 'a', { storage_pool_id: 'ffffffff00000000' }), fast);
    try {
      await expect(wrong.listVolumes()).rejects.toThrow(/HTTP 401.*Unauthorized/);
      await expect(badPool.createVolume(randomUUID(), 1)).rejects.toThrow(/Invalid storage pool ID/);
      expect((await a.listVolumes()).length).toBe(0);
    } finally {
      await wrong.close();
      await badPool.close();
    }
  });

  it('takes read-only ScaleIO snapshots (ancestorVolumeId), maps one read-only for openSnapshot on two SDCs at once, and clones it writable', async () => {
    const b = new ScaleIoDriver(options(sim, clusterId, 'b'), fast);
    try {
      const v = await a.createVolume(randomUUID(), 1);
      const snapshotId = randomUUID();
      const s = await a.createSnapshot(v.blockdeviceId, snapshotId);
      const raw = await a.client.volume(s.backendId);
      expect(raw).toMatchObject({ ancestorVolumeId: v.blockdeviceId, storagePoolId: POOL, sizeInKb: 8 * 1024 * 1024 });
      expect((await a.listVolumes()).map((x) => x.blockdeviceId)).not.toContain(s.backendId);
      await expectStorageError(a.attachVolume(s.backendId, SDC_A.id), 'UNKNOWN_VOLUME');
      const here = await a.openSnapshot(snapshotId);
      const there = await b.openSnapshot(snapshotId);
      const mapped = (await a.client.volume(s.backendId))?.mappedSdcInfo ?? [];
      expect(mapped.map((m) => [m.sdcId, m.accessMode]).sort()).toEqual([
        [SDC_A.id, 'ReadOnly'],
        [SDC_B.id, 'ReadOnly'],
      ]);
      const handle = await fs.open(here.path, 'r+'); // a read-only loop device opens, but refuses writes
      try {
        await expect(handle.write(Buffer.alloc(512), 0, 512, 0)).rejects.toMatchObject({ code: 'EPERM' });
      } finally {
        await handle.close();
      }
      await there.release();
      expect((await a.client.volume(s.backendId))?.mappedSdcInfo?.map((m) => m.sdcId)).toEqual([SDC_A.id]);
      // Destroying the snapshot unmaps what is left (a crashed backup's mapping) first.
      const copy = await b.createVolumeFromSnapshot(snapshotId, randomUUID(), 1);
      expect((await a.client.volume(copy.blockdeviceId))?.ancestorVolumeId).toBe(s.backendId);
      await expectStorageError(
        a.createVolumeFromSnapshot(snapshotId, randomUUID(), 1, { profile: 'gold' }),
        'BACKEND_ERROR',
      );
      await a.destroySnapshot(snapshotId);
      const link = path.join(sim.root, 'host-a', 'by-id', `emc-vol-${SYSTEM}-${s.backendId}`);
      await expect(fs.lstat(link)).rejects.toMatchObject({ code: 'ENOENT' });
      expect(await a.listSnapshots()).toEqual([]);
      await here.release();
      await b.attachVolume(copy.blockdeviceId, SDC_B.id);
      await b.detachVolume(copy.blockdeviceId);
      await a.destroyVolume(copy.blockdeviceId);
      await a.destroyVolume(v.blockdeviceId);
    } finally {
      await b.close();
    }
  });

  it('refuses to detach a mounted device with DEVICE_BUSY', async () => {
    const v = await a.createVolume(randomUUID(), 1);
    await a.attachVolume(v.blockdeviceId, SDC_A.id);
    const device = await a.getDevicePath(v.blockdeviceId);
    const held = await fs.open(device, fs.constants.O_RDONLY | fs.constants.O_EXCL);
    try {
      await expectStorageError(a.detachVolume(v.blockdeviceId), 'DEVICE_BUSY');
    } finally {
      await held.close();
    }
    await a.detachVolume(v.blockdeviceId);
    await a.destroyVolume(v.blockdeviceId);
  });
});

/**
 * Session 19 (FXC): a gateway request on a stalled connection fails in bounded time (request_timeout_seconds bounds
 * each request as a whole: connect, headers and body, a trickling body too) and the next call works once traffic
 * passes. The simulator behind a TCP proxy that stalls on demand.
 */
describe('ScaleIoDriver on a stalled connection', () => {
  const REQUEST_TIMEOUT_S = 2;
  const ATTEMPTS = 2;
  let sim: Sim;
  let proxy: StallProxy;

  beforeAll(async () => {
    sim = await useSimulator();
    // One byte every 0.5 s: never idle for the timeout, never done within it.
    proxy = await startStallProxy(new URL(sim.url), 500);
  });
  afterAll(async () => {
    await proxy?.close();
    await releaseSimulator();
  });

  it.each(STALL_CASES)(
    'a stalled gateway connection (%s: %s) fails the call in bounded time; it works once traffic passes',
    async (mode) => {
      const d = new ScaleIoDriver(
        options(sim, randomUUID(), 'a', { gateway_url: proxy.endpoint, request_timeout_seconds: REQUEST_TIMEOUT_S }),
        { retry: { attempts: ATTEMPTS, baseDelayMs: 10, maxDelayMs: 50 } },
      );
      try {
        proxy.mode = 'pass';
        await expect(d.listVolumes()).resolves.toEqual([]);
        proxy.mode = mode;
        const started = Date.now();
        const outcome = await d.listVolumes().then(
          () => 'answered',
          (e: unknown) => e,
        );
        const tookMs = Date.now() - started;
        expect(outcome).toMatchObject({ code: 'BACKEND_ERROR', message: expect.stringMatching(/timed out|timeout/i) });
        expect(tookMs).toBeLessThan(ATTEMPTS * REQUEST_TIMEOUT_S * 1000 + 2_000);
        proxy.mode = 'pass';
        await expect(d.listVolumes()).resolves.toEqual([]);
      } finally {
        await d.close();
      }
    },
  );
});

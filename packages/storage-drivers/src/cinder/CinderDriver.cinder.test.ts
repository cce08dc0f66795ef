/**
 * The BlockDeviceApi contract against a REAL OpenStack Cinder (PyPI cinder,
 * started by scripts/cinder.sh: cinder-api + scheduler + volume with the NFS
 * driver, noauth, SQLite), attach_mode cinder (attachments API), the host side
 * attaching each volume's file as a loop device. Needs root (mount, losetup).
 */
import { randomUUID } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { makeFilesystem, mount, unmount } from '../blockdev';
import { blockDeviceApiContract, expectStorageError } from '../testing/contract';
import { execFileExec } from '../exec';
import { findLoopDevices } from '../losetup';
import {
  CinderDriver,
  META_CLUSTER,
  META_CREATE_TOKEN,
  META_DATASET,
  META_SNAPSHOT,
  META_TEMPORARY,
  META_TEMPORARY_SINCE,
  type CinderDriverDeps,
} from './CinderDriver';
import { JsonHttp } from './http';
import { NoAuthTokenSource } from './keystone';
import { CinderClient } from './CinderClient';
import { quickPolls, startTestCinder, type TestCinder } from './testCinder';

jest.setTimeout(15 * 60 * 1000);

const PROJECT = 'f10cce7a5e7d4c8b9f1a2b3c4d5e6f70';

// One private Cinder for this file, shared by its describe blocks.
let cinder: Promise<TestCinder> | undefined;
let users = 0;

async function startCinder(): Promise<string> {
  users++;
  cinder ??= startTestCinder('noauth');
  return (await cinder).url;
}

/** The directory holding the NFS backend's volume files. */
async function shareDir(): Promise<string> {
  if (cinder === undefined) throw new Error('Cinder is not running');
  return (await cinder).sh('share-path');
}

async function stopCinder(): Promise<void> {
  users--;
  if (users === 0 && cinder !== undefined) {
    const c = cinder;
    cinder = undefined;
    await (await c).purge();
  }
}

// Held for the whole file: without it the count fell to zero between the describe blocks, and the second started
// a Cinder of its own (~20-40 s).
beforeAll(async () => void (await startCinder()));
afterAll(stopCinder);

function makeDriver(url: string, clusterId: string, instanceId: string, deps: CinderDriverDeps = {}): CinderDriver {
  return new CinderDriver(
    {
      backend: 'openstack',
      auth_plugin: 'noauth',
      cinder_url: url,
      project_id: PROJECT,
      cluster_id: clusterId,
      instance_id: instanceId,
      attach_mode: 'cinder',
      // Cinder's NFS driver cannot grow in-use volumes.
      extend_attached: 'reattach',
      connector: { ip: '127.0.0.1' },
      operation_timeout_seconds: 120,
    },
    { ...quickPolls, ...deps },
  );
}

blockDeviceApiContract(
  'openstack cinder (real Cinder, attachments API, NFS backend)',
  async () => {
    const url = await startCinder();
    const clusterId = randomUUID();
    const a = makeDriver(url, clusterId, `flocker-host-a-${randomUUID().slice(0, 8)}`);
    const b = makeDriver(url, clusterId, `flocker-host-b-${randomUUID().slice(0, 8)}`);
    // The contract uses profile "gold": a volume type of that name on the NFS backend.
    await a.client.ensureVolumeType('gold', { volume_backend_name: 'nfs' });
    return {
      driver: a,
      driverOnOtherInstance: b,
      cleanup: async () => {
        await a.close();
        await b.close();
        await stopCinder();
      },
    };
  },
  // Cinder keeps snapshots only with their volume; this NFS backend cannot snapshot in-use volumes
  // without Nova, and a snapshotted volume is a qcow2 chain that a bare-metal host cannot attach.
  {
    snapshotLimits: { noAttachedSnapshots: true, sourceUnattachableWhileSnapshotted: true, snapshotsPinSource: true },
    temporaryVolumes: (d) => (d as CinderDriver).temporaryVolumes(),
  },
);

describe('CinderDriver against real Cinder: beyond the contract', () => {
  let url: string;
  let clusterId: string;
  let a: CinderDriver;
  let raw: CinderClient;
  let rawHttp: JsonHttp;

  beforeAll(async () => {
    url = await startCinder();
    clusterId = randomUUID();
    a = makeDriver(url, clusterId, `flocker-host-c-${randomUUID().slice(0, 8)}`);
    rawHttp = new JsonHttp();
    raw = new CinderClient(rawHttp, new NoAuthTokenSource(PROJECT), { interface: 'public', cinderUrl: url }, 2);
  });

  afterAll(async () => {
    for (const s of await a.listSnapshots().catch(() => []))
      await a.destroySnapshot(s.snapshotId).catch(() => undefined);
    for (const v of await raw.listVolumes({ [META_CLUSTER]: clusterId }).catch(() => [])) {
      await a.detachVolume(v.id, { force: true }).catch(() => undefined);
      await a.destroyVolume(v.id).catch(() => undefined);
    }
    await a?.close();
    await rawHttp?.close();
    await stopCinder();
  });

  it('tags volumes with cluster and dataset metadata and lists only its own cluster, across pages', async () => {
    const datasetId = randomUUID();
    const mine = await Promise.all([1, 2, 3].map(() => a.createVolume(datasetId, 1)));
    const other = makeDriver(url, randomUUID(), `flocker-host-d-${randomUUID().slice(0, 8)}`);
    const foreign = await other.createVolume(randomUUID(), 1);
    try {
      const v = await raw.getVolume(mine[0].blockdeviceId);
      expect(v?.metadata).toMatchObject({ [META_CLUSTER]: clusterId, [META_DATASET]: datasetId });
      expect(v?.metadata[META_CREATE_TOKEN]).toMatch(/^[0-9a-f-]{36}$/);
      // Page size 2: three volumes need two pages (limit/marker).
      const listed = await raw.listVolumes({ [META_CLUSTER]: clusterId });
      expect(listed.map((x) => x.id).sort()).toEqual(mine.map((m) => m.blockdeviceId).sort());
      expect((await a.listVolumes()).map((x) => x.blockdeviceId)).not.toContain(foreign.blockdeviceId);
      await expectStorageError(a.destroyVolume(foreign.blockdeviceId), 'UNKNOWN_VOLUME');
    } finally {
      await other.destroyVolume(foreign.blockdeviceId);
      await other.close();
      for (const m of mine) await a.destroyVolume(m.blockdeviceId);
    }
  });

  it("turns Cinder refusals into BACKEND_ERROR with Cinder's message (unknown volume type)", async () => {
    let failure: unknown;
    try {
      await a.createVolume(randomUUID(), 1, { profile: 'no-such-type-' + randomUUID().slice(0, 8) });
    } catch (e) {
      failure = e;
    }
    expect(failure).toMatchObject({ code: 'BACKEND_ERROR' });
    expect(String((failure as Error).message)).toMatch(/Volume type .* could not be found|not found/i);
    expect(await a.listVolumes()).toEqual([]);
  });

  it('attaches to another instance without touching this host, and a force detach leaves no attachment and the volume attachable elsewhere', async () => {
    const v = await a.createVolume(randomUUID(), 1);
    const other = randomUUID();
    const attached = await a.attachVolume(v.blockdeviceId, other);
    expect(attached.attachedTo).toBe(other);
    await expectStorageError(a.getDevicePath(v.blockdeviceId), 'NOT_ATTACHED_HERE');
    await a.detachVolume(v.blockdeviceId, { force: true });
    expect((await raw.getVolume(v.blockdeviceId))?.status).toBe('available');
    expect(await raw.listAttachments(v.blockdeviceId)).toEqual([]);
    // Attachable elsewhere after the force detach (Cinder has terminated the old connection).
    const next = randomUUID();
    expect((await a.attachVolume(v.blockdeviceId, next)).attachedTo).toBe(next);
    await a.detachVolume(v.blockdeviceId, { force: true });
    expect(await raw.listAttachments(v.blockdeviceId)).toEqual([]);
    await a.destroyVolume(v.blockdeviceId);
  });

  it('refuses to detach a mounted device with DEVICE_BUSY, and detaches once unmounted', async () => {
    const v = await a.createVolume(randomUUID(), 1);
    await a.attachVolume(v.blockdeviceId, await a.computeInstanceId());
    const device = await a.getDevicePath(v.blockdeviceId);
    const mnt = await fs.mkdtemp(path.join(os.tmpdir(), 'flocker-cindermnt-'));
    await makeFilesystem(device, { type: 'ext4' });
    await mount(device, mnt, { fstype: 'ext4' });
    try {
      await expectStorageError(a.detachVolume(v.blockdeviceId), 'DEVICE_BUSY');
      expect((await raw.getVolume(v.blockdeviceId))?.status).toBe('in-use');
    } finally {
      await unmount(mnt);
      await fs.rm(mnt, { recursive: true, force: true });
    }
    await a.detachVolume(v.blockdeviceId);
    expect(await findLoopDevices(execFileExec, path.join(await shareDir(), `volume-${v.blockdeviceId}`))).toEqual([]);
    await a.destroyVolume(v.blockdeviceId);
  });

  it('re-creates a lost local device on getDevicePath (after a crash or reboot), with the data intact', async () => {
    const v = await a.createVolume(randomUUID(), 1);
    await a.attachVolume(v.blockdeviceId, await a.computeInstanceId());
    const device = await a.getDevicePath(v.blockdeviceId);
    await fs.writeFile(device, 'survives', { flag: 'r+' });
    await execFileExec('losetup', ['-d', device]);
    const again = await a.getDevicePath(v.blockdeviceId);
    expect((await fs.stat(again)).isBlockDevice()).toBe(true);
    const handle = await fs.open(again, 'r');
    try {
      const buf = Buffer.alloc(8);
      await handle.read(buf, 0, 8, 0);
      expect(buf.toString()).toBe('survives');
    } finally {
      await handle.close();
    }
    await a.detachVolume(v.blockdeviceId);
    await a.destroyVolume(v.blockdeviceId);
  });

  it("tags snapshots with cluster, dataset and snapshot id metadata, lists only its own cluster's, and clones with snapshot_id", async () => {
    const v = await a.createVolume(randomUUID(), 1);
    const other = makeDriver(url, randomUUID(), `flocker-host-e-${randomUUID().slice(0, 8)}`);
    const w = await other.createVolume(randomUUID(), 1);
    try {
      const snapshotId = randomUUID();
      const s = await a.createSnapshot(v.blockdeviceId, snapshotId);
      const cinderSnapshot = await raw.getSnapshot(s.backendId);
      expect(cinderSnapshot).toMatchObject({ volume_id: v.blockdeviceId, size: 1, status: 'available' });
      expect(cinderSnapshot?.metadata).toMatchObject({
        [META_CLUSTER]: clusterId,
        [META_DATASET]: v.datasetId,
        [META_SNAPSHOT]: snapshotId,
      });
      const theirs = await other.createSnapshot(w.blockdeviceId, randomUUID());
      expect(await a.listSnapshots()).toEqual([s]);
      expect(await other.listSnapshots()).toEqual([theirs]);
      await expectStorageError(a.createVolumeFromSnapshot(theirs.snapshotId, randomUUID(), 1), 'UNKNOWN_SNAPSHOT');
      const clone = await a.createVolumeFromSnapshot(snapshotId, randomUUID(), 2 * 1024 ** 3);
      expect((await raw.getVolume(clone.blockdeviceId))?.snapshot_id).toBe(s.backendId);
      // The volume and its snapshot stay until the snapshot is destroyed (Cinder's rule), with a clear message.
      await expect(a.destroyVolume(v.blockdeviceId)).rejects.toThrow(/has snapshots .*destroy them first/);
      await a.destroyVolume(clone.blockdeviceId);
      await other.destroySnapshot(theirs.snapshotId);
      await a.destroySnapshot(snapshotId);
      expect(await raw.getSnapshot(s.backendId)).toBeNull();
    } finally {
      await other.destroyVolume(w.blockdeviceId).catch(() => undefined);
      await other.close();
      await a.destroyVolume(v.blockdeviceId);
    }
  });

  it('openSnapshot: a temporary volume with flocker-temporary metadata, hidden from listVolumes; any node removes a leftover older than the bound or of a destroyed snapshot', async () => {
    const hostB = `flocker-host-f-${randomUUID().slice(0, 8)}`;
    const b = makeDriver(url, clusterId, hostB, { temporaryMaxAgeMs: 600_000 });
    // Stands for b after the bound has passed.
    const late = makeDriver(url, clusterId, hostB, { temporaryMaxAgeMs: 0 });
    const v = await a.createVolume(randomUUID(), 1);
    try {
      const s1 = await a.createSnapshot(v.blockdeviceId, randomUUID());
      const s2 = await a.createSnapshot(v.blockdeviceId, randomUUID());
      // A crash: opened on a, never released.
      const crashed = await a.openSnapshot(s1.snapshotId);
      expect(crashed.size).toBe(1024 ** 3);
      const [temp = ''] = await a.temporaryVolumes();
      const made = await raw.getVolume(temp);
      expect(made).toMatchObject({ snapshot_id: s1.backendId, status: 'in-use' });
      expect(made?.metadata).toMatchObject({ [META_CLUSTER]: clusterId, [META_TEMPORARY]: `backup-${s1.snapshotId}` });
      expect(Number.isNaN(Date.parse(made?.metadata[META_TEMPORARY_SINCE] ?? ''))).toBe(false);
      expect((await a.listVolumes()).map((x) => x.blockdeviceId)).toEqual([v.blockdeviceId]);
      // Within the bound, with its snapshot there: another node's open leaves it alone.
      const young = await b.openSnapshot(s2.snapshotId);
      expect(await a.temporaryVolumes()).toHaveLength(2);
      await young.release();
      expect(await a.temporaryVolumes()).toEqual([temp]);
      // Past the bound: force-detached from a and deleted by the next open on any node.
      const fresh = await late.openSnapshot(s2.snapshotId);
      expect(await a.temporaryVolumes()).not.toContain(temp);
      await fresh.release();
      expect(await a.temporaryVolumes()).toEqual([]);
      await crashed.release(); // late: harmless
      // Its snapshot destroyed: removed by the next open, whatever its age.
      await a.openSnapshot(s1.snapshotId);
      await a.destroySnapshot(s1.snapshotId);
      const after = await b.openSnapshot(s2.snapshotId);
      expect(await a.temporaryVolumes()).toHaveLength(1);
      await after.release();
      expect(await a.temporaryVolumes()).toEqual([]);
      await expectStorageError(a.openSnapshot(s1.snapshotId), 'UNKNOWN_SNAPSHOT');
      await a.destroySnapshot(s2.snapshotId);
    } finally {
      await b.close();
      await late.close();
      await a.destroyVolume(v.blockdeviceId).catch(() => undefined);
    }
  });
});

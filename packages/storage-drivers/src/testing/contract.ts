/**
 * The behaviour every BlockDeviceApi implementation must show, as a reusable
 * jest suite (it calls jest's describe/it: import it only from tests):
 *
 *   import { blockDeviceApiContract } from '@flocker/storage-drivers/testing';
 *   blockDeviceApiContract('ebs', async () => ({ driver, driverOnOtherInstance, cleanup }));
 *
 * `driver` and `driverOnOtherInstance` must share one pool of volumes but act
 * as two different compute instances. A real driver must be able to reach the
 * device of a volume attached to itself (getDevicePath must give a real block
 * device that can be read and written); an in-memory driver (a test fake) passes
 * `{ devices: false }` and runs every part of the suite that needs no device.
 */
import { randomUUID } from 'node:crypto';
import { promises as fs } from 'node:fs';
import {
  isStorageError,
  StorageError,
  type BlockDeviceApi,
  type BlockDeviceSnapshot,
  type BlockDeviceVolume,
  type StorageErrorCode,
} from '../BlockDeviceApi';

export interface ContractFixture {
  readonly driver: BlockDeviceApi;
  readonly driverOnOtherInstance: BlockDeviceApi;
  /** Removes whatever the fixture set up; volumes the suite created are already cleaned up. */
  readonly cleanup: () => Promise<void>;
}

/** Awaits a promise that must fail with a StorageError of this code. */
export async function expectStorageError(promise: Promise<unknown>, code: StorageErrorCode): Promise<void> {
  try {
    await promise;
  } catch (e) {
    if (isStorageError(e, code)) return;
    const got = typeof e === 'object' && e !== null && 'code' in e ? e.code : undefined;
    throw new Error(`expected a StorageError ${code}, got ${String(e)} (code ${String(got)})`, { cause: e });
  }
  throw new Error(`expected a StorageError ${code}, but the call succeeded`);
}

async function readAt(device: string, offset: number, length: number): Promise<Buffer> {
  const handle = await fs.open(device, 'r');
  try {
    const buf = Buffer.alloc(length);
    const { bytesRead } = await handle.read(buf, 0, length, offset);
    return buf.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}

async function writeAt(device: string, offset: number, data: Buffer): Promise<void> {
  const handle = await fs.open(device, 'r+');
  try {
    await handle.write(data, 0, data.length, offset);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

export interface ContractOptions {
  /**
   * Whether getDevicePath names a real block device (default true). False for an
   * in-memory driver: the tests that read or write devices are left out, and a
   * device path need only be a stable, non-empty name.
   */
  readonly devices?: boolean;
  /** What the backend's snapshots (as tested here) cannot do; see SnapshotLimits. Default: none. */
  readonly snapshotLimits?: SnapshotLimits;
  /**
   * Where openSnapshot makes temporary volumes (EBS, Cinder): their ids as the backend itself
   * lists them (listVolumes never shows them), so the suite can check that release() and a
   * later openSnapshot leave none behind.
   */
  readonly temporaryVolumes?: (driver: BlockDeviceApi) => Promise<string[]>;
}

/**
 * Documented limits of a backend's snapshots, each asserted as the behaviour instead: the
 * suite then checks that the backend refuses clearly (and that nothing changed).
 */
export interface SnapshotLimits {
  /**
   * createSnapshot of an attached volume fails with a StorageError, leaving no snapshot
   * (Cinder's NFS driver: an in-use volume needs Nova's assisted snapshots). The data
   * cases then write, detach and snapshot.
   */
  readonly noAttachedSnapshots?: true;
  /**
   * A volume with snapshots cannot be attached on this host until they are destroyed
   * (Cinder's NFS driver turns it into a qcow2 chain, which no loop device serves): the
   * cases that write to the source after the snapshot expect attachVolume to fail instead.
   */
  readonly sourceUnattachableWhileSnapshotted?: true;
  /**
   * destroyVolume of a volume with snapshots fails with a StorageError and keeps both
   * (Cinder deletes a volume only after its snapshots); once they are destroyed it goes.
   */
  readonly snapshotsPinSource?: true;
}

export function blockDeviceApiContract(
  name: string,
  makeDriver: () => Promise<ContractFixture>,
  options: ContractOptions = {},
): void {
  const devices = options.devices ?? true;
  /** A test that reads or writes the device: only where there is one. */
  const deviceTest = (title: string, test: () => Promise<void>): void => {
    if (devices) it(title, test);
  };

  describe(`BlockDeviceApi contract: ${name}`, () => {
    let fx: ContractFixture;
    let a: BlockDeviceApi;
    let b: BlockDeviceApi;
    let idA: string;
    let idB: string;
    let unit: number;
    const created: string[] = [];

    async function create(size?: number, profile?: string): Promise<BlockDeviceVolume> {
      const v = await a.createVolume(randomUUID(), size ?? unit, profile === undefined ? {} : { profile });
      created.push(v.blockdeviceId);
      return v;
    }

    /** A path getDevicePath gave: a block device where the driver has devices. */
    async function expectDevice(device: string): Promise<void> {
      if (devices) expect((await fs.stat(device)).isBlockDevice()).toBe(true);
      else expect(device).not.toBe('');
    }

    async function find(driver: BlockDeviceApi, id: string): Promise<BlockDeviceVolume | undefined> {
      return (await driver.listVolumes()).find((v) => v.blockdeviceId === id);
    }

    beforeAll(async () => {
      fx = await makeDriver();
      a = fx.driver;
      b = fx.driverOnOtherInstance;
      idA = await a.computeInstanceId();
      idB = await b.computeInstanceId();
      unit = a.allocationUnit();
    });

    afterAll(async () => {
      if (fx === undefined) return;
      // Leave nothing behind even when a test failed half-way.
      for (const id of created) {
        for (const driver of [a, b]) {
          await driver.detachVolume(id).catch(() => undefined);
        }
        await a.detachVolume(id, { force: true }).catch(() => undefined);
        await a.destroyVolume(id).catch(() => undefined);
      }
      await fx.cleanup();
    });

    it('has distinct non-empty instance ids and a positive allocation unit', () => {
      expect(idA).not.toBe('');
      expect(idB).not.toBe('');
      expect(idA).not.toBe(idB);
      expect(Number.isInteger(unit) && unit > 0).toBe(true);
      expect(b.allocationUnit()).toBe(unit);
    });

    it('creates an unattached volume that both instances list', async () => {
      const datasetId = randomUUID();
      const v = await a.createVolume(datasetId, 3 * unit, { profile: 'gold' });
      created.push(v.blockdeviceId);
      expect(v).toMatchObject({ datasetId, size: 3 * unit, attachedTo: null, profile: 'gold' });
      expect(await find(a, v.blockdeviceId)).toEqual(v);
      expect(await find(b, v.blockdeviceId)).toEqual(v);
    });

    it('gives every volume its own id, even for the same dataset', async () => {
      const datasetId = randomUUID();
      const v1 = await a.createVolume(datasetId, unit);
      const v2 = await b.createVolume(datasetId, unit);
      created.push(v1.blockdeviceId, v2.blockdeviceId);
      expect(v1.blockdeviceId).not.toBe(v2.blockdeviceId);
      const ours = (await a.listVolumes()).filter((v) => v.datasetId === datasetId);
      expect(ours.map((v) => v.blockdeviceId).sort()).toEqual([v1.blockdeviceId, v2.blockdeviceId].sort());
    });

    it('rounds sizes up to the allocation unit', async () => {
      expect((await create(1)).size).toBe(unit);
      expect((await create(unit)).size).toBe(unit);
      expect((await create(unit + 1)).size).toBe(2 * unit);
    });

    it('rejects sizes <= 0 with INVALID_SIZE', async () => {
      await expectStorageError(a.createVolume(randomUUID(), 0), 'INVALID_SIZE');
      await expectStorageError(a.createVolume(randomUUID(), -unit), 'INVALID_SIZE');
      await expectStorageError(a.createVolume(randomUUID(), Number.NaN), 'INVALID_SIZE');
    });

    it('answers UNKNOWN_VOLUME for unknown ids on every operation', async () => {
      const unknown = randomUUID();
      await expectStorageError(a.destroyVolume(unknown), 'UNKNOWN_VOLUME');
      await expectStorageError(a.attachVolume(unknown, idA), 'UNKNOWN_VOLUME');
      await expectStorageError(a.detachVolume(unknown), 'UNKNOWN_VOLUME');
      await expectStorageError(a.detachVolume(unknown, { force: true }), 'UNKNOWN_VOLUME');
      await expectStorageError(a.getDevicePath(unknown), 'UNKNOWN_VOLUME');
      if (a.resizeVolume) await expectStorageError(a.resizeVolume(unknown, 2 * unit), 'UNKNOWN_VOLUME');
      await expectStorageError(a.attachVolume('../../etc/passwd', idA), 'UNKNOWN_VOLUME');
    });

    it('attaches to one instance, and both instances see who holds it', async () => {
      const v = await create();
      const attached = await a.attachVolume(v.blockdeviceId, idA);
      expect(attached).toEqual({ ...v, attachedTo: idA });
      expect((await find(a, v.blockdeviceId))?.attachedTo).toBe(idA);
      expect((await find(b, v.blockdeviceId))?.attachedTo).toBe(idA);
      const device = await a.getDevicePath(v.blockdeviceId);
      await expectDevice(device);
      expect(await a.getDevicePath(v.blockdeviceId)).toBe(device);
      await expectStorageError(b.getDevicePath(v.blockdeviceId), 'NOT_ATTACHED_HERE');
    });

    deviceTest('gives a device that holds exactly the volume size, readable and writable', async () => {
      const v = await create(2 * unit);
      await a.attachVolume(v.blockdeviceId, idA);
      const device = await a.getDevicePath(v.blockdeviceId);
      expect((await readAt(device, v.size - 512, 1024)).length).toBe(512);
      expect((await readAt(device, v.size, 512)).length).toBe(0);
      await writeAt(device, 4096, Buffer.from('contract'));
      expect((await readAt(device, 4096, 8)).toString()).toBe('contract');
    });

    it('refuses a second attachment with ALREADY_ATTACHED, to itself or to another instance', async () => {
      const v = await create();
      await a.attachVolume(v.blockdeviceId, idA);
      await expectStorageError(a.attachVolume(v.blockdeviceId, idA), 'ALREADY_ATTACHED');
      await expectStorageError(b.attachVolume(v.blockdeviceId, idB), 'ALREADY_ATTACHED');
      await expectStorageError(a.attachVolume(v.blockdeviceId, idB), 'ALREADY_ATTACHED');
      expect((await find(b, v.blockdeviceId))?.attachedTo).toBe(idA);
    });

    it('refuses to destroy an attached volume with VOLUME_ATTACHED', async () => {
      const v = await create();
      await a.attachVolume(v.blockdeviceId, idA);
      await expectStorageError(a.destroyVolume(v.blockdeviceId), 'VOLUME_ATTACHED');
      await expectStorageError(b.destroyVolume(v.blockdeviceId), 'VOLUME_ATTACHED');
      expect(await find(a, v.blockdeviceId)).toBeDefined();
    });

    it('detaches; a second detach answers UNATTACHED', async () => {
      const v = await create();
      await a.attachVolume(v.blockdeviceId, idA);
      await a.detachVolume(v.blockdeviceId);
      expect((await find(a, v.blockdeviceId))?.attachedTo).toBeNull();
      expect((await find(b, v.blockdeviceId))?.attachedTo).toBeNull();
      await expectStorageError(a.detachVolume(v.blockdeviceId), 'UNATTACHED');
      await expectStorageError(b.detachVolume(v.blockdeviceId, { force: true }), 'UNATTACHED');
      await expectStorageError(a.getDevicePath(v.blockdeviceId), 'UNATTACHED');
    });

    it('refuses an unforced detach by another instance with NOT_ATTACHED_HERE; force detach works', async () => {
      const v = await create();
      await a.attachVolume(v.blockdeviceId, idA);
      await expectStorageError(b.detachVolume(v.blockdeviceId), 'NOT_ATTACHED_HERE');
      expect((await find(a, v.blockdeviceId))?.attachedTo).toBe(idA);
      await b.detachVolume(v.blockdeviceId, { force: true });
      expect((await find(a, v.blockdeviceId))?.attachedTo).toBeNull();
      await b.attachVolume(v.blockdeviceId, idB);
      await expectDevice(await b.getDevicePath(v.blockdeviceId));
      await expectStorageError(a.getDevicePath(v.blockdeviceId), 'NOT_ATTACHED_HERE');
    });

    deviceTest('moves data: written on one instance, read on the other after detach and attach', async () => {
      const v = await create();
      await a.attachVolume(v.blockdeviceId, idA);
      await writeAt(await a.getDevicePath(v.blockdeviceId), 0, Buffer.from('moved with the volume'));
      await a.detachVolume(v.blockdeviceId);
      await b.attachVolume(v.blockdeviceId, idB);
      const data = await readAt(await b.getDevicePath(v.blockdeviceId), 0, 21);
      expect(data.toString()).toBe('moved with the volume');
      await b.detachVolume(v.blockdeviceId);
    });

    it('destroys a detached volume; it disappears and further calls answer UNKNOWN_VOLUME', async () => {
      const v = await create();
      await a.attachVolume(v.blockdeviceId, idA);
      await a.detachVolume(v.blockdeviceId);
      await b.destroyVolume(v.blockdeviceId);
      expect(await find(a, v.blockdeviceId)).toBeUndefined();
      expect(await find(b, v.blockdeviceId)).toBeUndefined();
      await expectStorageError(a.destroyVolume(v.blockdeviceId), 'UNKNOWN_VOLUME');
      await expectStorageError(a.attachVolume(v.blockdeviceId, idA), 'UNKNOWN_VOLUME');
    });

    it('detachAndDestroyVolume (where present) destroys a volume attached here or not attached; one attached to another instance stays, NOT_ATTACHED_HERE; unknown: UNKNOWN_VOLUME', async () => {
      const both = a.detachAndDestroyVolume?.bind(a);
      const bothOnB = b.detachAndDestroyVolume?.bind(b);
      // Optional, but one driver class either has it on every instance or on none.
      expect(bothOnB === undefined).toBe(both === undefined);
      if (both === undefined || bothOnB === undefined) return;
      const attached = await create();
      await a.attachVolume(attached.blockdeviceId, idA);
      await expectDevice(await a.getDevicePath(attached.blockdeviceId));
      await both(attached.blockdeviceId);
      expect(await find(a, attached.blockdeviceId)).toBeUndefined();
      expect(await find(b, attached.blockdeviceId)).toBeUndefined();
      await expectStorageError(a.getDevicePath(attached.blockdeviceId), 'UNKNOWN_VOLUME');
      await expectStorageError(both(attached.blockdeviceId), 'UNKNOWN_VOLUME');
      await expectStorageError(a.attachVolume(attached.blockdeviceId, idA), 'UNKNOWN_VOLUME');

      const detached = await create();
      await both(detached.blockdeviceId);
      expect(await find(b, detached.blockdeviceId)).toBeUndefined();

      const elsewhere = await create();
      await b.attachVolume(elsewhere.blockdeviceId, idB);
      await expectStorageError(both(elsewhere.blockdeviceId), 'NOT_ATTACHED_HERE');
      expect((await find(a, elsewhere.blockdeviceId))?.attachedTo).toBe(idB);
      await expectDevice(await b.getDevicePath(elsewhere.blockdeviceId));
      await bothOnB(elsewhere.blockdeviceId);
      expect(await find(a, elsewhere.blockdeviceId)).toBeUndefined();
    });

    it('lets exactly one of two concurrent attaches from different instances win', async () => {
      for (let round = 0; round < 3; round++) {
        const v = await create();
        const results = await Promise.allSettled([
          a.attachVolume(v.blockdeviceId, idA),
          b.attachVolume(v.blockdeviceId, idB),
        ]);
        const won = results.filter((r) => r.status === 'fulfilled');
        const lost = results.filter((r) => r.status === 'rejected');
        expect(won).toHaveLength(1);
        expect(lost).toHaveLength(1);
        expect(isStorageError(lost[0].status === 'rejected' ? lost[0].reason : undefined, 'ALREADY_ATTACHED')).toBe(
          true,
        );
        const winner = results[0].status === 'fulfilled' ? idA : idB;
        expect((await find(a, v.blockdeviceId))?.attachedTo).toBe(winner);
        const holder = winner === idA ? a : b;
        await expectDevice(await holder.getDevicePath(v.blockdeviceId));
      }
    });

    it('keeps every volume intact under concurrent operations on different volumes', async () => {
      const vs = await Promise.all([create(), create(), create(), create()]);
      await Promise.all(vs.map((v, i) => (i % 2 === 0 ? a : b).attachVolume(v.blockdeviceId, i % 2 === 0 ? idA : idB)));
      const listed = await a.listVolumes();
      vs.forEach((v, i) =>
        expect(listed.find((l) => l.blockdeviceId === v.blockdeviceId)?.attachedTo).toBe(i % 2 === 0 ? idA : idB),
      );
      await Promise.all(vs.map((v, i) => (i % 2 === 0 ? a : b).detachVolume(v.blockdeviceId)));
      expect(
        (await b.listVolumes()).filter((l) =>
          vs.some((v) => v.blockdeviceId === l.blockdeviceId && l.attachedTo !== null),
        ),
      ).toEqual([]);
    });

    it('grows volumes where the backend can, including attached ones', async () => {
      if (!a.resizeVolume) return;
      const v = await create(unit);
      await a.attachVolume(v.blockdeviceId, idA);
      const grown = await a.resizeVolume(v.blockdeviceId, 2 * unit + 1);
      expect(grown).toEqual({ ...v, attachedTo: idA, size: 3 * unit });
      expect((await find(b, v.blockdeviceId))?.size).toBe(3 * unit);
      expect(await a.resizeVolume(v.blockdeviceId, 3 * unit)).toEqual(grown);
      if (devices) expect((await readAt(await a.getDevicePath(v.blockdeviceId), 3 * unit - 512, 512)).length).toBe(512);
      await expectStorageError(a.resizeVolume(v.blockdeviceId, 0), 'INVALID_SIZE');
    });

    it('states its largest volume where it knows it, and refuses larger sizes with INVALID_SIZE, leaving no volume behind', async () => {
      const max = await a.maximumVolumeSize?.();
      if (max === undefined) return;
      expect(Number.isSafeInteger(max) && max >= unit && max % unit === 0).toBe(true);
      if (max > Number.MAX_SAFE_INTEGER - unit) return; // nothing a caller can ask for is larger
      const datasetId = randomUUID();
      await expectStorageError(a.createVolume(datasetId, max + unit), 'INVALID_SIZE');
      expect((await a.listVolumes()).filter((v) => v.datasetId === datasetId)).toEqual([]);
      if (a.resizeVolume !== undefined) {
        const v = await create(unit);
        await expectStorageError(a.resizeVolume(v.blockdeviceId, max + unit), 'INVALID_SIZE');
        expect((await find(a, v.blockdeviceId))?.size).toBe(unit);
      }
    });

    it('lists the same volumes with listPool (where present) as with listVolumes, with no problem in a healthy pool', async () => {
      if (a.listPool === undefined) return;
      await create(unit);
      const [pool, listed] = await Promise.all([a.listPool(), a.listVolumes()]);
      expect(pool.problems).toEqual([]);
      expect(pool.volumes.map((v) => v.blockdeviceId).sort()).toEqual(listed.map((v) => v.blockdeviceId).sort());
    });

    snapshotContract(devices, options.snapshotLimits ?? {}, () => ({
      a,
      b,
      idA,
      idB,
      unit,
      created,
      ...(options.temporaryVolumes === undefined ? {} : { temporaryVolumes: options.temporaryVolumes }),
    }));
  });
}

interface SnapshotContext {
  readonly a: BlockDeviceApi;
  readonly b: BlockDeviceApi;
  readonly idA: string;
  readonly idB: string;
  readonly unit: number;
  /** Volumes to clean up (the main suite's afterAll destroys them, after the snapshots' afterAll). */
  readonly created: string[];
  readonly temporaryVolumes?: (driver: BlockDeviceApi) => Promise<string[]>;
}

/** A BlockDeviceApi with the snapshot operations (they are present together). */
type SnapshotApi = BlockDeviceApi & Required<Pick<BlockDeviceApi, (typeof SNAPSHOT_METHODS)[number]>>;

const SNAPSHOT_METHODS = ['createSnapshot', 'listSnapshots', 'destroySnapshot', 'createVolumeFromSnapshot'] as const;

function hasSnapshots(d: BlockDeviceApi): d is SnapshotApi {
  return SNAPSHOT_METHODS.every((m) => typeof d[m] === 'function');
}

/** How long a snapshot may stay "creating" before the suite gives up (EBS, Cinder copy in the background). */
const SNAPSHOT_READY_TIMEOUT_MS = 120_000;

/**
 * The snapshot cases (issue 20), for backends with the snapshot operations. Data cases
 * write a pattern to the device, snapshot, overwrite, and read a clone (on the other
 * instance): they need devices; the rest runs on in-memory drivers too.
 */
function snapshotContract(devices: boolean, limits: SnapshotLimits, context: () => SnapshotContext): void {
  describe('snapshots', () => {
    let c: SnapshotContext;
    let a: SnapshotApi;
    let b: SnapshotApi;
    let present = false;
    const snapshots: string[] = [];

    beforeAll(() => {
      c = context();
      present = hasSnapshots(c.a) && hasSnapshots(c.b);
      if (present) {
        a = c.a as SnapshotApi;
        b = c.b as SnapshotApi;
      }
    });

    afterAll(async () => {
      if (!present) return;
      for (const id of snapshots) await a.destroySnapshot(id).catch(() => undefined);
    });

    // Each test's volumes let go of their instances after it: a backend with few device slots per
    // instance (EBS: /dev/sdf…/dev/sdp) would otherwise run out across the section.
    afterEach(async () => {
      if (!present) return;
      const ids = new Set(c.created);
      for (const v of await a.listVolumes()) {
        if (!ids.has(v.blockdeviceId) || v.attachedTo === null) continue;
        const holder = v.attachedTo === (await a.computeInstanceId()) ? a : b;
        await holder.detachVolume(v.blockdeviceId).catch(() => undefined);
      }
    });

    /** A test of the snapshot operations: a no-op on a backend without them. */
    const snapshotTest = (title: string, test: () => Promise<void>, needsDevices = false): void => {
      if (needsDevices && !devices) return;
      it(title, async () => {
        if (present) await test();
      });
    };

    async function create(size: number): Promise<BlockDeviceVolume> {
      const v = await a.createVolume(randomUUID(), size);
      c.created.push(v.blockdeviceId);
      return v;
    }

    async function snapshot(driver: SnapshotApi, blockdeviceId: string): Promise<BlockDeviceSnapshot> {
      const snapshotId = randomUUID();
      snapshots.push(snapshotId);
      return driver.createSnapshot(blockdeviceId, snapshotId);
    }

    async function listed(driver: SnapshotApi, snapshotId: string): Promise<BlockDeviceSnapshot[]> {
      return (await driver.listSnapshots()).filter((s) => s.snapshotId === snapshotId);
    }

    /** Waits until the snapshot is "ready" (fails on "error" or a timeout); answers it as listed. */
    async function ready(snapshotId: string): Promise<BlockDeviceSnapshot> {
      const deadline = Date.now() + SNAPSHOT_READY_TIMEOUT_MS;
      for (let delay = 10; ; delay = Math.min(delay * 2, 1000)) {
        const [s] = await listed(a, snapshotId);
        if (s === undefined) throw new Error(`snapshot ${snapshotId} is not listed`);
        if (s.status === 'ready') return s;
        if (s.status === 'error') throw new Error(`snapshot ${snapshotId} failed in the backend`);
        if (Date.now() > deadline)
          throw new Error(`snapshot ${snapshotId} still ${s.status} after ${SNAPSHOT_READY_TIMEOUT_MS} ms`);
        await new Promise((r) => setTimeout(r, delay));
      }
    }

    async function clone(driver: SnapshotApi, snapshotId: string, size: number): Promise<BlockDeviceVolume> {
      const v = await driver.createVolumeFromSnapshot(snapshotId, randomUUID(), size);
      c.created.push(v.blockdeviceId);
      return v;
    }

    /** Attaches v to the driver's instance and answers its device. */
    async function attach(driver: SnapshotApi, v: BlockDeviceVolume): Promise<string> {
      await driver.attachVolume(v.blockdeviceId, await driver.computeInstanceId());
      return driver.getDevicePath(v.blockdeviceId);
    }

    /** Two places in the volume (of two units or more): the start and past the first unit (a clone copies every part). */
    const offsets = (): number[] => [0, c.unit + 4096];

    async function writePattern(device: string, text: string): Promise<void> {
      for (const offset of offsets()) await writeAt(device, offset, Buffer.from(text));
    }

    async function expectPattern(device: string, text: string): Promise<void> {
      for (const offset of offsets()) expect((await readAt(device, offset, text.length)).toString()).toBe(text);
    }

    /**
     * A new volume with the pattern written to it, and a snapshot of it: taken while attached
     * to a (its device answered), or, where the backend cannot, after detaching (device undefined).
     */
    async function snapshotWithData(
      size: number,
      pattern: string,
    ): Promise<{ v: BlockDeviceVolume; s: BlockDeviceSnapshot; device: string | undefined }> {
      const v = await create(size);
      let device: string | undefined;
      if (devices) {
        device = await attach(a, v);
        await writePattern(device, pattern);
        if (limits.noAttachedSnapshots) {
          await a.detachVolume(v.blockdeviceId);
          device = undefined;
        }
      }
      const s = await snapshot(a, v.blockdeviceId);
      return { v, s, device };
    }

    /** The source's device after its snapshot (attached again if needed); undefined where it cannot be attached now. */
    async function sourceDevice(v: BlockDeviceVolume, device: string | undefined): Promise<string | undefined> {
      if (device !== undefined) return device;
      if (limits.sourceUnattachableWhileSnapshotted) {
        await expect(a.attachVolume(v.blockdeviceId, c.idA)).rejects.toBeInstanceOf(StorageError);
        // A refused attach leaves the volume detached.
        expect((await a.listVolumes()).find((l) => l.blockdeviceId === v.blockdeviceId)?.attachedTo).toBeNull();
        return undefined;
      }
      return attach(a, v);
    }

    it('has all four snapshot operations or none', () => {
      for (const d of [c.a, c.b]) {
        const has = SNAPSHOT_METHODS.map((m) => typeof d[m] === 'function');
        expect(has.every((x) => x) || has.every((x) => !x)).toBe(true);
      }
    });

    snapshotTest(
      'takes a snapshot idempotently by id; both instances list it with size, status and source',
      async () => {
        const v = await create(2 * c.unit);
        const s = await snapshot(a, v.blockdeviceId);
        expect(s).toMatchObject({ datasetId: v.datasetId, sourceBlockdeviceId: v.blockdeviceId, size: v.size });
        expect(['creating', 'ready']).toContain(s.status);
        expect(s.backendId).not.toBe('');
        expect(Number.isNaN(Date.parse(s.createdAt))).toBe(false);
        const again = await a.createSnapshot(v.blockdeviceId, s.snapshotId);
        expect(again).toMatchObject({ snapshotId: s.snapshotId, backendId: s.backendId, size: v.size });
        const fromB = await b.createSnapshot(v.blockdeviceId, s.snapshotId);
        expect(fromB.backendId).toBe(s.backendId);
        const ok = await ready(s.snapshotId);
        expect(ok).toEqual({ ...s, status: 'ready' });
        expect(await listed(b, s.snapshotId)).toEqual([ok]);
        expect(await listed(a, s.snapshotId)).toEqual([ok]);
      },
    );

    snapshotTest(
      limits.noAttachedSnapshots
        ? 'refuses to snapshot an attached volume with a StorageError, leaving no snapshot (limit: noAttachedSnapshots)'
        : 'snapshots an attached volume, from the instance holding it and from another',
      async () => {
        const v = await create(c.unit);
        await a.attachVolume(v.blockdeviceId, c.idA);
        if (limits.noAttachedSnapshots) {
          const snapshotId = randomUUID();
          snapshots.push(snapshotId);
          await expect(a.createSnapshot(v.blockdeviceId, snapshotId)).rejects.toBeInstanceOf(StorageError);
          expect(await listed(a, snapshotId)).toEqual([]);
          expect((await a.listVolumes()).find((l) => l.blockdeviceId === v.blockdeviceId)?.attachedTo).toBe(c.idA);
          return;
        }
        const here = await snapshot(a, v.blockdeviceId);
        const there = await snapshot(b, v.blockdeviceId);
        expect(here.snapshotId).not.toBe(there.snapshotId);
        for (const s of [here, there]) expect((await ready(s.snapshotId)).sourceBlockdeviceId).toBe(v.blockdeviceId);
        expect((await a.listVolumes()).find((l) => l.blockdeviceId === v.blockdeviceId)?.attachedTo).toBe(c.idA);
      },
    );

    snapshotTest(
      limits.sourceUnattachableWhileSnapshotted
        ? 'a clone holds the data as it was at the snapshot; the snapshotted source refuses to attach (limit: sourceUnattachableWhileSnapshotted)'
        : 'a clone holds the data as it was at the snapshot, not what was written after',
      async () => {
        const { v, s, device: attached } = await snapshotWithData(2 * c.unit, 'before the snapshot');
        const device = await sourceDevice(v, attached);
        if (device !== undefined) await writePattern(device, 'after the snapshot!');
        await ready(s.snapshotId);
        const copy = await clone(b, s.snapshotId, v.size);
        expect(copy).toMatchObject({ size: v.size, attachedTo: null });
        expect(copy.blockdeviceId).not.toBe(v.blockdeviceId);
        await expectPattern(await attach(b, copy), 'before the snapshot');
        if (device !== undefined) await expectPattern(device, 'after the snapshot!');
      },
      true,
    );

    snapshotTest(
      'a clone is an independent volume: writes to it change neither the snapshot nor the source',
      async () => {
        const { v, s, device: attached } = await snapshotWithData(2 * c.unit, 'original');
        await ready(s.snapshotId);
        const first = await clone(b, s.snapshotId, v.size);
        const firstDevice = await attach(b, first);
        await writePattern(firstDevice, 'changed!');
        await b.detachVolume(first.blockdeviceId);
        const second = await clone(a, s.snapshotId, v.size);
        await expectPattern(await attach(b, second), 'original');
        const device = await sourceDevice(v, attached);
        if (device !== undefined) await expectPattern(device, 'original');
        await expectPattern(await attach(b, first), 'changed!');
      },
      true,
    );

    snapshotTest(
      limits.snapshotsPinSource
        ? 'keeps its source: destroying a volume with snapshots fails, keeping both, until they are destroyed (limit: snapshotsPinSource)'
        : 'outlives its source volume: listed and clonable after the source is destroyed',
      async () => {
        const { v, s, device } = await snapshotWithData(2 * c.unit, 'outlives the source');
        await ready(s.snapshotId);
        if (device !== undefined) await a.detachVolume(v.blockdeviceId);
        if (limits.snapshotsPinSource) {
          await expect(a.destroyVolume(v.blockdeviceId)).rejects.toBeInstanceOf(StorageError);
          expect((await a.listVolumes()).find((l) => l.blockdeviceId === v.blockdeviceId)).toEqual(v);
          expect(await listed(b, s.snapshotId)).toEqual([{ ...s, status: 'ready' }]);
          const copy = await clone(b, s.snapshotId, v.size);
          if (devices) await expectPattern(await attach(b, copy), 'outlives the source');
          await a.destroySnapshot(s.snapshotId);
          await a.destroyVolume(v.blockdeviceId);
          expect((await a.listVolumes()).find((l) => l.blockdeviceId === v.blockdeviceId)).toBeUndefined();
          return;
        }
        await a.destroyVolume(v.blockdeviceId);
        expect((await a.listVolumes()).find((l) => l.blockdeviceId === v.blockdeviceId)).toBeUndefined();
        expect(await listed(b, s.snapshotId)).toEqual([{ ...s, status: 'ready' }]);
        const copy = await clone(b, s.snapshotId, v.size);
        expect(copy.size).toBe(v.size);
        if (devices) await expectPattern(await attach(b, copy), 'outlives the source');
        // Idempotent even now: the snapshot that was taken is answered.
        expect((await a.createSnapshot(v.blockdeviceId, s.snapshotId)).backendId).toBe(s.backendId);
      },
    );

    snapshotTest(
      'clones to the same or a larger size; a smaller one is INVALID_SIZE and leaves no volume',
      async () => {
        const { s } = await snapshotWithData(2 * c.unit, 'grown clone');
        await ready(s.snapshotId);
        const same = await clone(a, s.snapshotId, 2 * c.unit);
        expect(same).toMatchObject({ size: 2 * c.unit, attachedTo: null });
        const larger = await clone(a, s.snapshotId, 3 * c.unit + 1);
        expect(larger).toMatchObject({ size: 4 * c.unit, attachedTo: null });
        const datasetId = randomUUID();
        await expectStorageError(a.createVolumeFromSnapshot(s.snapshotId, datasetId, c.unit), 'INVALID_SIZE');
        await expectStorageError(a.createVolumeFromSnapshot(s.snapshotId, datasetId, 0), 'INVALID_SIZE');
        expect((await a.listVolumes()).filter((l) => l.datasetId === datasetId)).toEqual([]);
        const listedLarger = (await b.listVolumes()).find((l) => l.blockdeviceId === larger.blockdeviceId);
        expect(listedLarger).toEqual(larger);
        if (devices) {
          const largerDevice = await attach(b, larger);
          await expectPattern(largerDevice, 'grown clone');
          expect((await readAt(largerDevice, 4 * c.unit - 512, 1024)).length).toBe(512);
        }
      },
    );

    snapshotTest('destroys a snapshot idempotently; then it is gone everywhere and UNKNOWN_SNAPSHOT', async () => {
      const v = await create(c.unit);
      const s = await snapshot(a, v.blockdeviceId);
      await ready(s.snapshotId);
      await b.destroySnapshot(s.snapshotId);
      await a.destroySnapshot(s.snapshotId);
      expect(await listed(a, s.snapshotId)).toEqual([]);
      expect(await listed(b, s.snapshotId)).toEqual([]);
      await expectStorageError(a.createVolumeFromSnapshot(s.snapshotId, randomUUID(), c.unit), 'UNKNOWN_SNAPSHOT');
      // The source is untouched.
      expect((await a.listVolumes()).find((l) => l.blockdeviceId === v.blockdeviceId)).toEqual(v);
    });

    snapshotTest(
      'openSnapshot (where present) reads the data as it was at the snapshot, never shows its volume in listVolumes, release() removes it, and an open after a crash (no release) adopts or cleans up what it left',
      async () => {
        if (a.openSnapshot === undefined) return;
        const { v, s, device: attached } = await snapshotWithData(2 * c.unit, 'read by a backup');
        const device = await sourceDevice(v, attached);
        if (device !== undefined) await writePattern(device, 'written afterwards');
        await ready(s.snapshotId);
        const temporaries = async (): Promise<string[]> => (c.temporaryVolumes ? c.temporaryVolumes(a) : []);
        const known = new Set([...(await a.listVolumes()), ...(await b.listVolumes())].map((l) => l.blockdeviceId));
        expect(await temporaries()).toEqual([]);
        const noNewVolumes = async (): Promise<void> => {
          for (const d of [a, b]) {
            const fresh = (await d.listVolumes()).filter((l) => !known.has(l.blockdeviceId));
            expect(fresh).toEqual([]);
          }
        };

        const first = await a.openSnapshot(s.snapshotId);
        expect(first.size).toBe(v.size);
        await expectPattern(first.path, 'read by a backup');
        await noNewVolumes();
        // A crash: first is never released. The next open of the same snapshot adopts its volume (or removes it).
        const second = await a.openSnapshot(s.snapshotId);
        await expectPattern(second.path, 'read by a backup');
        await noNewVolumes();
        expect((await temporaries()).length).toBeLessThanOrEqual(1);
        await second.release();
        expect(await temporaries()).toEqual([]);
        // The crashed holder's release, late: harmless.
        await first.release();
        await noNewVolumes();
        expect(await temporaries()).toEqual([]);
        if (device !== undefined) await expectPattern(device, 'written afterwards');
        await expectStorageError(a.openSnapshot(randomUUID()), 'UNKNOWN_SNAPSHOT');
      },
      true,
    );

    snapshotTest(
      'answers UNKNOWN_SNAPSHOT for an unknown snapshot and UNKNOWN_VOLUME for an unknown source',
      async () => {
        await expectStorageError(a.createVolumeFromSnapshot(randomUUID(), randomUUID(), c.unit), 'UNKNOWN_SNAPSHOT');
        await expectStorageError(
          a.createVolumeFromSnapshot('../../etc/passwd', randomUUID(), c.unit),
          'UNKNOWN_SNAPSHOT',
        );
        await a.destroySnapshot(randomUUID());
        const snapshotId = randomUUID();
        await expectStorageError(a.createSnapshot(randomUUID(), snapshotId), 'UNKNOWN_VOLUME');
        expect(await listed(a, snapshotId)).toEqual([]);
      },
    );
  });
}

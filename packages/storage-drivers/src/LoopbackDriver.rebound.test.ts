/**
 * A loop device number freed and bound by another process between the driver's look at the kernel and its detach
 * (s24 FAIL-C, as 705fa28 for detachidle): every detach by number gives the helper what the look saw the device
 * serving, and the helper checks it while holding the device, so another process's device is never detached. The
 * re-bind is staged with real loop devices: the driver is handed the look from before (the device serving a pool
 * file) while the number now serves another file.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { execFileExec } from './exec';
import { fencedImageName } from './fencing';
import { detachLoop, loopBindingOf, LoopIoctls, type LoopBinding } from './losetup';
import { closeLoopbackDrivers, LoopbackDriver } from './testing/closingLoopbackDriver';
import { destroyTempRoot, makeTempRoot } from './testing/testSupport';

// Ends each driver's helper processes (see closingLoopbackDriver.ts).
afterEach(closeLoopbackDrivers);

jest.setTimeout(60_000);

const MiB = 1024 * 1024;
const roots: string[] = [];

afterAll(async () => {
  for (const root of roots) await destroyTempRoot(root);
});

async function sparseFile(file: string): Promise<string> {
  await fs.writeFile(file, '');
  await fs.truncate(file, 8 * MiB);
  return file;
}

/** Another process's loop device: bound to a file of its own, outside the pool. Detached by `release`. */
async function theirDevice(root: string): Promise<{ device: string; theirs: string; release: () => Promise<void> }> {
  const theirs = await sparseFile(path.join(root, 'theirs.img'));
  const device = (await new LoopIoctls().attach(theirs))!;
  return {
    device,
    theirs,
    release: async () => {
      if (loopBindingOf(device)?.backingFile === theirs) await detachLoop(execFileExec, device);
    },
  };
}

/** The driver's looks at the kernel answer `look` (what it saw before the number was freed and bound again). */
function withLook(driver: LoopbackDriver, look: LoopBinding[]): LoopbackDriver {
  Object.defineProperty(driver, 'poolBindings', { value: () => Promise.resolve(look), configurable: true });
  return driver;
}

/** A driver with one volume in a fresh root, and another process's loop device (see `theirDevice`). */
async function volumeBesideTheirDevice() {
  const root = await makeTempRoot('flocker-rebound-test-');
  roots.push(root);
  const a = new LoopbackDriver({ rootPath: root, instanceId: 'instance-a' });
  const v = await a.createVolume('ds', 8 * MiB);
  return { root, a, v, ...(await theirDevice(root)) };
}

describe('a loop device number freed and bound again by another process after the look', () => {
  it('releaseFenced leaves it alone (a fenced device goes by itself when its last user does, and the number is free)', async () => {
    const { root, a, v, device, theirs, release } = await volumeBesideTheirDevice();
    try {
      const fenced = path.join(root, 'volumes', fencedImageName(v.blockdeviceId, 1, new Date(), '0badf00d'));
      withLook(a, [{ device, backingFile: fenced, deleted: false }]);
      expect((await a.releaseFenced()).devices).toEqual([]);
      expect(loopBindingOf(device)).toEqual({ device, backingFile: theirs, deleted: false });
      // The look of a replaced image (" (deleted)"): the same.
      withLook(a, [{ device, backingFile: path.join(root, 'volumes', `${v.blockdeviceId}.img`), deleted: true }]);
      expect((await a.releaseFenced()).devices).toEqual([]);
      expect(loopBindingOf(device)).toEqual({ device, backingFile: theirs, deleted: false });
    } finally {
      await release();
    }
  });

  it('repair leaves it alone (a stale device of a detached volume, as the look saw it)', async () => {
    const { root, a, v, device, theirs, release } = await volumeBesideTheirDevice();
    try {
      withLook(a, [{ device, backingFile: path.join(root, 'volumes', `${v.blockdeviceId}.img`), deleted: false }]);
      const report = await a.repair();
      expect({ detachedStale: report.detachedStale, releasedDevices: report.releasedDevices }).toEqual({
        detachedStale: [],
        releasedDevices: [],
      });
      expect(loopBindingOf(device)).toEqual({ device, backingFile: theirs, deleted: false });
    } finally {
      await release();
    }
  });
});

describe('LoopIoctls.detach given what the device served', () => {
  it('detaches only a device serving that file: by device and inode (any path to it), or by the name the kernel prints of a deleted one', async () => {
    const root = await makeTempRoot('flocker-rebound-test-');
    roots.push(root);
    const ioctls = new LoopIoctls();
    const mine = await sparseFile(path.join(root, 'mine.img'));
    const { device, theirs, release } = await theirDevice(root);
    try {
      expect(await ioctls.detach(device, undefined, { file: mine })).toBe('gone');
      expect(await ioctls.detach(device, undefined, { file: mine, deleted: true })).toBe('gone');
      // Its own file, named as deleted while it is not: another binding than the one looked at.
      expect(await ioctls.detach(device, undefined, { file: theirs, deleted: true })).toBe('gone');
      expect(loopBindingOf(device)).toEqual({ device, backingFile: theirs, deleted: false });
      const link = path.join(root, 'link.img');
      await fs.symlink(theirs, link);
      expect(await ioctls.detach(device, undefined, { file: link })).toBe('detached');
      expect(loopBindingOf(device)).toBeNull();
      // Unbound now: nothing to detach, whatever was seen.
      expect(await ioctls.detach(device, undefined, { file: theirs })).toBe('gone');
    } finally {
      await release();
    }
    // A deleted file: what sysfs prints for it, compared while the device is held.
    const doomed = await sparseFile(path.join(root, 'doomed.img'));
    const d2 = (await ioctls.attach(doomed))!;
    try {
      await fs.rm(doomed);
      // A new file at the same path is not the one the device serves.
      await sparseFile(doomed);
      expect(await ioctls.detach(d2, undefined, { file: doomed })).toBe('gone');
      expect(await detachLoop(execFileExec, d2, undefined, { ioctls, serving: { file: doomed, deleted: true } })).toBe(
        'detached',
      );
      expect(loopBindingOf(d2)).toBeNull();
    } finally {
      if (loopBindingOf(d2) !== null) await detachLoop(execFileExec, d2);
    }
    // Without what it served: LOOP_CLR_FD as before (the bench's and losetup -d's way).
    const d3 = (await ioctls.attach(mine))!;
    expect(await ioctls.detach(d3)).toBe('detached');
    expect(loopBindingOf(d3)).toBeNull();
  });
});

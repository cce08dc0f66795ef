/**
 * An attach's record temp is made once the pool lock's request is out, while another holder still has the lock
 * (issue 23, session 16: PoolLock's whileWaiting), and used only if the record under the lock is still the text it
 * was made from: a record that changed while the attach waited (another host took the volume) is never overwritten
 * by it, and no temp is left behind either way. Real loop devices (root).
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { isStorageError } from './BlockDeviceApi';
import { closeLoopbackDrivers, LoopbackDriver } from './testing/closingLoopbackDriver';
import { PoolLock } from './PoolLock';
import { destroyTempRoot, makeTempRoot } from './testing/testSupport';

// Ends each driver's helper processes (see closingLoopbackDriver.ts).
afterEach(closeLoopbackDrivers);

jest.setTimeout(60_000);
const MiB = 1024 * 1024;
let root: string;

beforeEach(async () => {
  root = await makeTempRoot('flocker-early-record-');
});
afterEach(async () => {
  await destroyTempRoot(root);
});

async function temps(): Promise<string[]> {
  return (await fs.readdir(path.join(root, 'volumes'))).filter((n) => n.includes('.tmp-'));
}

/** Holds the pool lock as another host would, until the returned function is called. */
async function holdLock(): Promise<() => Promise<void>> {
  const lock = new PoolLock(path.join(root, 'pool.lock'));
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  let taken!: () => void;
  const isTaken = new Promise<void>((r) => (taken = r));
  const done = lock.withLock(async () => {
    taken();
    await held;
  });
  await isTaken;
  return async () => {
    release();
    await done;
  };
}

async function waitFor(check: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error('timed out');
}

describe('LoopbackDriver: the record temp made while the pool lock is awaited', () => {
  it('is made while another holds the lock, and renamed in once the attach has the lock', async () => {
    const a = new LoopbackDriver({ rootPath: root, instanceId: 'host-a' });
    const volume = await a.createVolume('d0000000-0000-4000-8000-000000000001', 64 * MiB);
    const release = await holdLock();
    const attaching = a.attachVolume(volume.blockdeviceId, 'host-a');
    await waitFor(async () => (await temps()).length === 1); // made while the lock is held elsewhere
    await release();
    expect((await attaching).attachedTo).toBe('host-a');
    expect(await temps()).toEqual([]);
    await a.detachVolume(volume.blockdeviceId);
  });

  it('is not used when the record changed while the attach waited: the attach is refused, the record kept', async () => {
    const a = new LoopbackDriver({ rootPath: root, instanceId: 'host-a' });
    const b = new LoopbackDriver({ rootPath: root, instanceId: 'host-b' });
    const volume = await a.createVolume('d0000000-0000-4000-8000-000000000002', 64 * MiB);
    const recordFile = path.join(root, 'volumes', `${volume.blockdeviceId}.json`);
    const release = await holdLock();
    const attaching = a.attachVolume(volume.blockdeviceId, 'host-a').then(
      () => 'attached',
      (e: unknown) => (isStorageError(e, 'ALREADY_ATTACHED') ? 'refused' : String(e)),
    );
    await waitFor(async () => (await temps()).length === 1);
    // Another host takes the volume meanwhile (its record as its own attach would write it, under its lock).
    const taken = JSON.parse(await fs.readFile(recordFile, 'utf8')) as Record<string, unknown>;
    await fs.writeFile(recordFile, JSON.stringify({ ...taken, attached_to: 'host-b' }));
    await release();
    expect(await attaching).toBe('refused');
    expect((JSON.parse(await fs.readFile(recordFile, 'utf8')) as { attached_to: string }).attached_to).toBe('host-b');
    expect(await temps()).toEqual([]);
    expect((await b.listVolumes()).map((v) => v.attachedTo)).toEqual(['host-b']);
  });
});

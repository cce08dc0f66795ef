/**
 * Loopback snapshots (issue 20) with real files and loop devices: the contract on an xfs pool
 * with reflink (the default pool, ext4 here, runs it in LoopbackDriver.test.ts), sparse copies,
 * a kill -9 in the middle of a copy, and snapshots staying out of the volume pool's business.
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import winston from 'winston';
import { makeFilesystem, mount, unmount } from './blockdev';
import { execFileExec } from './exec';
import { closeLoopbackDrivers, LoopbackDriver } from './testing/closingLoopbackDriver';
import { blockDeviceApiContract } from './testing/contract';
import { destroyTempRoot, makeTempRoot } from './testing/testSupport';

// Ends each driver's helper processes (see closingLoopbackDriver.ts).
afterEach(closeLoopbackDrivers);

jest.setTimeout(120_000);

const MiB = 1024 * 1024;
const cleanups: Array<() => Promise<void>> = [];

afterAll(async () => {
  // Every cleanup runs, even after one failed.
  const failures: unknown[] = [];
  for (const cleanup of cleanups.reverse()) await cleanup().catch((e: unknown) => failures.push(e));
  if (failures.length > 0) throw new AggregateError(failures, 'cleanup failed');
});

async function sh(cmd: string, args: string[]): Promise<string> {
  const r = await execFileExec(cmd, args);
  if (r.exitCode !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/** A pool directory on the test's own file system (ext4 here: no reflink). */
async function plainRoot(): Promise<string> {
  const root = await makeTempRoot('flocker-snap-test-');
  cleanups.push(() => destroyTempRoot(root));
  return root;
}

/** A pool directory on a fresh xfs with reflink=1, on a loop-mounted image. */
async function xfsRoot(): Promise<string> {
  const base = await makeTempRoot('flocker-snap-xfs-');
  const image = path.join(base, 'xfs.img');
  const mnt = path.join(base, 'mnt');
  await fs.mkdir(mnt);
  await sh('truncate', ['-s', '2G', image]);
  await sh('mkfs.xfs', ['-q', '-m', 'reflink=1', image]);
  await sh('mount', ['-o', 'loop', image, mnt]);
  const root = path.join(mnt, 'pool');
  cleanups.push(async () => {
    await destroyTempRoot(root);
    // Lazy: the drivers' lock helpers may still hold pool.lock open.
    await sh('umount', ['-l', mnt]);
    await fs.rm(base, { recursive: true, force: true });
  });
  return root;
}

/** Log entries, to see which copy method was used (kept by a format that then drops them). */
function recordingLogger(): { logger: winston.Logger; entries: Array<Record<string, unknown>> } {
  const entries: Array<Record<string, unknown>> = [];
  const keep = winston.format((info) => {
    entries.push({ ...info });
    return false;
  });
  return { logger: winston.createLogger({ format: keep(), transports: [new winston.transports.Console()] }), entries };
}

/** Bytes the file really occupies on disk. */
async function allocated(file: string): Promise<number> {
  return (await fs.stat(file)).blocks * 512;
}

async function writeAt(file: string, offset: number, data: Buffer): Promise<void> {
  const handle = await fs.open(file, 'r+');
  try {
    await handle.write(data, 0, data.length, offset);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

blockDeviceApiContract('LoopbackDriver on xfs with reflink', async () => {
  const root = await xfsRoot();
  return {
    driver: new LoopbackDriver({ rootPath: root, instanceId: 'instance-a' }),
    driverOnOtherInstance: new LoopbackDriver({ rootPath: root, instanceId: 'instance-b' }),
    cleanup: async () => undefined,
  };
});

describe('LoopbackDriver snapshots', () => {
  it.each([
    ['ext4 (sparse copy)', plainRoot, 'sparse-copy'],
    ['xfs reflink=1 (reflink)', xfsRoot, 'reflink'],
  ] as const)(
    'on %s: the snapshot and its clone are sparse, and the log says how they were copied',
    async (_name, makeRoot, method) => {
      const root = await makeRoot();
      const { logger, entries } = recordingLogger();
      const a = new LoopbackDriver({ rootPath: root, instanceId: 'instance-a', logger });
      const v = await a.createVolume(randomUUID(), 64 * MiB);
      const image = path.join(root, 'volumes', `${v.blockdeviceId}.img`);
      await writeAt(image, 10 * MiB, Buffer.alloc(MiB, 0xab));
      const s = await a.createSnapshot(v.blockdeviceId, randomUUID());
      const snapImage = path.join(root, 'snapshots', `${s.snapshotId}.img`);
      expect((await fs.stat(snapImage)).size).toBe(64 * MiB);
      // One MiB of data (and at most a little file system slack), not 64.
      expect(await allocated(snapImage)).toBeLessThanOrEqual(MiB + 64 * 1024);
      expect((await fs.stat(snapImage)).mode & 0o777).toBe(0o400);
      expect(entries.find((e) => e.message === 'snapshot taken')).toMatchObject({ copy: method });
      const clone = await a.createVolumeFromSnapshot(s.snapshotId, randomUUID(), 128 * MiB);
      const cloneImage = path.join(root, 'volumes', `${clone.blockdeviceId}.img`);
      expect((await fs.stat(cloneImage)).size).toBe(128 * MiB);
      expect((await fs.stat(cloneImage)).mode & 0o777).toBe(0o600);
      expect(await allocated(cloneImage)).toBeLessThanOrEqual(MiB + 64 * 1024);
      expect(entries.find((e) => e.message === 'volume created from snapshot')).toMatchObject({ copy: method });
      const data = await fs.readFile(cloneImage);
      expect(data.subarray(10 * MiB, 11 * MiB).equals(Buffer.alloc(MiB, 0xab))).toBe(true);
      expect(data.subarray(11 * MiB).equals(Buffer.alloc(117 * MiB))).toBe(true);
    },
  );

  it('openSnapshot (issue 20: backups read it) answers the read-only image and its size; UNKNOWN_SNAPSHOT otherwise', async () => {
    const root = await plainRoot();
    const a = new LoopbackDriver({
      rootPath: root,
      instanceId: 'instance-a',
      logger: winston.createLogger({ silent: true }),
    });
    const v = await a.createVolume(randomUUID(), 64 * MiB);
    await writeAt(path.join(root, 'volumes', `${v.blockdeviceId}.img`), 3 * MiB, Buffer.alloc(4096, 0x5a));
    const s = await a.createSnapshot(v.blockdeviceId, randomUUID());
    const opened = await a.openSnapshot(s.snapshotId);
    expect(opened).toMatchObject({ path: path.join(root, 'snapshots', `${s.snapshotId}.img`), size: 64 * MiB });
    const handle = await fs.open(opened.path, 'r');
    const page = Buffer.alloc(4096);
    await handle.read(page, 0, 4096, 3 * MiB);
    await handle.close();
    expect(page.equals(Buffer.alloc(4096, 0x5a))).toBe(true);
    await opened.release();
    await expect(a.openSnapshot(randomUUID())).rejects.toMatchObject({ code: 'UNKNOWN_SNAPSHOT' });
  });

  it('a frozen, mounted ext4 is snapshotted whole; the clone mounts without mkfs and holds the synced file', async () => {
    const root = await plainRoot();
    const a = new LoopbackDriver({ rootPath: root, instanceId: 'instance-a' });
    const b = new LoopbackDriver({ rootPath: root, instanceId: 'instance-b' });
    const v = await a.createVolume(randomUUID(), 64 * MiB);
    await a.attachVolume(v.blockdeviceId, 'instance-a');
    const device = await a.getDevicePath(v.blockdeviceId);
    await makeFilesystem(device, { type: 'ext4' });
    const mnt = path.join(root, 'mnt-a');
    const mntClone = path.join(root, 'mnt-b');
    await fs.mkdir(mnt);
    await fs.mkdir(mntClone);
    await mount(device, mnt, { fstype: 'ext4' });
    try {
      await fs.writeFile(path.join(mnt, 'file'), 'in the snapshot\n');
      await sh('fsfreeze', ['-f', mnt]);
      let s;
      try {
        s = await a.createSnapshot(v.blockdeviceId, randomUUID());
      } finally {
        await sh('fsfreeze', ['-u', mnt]);
      }
      await fs.writeFile(path.join(mnt, 'file'), 'written after\n');
      const clone = await b.createVolumeFromSnapshot(s.snapshotId, randomUUID(), 128 * MiB);
      await b.attachVolume(clone.blockdeviceId, 'instance-b');
      const cloneDevice = await b.getDevicePath(clone.blockdeviceId);
      await sh('e2fsck', ['-fn', cloneDevice]);
      await mount(cloneDevice, mntClone, { fstype: 'ext4' });
      try {
        expect(await fs.readFile(path.join(mntClone, 'file'), 'utf8')).toBe('in the snapshot\n');
      } finally {
        await unmount(mntClone);
      }
    } finally {
      await unmount(mnt);
    }
  });

  it('kill -9 in the middle of the copy: nothing is listed; the same snapshot is taken again, and the leftovers go', async () => {
    const root = await plainRoot();
    const a = new LoopbackDriver({ rootPath: root, instanceId: 'instance-a' });
    const v = await a.createVolume(randomUUID(), 32 * MiB);
    await writeAt(path.join(root, 'volumes', `${v.blockdeviceId}.img`), 0, Buffer.from('data'));
    const snapshotId = randomUUID();
    // The child's cp copies, then never returns: killed before the rename and the record.
    const script = `
      const { execFileExec, LoopbackDriver } = require(${JSON.stringify(path.join(__dirname, 'index.js'))});
      const exec = async (file, args) => {
        if (file !== 'cp') return execFileExec(file, args);
        const r = await execFileExec(file, args);
        process.stdout.write('copied\\n');
        return new Promise(() => setInterval(() => r, 1000));
      };
      new LoopbackDriver({ rootPath: ${JSON.stringify(root)}, instanceId: 'instance-a', exec })
        .createSnapshot(${JSON.stringify(v.blockdeviceId)}, ${JSON.stringify(snapshotId)});
    `;
    const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      await new Promise<void>((resolve, reject) => {
        child.stdout.on('data', (d: Buffer) => d.toString().includes('copied') && resolve());
        child.once('exit', (code) => reject(new Error(`the child exited early with ${code}`)));
      });
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL');
      await exited;
    } finally {
      child.kill('SIGKILL');
    }
    const left = await fs.readdir(path.join(root, 'snapshots'));
    expect(left.filter((n) => n.includes('.tmp-'))).toHaveLength(1);
    expect(await a.listSnapshots()).toEqual([]);
    const s = await a.createSnapshot(v.blockdeviceId, snapshotId);
    expect(s).toMatchObject({ snapshotId, status: 'ready', size: 32 * MiB });
    expect((await fs.readdir(path.join(root, 'snapshots'))).sort()).toEqual(
      [`${snapshotId}.img`, `${snapshotId}.json`].sort(),
    );
    // An image whose record a crash never wrote (or a destroy removed) is swept too.
    const orphan = randomUUID();
    await fs.writeFile(path.join(root, 'snapshots', `${orphan}.img`), 'x');
    await a.destroySnapshot(randomUUID());
    expect(await fs.readdir(path.join(root, 'snapshots'))).not.toContain(`${orphan}.img`);
  });

  it('stays out of the volume pool: listing, repair and fencing see only volumes', async () => {
    const root = await plainRoot();
    const a = new LoopbackDriver({ rootPath: root, instanceId: 'instance-a' });
    const b = new LoopbackDriver({ rootPath: root, instanceId: 'instance-b' });
    const v = await a.createVolume(randomUUID(), 8 * MiB);
    await a.attachVolume(v.blockdeviceId, 'instance-a');
    const s = await a.createSnapshot(v.blockdeviceId, randomUUID());
    expect(await fs.readdir(path.join(root, 'volumes'))).toEqual(
      expect.not.arrayContaining([expect.stringContaining(s.snapshotId)]),
    );
    const pool = await a.listPool();
    expect(pool.problems).toEqual([]);
    expect(pool.volumes.map((l) => l.blockdeviceId)).toEqual([v.blockdeviceId]);
    // A force detach (the fence of an unused device is a plain detach) and repair leave the snapshot alone.
    await b.detachVolume(v.blockdeviceId, { force: true });
    const report = await a.repair();
    expect(report).toMatchObject({ removedOrphanImages: [], removedFencedImages: [], detachedStale: [] });
    expect(await a.listSnapshots()).toEqual([s]);
    // A corrupt snapshot record is left out of the listing (and logged), never fails it.
    await fs.writeFile(path.join(root, 'snapshots', `${randomUUID()}.json`), '{"torn');
    expect(await b.listSnapshots()).toEqual([s]);
  });
});

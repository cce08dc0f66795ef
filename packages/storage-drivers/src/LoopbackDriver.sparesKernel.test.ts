/**
 * What e3f3deb's spare claim and make rely on from the kernel (session 13 review):
 * - the claim finds a spare's device by the sized scan (/proc/partitions): it must find a device numbered past 999,
 *   or the claim neither flushes it nor sees what an opener wrote through it;
 * - the make sets the sentinel mtime while mkfs's blocks may still be dirty and fsyncs once: writeback must not move
 *   the mtime, or a spare would fail its never-written check (and a later write must still move it).
 */
import { randomUUID } from 'node:crypto';
import { closeSync, existsSync, fsyncSync, openSync, promises as fs, utimesSync, writeSync } from 'node:fs';
import * as path from 'node:path';
import { execFileExec } from './exec';
import { closeLoopbackDrivers, LoopbackDriver } from './testing/closingLoopbackDriver';
import { SPARE_MTIME } from './loopbackSpares';
import { listLoopBindings, listSizedLoopBindings } from './losetup';
import { destroyTempRoot, loopsUnder, makeTempRoot } from './testing/testSupport';

// Ends each driver's helper processes (see closingLoopbackDriver.ts).
afterEach(closeLoopbackDrivers);

jest.setTimeout(60_000);

const MiB = 1024 * 1024;
const roots: string[] = [];

afterAll(async () => {
  for (const root of roots) await destroyTempRoot(root);
});

async function sh(cmd: string, args: string[]): Promise<string> {
  const r = await execFileExec(cmd, args);
  if (r.exitCode !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/** A loop device number past 999 that does not exist yet (losetup creates it through /dev/loop-control). */
function freeHighLoop(): number {
  for (let n = 1000 + Math.floor(Math.random() * 8000); ; n++) if (!existsSync(`/sys/block/loop${n}`)) return n;
}

/** Removes a loop device again once unbound (LOOP_CTL_REMOVE), so the test leaves none behind. */
async function removeLoop(n: number): Promise<void> {
  for (let i = 0; i < 50 && existsSync(`/sys/block/loop${n}/loop`); i++) await new Promise((r) => setTimeout(r, 20));
  await sh('python3', [
    '-c',
    `import os,fcntl\nfd=os.open('/dev/loop-control',os.O_RDWR)\nfcntl.ioctl(fd,0x4C81,${n})`,
  ]).catch(() => undefined);
  await fs.rm(`/dev/loop${n}`, { force: true });
}

/**
 * A spare whose device the sized scan cannot see: its image cut below a sector, the device's capacity read again (zero),
 * the image grown back.
 */
async function spareUnseenBySizedScan(): Promise<{
  root: string;
  a: LoopbackDriver;
  spare: { id: string };
  bound: { device: string };
}> {
  const root = await makeTempRoot('flocker-spares-kernel-');
  roots.push(root);
  const a = new LoopbackDriver({ rootPath: root, instanceId: 'instance-a' });
  const spare = await a.makeSpare(16 * MiB);
  const image = path.join(root, 'spares', `${spare.id}.img`);
  const [bound] = await loopsUnder(root);
  await fs.truncate(image, 100);
  await sh('losetup', ['-c', bound.device]);
  await fs.truncate(image, 16 * MiB);
  expect((await listSizedLoopBindings())?.map((b) => b.device)).not.toContain(bound.device);
  return { root, a, spare, bound };
}

describe('LoopbackDriver spares: what the claim and the make rely on from the kernel', () => {
  it('the sized scan finds a spare bound to a loop device past loop999, and the claim flushes it: a raw write an opener still holds is seen, the spare not handed out', async () => {
    const root = await makeTempRoot('flocker-spares-kernel-');
    roots.push(root);
    const a = new LoopbackDriver({ rootPath: root, instanceId: 'instance-a' });
    const spare = await a.makeSpare(32 * MiB);
    const image = path.join(root, 'spares', `${spare.id}.img`);
    for (const l of await loopsUnder(root)) await sh('losetup', ['-d', l.device]);
    const n = freeHighLoop();
    const device = `/dev/loop${n}`;
    try {
      await sh('losetup', [device, image]);
      expect((await listSizedLoopBindings())?.map((b) => b.device)).toContain(device);
      const h = await fs.open(device, 'r+');
      try {
        // Only in the device's page cache: the image and its mtime do not show it yet.
        await h.write(Buffer.from('payload'), 0, 7, 16 * MiB);
        expect((await fs.stat(image)).mtimeMs).toBe(SPARE_MTIME * 1000);
        expect(await a.claimSpare(randomUUID(), 32 * MiB, { attach: true })).toBeUndefined();
      } finally {
        await h.close();
      }
      expect(await a.listVolumes()).toEqual([]);
      expect(await a.listSpares()).toEqual([]);
    } finally {
      await execFileExec('losetup', ['-d', device]);
      await removeLoop(n);
    }
  });

  // A device of capacity zero was bound (or its capacity read again) while the image was shorter than a sector: the
  // superblock at 1024 was gone then, so such a spare fails its check whatever the device did.
  it('a spare whose device the sized scan cannot see (image cut below a sector, capacity read again: zero, image grown back) fails its check and is destroyed; the tidy detaches the device', async () => {
    const { root, a, bound } = await spareUnseenBySizedScan();
    expect((await listLoopBindings())?.map((b) => b.device)).toContain(bound.device);
    expect(await a.claimSpare(randomUUID(), 16 * MiB, { attach: true })).toBeUndefined();
    expect(await a.listVolumes()).toEqual([]);
    expect(await a.listSpares()).toEqual([]);
    await a.tidySpares();
    expect(await loopsUnder(root)).toEqual([]);
  });

  // bindSpares' first look is the sized scan (issue 23: no walk of every /sys/block/loopN before each refill); the
  // look under the lock, of every device, decides: a spare whose only device that scan cannot see gets no second one.
  it('bindSpares binds no second device to a spare whose device the sized scan cannot see', async () => {
    const { root, a, spare, bound } = await spareUnseenBySizedScan();
    expect(await a.bindSpares()).toEqual([]);
    expect((await loopsUnder(root)).map((l) => l.device)).toEqual([bound.device]);
    // A spare without any device still gets one.
    await sh('losetup', ['-d', bound.device]);
    expect(await a.bindSpares()).toEqual([spare.id]);
    expect(await loopsUnder(root)).toHaveLength(1);
    await a.destroySpare(spare.id);
    expect(await loopsUnder(root)).toEqual([]);
  });

  it('writeback after the sentinel mtime leaves it (the make’s one fsync); a write after it moves it', async () => {
    const root = await makeTempRoot('flocker-spares-kernel-');
    roots.push(root);
    const file = path.join(root, 'image');
    const fd = openSync(file, 'wx');
    try {
      // As mkfs does on a file: buffered writes over the image, and a discard (a punched hole), all left dirty.
      const block = Buffer.alloc(MiB, 0x5a);
      for (let i = 0; i < 32; i++) writeSync(fd, block, 0, MiB, i * MiB);
      await sh('fallocate', ['--punch-hole', '--offset', String(4 * MiB), '--length', String(4 * MiB), file]);
      utimesSync(file, SPARE_MTIME, SPARE_MTIME);
      // Writeback of those dirty pages now (the make's fsync, and any flusher-thread writeback).
      await sh('sync', ['-f', file]);
      fsyncSync(fd);
      expect((await fs.stat(file)).mtimeMs).toBe(SPARE_MTIME * 1000);
      writeSync(fd, Buffer.from('x'), 0, 1, 20 * MiB);
      expect((await fs.stat(file)).mtimeMs).not.toBe(SPARE_MTIME * 1000);
    } finally {
      closeSync(fd);
    }
  });
});

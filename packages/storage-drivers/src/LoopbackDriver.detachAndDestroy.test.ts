/**
 * detachAndDestroyVolume (issue 23): a delete's detach and destroy in one lock hold with one device scan; a busy
 * device refused with nothing changed; agents killed anywhere in it converge on restart.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { makeFilesystem, mount, unmount } from './blockdev';
import * as losetup from './losetup';
import { closeLoopbackDrivers, LoopbackDriver } from './testing/closingLoopbackDriver';
import { PoolLock } from './PoolLock';
import { expectStorageError } from './testing/contract';
import { destroyTempRoot, loopsUnder, makeTempRoot } from './testing/testSupport';

// Ends each driver's helper processes (see closingLoopbackDriver.ts).
afterEach(closeLoopbackDrivers);

jest.setTimeout(60_000);

const MiB = 1024 * 1024;
const roots: string[] = [];

async function pool(): Promise<{ root: string; a: LoopbackDriver }> {
  const root = await makeTempRoot('flocker-loopback-dd-test-');
  roots.push(root);
  return { root, a: new LoopbackDriver({ rootPath: root, instanceId: 'instance-a' }) };
}

afterEach(() => jest.restoreAllMocks());

afterAll(async () => {
  for (const root of roots) await destroyTempRoot(root);
});

describe('LoopbackDriver.detachAndDestroyVolume', () => {
  it('takes one lock hold and one device scan where detachVolume then destroyVolume take two of each', async () => {
    const { root, a } = await pool();
    const [one, two] = [await a.createVolume('ds-1', 8 * MiB), await a.createVolume('ds-2', 8 * MiB)];
    for (const v of [one, two]) await a.attachVolume(v.blockdeviceId, 'instance-a');
    const scans = jest.spyOn(losetup, 'listSizedLoopBindings');
    const holds = jest.spyOn(PoolLock.prototype, 'withLock');
    const counted = async (fn: () => Promise<void>): Promise<[number, number]> => {
      const [s0, h0] = [scans.mock.calls.length, holds.mock.calls.length];
      await fn();
      return [scans.mock.calls.length - s0, holds.mock.calls.length - h0];
    };
    expect(
      await counted(async () => {
        await a.detachVolume(one.blockdeviceId);
        await a.destroyVolume(one.blockdeviceId);
      }),
    ).toEqual([2, 2]);
    expect(await counted(() => a.detachAndDestroyVolume(two.blockdeviceId))).toEqual([1, 1]);
    expect(await a.listVolumes()).toEqual([]);
    expect(await loopsUnder(root)).toEqual([]);
    expect(await fs.readdir(path.join(root, 'volumes'))).toEqual([]);
  });

  it('refuses a device still mounted with DEVICE_BUSY and changes nothing; once unmounted it goes', async () => {
    const { root, a } = await pool();
    const v = await a.createVolume('ds', 16 * MiB);
    await a.attachVolume(v.blockdeviceId, 'instance-a');
    const device = await a.getDevicePath(v.blockdeviceId);
    await makeFilesystem(device, { type: 'ext4' });
    const mnt = path.join(root, 'mnt');
    await fs.mkdir(mnt);
    await mount(device, mnt, { fstype: 'ext4' });
    try {
      await expectStorageError(a.detachAndDestroyVolume(v.blockdeviceId), 'DEVICE_BUSY');
      expect((await a.listVolumes()).map((x) => x.attachedTo)).toEqual(['instance-a']);
      expect(await a.getDevicePath(v.blockdeviceId)).toBe(device);
      expect((await loopsUnder(root)).map((l) => l.device)).toEqual([device]);
    } finally {
      await unmount(mnt);
    }
    await a.detachAndDestroyVolume(v.blockdeviceId);
    expect(await a.listVolumes()).toEqual([]);
    expect(await loopsUnder(root)).toEqual([]);
  });

  // Each kill costs a Node start (~0.3 s quiet, 1.5-3 s at load 10-20): 10 kills, the test's own bound.
  it('converges after agents creating, attaching and detach-destroying are killed with SIGKILL at any point (10 kills)', async () => {
    const { root, a: first } = await pool();
    await first.listVolumes(); // the pool's directories
    const volumes = path.join(root, 'volumes');
    // As the agent of instance-a would: a volume made, attached, then its delete's one operation, until killed.
    const script = `
      const { LoopbackDriver } = require(${JSON.stringify(path.join(__dirname, 'LoopbackDriver.js'))});
      const d = new LoopbackDriver({ rootPath: ${JSON.stringify(root)}, instanceId: 'instance-a' });
      process.stdin.once('data', async () => {
        try {
          for (let i = 0; ; i++) {
            const v = await d.createVolume('ds-' + i, 8 * 1024 * 1024);
            await d.attachVolume(v.blockdeviceId, 'instance-a');
            await d.getDevicePath(v.blockdeviceId);
            if (i === 0) process.stdout.write('cycling');
            await d.detachAndDestroyVolume(v.blockdeviceId);
          }
        } catch (e) { process.stderr.write(String(e)); process.exit(3); }
      });
    `;
    const agent = (): { child: ChildProcess; exited: Promise<number | null>; stderr: () => string } => {
      const child = spawn(process.execPath, ['-e', script], { stdio: ['pipe', 'pipe', 'pipe'] });
      let stderr = '';
      child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
      const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
      return { child, exited, stderr: () => stderr };
    };
    const kills = 10;
    let next = agent();
    try {
      for (let kill = 0; kill < kills; kill++) {
        const { child, exited, stderr } = next;
        const started = Promise.race([
          new Promise<boolean>((resolve) => child.stdout?.once('data', () => resolve(true))),
          exited.then(() => false),
        ]);
        child.stdin?.write('go\n');
        if (!(await started)) throw new Error(`the agent process failed: ${stderr()}`);
        await new Promise((r) => setTimeout(r, Math.random() * 40));
        child.kill('SIGKILL');
        expect(await exited).toBeNull();
        if (kill + 1 < kills) next = agent();
        // Restarted: repair first, then the delete the agent's next look still asks for, of whatever is left.
        const a = new LoopbackDriver({ rootPath: root, instanceId: 'instance-a' });
        await a.repair();
        const { volumes: left, problems } = await a.listPool();
        expect(problems).toEqual([]);
        for (const v of left) {
          expect([null, 'instance-a']).toContain(v.attachedTo);
          await a.detachAndDestroyVolume(v.blockdeviceId);
        }
        expect(await a.listVolumes()).toEqual([]);
        expect(await loopsUnder(root)).toEqual([]);
      }
    } finally {
      if (next.child.exitCode === null && next.child.signalCode === null) next.child.kill('SIGKILL');
    }
    // Besides: images without a record (a killed create or destroy) and record temps, removed by repair() once old.
    const hourAgo = new Date(Date.now() - 3600_000);
    for (const n of await fs.readdir(volumes)) await fs.utimes(path.join(volumes, n), hourAgo, hourAgo);
    await first.repair();
    expect(await fs.readdir(volumes)).toEqual([]);
  }, 300_000);
});

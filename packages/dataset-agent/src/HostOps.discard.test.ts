/**
 * TN F10: a loopback volume's image must give back what its file system frees. The agent mounts loopback volumes
 * with online discard (createAgentDriver's mountDiscard → linuxHostOpsWith), which a loop device turns into holes
 * punched in the image. Real loop devices over a real LoopbackDriver pool; other backends mount as before.
 */
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import winston from 'winston';
import { syscallMountData } from '@flocker/storage-drivers';
import { destroyTempRoot, makeTempRoot } from '@flocker/storage-drivers/testing';
import { createAgentDriver, type AgentDriver } from './drivers';
import { linuxHostOps, linuxHostOpsWith, mountOptions } from './HostOps';

const run = promisify(execFile);
const MiB = 1024 * 1024;
const silent = winston.createLogger({ silent: true });

describe('mountOptions', () => {
  it.each([
    ['ext4', false, []],
    ['xfs', false, ['nouuid']],
    ['ext4', true, ['discard']],
    ['xfs', true, ['nouuid', 'discard']],
    ['vfat', true, []],
  ])('%s with discard %s: %j', (fstype, discard, expected) => {
    expect(mountOptions(fstype, { discard })).toEqual(expected);
  });

  it.each([
    ['ext4', false],
    ['xfs', false],
    ['ext4', true],
    ['xfs', true],
  ])("%s with discard %s mounts through the syshelper's mount(2), not mount(8)", (fstype, discard) => {
    const options = mountOptions(fstype, { discard });
    expect(syscallMountData(options)).toEqual(options);
  });

  it('linuxHostOpsWith({ discard: false }) is linuxHostOps itself', () => {
    expect(linuxHostOpsWith({ discard: false })).toBe(linuxHostOps);
  });
});

/** Bytes the file's blocks take on the pool's file system. */
async function allocated(file: string): Promise<number> {
  return (await fs.stat(file)).blocks * 512;
}

/** Polls until `ok(value)` or the deadline (ext4 and xfs issue online discards from a work queue after a commit). */
async function until(read: () => Promise<number>, ok: (v: number) => boolean, deadlineMs: number): Promise<number> {
  const end = Date.now() + deadlineMs;
  for (;;) {
    const v = await read();
    if (ok(v) || Date.now() > end) return v;
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe('a loopback volume mounted by the agent gives freed blocks back to its image (real loop devices)', () => {
  let root: string;
  let agentDriver: AgentDriver;
  const mounted: string[] = [];
  const volumes: string[] = [];
  beforeAll(async () => {
    root = await makeTempRoot('flocker-discard-');
    agentDriver = await createAgentDriver({ backend: 'loopback', root_path: root, spares: 0 }, randomUUID(), silent);
  });
  afterAll(async () => {
    for (const m of mounted) await linuxHostOps.unmount(m).catch(() => undefined);
    for (const id of volumes) {
      await agentDriver.driver.detachVolume(id).catch(() => undefined);
      await agentDriver.driver.destroyVolume(id).catch(() => undefined);
    }
    await destroyTempRoot(root);
  });

  it('the loopback driver asks for discard at mount', () => {
    expect(agentDriver.mountDiscard).toBe(true);
  });

  it.each(['ext4', 'xfs'] as const)(
    '%s: the image shrinks back once written files are deleted',
    async (filesystem) => {
      const { driver, instanceId } = agentDriver;
      const host = linuxHostOpsWith({ discard: agentDriver.mountDiscard === true });
      const volume = await driver.createVolume(randomUUID(), 512 * MiB);
      volumes.push(volume.blockdeviceId);
      await driver.attachVolume(volume.blockdeviceId, instanceId);
      const device = await driver.getDevicePath(volume.blockdeviceId);
      await host.makeFilesystem(device, filesystem);
      const at = path.join(root, `mnt-${filesystem}`);
      await host.mkdirp(at);
      await host.mount(device, at);
      mounted.push(at);
      const image = (await fs.readdir(root, { recursive: true })).find((f) =>
        f.endsWith(`${volume.blockdeviceId}.img`),
      );
      expect(image).toBeDefined();
      const imagePath = path.join(root, image!);
      await run('sync');
      const empty = await allocated(imagePath);
      const chunk = Buffer.alloc(MiB, 7);
      for (let i = 0; i < 64; i++) await fs.writeFile(path.join(at, `f${i}`), chunk);
      await run('sync');
      expect(await allocated(imagePath)).toBeGreaterThanOrEqual(empty + 60 * MiB);
      for (let i = 0; i < 64; i++) await fs.unlink(path.join(at, `f${i}`));
      await run('sync');
      // Without discard the image keeps all 64 MiB for good; with it, the holes come within a second or so of the
      // commit that frees the blocks (xfs frees an unlinked file's blocks in the background, committed at the next
      // log force: a sync each poll rather than its 30 s log worker).
      const syncThenSize = async (): Promise<number> => {
        await run('sync');
        return allocated(imagePath);
      };
      const after = await until(syncThenSize, (v) => v < empty + 8 * MiB, 60_000);
      expect(after).toBeLessThan(empty + 8 * MiB);
      const options = (await host.listMounts()).find((m) => m.mountPoint === at)?.superOptions ?? '';
      expect(options.split(',')).toContain('discard');
    },
    90_000,
  );
});

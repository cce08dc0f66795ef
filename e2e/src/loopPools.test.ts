/**
 * The e2e teardown helper against the kernel (real loop devices, ext4, fsfreeze): a file system
 * left frozen (an agent killed mid-snapshot) is released with its device, whether its mount is
 * still there or was already lazily unmounted (the leak of session 7: /dev/loop0 bound to a deleted
 * snapshot-schedule image, its ext4 frozen with no mount left). Needs root.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startZombieLeader } from './cluster/zombieLeader';
import {
  describeHolds,
  loopDevicesUnder,
  mountsUnder,
  releaseMountsAndLoops,
  releaseMountsAndLoopsOrThrow,
} from './loopPools';
import { removeTree } from './removeTree';

jest.setTimeout(60_000);

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'flocker-loop-pools-e2e-'));
});
afterEach(() => {
  releaseMountsAndLoops(dir);
  removeTree(dir);
});

/** An ext4 image under dir/pool/volumes, on a loop device, mounted at dir/mnt/<name>. */
function mountedImage(name: string): { device: string; mountPoint: string } {
  const volumes = join(dir, 'pool', 'volumes');
  mkdirSync(volumes, { recursive: true });
  const img = join(volumes, `${name}.img`);
  execFileSync('truncate', ['-s', '32M', img]);
  const device = execFileSync('losetup', ['--find', '--show', img], { encoding: 'utf8' }).trim();
  execFileSync('mkfs.ext4', ['-q', device]);
  const mountPoint = join(dir, 'mnt', name);
  mkdirSync(mountPoint, { recursive: true });
  execFileSync('mount', [device, mountPoint]);
  return { device, mountPoint };
}

describe('releaseMountsAndLoops', () => {
  it('unmounts and detaches a plain and a frozen file system, and a spare bound without a mount', () => {
    mountedImage('plain');
    const frozen = mountedImage('frozen');
    execFileSync('fsfreeze', ['-f', frozen.mountPoint]);
    mkdirSync(join(dir, 'pool', 'spares'));
    execFileSync('truncate', ['-s', '8M', join(dir, 'pool', 'spares', 's.img')]);
    execFileSync('losetup', ['--find', join(dir, 'pool', 'spares', 's.img')]);
    expect(loopDevicesUnder(dir)).toHaveLength(3);

    expect(releaseMountsAndLoops(dir)).toEqual([]);
    expect(loopDevicesUnder(dir)).toEqual([]);
    expect(mountsUnder(dir)).toEqual([]);
  });

  it('releases a frozen file system already lazily unmounted, its image deleted (what `umount -l` + rm left)', () => {
    const frozen = mountedImage('lost');
    execFileSync('fsfreeze', ['-f', frozen.mountPoint]);
    execFileSync('umount', ['-l', frozen.mountPoint]);
    execFileSync('losetup', ['-d', frozen.device]); // deferred: the frozen superblock holds the device
    execFileSync('rm', ['-f', join(dir, 'pool', 'volumes', 'lost.img')]);
    expect(loopDevicesUnder(dir)).toEqual([
      { name: frozen.device, backFile: join(dir, 'pool', 'volumes', 'lost.img'), deleted: true },
    ]);

    expect(() => releaseMountsAndLoopsOrThrow(dir)).not.toThrow();
    expect(loopDevicesUnder(dir)).toEqual([]);
  });

  it('unmounts a copy in another mount namespace, held by a killed process whose last thread lives on (its leader a zombie)', async () => {
    const volumes = join(dir, 'pool', 'volumes');
    mkdirSync(volumes, { recursive: true });
    const img = join(volumes, 'held.img');
    execFileSync('truncate', ['-s', '32M', img]);
    const device = execFileSync('losetup', ['--find', '--show', img], { encoding: 'utf8' }).trim();
    execFileSync('mkfs.ext4', ['-q', device]);
    const mountPoint = join(dir, 'mnt', 'held');
    mkdirSync(mountPoint, { recursive: true });
    // Mounted and frozen only in the process's own namespace (a host's agent mid-snapshot), invisible here.
    const z = await startZombieLeader(`mount ${device} ${mountPoint}\nfsfreeze -f ${mountPoint}`);
    try {
      expect(mountsUnder(dir)).toEqual([]);
      expect(describeHolds(device)).toContain(`mounts=[${mountPoint} in mnt:[`);

      expect(releaseMountsAndLoops(dir)).toEqual([]);
      expect(loopDevicesUnder(dir)).toEqual([]);
    } finally {
      await z.kill();
    }
  });
});

/**
 * Review U6 finding 2: an ext4 volume grown while mounted where the agent may not resize online (no
 * CAP_SYS_RESOURCE) grows offline once nothing uses it: the agent's own mount comes off, e2fsck + resize2fs, and it
 * is mounted again. Before, only a move (the next mount) grew it: the agent keeps its mount while the volume stays.
 */
import { Writable } from 'node:stream';
import { StorageError } from '@flocker/storage-drivers';
import winston from 'winston';
import { executeAction, type ExecutionContext, type OfflineGrow } from './executeAction';
import type { FilesystemFound } from './HostOps';
import { FakeDriver, FakeHost } from './testing/fakes';

const DS = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
const MiB = 1024 * 1024;
const PATH = `/flocker/${DS}`;
const DEV = '/dev/fake/v';

function setup(
  opts: {
    leased?: () => boolean;
    busy?: boolean;
    failUnmount?: boolean;
    failGrow?: boolean;
    notEmpty?: boolean;
    /** The file system the superblock shows (ext4 by default). */
    fstype?: 'xfs' | null;
  } = {},
) {
  const steps: string[] = [];
  const settled: boolean[] = [];
  const logged: string[] = [];
  class Host extends FakeHost {
    override async filesystemSize(): Promise<number | null> {
      return 64 * MiB;
    }
    override async filesystemOf(device: string): Promise<FilesystemFound | null> {
      if (opts.fstype === null) return null;
      const found = await super.filesystemOf(device);
      return found !== null && opts.fstype !== undefined ? { ...found, fstype: opts.fstype } : found;
    }
    override async resizeFilesystem(): Promise<void> {
      steps.push('online');
      throw new StorageError('BACKEND_ERROR', '`resize2fs /dev/x` failed: Permission denied to resize filesystem');
    }
    override async unmount(mountPoint: string): Promise<void> {
      if (opts.failUnmount === true) throw new StorageError('DEVICE_BUSY', 'target is busy');
      steps.push('unmount');
      await super.unmount(mountPoint);
    }
    override async mount(device: string, mountPoint: string): Promise<void> {
      if (!this.dirs.has(mountPoint)) throw new Error(`no directory ${mountPoint}`);
      steps.push('mount');
      await super.mount(device, mountPoint);
    }
    override async growUnmountedFilesystem(): Promise<void> {
      steps.push(`grow mounted=${this.mounts.length}`);
      if (opts.failGrow === true) throw new StorageError('BACKEND_ERROR', 'e2fsck: no luck');
    }
    readonly dirs = new Set([PATH]);
    override async mkdirp(path = ''): Promise<void> {
      if (!this.dirs.has(path)) steps.push('mkdir');
      this.dirs.add(path);
    }
    override async removeEmptyDir(path: string): Promise<boolean> {
      if (opts.notEmpty === true) return false;
      steps.push('rmdir');
      this.dirs.delete(path);
      return true;
    }
    async deviceBusy(): Promise<boolean> {
      steps.push('busy?');
      return opts.busy === true;
    }
  }
  const host = new Host();
  host.mounts.push({ device: DEV, mountPoint: PATH, majorMinor: '0:0' });
  // The device grows (the fake driver has no resize of its own).
  const driver = Object.assign(new FakeDriver(), {
    resizeVolume: async (id: string, size: number) => ({ blockdeviceId: id, datasetId: DS, size, attachedTo: 'i-me' }),
  });
  const grow: OfflineGrow = {
    mountPath: (id) => `/flocker/${id}`,
    leaseFree: () => !(opts.leased?.() ?? false),
    settled: (_id, grown) => void settled.push(grown),
  };
  const logger = winston.createLogger({
    transports: [
      new winston.transports.Stream({
        stream: new Writable({
          write(chunk: Buffer, _enc, done) {
            logged.push(chunk.toString());
            done();
          },
        }),
      }),
    ],
  });
  const c: ExecutionContext = { driver, host, instanceId: 'i-me', offlineGrow: grow, logger };
  return { c, host, driver, steps, settled, logged };
}

async function resize(c: ExecutionContext): Promise<void> {
  const v = await (c.driver as FakeDriver).createVolume(DS, 64 * MiB);
  await executeAction(
    { kind: 'resize', datasetId: DS, blockdeviceId: v.blockdeviceId, devicePath: DEV, size: 128 * MiB },
    c,
  );
}

describe('executeAction resize: the offline grow where online growth is refused', () => {
  it('nothing uses it: unmounted, grown, mounted again at the same path', async () => {
    const s = setup();
    await resize(s.c);
    expect(s.steps).toEqual(['online', 'unmount', 'rmdir', 'busy?', 'grow mounted=0', 'mkdir', 'mount']);
    expect(s.host.mounts).toEqual([{ device: DEV, mountPoint: PATH, majorMinor: '0:0' }]);
    expect(s.settled).toEqual([true]);
  });

  it('a lease on it: never unmounted, left pending', async () => {
    const s = setup({ leased: () => true });
    await resize(s.c);
    expect(s.steps).toEqual(['online']);
    expect(s.settled).toEqual([false]);
  });

  it('a lease taken while it was unmounting: mounted again at once, not grown', async () => {
    let asked = 0;
    const s = setup({ leased: () => ++asked > 1 });
    await resize(s.c);
    expect(s.steps).toEqual(['online', 'unmount', 'rmdir', 'mkdir', 'mount']);
    expect(s.settled).toEqual([false]);
  });

  it('mounted in another namespace (the exclusive open fails after the unmount): mounted again, not grown', async () => {
    const s = setup({ busy: true });
    await resize(s.c);
    expect(s.steps).toEqual(['online', 'unmount', 'rmdir', 'busy?', 'mkdir', 'mount']);
    expect(s.host.mounts).toHaveLength(1);
    expect(s.settled).toEqual([false]);
  });

  it('another mount of the device here, or the unmount refused (files open): left mounted, pending', async () => {
    const other = setup();
    other.host.mounts.push({ device: DEV, mountPoint: '/var/lib/docker/x', majorMinor: '0:0' });
    await resize(other.c);
    expect(other.steps).toEqual(['online']);
    expect(other.settled).toEqual([false]);
    const refused = setup({ failUnmount: true });
    await resize(refused.c);
    expect(refused.steps).toEqual(['online']);
    expect(refused.host.mounts).toHaveLength(1);
    expect(refused.settled).toEqual([false]);
  });

  it('the mount point not empty after the unmount (written into in that instant): mounted again, not grown', async () => {
    const s = setup({ notEmpty: true });
    await resize(s.c);
    expect(s.steps).toEqual(['online', 'unmount', 'mount']);
    expect(s.settled).toEqual([false]);
  });

  it('not an ext4 file system (xfs, or none found): never unmounted, refused and logged, left pending (FR finding 8)', async () => {
    for (const fstype of ['xfs', null] as const) {
      const s = setup({ fstype });
      await resize(s.c);
      expect(s.steps).toEqual(['online']);
      expect(s.host.mounts).toEqual([{ device: DEV, mountPoint: PATH, majorMinor: '0:0' }]);
      expect(s.settled).toEqual([false]);
      expect(s.logged.filter((l) => l.includes('not an ext4 file system'))).toHaveLength(1);
    }
  });

  it('the grow fails: mounted again all the same, the error thrown on (retried), still pending', async () => {
    const s = setup({ failGrow: true });
    await expect(resize(s.c)).rejects.toThrow(/e2fsck: no luck/);
    expect(s.steps).toEqual(['online', 'unmount', 'rmdir', 'busy?', 'grow mounted=0', 'mkdir', 'mount']);
    expect(s.host.mounts).toHaveLength(1);
    expect(s.settled).toEqual([false]);
  });

  it('a kill after the unmount and rmdir: the next look mounts it, the mount makes the directory and grows it first (mountVolume)', async () => {
    const s = setup();
    s.host.mounts = [];
    s.host.dirs.delete(PATH);
    let fsSize = 64 * MiB;
    s.host.filesystemSize = async () => fsSize;
    s.host.growUnmountedFilesystem = async () => {
      s.steps.push(`grow mounted=${s.host.mounts.length}`);
      fsSize = 128 * MiB;
    };
    await executeAction(
      { kind: 'mount', datasetId: DS, blockdeviceId: 'v', devicePath: DEV, mountPath: PATH, size: 128 * MiB },
      s.c,
    );
    expect(s.steps).toEqual(['mkdir', 'grow mounted=0', 'mount']);
  });

  it('online growth permitted: no unmount, settled', async () => {
    const s = setup();
    s.host.resizeFilesystem = async () => void s.steps.push('online ok');
    await resize(s.c);
    expect(s.steps).toEqual(['online ok']);
    expect(s.settled).toEqual([true]);
  });
});

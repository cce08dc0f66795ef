/**
 * Review T1 S2 (session 18): a driver that extends only a volume it may detach (Cinder extend_attached: reattach)
 * got the resize of a mounted volume while the agent's own mount was on it: the driver's detach failed DEVICE_BUSY
 * every 2 s for ever. Now the agent's mount goes around the resize, as for the offline grow (growOffline), only when
 * nothing else may use the volume, and comes back on the device the driver names after its attach again.
 */
import { StorageError } from '@flocker/storage-drivers';
import type { FilesystemFound } from './HostOps';
import { executeAction, type ExecutionContext, type OfflineGrow } from './executeAction';
import { FakeDriver, FakeHost } from './testing/fakes';

const DS = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
const MiB = 1024 * 1024;
const PATH = `/flocker/${DS}`;
const OLD = '/dev/loop7';
const NEW = '/dev/loop9';

function setup(
  opts: { leased?: () => boolean; busy?: boolean; failUnmount?: boolean; otherMount?: boolean; xfs?: boolean } = {},
) {
  const steps: string[] = [];
  let fsSize = 64 * MiB;
  class Host extends FakeHost {
    override async filesystemSize(): Promise<number | null> {
      return fsSize;
    }
    override async filesystemOf(device: string): Promise<FilesystemFound | null> {
      const found = await super.filesystemOf(device);
      return found !== null && opts.xfs === true ? { ...found, fstype: 'xfs' } : found;
    }
    override async growUnmountedFilesystem(device = ''): Promise<void> {
      steps.push(`grow ${device} mounted=${this.mounts.length}`);
      if (opts.xfs !== true) fsSize = 128 * MiB; // xfs grows only mounted (linuxHostOps: nothing done here)
    }
    override async resizeFilesystem(device = ''): Promise<void> {
      steps.push(`online ${device}`);
      fsSize = 128 * MiB;
    }
    override async unmount(mountPoint: string): Promise<void> {
      if (opts.failUnmount === true) throw new StorageError('DEVICE_BUSY', 'target is busy');
      steps.push('unmount');
      await super.unmount(mountPoint);
    }
    override async mount(device: string, mountPoint: string): Promise<void> {
      steps.push(`mount ${device}`);
      await super.mount(device, mountPoint);
    }
    override async removeEmptyDir(): Promise<boolean> {
      steps.push('rmdir');
      return true;
    }
    async deviceBusy(): Promise<boolean> {
      return opts.busy === true;
    }
  }
  const host = new Host();
  host.mounts.push({ device: OLD, mountPoint: PATH, majorMinor: '0:0' });
  if (opts.otherMount === true) host.mounts.push({ device: OLD, mountPoint: '/var/lib/pod/x', majorMinor: '0:0' });
  // As Cinder's reattach: refused while the device is mounted; else detach, extend, attach (another device).
  let device = OLD;
  const driver = Object.assign(new FakeDriver(), {
    resizeVolume: async (id: string, size: number) => {
      if (host.mounts.some((m) => m.device === device))
        throw new StorageError('DEVICE_BUSY', `volume ${id} is in use on ${device}; unmount it before detaching`);
      steps.push(`driver resize ${size / MiB}`);
      device = NEW;
      return { blockdeviceId: id, datasetId: DS, size, attachedTo: 'i-me' };
    },
    getDevicePath: async () => device,
  });
  const grow: OfflineGrow = {
    mountPath: (id) => `/flocker/${id}`,
    leaseFree: () => !(opts.leased?.() ?? false),
    settled: () => undefined,
  };
  const c: ExecutionContext = { driver, host, instanceId: 'i-me', offlineGrow: grow };
  return { c, host, steps };
}

async function resize(c: ExecutionContext, unmounted = true): Promise<void> {
  await executeAction(
    {
      kind: 'resize',
      datasetId: DS,
      blockdeviceId: 'vol-1',
      devicePath: OLD,
      size: 128 * MiB,
      ...(unmounted ? { unmounted: true as const } : {}),
    },
    c,
  );
}

describe('executeAction resize of a volume the driver extends only detached', () => {
  it('without the unmount (before): the driver refuses, DEVICE_BUSY', async () => {
    const s = setup();
    await expect(resize(s.c, false)).rejects.toMatchObject({ code: 'DEVICE_BUSY' });
  });

  it('nothing uses it: unmounted, resized by the driver, mounted again from the new device, file system grown', async () => {
    const s = setup();
    await resize(s.c);
    expect(s.steps).toEqual(['unmount', 'rmdir', 'driver resize 128', `grow ${NEW} mounted=0`, `mount ${NEW}`]);
    expect(s.host.mounts).toEqual([{ device: NEW, mountPoint: PATH, majorMinor: '0:0' }]);
  });

  it('xfs: mounted again from the new device, then grown online (xfs grows only mounted)', async () => {
    const s = setup({ xfs: true });
    await resize(s.c);
    expect(s.steps).toEqual([
      'unmount',
      'rmdir',
      'driver resize 128',
      `grow ${NEW} mounted=0`,
      `mount ${NEW}`,
      `online ${NEW}`,
    ]);
  });

  it('a lease on it: never unmounted, not resized', async () => {
    const s = setup({ leased: () => true });
    await resize(s.c);
    expect(s.steps).toEqual([]);
    expect(s.host.mounts).toEqual([{ device: OLD, mountPoint: PATH, majorMinor: '0:0' }]);
  });

  it('a lease taken while unmounted, or the device busy after the unmount: mounted again as it was, not resized', async () => {
    let calls = 0;
    const late = setup({ leased: () => ++calls > 1 });
    await resize(late.c);
    expect(late.steps).toEqual(['unmount', 'rmdir', `mount ${OLD}`]);
    const busy = setup({ busy: true });
    await resize(busy.c);
    expect(busy.steps).toEqual(['unmount', 'rmdir', `mount ${OLD}`]);
    expect(busy.host.mounts).toEqual([{ device: OLD, mountPoint: PATH, majorMinor: '0:0' }]);
  });

  it('another mount of the device (a pod bind), or the unmount refused: left as it is', async () => {
    const other = setup({ otherMount: true });
    await resize(other.c);
    expect(other.steps).toEqual([]);
    const refused = setup({ failUnmount: true });
    await resize(refused.c);
    expect(refused.steps).toEqual([]);
    expect(refused.host.mounts).toEqual([{ device: OLD, mountPoint: PATH, majorMinor: '0:0' }]);
  });
});

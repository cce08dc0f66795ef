import { StorageError, type PoolListing, type VolumeProblem } from '@flocker/storage-drivers';
import { executeAction, ignoring, type ExecutionContext } from './executeAction';
import { FakeDriver, FakeHost } from './testing/fakes';

const DS = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
const MiB = 1024 * 1024;

/** The mount of DS's volume v from `devicePath` at /flocker/DS, for a volume of `size`. */
const mountAction = (size: number, devicePath = '/dev/x') =>
  ({ kind: 'mount', datasetId: DS, blockdeviceId: 'v', devicePath, mountPath: `/flocker/${DS}`, size }) as const;

function ctx(): ExecutionContext & { driver: FakeDriver; host: FakeHost } {
  return { driver: new FakeDriver(), host: new FakeHost(), instanceId: 'i-me' };
}

describe('executeAction: every action is idempotent', () => {
  it('mount never mounts over another mount at the path (a stale one is removed first by the agent)', async () => {
    const c = ctx();
    const path = `/flocker/${DS}`;
    c.host.mounts.push({ device: '/dev/loop-old', mountPoint: path, majorMinor: '7:9' });
    const mount = {
      kind: 'mount',
      datasetId: DS,
      blockdeviceId: 'v',
      devicePath: '/dev/fake/v',
      mountPath: path,
      size: 64 * MiB,
    } as const;
    await expect(executeAction(mount, c)).rejects.toMatchObject({ code: 'DEVICE_BUSY' });
    expect(c.host.mounts).toHaveLength(1);
    c.host.mounts = [];
    await executeAction(mount, c);
    await executeAction(mount, c); // already there: done
    expect(c.host.mounts).toEqual([{ device: '/dev/fake/v', mountPoint: path, majorMinor: '0:0' }]);
  });

  it('mount answers the file system it mounted (T5 F8: a restored volume reports it), also when found mounted', async () => {
    const c = ctx();
    c.host.filesystemSize = async () => 512 * MiB;
    c.host.fstypes.set('/dev/x', 'xfs');
    expect(await executeAction(mountAction(512 * MiB), c)).toEqual({ filesystem: 'xfs' });
    expect(c.host.mounts).toEqual([
      { device: '/dev/x', mountPoint: `/flocker/${DS}`, majorMinor: '0:0', fstype: 'xfs' },
    ]);
    expect(await executeAction(mountAction(512 * MiB), c)).toEqual({ filesystem: 'xfs' });
    // Neither ext4 nor xfs found (the fake's default: no superblock read): nothing said.
    const blank = ctx();
    expect(await executeAction(mountAction(64 * MiB), blank)).toEqual({});
  });

  it('create never makes a second volume for a dataset', async () => {
    const c = ctx();
    await executeAction({ kind: 'create', datasetId: DS, size: 64 * MiB }, c);
    await executeAction({ kind: 'create', datasetId: DS, size: 64 * MiB }, c);
    expect(c.driver.volumes.size).toBe(1);
  });

  it('create takes a spare when one is offered (issue 23): told to onClaimed, not onCreated; none offered: created as before', async () => {
    const c = ctx();
    const claimedVolume = { blockdeviceId: 'spare-1', datasetId: DS, size: 64 * MiB, attachedTo: null };
    const told: string[] = [];
    const asked: unknown[] = [];
    const withSpare: ExecutionContext = {
      ...c,
      claimSpare: async (datasetId, size, options) => {
        asked.push({ datasetId, size, options });
        return asked.length === 1 ? claimedVolume : undefined;
      },
      onClaimed: (v) => told.push(`claimed ${v.blockdeviceId}`),
      onCreated: (v) => told.push(`created ${v.blockdeviceId}`),
    };
    expect(await executeAction({ kind: 'create', datasetId: DS, size: 64 * MiB, profile: 'gold' }, withSpare)).toEqual({
      created: claimedVolume,
    });
    expect(asked).toEqual([{ datasetId: DS, size: 64 * MiB, options: { profile: 'gold', onlyVolume: true } }]);
    const other = 'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb';
    const made = await executeAction({ kind: 'create', datasetId: other, size: 64 * MiB }, withSpare);
    expect(made.created?.blockdeviceId).toMatch(/^vol-/);
    expect(told).toEqual(['claimed spare-1', `created ${made.created?.blockdeviceId}`]);
  });

  it('create takes a spare the claim attached here (issue 23): its device answered beside the volume, not in it', async () => {
    const c = ctx();
    const volume = { blockdeviceId: 'spare-1', datasetId: DS, size: 64 * MiB, attachedTo: 'i-me' };
    const told: unknown[] = [];
    const withSpare: ExecutionContext = {
      ...c,
      claimSpare: async () => ({ ...volume, devicePath: '/dev/loop9' }),
      onClaimed: (v) => told.push(v),
    };
    expect(await executeAction({ kind: 'create', datasetId: DS, size: 64 * MiB }, withSpare)).toEqual({
      created: volume,
      devicePath: '/dev/loop9',
    });
    expect(told).toEqual([volume]);
  });

  it('attach of a volume already attached here is done; attached elsewhere is an error', async () => {
    const c = ctx();
    const v = await c.driver.createVolume(DS, 64 * MiB);
    await executeAction({ kind: 'attach', datasetId: DS, blockdeviceId: v.blockdeviceId }, c);
    await executeAction({ kind: 'attach', datasetId: DS, blockdeviceId: v.blockdeviceId }, c);
    expect(c.driver.volumes.get(v.blockdeviceId)?.attachedTo).toBe('i-me');
    await expect(
      executeAction({ kind: 'attach', datasetId: DS, blockdeviceId: v.blockdeviceId }, { ...c, instanceId: 'i-other' }),
    ).rejects.toMatchObject({ code: 'ALREADY_ATTACHED' });
  });

  it('create and attach answer what they did, and only what they did', async () => {
    const c = ctx();
    const made = await executeAction({ kind: 'create', datasetId: DS, size: 64 * MiB }, c);
    expect(made.created).toMatchObject({ datasetId: DS, size: 64 * MiB, attachedTo: null });
    expect(await executeAction({ kind: 'create', datasetId: DS, size: 64 * MiB }, c)).toEqual({}); // found, not made
    const id = made.created!.blockdeviceId;
    const attach = { kind: 'attach', datasetId: DS, blockdeviceId: id } as const;
    // The device only when asked for: a look follows anyway otherwise.
    expect(await executeAction(attach, c)).toEqual({});
    await c.driver.detachVolume(id);
    // With the device, the size the backend's record has (stateAfter: the mount after it grows to that size).
    expect(await executeAction(attach, { ...c, wantDevicePath: () => true })).toEqual({
      devicePath: `/dev/fake/${id}`,
      size: made.created!.size,
    });
    expect(await executeAction(attach, { ...c, wantDevicePath: () => true })).toEqual({}); // attached already
  });

  it('format never touches a device that has a filesystem', async () => {
    const c = ctx();
    await executeAction({ kind: 'format', datasetId: DS, blockdeviceId: 'v', devicePath: '/dev/x' }, c);
    await executeAction({ kind: 'format', datasetId: DS, blockdeviceId: 'v', devicePath: '/dev/x' }, c);
    expect([...c.host.formatted]).toEqual(['/dev/x']);
  });

  it('format makes the file system the action names', async () => {
    const c = ctx();
    const made: Array<string | undefined> = [];
    c.host.makeFilesystem = async (_device: string, filesystem?: string) => void made.push(filesystem);
    await executeAction(
      { kind: 'format', datasetId: DS, blockdeviceId: 'v', devicePath: '/dev/x', filesystem: 'xfs' },
      c,
    );
    await executeAction({ kind: 'format', datasetId: DS, blockdeviceId: 'v', devicePath: '/dev/y' }, c);
    expect(made).toEqual(['xfs', undefined]);
  });

  it('mount grows a file system that only grows mounted (xfs) right after mounting it', async () => {
    const c = ctx();
    let fsSize = 64 * MiB;
    const steps: string[] = [];
    c.host.filesystemSize = async () => fsSize;
    c.host.growUnmountedFilesystem = async () => void steps.push('offline'); // xfs: nothing happens
    c.host.resizeFilesystem = async () => {
      steps.push(`online mounted=${c.host.mounts.length}`);
      fsSize = 128 * MiB;
    };
    const mount = mountAction(128 * MiB);
    await executeAction(mount, c);
    expect(steps).toEqual(['offline', 'online mounted=1']);
    await executeAction({ kind: 'unmount', datasetId: DS, blockdeviceId: 'v', mountPath: mount.mountPath }, c);
    await executeAction(mount, c); // full size now: nothing more
    expect(steps).toEqual(['offline', 'online mounted=1']);
  });

  it('mount leaves an ext4 file system short of the volume by less than mke2fs leaves off as it is (FR finding 7)', async () => {
    const c = ctx();
    const steps: string[] = [];
    let fsSize = 1024 * MiB; // mkfs.ext4 on 1025 MiB
    c.host.filesystemOf = async () => ({ fstype: 'ext4', size: fsSize, fullWithin: 576 * 4096 });
    c.host.filesystemSize = async () => fsSize;
    c.host.growUnmountedFilesystem = async () => {
      steps.push('offline');
      fsSize = 1089 * MiB;
    };
    c.host.resizeFilesystem = async () => void steps.push('online');
    const mount = mountAction(1025 * MiB);
    await executeAction(mount, c);
    expect(steps).toEqual([]); // no e2fsck -f + resize2fs at every mount
    await executeAction({ kind: 'unmount', datasetId: DS, blockdeviceId: 'v', mountPath: mount.mountPath }, c);
    await executeAction({ ...mount, size: 1089 * MiB }, c); // grown by 64 MiB: grows
    expect(steps).toEqual(['offline']);
  });

  it('mount reads the file system once and mounts with the type it found (issue 23, session 16)', async () => {
    const c = ctx();
    const reads: string[] = [];
    const mounted: Array<string | undefined> = [];
    c.host.filesystemOf = async (device) => {
      reads.push(device);
      return device === '/dev/xfs' ? { fstype: 'xfs', size: 64 * MiB } : null;
    };
    c.host.filesystemSize = async () => {
      throw new Error('the mount reads the superblock once, through filesystemOf');
    };
    const mount = c.host.mount.bind(c.host);
    c.host.mount = async (device: string, mountPoint: string, fstype?: string) => {
      mounted.push(fstype);
      await mount(device, mountPoint);
    };
    const action = mountAction(64 * MiB, '/dev/xfs');
    await executeAction(action, c);
    // Neither ext4 nor xfs found: the mount is left to find the type itself.
    await executeAction({ ...action, devicePath: '/dev/other', mountPath: `/flocker/other` }, c);
    expect(reads).toEqual(['/dev/xfs', '/dev/other']);
    expect(mounted).toEqual(['xfs', undefined]);
  });

  it('mount twice mounts once; unmount of nothing is done', async () => {
    const c = ctx();
    const mount = mountAction(64 * MiB);
    await executeAction(mount, c);
    await executeAction(mount, c);
    expect(c.host.mounts).toHaveLength(1);
    const unmount = { kind: 'unmount', datasetId: DS, blockdeviceId: 'v', mountPath: `/flocker/${DS}` } as const;
    await executeAction(unmount, c);
    await executeAction(unmount, c);
    expect(c.host.mounts).toHaveLength(0);
    // The empty mount point is removed too (issue 21: /flocker kept one per deleted volume).
    expect(c.host.removedDirs).toEqual([`/flocker/${DS}`, `/flocker/${DS}`]);
  });

  it('detach and destroy of what is already gone are done', async () => {
    const c = ctx();
    const v = await c.driver.createVolume(DS, 64 * MiB);
    await c.driver.attachVolume(v.blockdeviceId, 'i-me');
    await executeAction({ kind: 'detach', datasetId: DS, blockdeviceId: v.blockdeviceId }, c);
    await executeAction({ kind: 'detach', datasetId: DS, blockdeviceId: v.blockdeviceId }, c);
    await executeAction({ kind: 'destroy', datasetId: DS, blockdeviceId: v.blockdeviceId, detachFirst: true }, c);
    expect(c.driver.volumes.size).toBe(0);
  });

  it("destroy with detachFirst is the driver's one detachAndDestroyVolume where it has one (issue 23); a volume already gone is done", async () => {
    const calls: string[] = [];
    class OneOpDriver extends FakeDriver {
      override async detachVolume(id: string): Promise<void> {
        calls.push('detach');
        return super.detachVolume(id);
      }
      override async destroyVolume(id: string): Promise<void> {
        calls.push('destroy');
        return super.destroyVolume(id);
      }
      async detachAndDestroyVolume(id: string): Promise<void> {
        calls.push('both');
        const v = this.volumes.get(id);
        if (v === undefined) throw new StorageError('UNKNOWN_VOLUME', `no volume ${id}`, id);
        if (v.attachedTo !== null) await super.detachVolume(id);
        await super.destroyVolume(id);
      }
    }
    const c = { ...ctx(), driver: new OneOpDriver() };
    const attached = await c.driver.createVolume(DS, 64 * MiB);
    await c.driver.attachVolume(attached.blockdeviceId, 'i-me');
    const destroy = (blockdeviceId: string, detachFirst: boolean) =>
      executeAction({ kind: 'destroy', datasetId: DS, blockdeviceId, detachFirst }, c);
    await destroy(attached.blockdeviceId, true);
    await destroy(attached.blockdeviceId, true);
    expect(calls).toEqual(['both', 'both']);
    // Nothing to detach: destroyVolume alone, as before.
    const detached = await c.driver.createVolume(DS, 64 * MiB);
    await destroy(detached.blockdeviceId, false);
    expect(calls).toEqual(['both', 'both', 'destroy']);
    expect(c.driver.volumes.size).toBe(0);
  });

  it("create makes no second volume while the dataset's record is unreadable, or a node reports a volume of it this pool lacks (issue 17)", async () => {
    /** A pool with unreadable records, as the loopback driver's listPool shows them. */
    class PoolWithProblems extends FakeDriver {
      problems: VolumeProblem[] = [];
      async listPool(): Promise<PoolListing> {
        return { volumes: await this.listVolumes(), problems: this.problems };
      }
    }
    const driver = new PoolWithProblems();
    const c = { ...ctx(), driver };
    const create = { kind: 'create', datasetId: DS, size: 64 * MiB } as const;
    driver.problems = [
      { code: 'CORRUPT_RECORD', blockdeviceId: 'vol-bad', datasetId: DS, message: 'record is not valid JSON' },
    ];
    await expect(executeAction(create, c)).rejects.toMatchObject({ code: 'CORRUPT_RECORD' });
    // Nothing in the record names the dataset, but this agent saw the volume before: still its.
    driver.problems = [{ code: 'CORRUPT_RECORD', blockdeviceId: 'vol-bad', message: 'record is not valid JSON' }];
    const remembered = new Map([['vol-bad', DS]]);
    await expect(
      executeAction(create, { ...c, knownVolumes: () => ({ reported: [], remembered }) }),
    ).rejects.toMatchObject({ code: 'CORRUPT_RECORD' });
    // Another dataset's record: no reason to hold this one.
    const other = new Map([['vol-bad', 'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb']]);
    driver.problems = [{ code: 'CORRUPT_RECORD', blockdeviceId: 'vol-bad', message: 'x' }];
    const reported = [{ blockdeviceId: 'vol-on-c', datasetId: DS, reportedBy: '33333333-3333-4333-8333-333333333333' }];
    await expect(
      executeAction(create, { ...c, knownVolumes: () => ({ reported, remembered: other }) }),
    ).rejects.toMatchObject({ code: 'VOLUME_ELSEWHERE' });
    expect(driver.volumes.size).toBe(0);
    const made = await executeAction(create, { ...c, knownVolumes: () => ({ reported: [], remembered: other }) });
    expect(made.created).toMatchObject({ datasetId: DS });
  });
});

describe('ignoring', () => {
  it('takes a StorageError of a named code for done, and throws any other error on', async () => {
    await expect(
      ignoring(['UNATTACHED', 'UNKNOWN_VOLUME'], async () =>
        Promise.reject(new StorageError('UNKNOWN_VOLUME', 'gone')),
      ),
    ).resolves.toBeUndefined();
    await expect(
      ignoring(['UNATTACHED'], async () => Promise.reject(new StorageError('UNKNOWN_VOLUME', 'gone'))),
    ).rejects.toMatchObject({ code: 'UNKNOWN_VOLUME' });
    await expect(
      ignoring(['UNKNOWN_VOLUME'], async () =>
        Promise.reject(Object.assign(new Error('not ours'), { code: 'UNKNOWN_VOLUME' })),
      ),
    ).rejects.toThrow('not ours');
    let ran = false;
    await ignoring(['UNKNOWN_VOLUME'], async () => void (ran = true));
    expect(ran).toBe(true);
  });
});

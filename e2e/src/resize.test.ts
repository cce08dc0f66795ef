/**
 * Growing a volume while a container uses it (issue 20, resize), with real Docker: an xfs
 * volume grows online, so `df` in the running container sees the new size without a restart
 * (ext4 would need CAP_SYS_RESOURCE for that, which this machine withholds: it grows at its next
 * mount). Shrinking is refused with the sizes named. Needs root.
 */
import { callPlugin } from '@flocker/volume-plugin/testing';
import { until, type FlockerDockerStack } from './docker';
import { dockerStackForSuite } from './docker/suite';

jest.setTimeout(180_000);

const MiB = 1024 ** 2;

describe('resizing a volume in use', () => {
  let stack: FlockerDockerStack;
  dockerStackForSuite((s) => (stack = s));

  /** Total KiB of the file system at /data in a running container. */
  async function dfKiB(container: string): Promise<number> {
    const out = (await stack.docker(['exec', container, 'df', '-k', '/data'])).stdout;
    return Number(out.trim().split('\n')[1]?.trim().split(/\s+/)[1]);
  }

  it('an xfs volume grown through the API: df in the running container shows the new size, the data stays', async () => {
    const drv = stack.driver;
    await stack.docker(['volume', 'create', '-d', drv, '-o', 'size=300MiB', '-o', 'fs=xfs', 'grow-xfs']);
    await stack.startWith('grower', 'grow-xfs', 'echo kept > /data/kept; sync; exec sleep 600');
    try {
      const before = await dfKiB('grower');
      expect(before).toBeGreaterThan(200 * 1024); // xfs keeps ~55 MiB of a 300 MiB device for its log
      expect(before).toBeLessThanOrEqual(300 * 1024);
      const d = await stack.dataset('grow-xfs');
      expect(d?.metadata['clusterhq:flocker:filesystem']).toBe('xfs');
      await stack.client.updateDataset(d!.dataset_id, { maximum_size: 600 * MiB });
      await until(
        'df in the container to show the grown file system',
        async () => (await dfKiB('grower')) > before + 250 * 1024,
        60_000,
        200,
      );
      expect((await stack.docker(['exec', 'grower', 'cat', '/data/kept'])).stdout).toBe('kept\n');
    } finally {
      await stack.docker(['rm', '-f', 'grower'], { check: false });
    }
  });

  it('docker volume create again on the same host changes nothing (Docker answers it without asking the plugin); a create from a host that does not know the volume grows it, and never shrinks it', async () => {
    const drv = stack.driver;
    const again = await stack.docker(['volume', 'create', '-d', drv, '-o', 'size=700MiB', 'grow-xfs']);
    expect(again.code).toBe(0);
    expect((await stack.dataset('grow-xfs'))?.maximum_size).toBe(600 * MiB);
    // What a dockerd that does not know the volume yet (another host) sends: VolumeDriver.Create.
    const create = (opts: Record<string, string>) =>
      callPlugin(stack.socketPath, '/VolumeDriver.Create', { Name: 'grow-xfs', Opts: opts });
    expect((await create({ size: '400MiB' })).body).toMatchObject({
      Err: expect.stringMatching(/volumes do not shrink/),
    });
    expect((await create({ fs: 'ext4' })).body).toMatchObject({
      Err: expect.stringMatching(/exists with file system xfs/),
    });
    expect((await create({ size: '700MiB' })).body).toEqual({ Err: '' });
    expect((await stack.dataset('grow-xfs'))?.maximum_size).toBe(700 * MiB);
  });

  it('an xfs volume below 300MiB, or an unknown file system, is refused at create', async () => {
    const drv = stack.driver;
    const small = await stack.docker(['volume', 'create', '-d', drv, '-o', 'size=100MiB', '-o', 'fs=xfs', 'tiny-xfs'], {
      check: false,
    });
    expect(small.code).not.toBe(0);
    expect(small.stderr).toMatch(/xfs volume needs a size of at least 300MiB/);
    const zfs = await stack.docker(['volume', 'create', '-d', drv, '-o', 'fs=zfs', 'zfs-vol'], { check: false });
    expect(zfs.code).not.toBe(0);
    expect(zfs.stderr).toMatch(/fs "zfs" is not supported: use ext4 or xfs/);
  });
});

/**
 * Host-side device lookup, on fake /dev and /sys trees whose entries point at
 * real loop devices (the lookup only ever sees paths, so this is what an EC2
 * host looks like to it).
 */
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileExec } from '../exec';
import {
  deviceSlot,
  DEVICE_NAMES,
  findEbsDevice,
  linuxEbsHost,
  nvmeSerial,
  pickDeviceName,
  waitForDevice,
  waitForDeviceGone,
} from './devices';

jest.setTimeout(60_000);

const VOL = 'vol-0123456789abcdef0';
let root: string;
let devRoot: string;
let sysRoot: string;
const loops: string[] = [];

async function sh(cmd: string, args: string[]): Promise<string> {
  const r = await execFileExec(cmd, args);
  if (r.exitCode !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr}`);
  return r.stdout.trim();
}

async function newLoop(name: string): Promise<string> {
  const file = path.join(root, `${name}.img`);
  await fs.writeFile(file, '');
  await fs.truncate(file, 8 * 1024 * 1024);
  const dev = await sh('losetup', ['--find', '--show', file]);
  loops.push(dev);
  return dev;
}

async function nvmeInSys(name: string, serial: string, model = 'Amazon Elastic Block Store'): Promise<void> {
  const dir = path.join(sysRoot, 'block', name, 'device');
  await fs.mkdir(dir, { recursive: true });
  // Real sysfs pads the serial with spaces.
  await fs.writeFile(path.join(dir, 'serial'), `${serial}      \n`);
  await fs.writeFile(path.join(dir, 'model'), `${model}                      \n`);
}

beforeEach(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'flocker-ebs-devices-'));
  devRoot = path.join(root, 'dev');
  sysRoot = path.join(root, 'sys');
  await fs.mkdir(path.join(devRoot, 'disk', 'by-id'), { recursive: true });
  await fs.mkdir(path.join(sysRoot, 'block'), { recursive: true });
});

afterEach(async () => {
  for (const dev of loops.splice(0)) await execFileExec('losetup', ['-d', dev]);
  await fs.rm(root, { recursive: true, force: true });
});

describe('device names', () => {
  it('maps every spelling of a name to its slot', () => {
    expect(['/dev/sdf', 'sdf', '/dev/xvdf', 'xvdf1', '/dev/sdf1', '/dev/hdf'].map(deviceSlot)).toEqual([
      'f',
      'f',
      'f',
      'f',
      'f',
      'f',
    ]);
    expect(deviceSlot('/dev/xvda')).toBe('a');
  });

  it('picks the first of /dev/sdf…/dev/sdp not in use in any spelling', () => {
    expect(DEVICE_NAMES[0]).toBe('/dev/sdf');
    expect(DEVICE_NAMES[DEVICE_NAMES.length - 1]).toBe('/dev/sdp');
    expect(pickDeviceName([])).toBe('/dev/sdf');
    expect(pickDeviceName(['/dev/xvda', '/dev/sda1'])).toBe('/dev/sdf');
    expect(pickDeviceName(['/dev/sdf', 'xvdg', '/dev/sdh1'])).toBe('/dev/sdi');
    expect(pickDeviceName(DEVICE_NAMES)).toBeUndefined();
  });

  it('derives the NVMe serial from the volume id', () => {
    expect(nvmeSerial(VOL)).toBe('vol0123456789abcdef0');
  });
});

describe('findEbsDevice', () => {
  it('finds nothing on an empty host', async () => {
    expect(await findEbsDevice(VOL, '/dev/sdf', { devRoot, sysRoot })).toBeUndefined();
  });

  it('follows the udev by-id link of an NVMe EBS volume', async () => {
    const dev = await newLoop('a');
    await fs.symlink(dev, path.join(devRoot, 'disk', 'by-id', `nvme-Amazon_Elastic_Block_Store_${nvmeSerial(VOL)}`));
    expect(await findEbsDevice(VOL, '/dev/sdf', { devRoot, sysRoot })).toBe(dev);
  });

  it('matches NVMe controllers by serial in sysfs, not by order', async () => {
    await nvmeInSys('nvme0n1', 'vol0aaaaaaaaaaaaaaaa');
    await nvmeInSys('nvme1n1', nvmeSerial(VOL));
    await nvmeInSys('nvme2n1', 'vol0bbbbbbbbbbbbbbbb');
    for (const name of ['nvme0n1', 'nvme1n1', 'nvme2n1'])
      await fs.symlink(await newLoop(name), path.join(devRoot, name));
    expect(await findEbsDevice(VOL, '/dev/sdf', { devRoot, sysRoot })).toBe(path.join(devRoot, 'nvme1n1'));
    expect(await findEbsDevice('vol-0ccccccccccccccccc', '/dev/sdg', { devRoot, sysRoot })).toBeUndefined();
  });

  it('uses the attachment name as xvdX or sdX on a Xen host, and only there', async () => {
    const xvdf = await newLoop('xvdf');
    await fs.symlink(xvdf, path.join(devRoot, 'xvdf'));
    expect(await findEbsDevice(VOL, '/dev/sdf', { devRoot, sysRoot })).toBe(path.join(devRoot, 'xvdf'));
    expect(await findEbsDevice(VOL, '/dev/sdg', { devRoot, sysRoot })).toBeUndefined();
    await fs.symlink(await newLoop('sdg'), path.join(devRoot, 'sdg'));
    expect(await findEbsDevice(VOL, '/dev/sdg', { devRoot, sysRoot })).toBe(path.join(devRoot, 'sdg'));
    expect(await findEbsDevice(VOL, undefined, { devRoot, sysRoot })).toBeUndefined();
    // On a Nitro host (EBS NVMe controllers present), /dev/xvdf is something else: no match.
    await nvmeInSys('nvme0n1', 'vol0aaaaaaaaaaaaaaaa');
    expect(await findEbsDevice(VOL, '/dev/sdf', { devRoot, sysRoot })).toBeUndefined();
  });

  it('ignores entries that are not block devices', async () => {
    await fs.writeFile(path.join(devRoot, 'xvdf'), 'not a device');
    await fs.symlink(
      '/nonexistent',
      path.join(devRoot, 'disk', 'by-id', `nvme-Amazon_Elastic_Block_Store_${nvmeSerial(VOL)}`),
    );
    expect(await findEbsDevice(VOL, '/dev/sdf', { devRoot, sysRoot })).toBeUndefined();
  });
});

describe('waitForDevice', () => {
  it('returns the device once it appears during the wait', async () => {
    const started = Date.now();
    const appear = (async () => {
      await new Promise((r) => setTimeout(r, 300));
      const dev = await newLoop('late');
      await fs.symlink(dev, path.join(devRoot, 'disk', 'by-id', `nvme-Amazon_Elastic_Block_Store_${nvmeSerial(VOL)}`));
      return dev;
    })();
    const found = await waitForDevice(VOL, '/dev/sdf', { devRoot, sysRoot, timeoutMs: 10_000, baseMs: 20, maxMs: 100 });
    expect(found).toBe(await appear);
    expect(Date.now() - started).toBeGreaterThanOrEqual(300);
    expect((await fs.stat(found)).isBlockDevice()).toBe(true);
  });

  it('fails with BACKEND_ERROR after the bound when nothing appears', async () => {
    const started = Date.now();
    await expect(
      waitForDevice(VOL, '/dev/sdf', { devRoot, sysRoot, timeoutMs: 300, baseMs: 20, maxMs: 50 }),
    ).rejects.toMatchObject({
      code: 'BACKEND_ERROR',
      message: expect.stringContaining(VOL),
    });
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it('waits for the device to go after a detach', async () => {
    const dev = await newLoop('going');
    const link = path.join(devRoot, 'xvdf');
    await fs.symlink(dev, link);
    setTimeout(() => void fs.unlink(link), 200);
    await waitForDeviceGone(VOL, '/dev/sdf', { devRoot, sysRoot, timeoutMs: 10_000, baseMs: 20, maxMs: 50 });
    expect(await findEbsDevice(VOL, '/dev/sdf', { devRoot, sysRoot })).toBeUndefined();
  });

  it('is what linuxEbsHost uses, with the given roots', async () => {
    const host = linuxEbsHost({ devRoot, sysRoot });
    expect(await host.findDevice(VOL, '/dev/sdf')).toBeUndefined();
    const dev = await newLoop('host');
    await fs.symlink(dev, path.join(devRoot, 'xvdf'));
    expect(await host.waitForDevice(VOL, '/dev/sdf', 1000)).toBe(path.join(devRoot, 'xvdf'));
    expect(await host.isBusy(dev)).toBe(false);
  });
});

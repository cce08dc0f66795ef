/** The host connector's decisions, with a fake exec and fake mount table. */
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { MountEntry } from '../blockdev';
import type { ExecFn } from '../exec';
import { ConnectorSide, nfsMountPointFor } from './connector';
import { ConnectionInfoSchema } from './schemas';

function mountEntry(device: string, mountPoint: string): MountEntry {
  return { device, mountPoint, fstype: 'nfs4', majorMinor: '0:50', options: 'rw' };
}

function fakeExec(loops: Record<string, string[]>) {
  const calls: string[][] = [];
  const exec: ExecFn = async (file, args) => {
    calls.push([file, ...args]);
    if (file === 'losetup' && args[0] === '-j') {
      const found = loops[args[1]] ?? [];
      return { exitCode: 0, stdout: found.map((d) => `${d}: []: (${args[1]})\n`).join(''), stderr: '' };
    }
    if (file === 'losetup' && args[0] === '--find') return { exitCode: 0, stdout: '/dev/loop9\n', stderr: '' };
    return { exitCode: 0, stdout: '', stderr: '' };
  };
  return { exec, calls };
}

const nfs = (extra: Record<string, unknown> = {}) =>
  ConnectionInfoSchema.parse({
    driver_volume_type: 'nfs',
    export: '10.0.0.1:/cinder',
    name: 'volume-v1',
    format: 'raw',
    ...extra,
  });

describe('ConnectorSide', () => {
  it('names mount points as os-brick does (md5 of the export)', () => {
    expect(nfsMountPointFor('/base', '127.0.0.1:/flocker-cinder')).toMatch(/^\/base\/[0-9a-f]{32}$/);
    expect(nfsMountPointFor('/base', 'a:/x')).not.toBe(nfsMountPointFor('/base', 'a:/y'));
  });

  it('uses an existing mount of the export and an existing loop device of the file', async () => {
    const { exec, calls } = fakeExec({ '/mnt/share/volume-v1': ['/dev/loop3'] });
    const side = new ConnectorSide({
      exec,
      nfsMountBase: '/nfs',
      listMounts: async () => [mountEntry('10.0.0.1:/cinder', '/mnt/share')],
    });
    expect(await side.connect(nfs(), 'v1')).toBe('/dev/loop3');
    expect(calls).toEqual([['losetup', '-j', '/mnt/share/volume-v1']]);
  });

  it("finds Cinder's own mount of the share (cinder-volume on this host) and attaches the file", async () => {
    const cinderMp = nfsMountPointFor('/var/lib/cinder/mnt', '10.0.0.1:/cinder');
    const { exec, calls } = fakeExec({});
    const side = new ConnectorSide({
      exec,
      nfsMountBase: '/nfs',
      listMounts: async () => [mountEntry('/dev/vda1', cinderMp)],
    });
    expect(await side.connect(nfs({ mount_point_base: '/var/lib/cinder/mnt' }), 'v1')).toBe('/dev/loop9');
    expect(calls).toEqual([
      ['losetup', '-j', `${cinderMp}/volume-v1`],
      ['losetup', '--find', '--show', `${cinderMp}/volume-v1`],
      ['blockdev', '--setrw', '/dev/loop9'],
    ]);
  });

  it('mounts an export that is not mounted yet under nfs_mount_base', async () => {
    const base = await fs.mkdtemp(path.join(os.tmpdir(), 'flocker-connector-'));
    try {
      const { exec, calls } = fakeExec({});
      const side = new ConnectorSide({ exec, nfsMountBase: base, listMounts: async () => [] });
      await side.connect(nfs(), 'v1');
      const mp = nfsMountPointFor(base, '10.0.0.1:/cinder');
      expect(calls[0]).toEqual(['mount', '-t', 'nfs', '10.0.0.1:/cinder', mp]);
      expect((await fs.stat(mp)).isDirectory()).toBe(true);
      // Asking without connecting never mounts.
      const quiet = fakeExec({});
      expect(
        await new ConnectorSide({ exec: quiet.exec, nfsMountBase: base, listMounts: async () => [] }).connectedDevice(
          nfs(),
          'v1',
        ),
      ).toBeNull();
      expect(quiet.calls).toEqual([]);
    } finally {
      await fs.rm(base, { recursive: true, force: true });
    }
  });

  it('refuses unsafe names, qcow2 files and unsupported connection types', async () => {
    const { exec } = fakeExec({});
    const side = new ConnectorSide({
      exec,
      nfsMountBase: '/nfs',
      listMounts: async () => [mountEntry('10.0.0.1:/cinder', '/mnt/share')],
    });
    await expect(side.connect(nfs({ name: '../etc/passwd' }), 'v1')).rejects.toMatchObject({ code: 'BACKEND_ERROR' });
    await expect(side.connect(nfs({ format: 'qcow2' }), 'v1')).rejects.toThrow(/only raw/);
    await expect(
      side.connect(ConnectionInfoSchema.parse({ driver_volume_type: 'iscsi', target_iqn: 'iqn.x' }), 'v1'),
    ).rejects.toThrow(/connection type iscsi/);
    expect(
      await side.connect(ConnectionInfoSchema.parse({ driver_volume_type: 'local', device_path: '/dev/vdb' }), 'v1'),
    ).toBe('/dev/vdb');
  });

  it('force disconnect removes every loop device of the file and ignores failures', async () => {
    const calls: string[][] = [];
    const exec: ExecFn = async (file, args) => {
      calls.push([file, ...args]);
      if (args[0] === '-j')
        return {
          exitCode: 0,
          stdout: '/dev/loop1: []: (/mnt/share/volume-v1)\n/dev/loop2: []: (/mnt/share/volume-v1)\n',
          stderr: '',
        };
      return { exitCode: args[1] === '/dev/loop1' ? 1 : 0, stdout: '', stderr: 'busy' };
    };
    const side = new ConnectorSide({
      exec,
      nfsMountBase: '/nfs',
      listMounts: async () => [mountEntry('10.0.0.1:/cinder', '/mnt/share')],
    });
    await side.disconnect(nfs(), 'v1', true);
    expect(calls.filter((c) => c[1] === '-d')).toEqual([
      ['losetup', '-d', '/dev/loop1'],
      ['losetup', '-d', '/dev/loop2'],
    ]);
  });
});

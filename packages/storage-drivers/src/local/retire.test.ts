/**
 * Review RL (session 14): retiring the source's copy after a move (or the agent's retire after a
 * restart). btrfs deletes a subvolume that another mount namespace still has bind-mounted (checked
 * on this kernel: `btrfs subvolume delete` exits 0 under a container's mount), and retire looked
 * only at this namespace's mounts: the container went on writing into a deleted subvolume. And a
 * delete without a commit may come back after a power cut (btrfs-progs: "the subvolume may appear
 * again after a crash"): a live source copy again beside the target's.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { BtrfsEngine } from './btrfs';
import type { ExecFn } from '../exec';
import type { MountInfoEntry } from './processes';
import { makeBtrfsLoopPool, type BtrfsLoopPool } from './testSupport';
import { ZfsEngine } from './zfs';

const ID = '0b0e6d4c-6c52-4a43-9d8a-4e3f1c1d2a10';
const MiB = 1024 * 1024;

function recording(): { calls: string[]; exec: ExecFn } {
  const calls: string[] = [];
  return {
    calls,
    exec: (file, args) => {
      calls.push([file, ...args].join(' '));
      return Promise.resolve({ exitCode: 0, stdout: '', stderr: '' });
    },
  };
}

const POOL: MountInfoEntry = {
  majorMinor: '0:50',
  root: '/',
  mountPoint: '/pool',
  fstype: 'btrfs',
  source: '/dev/loop9',
};
const fs = {
  mkdirp: () => Promise.resolve(),
  exists: () => Promise.resolve(true),
  list: () => Promise.resolve([]),
  removeEmptyDir: () => Promise.resolve(),
  realpath: (p: string) => Promise.resolve(p),
};

describe('retire (command sequences)', () => {
  it('btrfs: the delete waits for its commit (no live copy coming back after a power cut)', async () => {
    const r = recording();
    const e = new BtrfsEngine({
      pool: '/pool',
      exec: r.exec,
      fs,
      readMounts: () => Promise.resolve([POOL]),
      readAllMounts: () => Promise.resolve([POOL]),
    });
    await e.retire(ID);
    // Then a leftover probe of changedSince (a crash's; this fake says every path exists) goes too.
    expect(r.calls).toEqual([
      `btrfs subvolume delete -c /pool/flocker/datasets/${ID}`,
      `btrfs subvolume delete /pool/flocker/probes/${ID}`,
    ]);
  });

  it("btrfs: refused while another mount namespace has it (a container's bind mount), whatever this one shows", async () => {
    const r = recording();
    const held: MountInfoEntry = { ...POOL, root: `/flocker/datasets/${ID}`, mountPoint: '/var/lib/docker/x/data' };
    const e = new BtrfsEngine({
      pool: '/pool',
      exec: r.exec,
      fs,
      readMounts: () => Promise.resolve([POOL]),
      readAllMounts: () => Promise.resolve([POOL, held]),
    });
    await expect(e.retire(ID)).rejects.toMatchObject({ code: 'DEVICE_BUSY' });
    expect(r.calls).toEqual([]);
  });

  it('ZFS: refused while another mount namespace has it', async () => {
    const r = recording();
    const held: MountInfoEntry = {
      majorMinor: '0:60',
      root: '/',
      mountPoint: '/var/lib/docker/x/data',
      fstype: 'zfs',
      source: `tank/flocker/${ID}`,
    };
    const e = new ZfsEngine({
      pool: 'tank',
      exec: r.exec,
      fs,
      readMounts: () => Promise.resolve([]),
      readAllMounts: () => Promise.resolve([held]),
      features: { listExact: true, receiveOptions: true, kernelMounts: true },
    });
    await expect(e.retire(ID)).rejects.toMatchObject({ code: 'DEVICE_BUSY' });
    expect(r.calls.filter((c) => c.includes('readonly=on'))).toEqual([]);
  });
});

describe('retire on a real btrfs pool', () => {
  let dir: string;
  let pool: BtrfsLoopPool;
  let engine: BtrfsEngine;
  const procs: ChildProcess[] = [];
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'flocker-rl-retire-'));
    pool = makeBtrfsLoopPool(dir, 'p', 256 * MiB);
    engine = new BtrfsEngine({ pool: pool.pool });
    await engine.prepare();
  }, 60_000);
  afterAll(async () => {
    for (const p of procs.filter((x) => x.exitCode === null && x.signalCode === null)) {
      const exited = new Promise((r) => p.once('exit', r));
      p.kill('SIGKILL');
      await exited;
    }
    pool?.destroy();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it('a copy a container still has mounted in its own namespace is not deleted under it; once it lets go, retired', async () => {
    const id = randomUUID();
    const path = join(dir, 'mnt', id);
    await engine.createDataset(id, 64 * MiB);
    await engine.mount(id, path);
    writeFileSync(join(path, 'data'), 'kept');
    // The container: its own mount namespace holding the volume, after the host let go.
    const holder = spawn('unshare', ['-m', '--propagation', 'private', 'sh', '-c', 'echo up; exec sleep 600'], {
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    procs.push(holder);
    await new Promise((r) => holder.stdout?.once('data', r));
    await engine.unmount(path);
    await expect(engine.retire(id)).rejects.toMatchObject({ code: 'DEVICE_BUSY' });
    expect(readFileSync(join(engine.datasetPath(id), 'data'), 'utf8')).toBe('kept');
    holder.kill('SIGKILL');
    await new Promise((r) => holder.once('exit', r));
    await engine.retire(id);
    expect(existsSync(engine.datasetPath(id))).toBe(false);
    await engine.destroyDataset(id);
  }, 60_000);
});

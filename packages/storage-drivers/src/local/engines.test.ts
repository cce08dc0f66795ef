/**
 * The engines' command sequences and parsing, with faked commands (the btrfs engine also runs for
 * real in e2e/src/local-btrfs.test.ts; ZFS runs for real only where `zfs` and its module exist).
 */
import { PassThrough } from 'node:stream';
import type { ExecFn, ExecResult } from '../exec';
import { BtrfsEngine, parseQgroupShow, parseSubvolumeList } from './btrfs';
import type { HostFs } from './hostFs';
import type { MountInfoEntry, SpawnFn, StreamProcess } from './processes';
import { parseZfsDatasets, parseZfsSnapshots, ZfsEngine, zfsAvailable } from './zfs';

const ID = '0b0e6d4c-6c52-4a43-9d8a-4e3f1c1d2a10';

interface Fake {
  calls: string[];
  exec: ExecFn;
  spawn: SpawnFn;
  fs: HostFs & { existing: Set<string> };
  mounts: MountInfoEntry[];
}

function fake(
  answer: (argv: string) => Partial<ExecResult> | undefined,
  spawnExit: (argv: string) => number = () => 0,
): Fake {
  const calls: string[] = [];
  const existing = new Set<string>();
  const f: Fake = {
    calls,
    mounts: [],
    exec: (file, args) => {
      const argv = [file, ...args].join(' ');
      calls.push(argv);
      return Promise.resolve({ exitCode: 0, stdout: '', stderr: '', ...answer(argv) });
    },
    spawn: (file, args) => {
      const argv = [file, ...args].join(' ');
      calls.push(`spawn ${argv}`);
      const stdin = new PassThrough();
      const stdout = new PassThrough();
      const done = new Promise<void>((resolve, reject) => {
        stdin.resume();
        stdin.on('end', () => {
          stdout.end('stream');
          if (spawnExit(argv) === 0) resolve();
          else reject(new Error(`${argv} failed`));
        });
      });
      done.catch(() => undefined);
      const p: StreamProcess = { stdin, stdout, done, kill: () => stdin.destroy() };
      return p;
    },
    fs: {
      existing,
      mkdirp: (p) => {
        calls.push(`mkdir -p ${p}`);
        return Promise.resolve();
      },
      exists: (p) => Promise.resolve(existing.has(p)),
      list: (p) =>
        Promise.resolve(
          [...existing]
            .filter((e) => e.startsWith(`${p}/`) && !e.slice(p.length + 1).includes('/'))
            .map((e) => e.slice(p.length + 1)),
        ),
      removeEmptyDir: () => Promise.resolve(),
      realpath: (p) => Promise.resolve(p),
    },
  };
  return f;
}

const POOL_MOUNT: MountInfoEntry = {
  majorMinor: '0:50',
  root: '/',
  mountPoint: '/pool',
  fstype: 'btrfs',
  source: '/dev/loop9',
};

function btrfs(f: Fake): BtrfsEngine {
  return new BtrfsEngine({
    pool: '/pool',
    exec: f.exec,
    spawn: f.spawn,
    fs: f.fs,
    readMounts: () => Promise.resolve(f.mounts),
  });
}

const LIST = `ID 256 gen 13 top level 5 parent_uuid -                                    received_uuid -                                    uuid aaaaaaaa-0000-0000-0000-000000000001 path flocker/datasets/${ID}
ID 257 gen 14 top level 5 parent_uuid aaaaaaaa-0000-0000-0000-000000000001 received_uuid -                                    uuid bbbbbbbb-0000-0000-0000-000000000002 path flocker/snapshots/${ID}/move-000001
ID 259 gen 17 top level 5 parent_uuid - received_uuid cccccccc-0000-0000-0000-000000000009 uuid dddddddd-0000-0000-0000-000000000004 path flocker/snapshots/${ID}/move-000002
`;
const QGROUPS = `Qgroupid    Referenced    Exclusive  Max referenced  Max exclusive   Path
--------    ----------    ---------  --------------  -------------   ----
0/5              16384        16384            none           none   <toplevel>
0/256         15745024        16384       104857600           none   flocker/datasets/${ID}
0/257         10502144        16384            none           none   flocker/snapshots/${ID}/move-000001
`;

describe('btrfs engine', () => {
  it('parses subvolume lists and qgroups', () => {
    const list = parseSubvolumeList(LIST);
    expect(list).toHaveLength(3);
    expect(list[2]).toEqual({
      id: 259,
      parentUuid: null,
      receivedUuid: 'cccccccc-0000-0000-0000-000000000009',
      uuid: 'dddddddd-0000-0000-0000-000000000004',
      path: `flocker/snapshots/${ID}/move-000002`,
    });
    const q = parseQgroupShow(QGROUPS);
    expect(q.get(256)).toEqual({ referenced: 15745024, limit: 104857600 });
    expect(q.get(257)).toEqual({ referenced: 10502144, limit: null });
  });

  it('prepare checks the file system is btrfs and turns quotas on', async () => {
    const f = fake((argv) => (argv.startsWith('stat') ? { stdout: 'btrfs\n' } : undefined));
    await btrfs(f).prepare();
    expect(f.calls).toEqual([
      'stat -f -c %T /pool',
      'mkdir -p /pool/flocker/datasets',
      'mkdir -p /pool/flocker/snapshots',
      'btrfs quota enable /pool',
    ]);
    const ext4 = fake((argv) => (argv.startsWith('stat') ? { stdout: 'ext2/ext3\n' } : undefined));
    await expect(btrfs(ext4).prepare()).rejects.toMatchObject({ code: 'POOL_UNAVAILABLE' });
  });

  it('creates a subvolume with its qgroup limit, and lists datasets with sizes', async () => {
    const f = fake((argv) =>
      argv.startsWith('btrfs subvolume list')
        ? { stdout: LIST }
        : argv.startsWith('btrfs qgroup show')
          ? { stdout: QGROUPS }
          : undefined,
    );
    const d = await btrfs(f).createDataset(ID, 104857600);
    expect(f.calls.slice(0, 2)).toEqual([
      `btrfs subvolume create /pool/flocker/datasets/${ID}`,
      `btrfs qgroup limit 104857600 /pool/flocker/datasets/${ID}`,
    ]);
    expect(d).toEqual({ datasetId: ID, size: 104857600, usedBytes: 15745024 });
    // Again (a crash between create and limit): only the limit.
    f.calls.length = 0;
    f.fs.existing.add(`/pool/flocker/datasets/${ID}`);
    await btrfs(f).createDataset(ID, 104857600);
    expect(f.calls[0]).toBe(`btrfs qgroup limit 104857600 /pool/flocker/datasets/${ID}`);
  });

  it('lists only complete (read-only) snapshots, identity = received_uuid or uuid, oldest first', async () => {
    const f = fake((argv) => (argv.startsWith('btrfs subvolume list') ? { stdout: LIST } : undefined));
    const snaps = await btrfs(f).listSnapshots(ID);
    expect(f.calls).toEqual(['btrfs subvolume list -q -u -R -r /pool']);
    expect(snaps.map((s) => [s.name, s.identity, s.received])).toEqual([
      ['move-000001', 'bbbbbbbb-0000-0000-0000-000000000002', false],
      ['move-000002', 'cccccccc-0000-0000-0000-000000000009', true],
    ]);
  });

  it('bind-mounts the subvolume and finds its mounts by the mount root', async () => {
    const f = fake(() => undefined);
    f.mounts = [POOL_MOUNT];
    f.fs.existing.add(`/pool/flocker/datasets/${ID}`);
    const e = btrfs(f);
    await e.mount(ID, '/flocker/x');
    expect(f.calls).toEqual(['mkdir -p /flocker/x', `mount --bind /pool/flocker/datasets/${ID} /flocker/x`]);
    f.mounts = [POOL_MOUNT, { ...POOL_MOUNT, root: `/flocker/datasets/${ID}`, mountPoint: '/flocker/x' }];
    expect(await e.mountPoints(ID)).toEqual(['/flocker/x']);
    f.calls.length = 0;
    await e.mount(ID, '/flocker/x'); // idempotent
    expect(f.calls).toEqual([]);
    await expect(e.destroyDataset(ID)).rejects.toMatchObject({ code: 'DEVICE_BUSY' });
    await expect(e.mount(ID, '/pool')).rejects.toMatchObject({ code: 'DEVICE_BUSY' });
  });

  it('in use while any mount namespace has the subvolume (or a directory in it) mounted', async () => {
    const f = fake(() => undefined);
    f.mounts = [POOL_MOUNT];
    let all: MountInfoEntry[] = [POOL_MOUNT];
    const e = new BtrfsEngine({
      pool: '/pool',
      exec: f.exec,
      spawn: f.spawn,
      fs: f.fs,
      readMounts: () => Promise.resolve(f.mounts),
      readAllMounts: () => Promise.resolve(all),
    });
    expect(await e.inUse(ID)).toBe(false);
    // A container's bind mount of a directory inside the volume, in its own namespace.
    all = [POOL_MOUNT, { ...POOL_MOUNT, root: `/flocker/datasets/${ID}/data`, mountPoint: '/var/lib/db' }];
    expect(await e.inUse(ID)).toBe(true);
    // Another dataset whose id starts the same is not this one; another file system neither.
    all = [
      POOL_MOUNT,
      { ...POOL_MOUNT, root: `/flocker/datasets/${ID}x`, mountPoint: '/x' },
      { ...POOL_MOUNT, majorMinor: '0:51', root: `/flocker/datasets/${ID}`, mountPoint: '/y' },
    ];
    expect(await e.inUse(ID)).toBe(false);
  });

  it('sends with -p for an incremental, and receives with -e into the snapshot directory', async () => {
    const f = fake((argv) => (argv.startsWith('btrfs subvolume list') ? { stdout: LIST } : undefined));
    const e = btrfs(f);
    const send = e.send(ID, 'move-000002', 'move-000001');
    send.stream.resume();
    await send.done;
    expect(f.calls).toContain(
      `spawn btrfs send -q -p /pool/flocker/snapshots/${ID}/move-000001 /pool/flocker/snapshots/${ID}/move-000002`,
    );
    f.calls.length = 0;
    const input = new PassThrough();
    input.end('data');
    const got = await e.receive(ID, 'move-000002', 'cccccccc-0000-0000-0000-000000000009', input);
    expect(got.identity).toBe('cccccccc-0000-0000-0000-000000000009');
    expect(f.calls).toContain(`spawn btrfs receive -e /pool/flocker/snapshots/${ID}`);
  });

  it('a receive whose result is not the sender snapshot is removed (INTEGRITY), as is a failed one', async () => {
    const f = fake((argv) => (argv.startsWith('btrfs subvolume list') ? { stdout: LIST } : undefined));
    const e = btrfs(f);
    const input = new PassThrough();
    input.end('data');
    // The list shows move-000002 with another identity after the receive.
    f.fs.existing.add(`/pool/flocker/snapshots/${ID}/move-000003`);
    await expect(e.receive(ID, 'move-000003', 'ffffffff-0000-0000-0000-000000000000', input)).rejects.toMatchObject({
      code: 'INTEGRITY',
    });
    expect(f.calls).toContain(`btrfs subvolume delete /pool/flocker/snapshots/${ID}/move-000003`);

    const failing = fake(
      (argv) => (argv.startsWith('btrfs subvolume list') ? { stdout: '' } : undefined),
      (argv) => (argv.includes('receive') ? 1 : 0),
    );
    failing.fs.existing.add(`/pool/flocker/snapshots/${ID}/move-000004`); // a partial left by a cut-off stream
    const input2 = new PassThrough();
    input2.end('truncated');
    await expect(btrfs(failing).receive(ID, 'move-000004', 'x', input2)).rejects.toMatchObject({
      code: 'TRANSFER_FAILED',
    });
    // Removed before the receive (an earlier leftover) and after it failed.
    expect(
      failing.calls.filter((c) => c === `btrfs subvolume delete /pool/flocker/snapshots/${ID}/move-000004`).length,
    ).toBe(2);
  });

  it('promote makes a writable snapshot of the received one, idempotently', async () => {
    const f = fake((argv) =>
      argv.startsWith('btrfs subvolume list') ? { stdout: LIST.split('\n').slice(1).join('\n') } : undefined,
    );
    f.mounts = [POOL_MOUNT];
    await btrfs(f).promote(ID, 'move-000002', 2 ** 30);
    expect(f.calls.filter((c) => !c.startsWith('btrfs subvolume list') && !c.startsWith('btrfs qgroup show'))).toEqual([
      `btrfs subvolume snapshot /pool/flocker/snapshots/${ID}/move-000002 /pool/flocker/datasets/${ID}`,
      `btrfs qgroup limit 1073741824 /pool/flocker/datasets/${ID}`,
    ]);
    // The live copy is a snapshot of move-000002 already: only the limit.
    const promoted = `${LIST.split('\n').slice(1).join('\n')}ID 260 gen 18 top level 5 parent_uuid dddddddd-0000-0000-0000-000000000004 received_uuid - uuid eeeeeeee-0000-0000-0000-000000000005 path flocker/datasets/${ID}\n`;
    const g = fake((argv) => (argv.startsWith('btrfs subvolume list') ? { stdout: promoted } : undefined));
    g.mounts = [POOL_MOUNT];
    await btrfs(g).promote(ID, 'move-000002', 2 ** 30);
    expect(g.calls.some((c) => c.includes('subvolume snapshot') || c.includes('subvolume delete'))).toBe(false);
  });

  it('refuses ids and names that are not safe path components', async () => {
    const e = btrfs(fake(() => undefined));
    await expect(e.createDataset('../etc', 1)).rejects.toMatchObject({ code: 'UNKNOWN_DATASET' });
    await expect(e.createSnapshot(ID, '../x')).rejects.toMatchObject({ code: 'UNKNOWN_SNAPSHOT' });
  });
});

describe('ZFS engine (command sequences)', () => {
  const zfs = (f: Fake) =>
    new ZfsEngine({
      pool: 'tank/data',
      exec: f.exec,
      spawn: f.spawn,
      fs: f.fs,
      readMounts: () => Promise.resolve(f.mounts),
    });
  const FS = `tank/data/flocker/${ID}`;

  it('parses zfs list output (refquota 0 is no limit)', () => {
    expect(
      parseZfsDatasets(
        `tank/data/flocker\t0\t24576\toff\n${FS}\t1073741824\t5242880\toff\ntank/data/flocker/${ID}/child\t0\t1\toff\ntank/data/flocker/0b0e6d4c-6c52-4a43-9d8a-4e3f1c1d2a11\t0\t1\ton\n`,
        'tank/data/flocker',
      ),
    ).toEqual([{ datasetId: ID, size: 1073741824, usedBytes: 5242880 }]);
    expect(parseZfsSnapshots(`${FS}@move-000001\t123456789\n${FS}@move-000002\t987654321\n`, FS, ID)).toEqual([
      { datasetId: ID, name: 'move-000001', identity: '123456789', received: false },
      { datasetId: ID, name: 'move-000002', identity: '987654321', received: false },
    ]);
  });

  it('prepare: the pool must exist; the flocker parent is made once', async () => {
    const f = fake((argv) =>
      argv === 'zfs list -H -o name tank/data/flocker' ? { exitCode: 1, stderr: 'does not exist' } : undefined,
    );
    await zfs(f).prepare();
    expect(f.calls).toEqual([
      'zpool list -H -o name tank',
      'zfs list -H -o name tank/data/flocker',
      'zfs create -p -o mountpoint=none tank/data/flocker',
    ]);
    const none = fake((argv) =>
      argv.startsWith('zpool') ? { exitCode: 1, stderr: "cannot open 'tank': no such pool" } : undefined,
    );
    await expect(zfs(none).prepare()).rejects.toMatchObject({ code: 'POOL_UNAVAILABLE' });
  });

  it('creates a legacy-mounted file system with refquota, mounts it with mount -t zfs', async () => {
    const f = fake((argv) => (argv === `zfs list -H -o name ${FS}` ? { exitCode: 1 } : undefined));
    const e = zfs(f);
    await e.createDataset(ID, 1073741824);
    expect(f.calls.slice(0, 2)).toEqual([
      `zfs list -H -o name ${FS}`,
      `zfs create -o mountpoint=legacy -o refquota=1073741824 ${FS}`,
    ]);
    f.calls.length = 0;
    await e.mount(ID, '/flocker/x');
    expect(f.calls).toEqual(['mkdir -p /flocker/x', `mount -t zfs ${FS} /flocker/x`]);
    f.mounts = [{ majorMinor: '0:60', root: '/', mountPoint: '/flocker/x', fstype: 'zfs', source: FS }];
    expect(await e.mountPoints(ID)).toEqual(['/flocker/x']);
  });

  it('snapshots, sends incrementally with -i, receives readonly and unmounted, checks the guid', async () => {
    const f = fake((argv) =>
      argv.startsWith('zfs list -H -p -t snapshot')
        ? { stdout: `${FS}@move-000001\t111\n${FS}@move-000002\t222\n` }
        : undefined,
    );
    const e = zfs(f);
    await e.createSnapshot(ID, 'move-000002');
    expect(f.calls).toContain(`zfs list -H -o name ${FS}@move-000002`);
    const send = e.send(ID, 'move-000002', 'move-000001');
    send.stream.resume();
    await send.done;
    expect(f.calls).toContain(`spawn zfs send -i ${FS}@move-000001 ${FS}@move-000002`);
    const input = new PassThrough();
    input.end('x');
    await e.receive(ID, 'move-000002', '222', input);
    expect(f.calls).toContain(`spawn zfs receive -F -u -o readonly=on ${FS}`);
    const input2 = new PassThrough();
    input2.end('x');
    await expect(e.receive(ID, 'move-000002', '999', input2)).rejects.toMatchObject({ code: 'INTEGRITY' });
    expect(f.calls).toContain(`zfs destroy ${FS}@move-000002`);
  });

  it('promote makes the received file system writable with its refquota; retire makes it read-only', async () => {
    const f = fake(() => undefined);
    const e = zfs(f);
    await e.promote(ID, 'move-000002', 2 ** 30);
    expect(f.calls.slice(0, 3)).toEqual([
      `zfs list -H -o name ${FS}@move-000002`,
      `zfs set readonly=off ${FS}`,
      `zfs set refquota=1073741824 ${FS}`,
    ]);
    f.calls.length = 0;
    await e.retire(ID);
    expect(f.calls).toEqual([`zfs list -H -o name ${FS}`, `zfs set readonly=on ${FS}`]);
  });

  it('destroy refuses while mounted, else zfs destroy -r', async () => {
    const f = fake(() => undefined);
    const e = zfs(f);
    await e.destroyDataset(ID);
    expect(f.calls).toEqual([`zfs list -H -o name ${FS}`, `zfs destroy -r ${FS}`]);
    f.mounts = [{ majorMinor: '0:60', root: '/', mountPoint: '/flocker/x', fstype: 'zfs', source: FS }];
    await expect(e.destroyDataset(ID)).rejects.toMatchObject({ code: 'DEVICE_BUSY' });
  });
});

describe('ZFS engine on a real pool', () => {
  // The one kind of skip issue 24 allows: ZFS needs its kernel module, which this machine lacks.
  let reason: string | undefined;
  beforeAll(async () => {
    const r = await zfsAvailable();
    reason = r.ok ? undefined : r.reason;
    if (reason !== undefined) console.log(`ZFS engine real-run test skipped: ${reason}`);
  });

  it('lists the datasets of a pool named by FLOCKER_TEST_ZFS_POOL (where zfs exists)', async () => {
    if (reason !== undefined) return;
    const pool = process.env.FLOCKER_TEST_ZFS_POOL;
    if (pool === undefined) {
      console.log('ZFS engine real-run test skipped: zfs exists but FLOCKER_TEST_ZFS_POOL names no pool to use');
      return;
    }
    const e = new ZfsEngine({ pool });
    await e.prepare();
    await e.createDataset(ID, 64 * 1024 * 1024);
    try {
      const snap = await e.createSnapshot(ID, 'move-000001');
      expect((await e.listSnapshots(ID)).map((s) => s.identity)).toEqual([snap.identity]);
    } finally {
      await e.destroyDataset(ID);
    }
  });
});

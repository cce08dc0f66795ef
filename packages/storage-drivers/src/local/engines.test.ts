/**
 * The engines' command sequences and parsing, with faked commands (the btrfs engine also runs for
 * real in e2e/src/local-btrfs.test.ts). The ZFS engine's both command forms (OpenZFS, older zfs such
 * as zfs-fuse) here, and the engine contract for real on two pools at the end: kernel zfs where it
 * exists, else zfs-fuse (started by ensureZfs).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import type { ExecFn, ExecResult } from '../exec';
import { BtrfsEngine, parseQgroupShow, parseSubvolumeList } from './btrfs';
import type { HostFs } from './hostFs';
import type { MountInfoEntry, SpawnFn, StreamProcess } from './processes';
import { WRITE_OUT_SCRIPT } from './writeOutHelper';
import { SourceChangedAfterPromoteError } from './engine';
import { localEngineContract } from './contract';
import {
  parseZfsDatasets,
  parseZfsSnapshots,
  probeZfsFeatures,
  ZfsEngine,
  zfsAvailable,
  zfsGetAsList,
  type ZfsFeatures,
} from './zfs';
import { ensureZfs, makeZfsFilePool, type ZfsFilePool } from './zfsTestSupport';

// The real-pool tests at the end run zfs commands (zfs-fuse takes a moment for some).
jest.setTimeout(60_000);

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
      gen: 17,
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
    // ro looked at first (a retire killed with its ro set leaves a live copy read-only: RV4 finding 1).
    expect(f.calls).toEqual([
      `btrfs property get -ts /pool/flocker/datasets/${ID} ro`,
      'mkdir -p /flocker/x',
      `mount --bind /pool/flocker/datasets/${ID} /flocker/x`,
    ]);
    f.mounts = [POOL_MOUNT, { ...POOL_MOUNT, root: `/flocker/datasets/${ID}`, mountPoint: '/flocker/x' }];
    expect(await e.mountPoints(ID)).toEqual(['/flocker/x']);
    f.calls.length = 0;
    await e.mount(ID, '/flocker/x'); // idempotent
    expect(f.calls).toEqual([]);
    await expect(e.destroyDataset(ID)).rejects.toMatchObject({ code: 'DEVICE_BUSY' });
    await expect(e.mount(ID, '/pool')).rejects.toMatchObject({ code: 'DEVICE_BUSY' });
  });

  it('a live copy the kernel says is writable: mounted without asking btrfs for its ro flag (review FR finding 13)', async () => {
    const f = fake(() => undefined);
    f.mounts = [POOL_MOUNT];
    f.fs.existing.add(`/pool/flocker/datasets/${ID}`);
    const asked: string[] = [];
    f.fs.writable = (p) => {
      asked.push(p);
      return Promise.resolve(true);
    };
    await btrfs(f).mount(ID, '/flocker/x');
    expect(asked).toEqual([`/pool/flocker/datasets/${ID}`]);
    expect(f.calls).toEqual(['mkdir -p /flocker/x', `mount --bind /pool/flocker/datasets/${ID} /flocker/x`]);
  });

  it('a live copy left read-only (a retire killed after its ro, EROFS) or not known: btrfs asked, writable again before the bind mount', async () => {
    for (const writable of [() => Promise.resolve(false), undefined]) {
      const f = fake((argv) => (argv.startsWith('btrfs property get') ? { stdout: 'ro=true\n' } : undefined));
      f.mounts = [POOL_MOUNT];
      f.fs.existing.add(`/pool/flocker/datasets/${ID}`);
      if (writable !== undefined) f.fs.writable = writable;
      await btrfs(f).mount(ID, '/flocker/x');
      expect(f.calls).toEqual([
        `btrfs property get -ts /pool/flocker/datasets/${ID} ro`,
        `btrfs property set -ts /pool/flocker/datasets/${ID} ro false`,
        'mkdir -p /flocker/x',
        `mount --bind /pool/flocker/datasets/${ID} /flocker/x`,
      ]);
    }
  });

  it('two mounts of one subvolume at once (the agent and its transfer listener): one bind mount, not two stacked', async () => {
    const f: Fake = fake((argv) => {
      if (argv === `mount --bind /pool/flocker/datasets/${ID} /flocker/x`)
        f.mounts = [POOL_MOUNT, { ...POOL_MOUNT, root: `/flocker/datasets/${ID}`, mountPoint: '/flocker/x' }];
      return undefined;
    });
    f.mounts = [POOL_MOUNT];
    f.fs.existing.add(`/pool/flocker/datasets/${ID}`);
    const e = btrfs(f);
    await Promise.all([e.mount(ID, '/flocker/x'), e.mount(ID, '/flocker/x')]);
    expect(f.calls.filter((c) => c.startsWith('mount '))).toEqual([
      `mount --bind /pool/flocker/datasets/${ID} /flocker/x`,
    ]);
    // A failed one does not stop the next.
    await expect(e.mount(ID, '/pool')).rejects.toMatchObject({ code: 'DEVICE_BUSY' });
    f.calls.length = 0;
    await e.unmount('/flocker/x');
    expect(f.calls).toEqual(['umount /flocker/x']);
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
    // The write-out while it comes (and once after) goes through one helper process, not a process each.
    expect(f.calls.filter((c) => c.startsWith('spawn sh'))).toEqual([`spawn sh -c ${WRITE_OUT_SCRIPT} /pool`]);
    expect(f.calls.filter((c) => c.startsWith('btrfs filesystem sync'))).toEqual([]);
  });

  it("settle writes the pool out and waits for it (the mover asks before the release); a failure is the caller's to see", async () => {
    const f = fake(() => undefined);
    await btrfs(f).settle(ID);
    expect(f.calls).toEqual(['btrfs filesystem sync /pool']);
    const failing = fake((argv) =>
      argv.startsWith('btrfs filesystem sync') ? { exitCode: 1, stderr: 'I/O error' } : undefined,
    );
    await expect(btrfs(failing).settle(ID)).rejects.toThrow(/I\/O error/);
    await expect(btrfs(f).settle('not-an-id')).rejects.toMatchObject({ code: 'UNKNOWN_DATASET' });
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

  it('changedSince (RV4 finding 2): a probe snapshot of the live copy, a send diff from the snapshot, the probe deleted', async () => {
    const live = `/pool/flocker/datasets/${ID}`;
    const snapshot = `/pool/flocker/snapshots/${ID}/move-000001`;
    const probe = `/pool/flocker/probes/${ID}`;
    const f = fake(() => undefined);
    f.fs.existing.add(live).add(snapshot);
    // This fake's send answers no stream: an error (the mover retries), never "unchanged".
    await expect(btrfs(f).changedSince(ID, 'move-000001')).rejects.toMatchObject({ code: 'TRANSFER_FAILED' });
    expect(f.calls).toEqual([
      'mkdir -p /pool/flocker/probes',
      `btrfs subvolume snapshot -r ${live} ${probe}`,
      `spawn btrfs send -q --no-data -p ${snapshot} ${probe}`,
    ]);
    // The send failing: an error too.
    const failing = fake(
      () => undefined,
      () => 1,
    );
    failing.fs.existing.add(live).add(snapshot);
    await expect(btrfs(failing).changedSince(ID, 'move-000001')).rejects.toThrow();
    // The snapshot gone: not provably unchanged; no live copy: an error, never an answer.
    const gone = fake(() => undefined);
    gone.fs.existing.add(live);
    expect(await btrfs(gone).changedSince(ID, 'move-000001')).toBe(true);
    await expect(btrfs(fake(() => undefined)).changedSince(ID, 'move-000001')).rejects.toMatchObject({
      code: 'UNKNOWN_DATASET',
    });
  });

  it('retire checked: ro, probe, diff; the check failing (no answer) leaves the copy live and writable again', async () => {
    const live = `/pool/flocker/datasets/${ID}`;
    const f = fake(() => undefined);
    f.fs.existing.add(live).add(`/pool/flocker/snapshots/${ID}/move-000001`);
    f.mounts = [POOL_MOUNT];
    // This fake's send answers no stream: an error, not an answer.
    await expect(btrfs(f).retire(ID, { unchangedSince: 'move-000001' })).rejects.toMatchObject({
      code: 'TRANSFER_FAILED',
    });
    expect(f.calls.filter((c) => c.startsWith('btrfs property') || c.includes('subvolume delete -c'))).toEqual([
      `btrfs property set -ts ${live} ro true`,
      `btrfs property set -ts ${live} ro false`,
    ]);
  });

  it('refuses ids and names that are not safe path components', async () => {
    const e = btrfs(fake(() => undefined));
    await expect(e.createDataset('../etc', 1)).rejects.toMatchObject({ code: 'UNKNOWN_DATASET' });
    await expect(e.createSnapshot(ID, '../x')).rejects.toMatchObject({ code: 'UNKNOWN_SNAPSHOT' });
  });
});

const OPENZFS: ZfsFeatures = { listExact: true, receiveOptions: true, kernelMounts: true };
/** zfs-fuse 0.7: no `list -p`, no `receive -u/-o`, mounted by its daemon. */
const OLD_ZFS: ZfsFeatures = { listExact: false, receiveOptions: false, kernelMounts: false };

describe('ZFS engine (command sequences)', () => {
  const zfs = (f: Fake, features: ZfsFeatures = OPENZFS) =>
    new ZfsEngine({
      pool: 'tank/data',
      exec: f.exec,
      spawn: f.spawn,
      fs: f.fs,
      readMounts: () => Promise.resolve(f.mounts),
      features,
    });
  const FS = `tank/data/flocker/${ID}`;

  it('parses zfs list output (refquota 0 is no limit); read-only or mountpoint none is no live copy', () => {
    expect(
      parseZfsDatasets(
        `tank/data/flocker\t0\t24576\toff\tnone\n${FS}\t1073741824\t5242880\toff\tlegacy\ntank/data/flocker/${ID}/child\t0\t1\toff\tlegacy\ntank/data/flocker/0b0e6d4c-6c52-4a43-9d8a-4e3f1c1d2a11\t0\t1\ton\tlegacy\n` +
          // Being received without -o (zfs-fuse): writable, mountpoint inherited from the parent.
          `tank/data/flocker/0b0e6d4c-6c52-4a43-9d8a-4e3f1c1d2a12\t0\t1\toff\tnone\n` +
          `tank/data/flocker/0b0e6d4c-6c52-4a43-9d8a-4e3f1c1d2a13\t0\t1\toff\t/flocker/x\n`,
        'tank/data/flocker',
      ),
    ).toEqual([
      { datasetId: ID, size: 1073741824, usedBytes: 5242880 },
      { datasetId: '0b0e6d4c-6c52-4a43-9d8a-4e3f1c1d2a13', size: null, usedBytes: 1 },
    ]);
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
    // Mounted, it may be written: no longer marked as any snapshot's content (lineage).
    expect(f.calls).toEqual([
      'mkdir -p /flocker/x',
      `zfs inherit flocker:same-as ${FS}`,
      `zfs get -H -o value flocker:retiring ${FS}`,
      `mount -t zfs ${FS} /flocker/x`,
    ]);
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
    expect(f.calls).toContain(`spawn zfs receive -F -u -o readonly=on -o mountpoint=legacy ${FS}`);
    const input2 = new PassThrough();
    input2.end('x');
    await expect(e.receive(ID, 'move-000002', '999', input2)).rejects.toMatchObject({ code: 'INTEGRITY' });
    expect(f.calls).toContain(`zfs destroy ${FS}@move-000002`);
  });

  it("a snapshot marks the file system as its content (lineage) only when nothing has it mounted, a container's mount too", async () => {
    const snapshots = (argv: string) =>
      argv.startsWith('zfs list -H -p -t snapshot') ? { stdout: `${FS}@move-000003\t333\n` } : undefined;
    const inContainer: MountInfoEntry = {
      majorMinor: '0:60',
      root: '/',
      mountPoint: '/c/data',
      fstype: 'zfs',
      source: FS,
    };
    for (const [what, host, all, marked] of [
      ['nothing', [], [], true],
      ['the host', [{ ...inContainer, mountPoint: '/flocker/x' }], [], false],
      ['only a container', [], [inContainer], false],
    ] as const) {
      const f = fake((argv) => (argv === `zfs list -H -o name ${FS}@move-000003` ? { exitCode: 1 } : snapshots(argv)));
      f.mounts = [...host];
      const e = new ZfsEngine({
        pool: 'tank/data',
        exec: f.exec,
        spawn: f.spawn,
        fs: f.fs,
        readMounts: () => Promise.resolve(f.mounts),
        readAllMounts: () => Promise.resolve([...host, ...all]),
        features: OPENZFS,
      });
      await e.createSnapshot(ID, 'move-000003');
      expect({ what, marked: f.calls.includes(`zfs set flocker:same-as=333 ${FS}`) }).toEqual({ what, marked });
    }
  });

  it('lineage: OpenZFS keeps the same-as mark only with nothing written since its snapshot (a mount Flocker did not make); zfs-fuse keeps it', async () => {
    const answers =
      (written: string | undefined, snapshots = `${FS}@move-000002\t222\n${FS}@move-000003\t333\n`) =>
      (argv: string): Partial<ExecResult> | undefined => {
        if (argv === `zfs get -H -o value readonly,mountpoint ${FS}`) return { stdout: 'off\nlegacy\n' };
        if (argv === `zfs get -H -o property,value flocker:from,flocker:same-as ${FS}`)
          return { stdout: 'flocker:from\t222\nflocker:same-as\t333\n' };
        if (argv.startsWith('zfs list -H -p -t snapshot')) return { stdout: snapshots };
        if (argv.startsWith('zfs get -H -p -r -d 1 -o name,property,value createtxg,guid'))
          return { stdout: `${FS}@move-000003\tcreatetxg\t9\n${FS}@move-000003\tguid\t333\n` };
        if (argv === `zfs get -H -p -o value written@move-000003 ${FS}`) return { stdout: `${written}\n` };
        return undefined;
      };
    for (const [written, sameAs] of [
      ['0', '333'],
      // An admin's mount and write since the snapshot: 128 KiB written.
      ['131072', null],
    ] as const) {
      const f = fake(answers(written));
      expect(await zfs(f).lineage(ID)).toEqual({ from: '222', sameAs, snapshots: ['222', '333'] });
      // Synced first: `written` counts synced txgs only.
      expect(f.calls.filter((c) => c.includes('written') || c.startsWith('zpool sync'))).toEqual([
        'zpool sync tank',
        `zfs get -H -p -o value written@move-000003 ${FS}`,
      ]);
    }
    // The marked snapshot gone: what was written since it is not known.
    const gone = fake(answers('0', `${FS}@move-000002\t222\n`));
    expect((await zfs(gone).lineage(ID))?.sameAs).toBeNull();
    expect(gone.calls.filter((c) => c.includes('written'))).toEqual([]);
    // zfs-fuse: no written property; the mark stands (README: a mount outside Flocker voids it).
    const old = fake(answers(undefined));
    expect((await zfs(old, OLD_ZFS).lineage(ID))?.sameAs).toBe('333');
    expect(old.calls.filter((c) => c.includes('written') || c.startsWith('zpool sync'))).toEqual([]);
  });

  it('changedSince (RV 2): OpenZFS written@<snapshot> after a zpool sync; zfs-fuse cannot tell (null)', async () => {
    const answers =
      (written: Partial<ExecResult>, exists = true) =>
      (argv: string): Partial<ExecResult> | undefined => {
        if (argv === `zfs get -H -p -o value written@move-000003 ${FS}`) return written;
        if (argv === `zfs list -H -o name ${FS}@move-000003`) return exists ? {} : { exitCode: 1 };
        return undefined;
      };
    for (const [stdout, changed] of [
      ['0\n', false],
      ['4096\n', true],
    ] as const) {
      const f = fake(answers({ stdout }));
      expect(await zfs(f).changedSince(ID, 'move-000003')).toBe(changed);
      // `written` counts synced transaction groups only: the pool synced first.
      expect(f.calls).toEqual(['zpool sync tank', `zfs get -H -p -o value written@move-000003 ${FS}`]);
    }
    // The snapshot gone: not provably unchanged.
    const gone = fake(answers({ exitCode: 1, stderr: 'could not find snapshot' }, false));
    expect(await zfs(gone).changedSince(ID, 'move-000003')).toBe(true);
    // Anything else unreadable: an error (the mover retries), never "unchanged".
    for (const bad of [{ stdout: '-\n' }, { stdout: '' }, { exitCode: 1, stderr: 'I/O error' }]) {
      await expect(zfs(fake(answers(bad))).changedSince(ID, 'move-000003')).rejects.toThrow();
    }
    const noSync = fake((argv) =>
      argv.startsWith('zpool sync') ? { exitCode: 1, stderr: 'no such pool' } : undefined,
    );
    await expect(zfs(noSync).changedSince(ID, 'move-000003')).rejects.toThrow();
    // zfs-fuse: no written property: not known, nothing run.
    const old = fake(() => undefined);
    expect(await zfs(old, OLD_ZFS).changedSince(ID, 'move-000003')).toBeNull();
    expect(old.calls).toEqual([]);
  });

  it('promote makes the received file system writable with its refquota; retire makes it read-only', async () => {
    const snapshots = (argv: string) =>
      argv.startsWith('zfs list -H -p -t snapshot') ? { stdout: `${FS}@move-000002\t222\n` } : undefined;
    const f = fake(snapshots);
    const e = zfs(f);
    await e.promote(ID, 'move-000002', 2 ** 30);
    expect(f.calls[0]).toBe(`zfs get -H -o name,value mountpoint ${FS}@move-000002 ${FS}`);
    // Its lineage recorded before it is writable (the snapshot's guid: made from it, unchanged since).
    expect(f.calls.filter((c) => c.startsWith('zfs set'))).toEqual([
      `zfs set flocker:from=222 ${FS}`,
      `zfs set flocker:same-as=222 ${FS}`,
      `zfs set readonly=off ${FS}`,
      `zfs set refquota=1073741824 ${FS}`,
    ]);
    // A receive cut before its legacy (zfs-fuse) left mountpoint none: legacy first, else it is never listed live.
    const cut = fake((argv) =>
      argv.startsWith('zfs get -H -o name,value mountpoint')
        ? { stdout: `${FS}@move-000002\t-\n${FS}\tnone\n` }
        : argv === `zfs get -H -o value mountpoint ${FS}`
          ? { stdout: 'none\n' }
          : snapshots(argv),
    );
    await zfs(cut).promote(ID, 'move-000002', 2 ** 30);
    expect(cut.calls.filter((c) => c.startsWith('zfs set')).slice(0, 4)).toEqual([
      `zfs set mountpoint=legacy ${FS}`,
      `zfs set flocker:from=222 ${FS}`,
      `zfs set flocker:same-as=222 ${FS}`,
      `zfs set readonly=off ${FS}`,
    ]);
    // The same for a retired copy made live again.
    cut.calls.length = 0;
    await zfs(cut).createDataset(ID, 2 ** 30);
    expect(cut.calls.slice(0, 7)).toEqual([
      `zfs list -H -o name ${FS}`,
      `zfs set refquota=1073741824 ${FS}`,
      `zfs get -H -o value mountpoint ${FS}`,
      `zfs set mountpoint=legacy ${FS}`,
      // Made live as it is, not by a promote: its lineage not known.
      `zfs inherit flocker:from ${FS}`,
      `zfs inherit flocker:same-as ${FS}`,
      `zfs set readonly=off ${FS}`,
    ]);
    // No such snapshot: the get fails.
    const none = fake((argv) =>
      argv.startsWith('zfs get') ? { exitCode: 1, stderr: 'dataset does not exist' } : undefined,
    );
    await expect(zfs(none).promote(ID, 'move-000009', 2 ** 30)).rejects.toMatchObject({ code: 'UNKNOWN_SNAPSHOT' });
    expect(none.calls).toHaveLength(1);
    f.calls.length = 0;
    await e.retire(ID);
    expect(f.calls).toEqual([`zfs list -H -o name ${FS}`, `zfs set readonly=on ${FS}`]);
  });

  it('retained: read-only file systems, and writable ones at mountpoint none (a receive without -o cut before its sets)', async () => {
    // A crash between a zfs-fuse receive's stream and its readonly=on leaves a writable file system
    // at none: no live copy (parseZfsDatasets), so it must be retained, else a deleted dataset's
    // leftover is never destroyed and a replica there is never found (replicaHere).
    const f = fake((argv) =>
      argv.startsWith('zfs list -H -t filesystem -d 1 -o name,readonly,mountpoint')
        ? {
            stdout:
              `tank/data/flocker\toff\tnone\n${FS}\toff\tlegacy\n` +
              `tank/data/flocker/0b0e6d4c-6c52-4a43-9d8a-4e3f1c1d2a11\ton\tlegacy\n` +
              `tank/data/flocker/0b0e6d4c-6c52-4a43-9d8a-4e3f1c1d2a12\toff\tnone\n` +
              `tank/data/flocker/0b0e6d4c-6c52-4a43-9d8a-4e3f1c1d2a13\toff\t/flocker/x\n`,
          }
        : undefined,
    );
    expect(await zfs(f).listRetained()).toEqual([
      '0b0e6d4c-6c52-4a43-9d8a-4e3f1c1d2a11',
      '0b0e6d4c-6c52-4a43-9d8a-4e3f1c1d2a12',
    ]);
    // And the copies kept aside (keepAside), data of their datasets too.
    expect(f.calls).toEqual([
      'zfs list -H -t filesystem -d 1 -o name,readonly,mountpoint,flocker:retiring tank/data/flocker',
      'zfs list -H -t filesystem -d 1 -o name tank/data/flocker-diverged',
    ]);
  });

  it('retire checked (RV4 finding 1): marked, readonly=on (every writer, open fds too), pool synced, written@ read, mark cleared', async () => {
    let written = '0';
    const f = fake((argv) =>
      argv === `zfs get -H -o value readonly,flocker:retiring ${FS}`
        ? { stdout: 'off\n-\n' }
        : argv === `zfs get -H -p -o value written@move-000002 ${FS}`
          ? { stdout: `${written}\n` }
          : undefined,
    );
    const e = zfs(f);
    await e.retire(ID, { unchangedSince: 'move-000002' });
    expect(f.calls).toEqual([
      `zfs list -H -o name ${FS}`,
      `zfs get -H -o value readonly,flocker:retiring ${FS}`,
      `zfs set flocker:retiring=move-000002 ${FS}`,
      `zfs set readonly=on ${FS}`,
      'zpool sync tank',
      `zfs get -H -p -o value written@move-000002 ${FS}`,
      `zfs inherit flocker:retiring ${FS}`,
    ]);
    // Written since: writable again, the mark cleared, refused (the copy stays live).
    written = '4096';
    f.calls.length = 0;
    const refused = e.retire(ID, { unchangedSince: 'move-000002' });
    await expect(refused).rejects.toBeInstanceOf(SourceChangedAfterPromoteError);
    // Its own code, next to the move's SOURCE_WRITTEN_UNSEEN warning: not a failed transfer (review FR finding 5).
    await expect(refused).rejects.toMatchObject({ code: 'SOURCE_CHANGED' });
    expect(f.calls.slice(-2)).toEqual([`zfs set readonly=off ${FS}`, `zfs inherit flocker:retiring ${FS}`]);
    // The check failing (no answer): writable again, the mark cleared, not retired.
    const failing = fake((argv) =>
      argv === `zfs get -H -o value readonly,flocker:retiring ${FS}`
        ? { stdout: 'off\n-\n' }
        : argv === `zfs get -H -p -o value written@move-000002 ${FS}`
          ? { exitCode: 1, stderr: 'I/O error' }
          : argv === `zfs get -H -o value flocker:retiring ${FS}`
            ? { stdout: 'move-000002\n' }
            : undefined,
    );
    await expect(zfs(failing).retire(ID, { unchangedSince: 'move-000002' })).rejects.toMatchObject({
      code: 'POOL_UNAVAILABLE',
    });
    expect(failing.calls.slice(-2)).toEqual([`zfs set readonly=off ${FS}`, `zfs inherit flocker:retiring ${FS}`]);
    // zfs-fuse (no written): retired on the scan alone, as before.
    const old = fake(() => undefined);
    await zfs(old, OLD_ZFS).retire(ID, { unchangedSince: 'move-000002' });
    expect(old.calls).toEqual([`zfs list -H -o name ${FS}`, `zfs set readonly=on ${FS}`]);
    // Retired already (read-only, no mark): nothing more.
    const done = fake((argv) =>
      argv === `zfs get -H -o value readonly,flocker:retiring ${FS}` ? { stdout: 'on\n-\n' } : undefined,
    );
    await zfs(done).retire(ID, { unchangedSince: 'move-000002' });
    expect(done.calls).toEqual([`zfs list -H -o name ${FS}`, `zfs get -H -o value readonly,flocker:retiring ${FS}`]);
  });

  it('a retire killed between its readonly=on and its check: still a live copy (listed, not retained, never received over); mount makes it writable', async () => {
    const retiringFs = `tank/data/flocker/0b0e6d4c-6c52-4a43-9d8a-4e3f1c1d2a11`;
    expect(
      parseZfsDatasets(
        `${FS}\t0\t1\ton\tlegacy\tmove-000002\n${retiringFs}\t0\t1\ton\tlegacy\t-\n`,
        'tank/data/flocker',
      ),
    ).toEqual([{ datasetId: ID, size: null, usedBytes: 1 }]);
    const f = fake((argv) =>
      argv.startsWith('zfs list -H -t filesystem -d 1 -o name,readonly,mountpoint,flocker:retiring')
        ? { stdout: `${FS}\ton\tlegacy\tmove-000002\n${retiringFs}\ton\tlegacy\t-\n` }
        : argv === `zfs get -H -o value flocker:retiring ${FS}`
          ? { stdout: 'move-000002\n' }
          : undefined,
    );
    const e = zfs(f);
    expect(await e.listRetained()).toEqual([retiringFs.slice('tank/data/flocker/'.length)]);
    // receive/promote refuse over a live copy (isLive): the marked read-only one is one.
    const live = fake((argv) =>
      argv === `zfs get -H -o value readonly,mountpoint ${FS}`
        ? { stdout: 'on\nlegacy\n' }
        : argv === `zfs get -H -o value flocker:retiring ${FS}`
          ? { stdout: 'move-000002\n' }
          : undefined,
    );
    const isLive = (engine: ZfsEngine, fs: string): Promise<boolean> =>
      (engine as unknown as { isLive(fs: string): Promise<boolean> }).isLive(fs);
    expect(await isLive(zfs(live), FS)).toBe(true);
    expect(await isLive(zfs(live), retiringFs)).toBe(false);
    f.calls.length = 0;
    await e.mount(ID, '/flocker/x');
    expect(f.calls).toEqual([
      'mkdir -p /flocker/x',
      `zfs inherit flocker:same-as ${FS}`,
      `zfs get -H -o value flocker:retiring ${FS}`,
      `zfs set readonly=off ${FS}`,
      `zfs inherit flocker:retiring ${FS}`,
      `mount -t zfs ${FS} /flocker/x`,
    ]);
  });

  it('the kept-aside folder found absent is not listed again every turn: only this engine makes it (keepAside), which looks again', async () => {
    // Session 16 (final review s15): listRetained ran `zfs list <pool>/flocker-diverged` every agent turn
    // although that folder rarely exists.
    const DIVERGED = 'zfs list -H -t filesystem -d 1 -o name tank/data/flocker-diverged';
    let made = false;
    const f = fake((argv) => {
      if (argv === DIVERGED || argv === 'zfs list -H -o name tank/data/flocker-diverged')
        return made
          ? { stdout: `tank/data/flocker-diverged\ntank/data/flocker-diverged/${ID}-123\n` }
          : { exitCode: 1, stderr: "cannot open 'tank/data/flocker-diverged': dataset does not exist" };
      if (argv === 'zfs create -p -o mountpoint=none tank/data/flocker-diverged') made = true;
      if (argv === `zfs get -H -p -o value guid ${FS}`) return { stdout: '123\n' };
      return undefined;
    });
    const e = zfs(f);
    expect(await e.listRetained()).toEqual([]);
    expect(await e.listRetained()).toEqual([]);
    await e.destroyDataset(ID);
    expect(f.calls.filter((c) => c === DIVERGED)).toHaveLength(1);
    await e.keepAside(ID);
    expect(await e.listRetained()).toEqual([ID]);
    expect(f.calls.filter((c) => c === DIVERGED)).toHaveLength(2);
    // A listing that overlapped a keepAside (it answered "absent" before the folder was made) leaves no "absent".
    let open: () => void = () => undefined;
    const gate = new Promise<void>((r) => (open = r));
    let held = false;
    const h = fake((argv) =>
      argv === DIVERGED || argv === 'zfs list -H -o name tank/data/flocker-diverged'
        ? { exitCode: 1, stderr: 'dataset does not exist' }
        : argv === `zfs get -H -p -o value guid ${FS}`
          ? { stdout: '123\n' }
          : undefined,
    );
    const e3 = new ZfsEngine({
      pool: 'tank/data',
      exec: async (file, args) => {
        const r = await h.exec(file, args);
        if (!held && [file, ...args].join(' ') === DIVERGED) {
          held = true;
          await gate;
        }
        return r;
      },
      spawn: h.spawn,
      fs: h.fs,
      readMounts: () => Promise.resolve(h.mounts),
      features: OPENZFS,
    });
    const listing = e3.listRetained();
    await new Promise((r) => setImmediate(r));
    await e3.keepAside(ID);
    open();
    await listing;
    await e3.listRetained();
    expect(h.calls.filter((c) => c === DIVERGED)).toHaveLength(2);
    // A failure to list is no "absent": looked at again.
    const g = fake((argv) => (argv === DIVERGED ? { exitCode: 1, stderr: 'I/O error' } : undefined));
    const e2 = zfs(g);
    await expect(e2.listRetained()).rejects.toMatchObject({ code: 'POOL_UNAVAILABLE' });
    await expect(e2.listRetained()).rejects.toMatchObject({ code: 'POOL_UNAVAILABLE' });
    expect(g.calls.filter((c) => c === DIVERGED)).toHaveLength(2);
  });

  it('destroy refuses while mounted, else zfs destroy -r', async () => {
    const f = fake(() => undefined);
    const e = zfs(f);
    await e.destroyDataset(ID);
    expect(f.calls).toEqual([
      `zfs list -H -o name ${FS}`,
      `zfs destroy -r ${FS}`,
      // Its copies kept aside (keepAside) go with it.
      'zfs list -H -t filesystem -d 1 -o name tank/data/flocker-diverged',
    ]);
    f.mounts = [{ majorMinor: '0:60', root: '/', mountPoint: '/flocker/x', fstype: 'zfs', source: FS }];
    await expect(e.destroyDataset(ID)).rejects.toMatchObject({ code: 'DEVICE_BUSY' });
  });
});

describe('ZFS engine (older zfs: zfs-fuse 0.7, pool v23)', () => {
  const FS = `tank/data/flocker/${ID}`;
  const old = (f: Fake) =>
    new ZfsEngine({
      pool: 'tank/data',
      exec: f.exec,
      spawn: f.spawn,
      fs: f.fs,
      readMounts: () => Promise.resolve(f.mounts),
      features: OLD_ZFS,
    });
  // No features given: the engine probes.
  const zfs2 = (f: Fake) =>
    new ZfsEngine({
      pool: 'tank/data',
      exec: f.exec,
      spawn: f.spawn,
      fs: f.fs,
      readMounts: () => Promise.resolve(f.mounts),
    });

  it('probes the flags once: getopt refusing one is an older zfs; no zfs in /proc/filesystems is zfs-fuse', async () => {
    const olderZfs = fake((argv) =>
      argv.startsWith('zfs list -H -p')
        ? { exitCode: 2, stderr: "invalid option 'p'\nusage:\n" }
        : argv.startsWith('sh -c exec zfs receive')
          ? { exitCode: 2, stderr: "invalid option 'u'\nusage:\n" }
          : argv.startsWith('grep')
            ? { exitCode: 1 }
            : undefined,
    );
    expect(await probeZfsFeatures(olderZfs.exec, 'tank')).toEqual(OLD_ZFS);
    expect(olderZfs.calls).toEqual([
      'zfs list -H -p -o name tank',
      'sh -c exec zfs receive -n -u -o readonly=on -o mountpoint=legacy flocker-probe/none </dev/null',
      'grep -qw zfs /proc/filesystems',
    ]);
    const openZfs = fake((argv) =>
      argv.startsWith('sh -c exec zfs receive')
        ? { exitCode: 1, stderr: 'cannot receive: failed to read from stream\n' }
        : undefined,
    );
    expect(await probeZfsFeatures(openZfs.exec, 'tank')).toEqual(OPENZFS);
    // The engine probes on first use only, then keeps the answer.
    const e = zfs2(olderZfs);
    olderZfs.calls.length = 0;
    await e.listDatasets();
    await e.listDatasets();
    expect(olderZfs.calls.filter((c) => c.startsWith('grep')).length).toBe(1);
    expect(olderZfs.calls.filter((c) => c.startsWith('zfs get -H -p -r -d 1')).length).toBe(2);
  });

  it('lists datasets and snapshots with zfs get -p (exact numbers), snapshots oldest first by createtxg', async () => {
    expect(zfsGetAsList(`a\tguid\t1\na\tcreatetxg\t7\nb\tcreatetxg\t9\n`, ['createtxg', 'guid'])).toBe(
      'a\t7\t1\nb\t9\t-\n',
    );
    const f = fake((argv) =>
      argv.startsWith('zfs get -H -p -r -d 1 -o name,property,value refquota,referenced,readonly,mountpoint')
        ? {
            stdout: [
              `tank/data/flocker\trefquota\t0`,
              `tank/data/flocker\treferenced\t24576`,
              `tank/data/flocker\treadonly\toff`,
              `tank/data/flocker\tmountpoint\tnone`,
              `${FS}\trefquota\t1073741824`,
              `${FS}\treferenced\t5242880`,
              `${FS}\treadonly\toff`,
              `${FS}\tmountpoint\tlegacy`,
              `${FS}@move-000001\trefquota\t-`,
              `${FS}@move-000001\treferenced\t5242880`,
              `${FS}@move-000001\treadonly\t-`,
              `${FS}@move-000001\tmountpoint\t-`,
              // Being received (plain -F): writable, mountpoint inherited from the parent: no live copy yet.
              `${FS}2\trefquota\t0`,
              `${FS}2\treferenced\t5242880`,
              `${FS}2\treadonly\toff`,
              `${FS}2\tmountpoint\tnone`,
              '',
            ].join('\n'),
          }
        : argv.startsWith('zfs get -H -p -r -d 1 -o name,property,value createtxg,guid')
          ? {
              stdout: [
                `${FS}\tcreatetxg\t10`,
                `${FS}\tguid\t555`,
                `${FS}@move-000002\tcreatetxg\t37`,
                `${FS}@move-000002\tguid\t12443728782805351909`,
                `${FS}@move-000001\tcreatetxg\t32`,
                `${FS}@move-000001\tguid\t4632901161103276674`,
                '',
              ].join('\n'),
            }
          : undefined,
    );
    const e = old(f);
    expect(await e.listDatasets()).toEqual([{ datasetId: ID, size: 1073741824, usedBytes: 5242880 }]);
    expect((await e.listSnapshots(ID)).map((s) => [s.name, s.identity])).toEqual([
      ['move-000001', '4632901161103276674'],
      ['move-000002', '12443728782805351909'],
    ]);
    expect(f.calls).toEqual([
      'zfs get -H -p -r -d 1 -o name,property,value refquota,referenced,readonly,mountpoint tank/data/flocker',
      `zfs get -H -p -r -d 1 -o name,property,value createtxg,guid ${FS}`,
    ]);
  });

  it('receives with plain -F, then read-only and legacy before it counts; a failed receive sets nothing', async () => {
    const f = fake((argv) =>
      argv.startsWith('zfs get -H -p -r -d 1 -o name,property,value createtxg,guid')
        ? { stdout: `${FS}@move-000002\tcreatetxg\t37\n${FS}@move-000002\tguid\t222\n` }
        : undefined,
    );
    const input = new PassThrough();
    input.end('x');
    await old(f).receive(ID, 'move-000002', '222', input);
    expect(f.calls.slice(0, 4)).toEqual([
      `spawn zfs receive -F ${FS}`,
      // Not a live copy (zfsReceiveOverLive.test), looked at while the receive starts.
      `zfs get -H -o value readonly,mountpoint ${FS}`,
      `zfs set readonly=on ${FS}`,
      `zfs set mountpoint=legacy ${FS}`,
    ]);
    const failing = fake(
      () => undefined,
      (argv) => (argv.includes('receive') ? 1 : 0),
    );
    const input2 = new PassThrough();
    input2.end('truncated');
    await expect(old(failing).receive(ID, 'move-000002', '222', input2)).rejects.toThrow(/receive -F .* failed/);
    expect(failing.calls).toEqual([`spawn zfs receive -F ${FS}`, `zfs get -H -o value readonly,mountpoint ${FS}`]);
  });

  it('mounts by the mountpoint property (zfs-fuse daemon), a second place by a bind mount; unmount sets legacy again', async () => {
    const fuse = (mountPoint: string): MountInfoEntry => ({
      majorMinor: '0:46',
      root: '/',
      mountPoint,
      fstype: 'fuse.zfs',
      source: FS,
    });
    // The daemon mounts it as the property is set; umount takes a mount away.
    const f: Fake = fake((argv) => {
      if (argv === `zfs set mountpoint=/flocker/x ${FS}`) f.mounts = [fuse('/flocker/x')];
      if (argv.startsWith('umount ')) f.mounts = f.mounts.filter((m) => m.mountPoint !== argv.slice('umount '.length));
      return undefined;
    });
    const e = old(f);
    await e.mount(ID, '/flocker/x');
    expect(f.calls).toEqual([
      'mkdir -p /flocker/x',
      `zfs inherit flocker:same-as ${FS}`,
      `zfs set mountpoint=/flocker/x ${FS}`,
    ]);
    expect(await e.mountPoints(ID)).toEqual(['/flocker/x']);
    f.calls.length = 0;
    await e.mount(ID, '/flocker/y');
    expect(f.calls).toEqual([
      'mkdir -p /flocker/y',
      `zfs inherit flocker:same-as ${FS}`,
      'mount --bind /flocker/x /flocker/y',
    ]);
    f.mounts = [fuse('/flocker/x'), fuse('/flocker/y')];
    f.calls.length = 0;
    // Still mounted at y: the property stays.
    await e.unmount('/flocker/x');
    expect(f.calls).toEqual(['umount /flocker/x']);
    f.calls.length = 0;
    await e.unmount('/flocker/y');
    expect(f.calls).toEqual(['umount /flocker/y', `zfs set mountpoint=legacy ${FS}`]);
    await expect(e.destroyDataset(ID)).resolves.toBeUndefined();
  });

  it('two mounts of one dataset at once (the agent and its transfer listener): mounted once, not remounted', async () => {
    const f: Fake = fake((argv) => {
      if (argv === `zfs set mountpoint=/flocker/x ${FS}`)
        f.mounts = [{ majorMinor: '0:46', root: '/', mountPoint: '/flocker/x', fstype: 'fuse.zfs', source: FS }];
      return undefined;
    });
    const e = old(f);
    await Promise.all([e.mount(ID, '/flocker/x'), e.mount(ID, '/flocker/x')]);
    expect(f.calls).toEqual([
      'mkdir -p /flocker/x',
      `zfs inherit flocker:same-as ${FS}`,
      `zfs set mountpoint=/flocker/x ${FS}`,
    ]);
    // A failed one does not stop the next.
    await expect(e.mount('not-an-id', '/flocker/z')).rejects.toMatchObject({ code: 'UNKNOWN_DATASET' });
    f.calls.length = 0;
    await e.unmount('/flocker/x');
    expect(f.calls).toEqual(['umount /flocker/x']);
  });

  // FX10 (s18): a mount namespace made while the file system was mounted (another process's unshare -m,
  // an e2e simulated host) keeps its copy of the mount after the host's umount: zfs refuses the destroy
  // ("dataset is busy", zfs-fuse and kernel zfs alike) until that namespace ends.
  it('a destroy refused as busy is tried again a few times (bounded, logged), any other failure at once', async () => {
    const busy = { exitCode: 1, stderr: `cannot destroy '${FS}': dataset is busy` };
    const engine = (f: Fake, slept: number[], warned: string[]) =>
      new ZfsEngine({
        pool: 'tank/data',
        exec: f.exec,
        spawn: f.spawn,
        fs: f.fs,
        readMounts: () => Promise.resolve(f.mounts),
        features: OLD_ZFS,
        sleep: (ms) => {
          slept.push(ms);
          return Promise.resolve();
        },
        warn: (m) => warned.push(m),
      });
    const destroys = (f: Fake) => f.calls.filter((c) => c === `zfs destroy -r ${FS}`).length;
    // Busy twice, then gone.
    let refusals = 2;
    const f = fake((argv) => (argv === `zfs destroy -r ${FS}` && refusals-- > 0 ? busy : undefined));
    const slept: number[] = [];
    const warned: string[] = [];
    await engine(f, slept, warned).destroyDataset(ID);
    expect(destroys(f)).toBe(3);
    expect(slept).toEqual([100, 200]);
    expect(warned).toHaveLength(2);
    expect(warned[0]).toContain('dataset is busy');
    // Busy all along: refused after a bounded wait, with zfs's message.
    const always = fake((argv) => (argv === `zfs destroy -r ${FS}` ? busy : undefined));
    const sleptAlways: number[] = [];
    await expect(engine(always, sleptAlways, []).destroyDataset(ID)).rejects.toThrow(/dataset is busy/);
    expect(sleptAlways.reduce((x, y) => x + y, 0)).toBeLessThanOrEqual(3000);
    expect(destroys(always)).toBe(sleptAlways.length + 1);
    // Any other failure: at once, not again.
    const other = fake((argv) => (argv === `zfs destroy -r ${FS}` ? { exitCode: 1, stderr: 'I/O error' } : undefined));
    const sleptOther: number[] = [];
    await expect(engine(other, sleptOther, []).destroyDataset(ID)).rejects.toThrow(/I\/O error/);
    expect(destroys(other)).toBe(1);
    expect(sleptOther).toEqual([]);
  });

  it('a daemon that does not mount at once: zfs mount', async () => {
    const f = fake(() => undefined);
    await old(f).mount(ID, '/flocker/x');
    expect(f.calls).toEqual([
      'mkdir -p /flocker/x',
      `zfs inherit flocker:same-as ${FS}`,
      `zfs set mountpoint=/flocker/x ${FS}`,
      `zfs mount ${FS}`,
    ]);
  });
});

// The ZFS engine for real, on the kernel's zfs where it exists, else on zfs-fuse (installed by
// scripts/host-setup.sh, its daemon started here): the engine contract on two pools (two hosts).
const zfsReady = ensureZfs();

describe('ZFS engine on real pools', () => {
  if (!zfsReady.ok) {
    it('cannot run on this machine (the reason is printed)', () => {
      console.log(`ZFS engine real-run tests skipped: ${zfsReady.reason}`);
    });
    return;
  }
  let dir: string;
  const pools: ZfsFilePool[] = [];
  let a: ZfsEngine;
  let b: ZfsEngine;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'flocker-zfs-test-'));
    for (const name of ['a', 'b']) pools.push(makeZfsFilePool(dir, name, 256 * 1024 * 1024));
    a = new ZfsEngine({ pool: pools[0].pool });
    b = new ZfsEngine({ pool: `${pools[1].pool}/data` });
    await a.prepare();
    await b.prepare();
  }, 60_000);
  afterAll(() => {
    for (const p of pools) p.destroy();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it(`answers zpool list, and the engine probes what this zfs can do (${zfsReady.how})`, async () => {
    expect(await zfsAvailable()).toEqual({ ok: true });
    const features = await a.features();
    console.log(`ZFS engine on ${zfsReady.how}: ${JSON.stringify(features)}`);
    // zfs-fuse is the older zfs in every respect; kernel zfs (OpenZFS) has every flag.
    if (zfsReady.how.startsWith('zfs-fuse')) expect(features).toEqual(OLD_ZFS);
    else expect(features.kernelMounts).toBe(true);
  });

  localEngineContract('zfs', () => ({ a, b, mountRoot: join(dir, 'mnt') }));
});

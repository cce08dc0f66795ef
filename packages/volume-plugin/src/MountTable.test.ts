import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  blockedInPoll,
  findmntSource,
  isMountPointNow,
  MountTable,
  mountPointByStat,
  mountPointsOf,
  parsePollLine,
  RESTART_AFTER_MS,
  SOURCE_READY_MS,
} from './MountTable';
import { silentLogger } from './testing/backendTestBed';
import { FakeMountSource } from './testing/FakeMountSource';

const ID = 'dddddddd-dddd-4ddd-8ddd-dddddddddddd';

/** A started table on a fake source, its clock past the source's start-up. */
function table(root = '/flocker'): { t: MountTable; src: FakeMountSource; clock: { ms: number } } {
  const src = new FakeMountSource();
  const clock = { ms: 1_000 };
  const t = new MountTable(root, silentLogger, src, () => clock.ms);
  t.start();
  clock.ms += SOURCE_READY_MS;
  return { t, src, clock };
}

const settledWithin = async (p: Promise<unknown>, ms = 20): Promise<boolean> =>
  Promise.race([p.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), ms))]);

describe('parsePollLine (findmnt --poll -n -r -o ACTION,TARGET)', () => {
  it('reads the action and the target, undoing -r escapes', () => {
    expect(parsePollLine('mount /flocker/x')).toEqual({ action: 'mount', target: '/flocker/x' });
    expect(parsePollLine('umount /a\\x20b\n')).toEqual({ action: 'umount', target: '/a b' });
    expect(parsePollLine('move /m')).toEqual({ action: 'move', target: '/m' });
  });

  it('ignores what is not an event line', () => {
    expect(parsePollLine('')).toBeUndefined();
    expect(parsePollLine('ACTION TARGET')).toBeUndefined();
    expect(parsePollLine('mount')).toBeUndefined();
    expect(parsePollLine('mount /a /b')).toBeUndefined();
  });
});

describe('blockedInPoll (/proc/<pid>/syscall, else wchan)', () => {
  it('is poll or ppoll by number on x64 and arm64, running or another syscall is not', () => {
    expect(blockedInPoll('7 0x7ffc9d801ed8 0x1 0xffffffff 0x0 0x8 0x0 0x7ffc 0x7f\n', '', 'x64')).toBe(true);
    expect(blockedInPoll('271 0x1 0x1 0x0 0x0 0x8 0x0 0x7ffc 0x7f\n', '', 'x64')).toBe(true);
    expect(blockedInPoll('0 0x3 0x7ffc 0x400 0x0 0x0 0x0 0x7ffc 0x7f\n', 'poll_schedule_timeout', 'x64')).toBe(false);
    expect(blockedInPoll('running\n', '0', 'x64')).toBe(false);
    expect(blockedInPoll('', '', 'x64')).toBe(false);
    expect(blockedInPoll('73 0x1 0x1 0x0 0x0 0x8 0x0 0x7ffc 0x7f\n', '', 'arm64')).toBe(true);
    expect(blockedInPoll('7 0x1\n', '', 'arm64')).toBe(false);
    // An architecture whose numbers are not known: the kernel's wait channel.
    expect(blockedInPoll('168 0x1\n', 'do_sys_poll', 'riscv64')).toBe(true);
    expect(blockedInPoll('63 0x1\n', 'pipe_read', 'riscv64')).toBe(false);
  });

  it('findmnt --poll is seen polling within a second of its start (a real child)', async () => {
    const run = findmntSource.start(
      () => undefined,
      () => undefined,
    );
    try {
      let polling = false;
      for (const t0 = Date.now(); !polling && Date.now() - t0 < 1_000; await new Promise((r) => setTimeout(r, 2)))
        polling = run.ready?.() === true;
      expect(polling).toBe(true);
    } finally {
      run.stop();
    }
  });
});

describe('mountPointsOf', () => {
  it('takes field 5 of each mountinfo line, octal escapes undone', () => {
    const text = '22 1 0:21 / /proc rw - proc proc rw\n30 22 7:1 / /mnt/a\\040b rw - ext4 /dev/loop1 rw\n';
    expect(mountPointsOf(text)).toEqual(['/proc', '/mnt/a b']);
  });
});

describe('whether a path is a mount point now', () => {
  const dev = (n: number) => ({ dev: n });
  const fail = (code: string) => () => {
    throw Object.assign(new Error(code), { code });
  };

  it('stats answer where they can tell: another device than the parent is a mount, a missing path none; else the table', () => {
    const parent = { statSync: () => dev(1) };
    expect(mountPointByStat('/m/x', { ...parent, lstatSync: () => dev(2) })).toBe(true);
    expect(mountPointByStat('/m/x', { ...parent, lstatSync: fail('ENOENT') })).toBe(false);
    // The parent's device: not mounted, or a bind mount from the same file system; only the table tells.
    expect(mountPointByStat('/m/x', { ...parent, lstatSync: () => dev(1) })).toBeUndefined();
    expect(mountPointByStat('/m/x', { ...parent, lstatSync: fail('EACCES') })).toBeUndefined();
    expect(mountPointByStat('/m/x', { statSync: fail('EIO'), lstatSync: () => dev(2) })).toBeUndefined();
    let reads = 0;
    const table = (text: string) => () => {
      reads++;
      return text;
    };
    const line = '30 22 7:1 / /m/x rw - ext4 /dev/loop1 rw\n';
    expect(isMountPointNow('/m/x', { ...parent, lstatSync: () => dev(2) }, table(''))).toBe(true);
    expect(isMountPointNow('/m/x', { ...parent, lstatSync: fail('ENOENT') }, table(line))).toBe(false);
    expect(reads).toBe(0);
    expect(isMountPointNow('/m/x', { ...parent, lstatSync: () => dev(1) }, table(line))).toBe(true);
    expect(isMountPointNow('/m/x', { ...parent, lstatSync: () => dev(1) }, table(''))).toBe(false);
    expect(reads).toBe(2);
  });

  it('a btrfs subvolume is on its own device without being mounted: another device with inode 256 asks the table', () => {
    const parent = { statSync: () => dev(1) };
    const subvolume = () => ({ dev: 2, ino: 256 });
    expect(mountPointByStat('/m/x', { ...parent, lstatSync: subvolume })).toBeUndefined();
    expect(isMountPointNow('/m/x', { ...parent, lstatSync: subvolume }, () => '')).toBe(false);
    const line = '30 22 0:40 / /m/x rw - btrfs /dev/loop1 rw\n';
    expect(isMountPointNow('/m/x', { ...parent, lstatSync: subvolume }, () => line)).toBe(true);
  });

  it('agrees with the kernel on a real btrfs subvolume, unmounted and mounted (root)', () => {
    const dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'mount-point-btrfs-')));
    const [mnt, other] = ['mnt', 'other'].map((n) => path.join(dir, n));
    const mounted: string[] = [];
    try {
      fs.mkdirSync(mnt!);
      fs.mkdirSync(other!);
      execFileSync('truncate', ['-s', '160M', path.join(dir, 'img')]);
      execFileSync('mkfs.btrfs', ['-q', path.join(dir, 'img')]);
      execFileSync('mount', ['-o', 'loop', path.join(dir, 'img'), mnt!]);
      mounted.push(mnt!);
      const sub = path.join(mnt!, 'sub');
      execFileSync('btrfs', ['subvolume', 'create', sub]);
      expect(isMountPointNow(sub)).toBe(false);
      expect(isMountPointNow(mnt!)).toBe(true); // a mounted btrfs's root is inode 256 too: the table says so
      execFileSync('mount', ['--bind', sub, other!]);
      mounted.push(other!);
      expect(isMountPointNow(other!)).toBe(true);
    } finally {
      for (const m of mounted.reverse()) execFileSync('umount', [m]);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('agrees with the kernel on real paths: a tmpfs, a bind mount from the same file system, a plain and a missing directory (root)', () => {
    const dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'mount-point-now-')));
    const [tmpfs, bind, plain] = ['tmpfs', 'bind', 'plain'].map((n) => path.join(dir, n));
    const mounted: string[] = [];
    try {
      for (const d of [tmpfs!, bind!, plain!]) fs.mkdirSync(d);
      execFileSync('mount', ['-t', 'tmpfs', 'none', tmpfs!]);
      mounted.push(tmpfs!);
      execFileSync('mount', ['--bind', plain!, bind!]);
      mounted.push(bind!);
      const inTable = (p: string) => mountPointsOf(fs.readFileSync('/proc/self/mountinfo', 'utf8')).includes(p);
      expect(mountPointByStat(tmpfs!)).toBe(true);
      expect(mountPointByStat(bind!)).toBeUndefined(); // same device as its parent: the table's answer
      expect(mountPointByStat(plain!)).toBeUndefined();
      expect(mountPointByStat(path.join(dir, 'missing'))).toBe(false);
      for (const p of [tmpfs!, bind!, plain!, path.join(dir, 'missing')]) {
        expect(isMountPointNow(p)).toBe(inTable(p));
        expect(findmntSource.isMountPoint(p)).toBe(inTable(p));
      }
      expect(isMountPointNow(tmpfs!)).toBe(true);
      expect(isMountPointNow(bind!)).toBe(true);
      execFileSync('umount', [tmpfs!]);
      mounted.shift();
      expect(isMountPointNow(tmpfs!)).toBe(false);
    } finally {
      for (const m of mounted.reverse()) execFileSync('umount', [m]);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('MountTable', () => {
  it('tracks nothing until the source has followed for SOURCE_READY_MS, nor ids that are no file name', () => {
    const src = new FakeMountSource();
    const clock = { ms: 0 };
    const t = new MountTable('/flocker/', silentLogger, src, () => clock.ms);
    expect(t.track(ID)).toBeUndefined(); // not following yet: this starts the source
    expect(src.starts).toBe(1);
    t.start();
    expect(t.track(ID)).toBeUndefined();
    clock.ms = SOURCE_READY_MS;
    expect(t.track(ID)?.fresh()).toBe(true);
    expect(t.track('a/b')).toBeUndefined();
    expect(t.track('..')).toBeUndefined();
    expect(t.track('')).toBeUndefined();
    t.close();
  });

  it('follows the mount root with symlinks resolved, as the kernel names mount points', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mount-table-'));
    fs.mkdirSync(path.join(dir, 'real'));
    fs.symlinkSync(path.join(dir, 'real'), path.join(dir, 'link'));
    const t = new MountTable(path.join(dir, 'link'), silentLogger, new FakeMountSource());
    expect(t.root).toBe(fs.realpathSync(path.join(dir, 'real')));
    expect(new MountTable('/no/such/root/', silentLogger, new FakeMountSource()).root).toBe('/no/such/root');
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('the first mount at <root>/<id> resolves mounted(); mounts elsewhere do not', async () => {
    const { t, src } = table();
    const tr = t.track(ID);
    const mounted = tr?.mounted() ?? Promise.reject(new Error('not tracked'));
    src.emit('mount', `/elsewhere/${ID}`);
    src.emit('mount', `/flocker/${ID}/sub`);
    src.emit('mount', '/flocker/other');
    expect(await settledWithin(mounted)).toBe(false);
    src.emit('mount', `/flocker/${ID}`);
    expect(await settledWithin(mounted)).toBe(true);
    expect(tr?.fresh()).toBe(true);
    // Asked again after the mount: at once.
    expect(await settledWithin(tr?.mounted() ?? Promise.reject(new Error('x')))).toBe(true);
    t.close();
  });

  it('an umount at the path spoils the tracker: a mount after it proves nothing', async () => {
    const { t, src } = table();
    const tr = t.track(ID);
    src.emit('mount', `/flocker/${ID}`);
    src.emit('umount', `/flocker/${ID}`);
    src.emit('mount', `/flocker/${ID}`);
    expect(tr?.fresh()).toBe(false);
    expect(await settledWithin(tr?.mounted() ?? Promise.reject(new Error('x')))).toBe(false);
    t.close();
  });

  it('a path already mounted when tracking begins is not fresh (not a mount made since)', async () => {
    const { t, src } = table();
    src.mounted.add(`/flocker/${ID}`);
    const tr = t.track(ID);
    expect(tr?.fresh()).toBe(false);
    expect(await settledWithin(tr?.mounted() ?? Promise.reject(new Error('x')))).toBe(false);
    t.close();
  });

  it('the source ending spoils every tracker and nothing new is tracked', async () => {
    const { t, src } = table();
    const tr = t.track(ID);
    const mounted = tr?.mounted() ?? Promise.reject(new Error('x'));
    src.end();
    src.emit('mount', `/flocker/${ID}`);
    expect(t.following()).toBe(false);
    expect(tr?.fresh()).toBe(false);
    expect(await settledWithin(mounted)).toBe(false);
    expect(t.track(ID)).toBeUndefined();
    t.close();
  });

  it('a closed tracker is not fresh; tracking the id again replaces it', () => {
    const { t } = table();
    const a = t.track(ID);
    const b = t.track(ID);
    expect(a?.fresh()).toBe(false);
    expect(b?.fresh()).toBe(true);
    a?.close(); // closing the replaced one leaves the new one
    expect(b?.fresh()).toBe(true);
    b?.close();
    expect(b?.fresh()).toBe(false);
    t.close();
  });

  describe('paused while idle (issue 23): the source wakes for mount changes only while needed', () => {
    it('warm() starts it when not running; it follows as soon as the run says it polls, before SOURCE_READY_MS', () => {
      const src = new FakeMountSource();
      const clock = { ms: 0 };
      const t = new MountTable('/flocker', silentLogger, src, () => clock.ms);
      expect(src.starts).toBe(0);
      t.warm();
      t.warm();
      expect(src.starts).toBe(1);
      expect(t.following()).toBe(false);
      src.readyNow = true;
      expect(t.following()).toBe(true);
      expect(t.track(ID)?.fresh()).toBe(true);
      t.close();
      expect(src.stops).toBe(1);
    });

    it('pauses once idle, not while a tracker is open; warm() resumes it and what changed meanwhile is seen', async () => {
      jest.useFakeTimers();
      try {
        const src = new FakeMountSource();
        const clock = { ms: 0 };
        const t = new MountTable('/flocker', silentLogger, src, () => clock.ms, 20);
        t.start();
        clock.ms = SOURCE_READY_MS;
        const tr = t.track(ID);
        expect(tr?.fresh()).toBe(true);
        jest.advanceTimersByTime(60);
        expect(src.paused).toBe(false); // a tracker is open
        tr?.close();
        jest.advanceTimersByTime(10);
        t.warm(); // a warm() puts the pause off again
        jest.advanceTimersByTime(15);
        expect(src.paused).toBe(false);
        jest.advanceTimersByTime(5);
        expect(src.paused).toBe(true);
        expect(src.pauses).toBe(1);
        // Paused, it still follows (nothing is missed): a tracker resumes it and needs no start-up.
        expect(t.following()).toBe(true);
        const other = '/flocker/eeeeeeee-eeee-4eee-8eee-eeeeeeeeeeee';
        src.emit('mount', other); // while paused: held, as the kernel's change count holds it for findmnt
        const again = t.track(ID);
        expect(src.paused).toBe(false);
        expect(src.starts).toBe(1);
        expect(again?.fresh()).toBe(true);
        const mounted = again?.mounted() ?? Promise.reject(new Error('x'));
        src.emit('mount', `/flocker/${ID}`);
        jest.useRealTimers();
        expect(await settledWithin(mounted)).toBe(true);
        t.close();
        expect(src.stops).toBe(1);
      } finally {
        jest.useRealTimers();
      }
    });

    it('a source that ended by itself is started again, but not within RESTART_AFTER_MS (no spawn per Create)', () => {
      const src = new FakeMountSource();
      src.readyNow = true;
      const clock = { ms: 0 };
      const t = new MountTable('/flocker', silentLogger, src, () => clock.ms);
      t.warm();
      src.end('findmnt exited (ENOENT)');
      clock.ms += RESTART_AFTER_MS - 1;
      expect(t.track(ID)).toBeUndefined();
      expect(src.starts).toBe(1);
      clock.ms += 1;
      expect(t.track(ID)?.fresh()).toBe(true);
      expect(src.starts).toBe(2);
      t.close();
    });
  });

  it('findmnt really reports, once resumed, a mount made while it was paused (root, a tmpfs)', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mount-table-real-'));
    const target = fs.realpathSync(dir);
    // Only this test's path: other mounts on the host (other tests) come and go meanwhile.
    const seen: string[] = [];
    const run = findmntSource.start(
      (e) => {
        if (e.target === target) seen.push(`${e.action} ${e.target}`);
      },
      () => undefined,
    );
    let mounted = false;
    try {
      for (const t0 = Date.now(); run.ready?.() !== true && Date.now() - t0 < 2_000;)
        await new Promise((r) => setTimeout(r, 2));
      expect(typeof run.pause).toBe('function'); // setpriv is on this machine
      run.pause?.();
      execFileSync('mount', ['-t', 'tmpfs', 'none', dir]);
      mounted = true;
      await new Promise((r) => setTimeout(r, 50));
      expect(seen).toEqual([]); // stopped: not woken
      run.resume?.();
      for (const t0 = Date.now(); seen.length === 0 && Date.now() - t0 < 2_000;)
        await new Promise((r) => setTimeout(r, 5));
      expect(seen).toEqual([`mount ${target}`]);
    } finally {
      run.stop();
      if (mounted) execFileSync('umount', [dir]);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

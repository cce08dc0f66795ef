import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { MountTable, mountPointsOf, parsePollLine, SOURCE_READY_MS } from './MountTable';
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

describe('mountPointsOf', () => {
  it('takes field 5 of each mountinfo line, octal escapes undone', () => {
    const text = '22 1 0:21 / /proc rw - proc proc rw\n30 22 7:1 / /mnt/a\\040b rw - ext4 /dev/loop1 rw\n';
    expect(mountPointsOf(text)).toEqual(['/proc', '/mnt/a b']);
  });
});

describe('MountTable', () => {
  it('tracks nothing until the source has followed for SOURCE_READY_MS, nor ids that are no file name', () => {
    const src = new FakeMountSource();
    const clock = { ms: 0 };
    const t = new MountTable('/flocker/', silentLogger, src, () => clock.ms);
    expect(t.track(ID)).toBeUndefined(); // not started
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
});

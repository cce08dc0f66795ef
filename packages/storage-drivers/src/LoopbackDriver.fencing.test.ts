/**
 * I/O fencing of the loopback driver with real loop devices, mounts in other
 * mount namespaces and processes killed with SIGKILL (root only, like the rest
 * of the loopback tests).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { isStorageError } from './BlockDeviceApi';
import { makeFilesystem, mount, unmount } from './blockdev';
import { expectStorageError } from './testing/contract';
import { execFileExec, type ExecFn } from './exec';
import { classifyPoolFile } from './fencing';
import { isImmutable } from './immutable';
import { findLoopDevices, loopBindingOf } from './losetup';
import { closeLoopbackDrivers, LoopbackDriver } from './testing/closingLoopbackDriver';
import { destroyTempRoot, makeTempRoot } from './testing/testSupport';

// Ends each driver's helper processes (see closingLoopbackDriver.ts).
afterEach(closeLoopbackDrivers);

jest.setTimeout(60_000);

const MiB = 1024 * 1024;
const roots: string[] = [];
const children: ChildProcess[] = [];

afterAll(async () => {
  for (const child of children) child.kill('SIGKILL');
  const running = children.filter((c) => c.exitCode === null && c.signalCode === null);
  await Promise.all(running.map((c) => new Promise((r) => c.once('exit', r))));
  for (const root of roots) await destroyTempRoot(root);
});

interface Pool {
  readonly root: string;
  readonly volumes: string;
  readonly a: LoopbackDriver;
  readonly b: LoopbackDriver;
}

async function pool(options: { exec?: ExecFn; loopDiscovery?: 'sysfs' | 'losetup' } = {}): Promise<Pool> {
  const root = await makeTempRoot('flocker-fence-test-');
  roots.push(root);
  return {
    root,
    volumes: path.join(root, 'volumes'),
    a: new LoopbackDriver({ rootPath: root, instanceId: 'instance-a' }),
    b: new LoopbackDriver({ rootPath: root, instanceId: 'instance-b', ...options }),
  };
}

/** A volume attached to host A with an empty ext4 on it. */
async function attachedOnA(p: Pool): Promise<{ id: string; device: string }> {
  const v = await p.a.createVolume('ds', 32 * MiB);
  await p.a.attachVolume(v.blockdeviceId, 'instance-a');
  const device = await p.a.getDevicePath(v.blockdeviceId);
  await makeFilesystem(device, { type: 'ext4' });
  return { id: v.blockdeviceId, device };
}

/**
 * Appends "line N\n" and fsyncs, again and again, reporting each line whose
 * fsync succeeded ("acked N") and the first failure ("failed N write|fsync CODE");
 * then idles, keeping the file system mounted.
 */
const WRITER = `
const fs = require('fs');
const fd = fs.openSync(process.argv[1], 'a');
const pause = new Int32Array(new SharedArrayBuffer(4));
for (let i = 1; ; i++) {
  let op = 'write';
  try { fs.writeSync(fd, 'line ' + i + '\\n'); op = 'fsync'; fs.fsyncSync(fd); }
  catch (e) { process.stdout.write('failed ' + i + ' ' + op + ' ' + e.code + '\\n'); break; }
  process.stdout.write('acked ' + i + '\\n');
  Atomics.wait(pause, 0, 0, 2);
}
setInterval(() => {}, 60000);
`;

interface WriterHost {
  readonly process: ChildProcess;
  /** The highest line whose fsync succeeded, as reported so far. */
  acked(): number;
  waitForAcked(n: number): Promise<void>;
  readonly failure: Promise<{ line: number; op: string; code: string }>;
  kill(): Promise<void>;
}

/** Passes each whole line the child writes to stdout to onLine; afterChunk runs once each chunk is read. */
function readLines(
  child: ChildProcess,
  onLine: (line: string) => void,
  afterChunk: () => void = () => undefined,
): void {
  let buffered = '';
  child.stdout!.on('data', (d: Buffer) => {
    buffered += d.toString();
    let nl: number;
    while ((nl = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      onLine(line);
    }
    afterChunk();
  });
}

/** "Host A": mounts the device in its own mount namespace (invisible in ours) and runs WRITER on <mnt>/log. */
async function startWriterHost(device: string, mnt: string): Promise<WriterHost> {
  await fs.mkdir(mnt, { recursive: true });
  const child = spawn(
    'unshare',
    [
      '--mount',
      '--propagation',
      'private',
      'sh',
      '-c',
      'mount -t ext4 "$0" "$1" && exec "$2" -e "$3" "$1/log"',
      device,
      mnt,
      process.execPath,
      WRITER,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  children.push(child);
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  let acked = 0;
  const waiters: Array<() => void> = [];
  let onFailure: (f: { line: number; op: string; code: string }) => void = () => undefined;
  const failure = new Promise<{ line: number; op: string; code: string }>((resolve) => (onFailure = resolve));
  readLines(
    child,
    (line) => {
      let m = /^acked (\d+)$/.exec(line);
      if (m) acked = Number(m[1]);
      m = /^failed (\d+) (\w+) (\w+)$/.exec(line);
      if (m) onFailure({ line: Number(m[1]), op: m[2], code: m[3] });
    },
    () => {
      for (const w of waiters.splice(0)) w();
    },
  );
  const host: WriterHost = {
    process: child,
    acked: () => acked,
    async waitForAcked(n) {
      const deadline = Date.now() + 20_000;
      while (acked < n) {
        if (child.exitCode !== null) throw new Error(`host A exited with ${child.exitCode}`);
        if (Date.now() > deadline) throw new Error(`host A acked only ${acked} lines`);
        await new Promise<void>((r) => {
          waiters.push(r);
          setTimeout(r, 100);
        });
      }
    },
    failure,
    async kill() {
      child.kill('SIGKILL');
      await exited;
    },
  };
  await host.waitForAcked(1);
  return host;
}

/**
 * Writes 4 KiB blocks "w<id> <n>\n" round-robin into its slots of the raw device, each followed by fdatasync, as
 * fast as it can; reports "acked <n> <slot>" for each whose fdatasync succeeded and the first failure, then idles
 * holding the device open.
 */
const RAW_WRITER = `
const fs = require('fs');
const [device, id, base, slots] = [process.argv[1], Number(process.argv[2]), Number(process.argv[3]), Number(process.argv[4])];
const fd = fs.openSync(device, 'r+');
const buf = Buffer.alloc(4096, 32);
for (let n = 1; ; n++) {
  const slot = base + (n % slots);
  buf.fill(32);
  buf.write('w' + id + ' ' + n + '\\n', 0, 'latin1');
  let op = 'write';
  try { fs.writeSync(fd, buf, 0, 4096, slot * 4096); op = 'fsync'; fs.fdatasyncSync(fd); }
  catch (e) { process.stdout.write('failed ' + n + ' ' + op + ' ' + e.code + '\\n'); break; }
  process.stdout.write('acked ' + n + ' ' + slot + '\\n');
}
setInterval(() => {}, 60000);
`;

interface RawWriter {
  readonly id: number;
  waitForAcked(n: number): Promise<void>;
  /** For each slot, the last write whose fdatasync succeeded. */
  maxAckedBySlot(): Map<number, number>;
  readonly failure: Promise<{ n: number; op: string; code: string }>;
  kill(): Promise<void>;
}

function startRawWriter(device: string, id: number, base: number, slots: number): RawWriter {
  const child = spawn(process.execPath, ['-e', RAW_WRITER, device, String(id), String(base), String(slots)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.push(child);
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const bySlot = new Map<number, number>();
  let acked = 0;
  let onFailure: (f: { n: number; op: string; code: string }) => void = () => undefined;
  const failure = new Promise<{ n: number; op: string; code: string }>((resolve) => (onFailure = resolve));
  readLines(child, (line) => {
    let m = /^acked (\d+) (\d+)$/.exec(line);
    if (m) {
      acked = Number(m[1]);
      bySlot.set(Number(m[2]), acked);
    }
    m = /^failed (\d+) (\w+) (\w+)$/.exec(line);
    if (m) onFailure({ n: Number(m[1]), op: m[2], code: m[3] });
  });
  return {
    id,
    async waitForAcked(n) {
      const deadline = Date.now() + 20_000;
      while (acked < n) {
        if (child.exitCode !== null) throw new Error(`raw writer ${id} exited with ${child.exitCode}`);
        if (Date.now() > deadline) throw new Error(`raw writer ${id} acked only ${acked} writes`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    maxAckedBySlot: () => new Map(bySlot),
    failure,
    async kill() {
      child.kill('SIGKILL');
      await exited;
    },
  };
}

async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<T>((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms))),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Mounts the new holder's device and checks the log: every acknowledged line, whole lines only, no NUL bytes. */
async function expectLogIntact(device: string, mnt: string, acked: number, failedLine: number): Promise<number> {
  await fs.mkdir(mnt, { recursive: true });
  await mount(device, mnt, { fstype: 'ext4' });
  try {
    const content = await fs.readFile(path.join(mnt, 'log'), 'utf8');
    expect(content.includes('\0')).toBe(false);
    expect(content.endsWith('\n')).toBe(true);
    const lines = content.slice(0, -1).split('\n');
    lines.forEach((line, i) => {
      if (line !== `line ${i + 1}`) throw new Error(`line ${i + 1} of the log is ${JSON.stringify(line)}`);
    });
    expect(lines.length).toBeGreaterThanOrEqual(acked);
    expect(lines.length).toBeLessThanOrEqual(failedLine);
    return lines.length;
  } finally {
    await unmount(mnt);
  }
}

function fencedFiles(names: readonly string[]): string[] {
  return names.filter((n) => classifyPoolFile(n)?.kind === 'fenced');
}

/** Calls releaseFenced until `done` holds for everything it released so far (the kernel tears a dead namespace's mounts down asynchronously). */
async function releaseUntil(
  d: LoopbackDriver,
  done: (r: { devices: string[]; images: string[] }) => boolean,
): Promise<{ devices: string[]; images: string[] }> {
  const all = { devices: [] as string[], images: [] as string[] };
  for (let i = 0; i < 100; i++) {
    const r = await d.releaseFenced();
    all.devices.push(...r.devices);
    all.images.push(...r.images);
    if (done(all)) break;
    await new Promise((res) => setTimeout(res, 100));
  }
  return all;
}

describe('LoopbackDriver fencing (force detach of a device still in use)', () => {
  it.each(['sysfs', 'losetup'] as const)(
    'fails the old holder writes with EIO and gives the new holder every line it had fsynced (%s discovery)',
    async (loopDiscovery) => {
      // losetup: host B finds devices with `losetup -j` and sets the flag with chattr instead of the ioctl helper.
      const p = await pool({ loopDiscovery });
      const { id, device: oldDevice } = await attachedOnA(p);
      const hostA = await startWriterHost(oldDevice, path.join(p.root, 'host-a-mnt'));
      await hostA.waitForAcked(100);

      await p.b.detachVolume(id, { force: true });
      const ackedBefore = hostA.acked();
      const failure = await withTimeout(hostA.failure, 10_000, "host A's writer to fail");
      expect(failure).toMatchObject({ op: 'fsync', code: 'EIO' });
      expect(failure.line).toBeGreaterThanOrEqual(ackedBefore);
      const acked = hostA.acked();
      expect(acked).toBe(failure.line - 1);

      // The old device still exists (mounted by host A) but serves the fenced file, never the volume.
      const names = await fs.readdir(p.volumes);
      const [fenced] = fencedFiles(names);
      expect(fencedFiles(names)).toHaveLength(1);
      expect(loopBindingOf(oldDevice)).toEqual({
        device: oldDevice,
        backingFile: path.join(p.volumes, fenced),
        deleted: false,
      });
      expect(await isImmutable(path.join(p.volumes, fenced), { exec: execFileExec })).toBe(true);
      expect(await findLoopDevices(execFileExec, path.join(p.volumes, `${id}.img`))).toEqual([]);
      expect((await p.b.listVolumes())[0].attachedTo).toBeNull();

      await p.b.attachVolume(id, 'instance-b');
      const newDevice = await p.b.getDevicePath(id);
      expect(newDevice).not.toBe(oldDevice);
      await expectLogIntact(newDevice, path.join(p.root, 'host-b-mnt'), acked, failure.line);

      // While host A still has it mounted, releaseFenced touches nothing.
      expect(await p.b.releaseFenced()).toEqual({ devices: [], images: [] });
      expect(loopBindingOf(oldDevice)?.backingFile).toBe(path.join(p.volumes, fenced));
      expect(fencedFiles(await fs.readdir(p.volumes))).toEqual([fenced]);

      // Host A goes away: its device detaches itself (deferred detach), and the fenced image is removed.
      await hostA.kill();
      const released = await releaseUntil(p.b, (r) => r.images.length > 0);
      expect(released.images).toEqual([path.join(p.volumes, fenced)]);
      expect(loopBindingOf(oldDevice)?.backingFile).not.toBe(path.join(p.volumes, fenced));
      expect((await fs.readdir(p.volumes)).sort()).toEqual([`${id}.img`, `${id}.json`]);
      expect(await p.b.getDevicePath(id)).toBe(newDevice);
      await p.b.detachVolume(id);
    },
  );

  it.each([
    ['before the immutable flag is set', 'chattr', 'losetup'],
    ['while copying the frozen image', 'cp', 'sysfs'],
  ] as const)('converges after the fencing process is killed with SIGKILL %s', async (_when, hangOn, loopDiscovery) => {
    const p = await pool();
    const { id, device: oldDevice } = await attachedOnA(p);
    const hostA = await startWriterHost(oldDevice, path.join(p.root, 'host-a-mnt'));
    await hostA.waitForAcked(50);

    // Host B's agent: force-detaches, and is killed while `hangOn` runs (cp: after it finished, before the fsync and rename).
    const script = `
      const { LoopbackDriver, execFileExec } = require(${JSON.stringify(path.join(__dirname, 'index.js'))});
      const exec = async (file, args) => {
        if (file !== ${JSON.stringify(hangOn)}) return execFileExec(file, args);
        if (file === 'cp') await execFileExec(file, args);
        process.stdout.write('hanging\\n');
        setInterval(() => {}, 60000);
        return new Promise(() => {});
      };
      new LoopbackDriver({ rootPath: ${JSON.stringify(p.root)}, instanceId: 'instance-b', exec, loopDiscovery: ${JSON.stringify(loopDiscovery)} })
        .detachVolume(${JSON.stringify(id)}, { force: true })
        .then(() => process.stdout.write('done\\n'), (e) => process.stdout.write('error ' + e.message + '\\n'));
    `;
    const fencer = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(fencer);
    let out = '';
    await withTimeout(
      new Promise<void>((resolve, reject) => {
        fencer.stdout.on('data', (d: Buffer) => {
          out += d.toString();
          if (out.includes('hanging')) resolve();
        });
        fencer.once('exit', () => reject(new Error(`the fencer exited early: ${out}`)));
      }),
      20_000,
      'the fencer to hang',
    );
    const exited = new Promise((r) => fencer.once('exit', r));
    fencer.kill('SIGKILL');
    await exited;

    // On disk: no <id>.img, one fenced file, and (cp) a copy temp.
    const names = await fs.readdir(p.volumes);
    expect(names).not.toContain(`${id}.img`);
    const [fenced] = fencedFiles(names);
    expect(fencedFiles(names)).toHaveLength(1);
    expect(names.some((n) => classifyPoolFile(n)?.kind === 'copyTemp')).toBe(hangOn === 'cp');
    expect(loopBindingOf(oldDevice)?.backingFile).toBe(path.join(p.volumes, fenced));

    const report = await p.b.repair();
    expect(report).toMatchObject({ finishedFences: [id], releasedDevices: [], removedFencedImages: [] });
    const failure = await withTimeout(hostA.failure, 10_000, "host A's writer to fail");
    expect(failure).toMatchObject({ op: 'fsync', code: 'EIO' });
    const acked = hostA.acked();
    expect((await fs.readdir(p.volumes)).sort()).toEqual([`${id}.img`, fenced, `${id}.json`].sort());
    expect(await p.b.repair()).toMatchObject({ finishedFences: [], releasedDevices: [], removedFencedImages: [] });

    // The record still names host A (the force detach never finished); the retried one does.
    expect((await p.b.listVolumes())[0].attachedTo).toBe('instance-a');
    await p.b.detachVolume(id, { force: true });
    await p.b.attachVolume(id, 'instance-b');
    const newDevice = await p.b.getDevicePath(id);
    await expectLogIntact(newDevice, path.join(p.root, 'host-b-mnt'), acked, failure.line);

    // The killed fencer never asked for the deferred detach: releaseFenced detaches the old device once host A is gone.
    expect(await p.b.releaseFenced()).toEqual({ devices: [], images: [] });
    await hostA.kill();
    const released = await releaseUntil(p.b, (r) => r.images.length > 0);
    expect(released).toEqual({ devices: [oldDevice], images: [path.join(p.volumes, fenced)] });
    expect(loopBindingOf(oldDevice)).toBeNull();
    expect((await fs.readdir(p.volumes)).sort()).toEqual([`${id}.img`, `${id}.json`]);
    await p.b.detachVolume(id);
  });

  it('finishes an interrupted fence (and removes copy temps) when the volume is next used; repair() then releases the old device and image', async () => {
    const p = await pool();
    const v = await p.a.createVolume('ds', 8 * MiB);
    await p.a.attachVolume(v.blockdeviceId, 'instance-a');
    const device = await p.a.getDevicePath(v.blockdeviceId);
    const marker = Buffer.from('survives the interrupted fence');
    const h = await fs.open(device, 'r+');
    await h.write(marker, 0, marker.length, 4096);
    await h.sync();
    await h.close();
    // As left by a crash right after step 1 (renamed aside, no flag yet), with a copy temp of an earlier crash.
    const image = path.join(p.volumes, `${v.blockdeviceId}.img`);
    const fenced = path.join(p.volumes, `${v.blockdeviceId}.img.fenced-20261203T100000000Z-0a0b0c0d`);
    await fs.rename(image, fenced);
    await fs.writeFile(path.join(p.volumes, `${v.blockdeviceId}.img.tmp-1-deadbeef`), 'partial');

    // The holder's device serves the fenced file now, so it is not the volume's: getDevicePath finishes the fence and re-creates one.
    const again = await p.a.getDevicePath(v.blockdeviceId);
    expect(again).not.toBe(device);
    expect(await isImmutable(fenced, { exec: execFileExec })).toBe(true);
    const copy = Buffer.alloc(marker.length);
    const h2 = await fs.open(again, 'r');
    await h2.read(copy, 0, marker.length, 4096);
    await h2.close();
    expect(copy.equals(marker)).toBe(true);
    // The old device is unused: releaseFenced (via repair) detaches it and removes the fenced image.
    const report = await p.a.repair();
    expect(report).toMatchObject({ finishedFences: [], releasedDevices: [device], removedFencedImages: [fenced] });
    expect((await fs.readdir(p.volumes)).sort()).toEqual([`${v.blockdeviceId}.img`, `${v.blockdeviceId}.json`]);
    await p.a.detachVolume(v.blockdeviceId);
  });

  it('releaseFenced detaches unused devices of deleted images and leaves mounted ones alone', async () => {
    const p = await pool();
    const v = await p.a.createVolume('ds', 8 * MiB);
    const image = path.join(p.volumes, `${v.blockdeviceId}.img`);
    // As the earlier copy-only fence left them: devices of a replaced (" (deleted)") image.
    const unused = (await execFileExec('losetup', ['--find', '--show', image])).stdout.trim();
    const mounted = (await execFileExec('losetup', ['--find', '--show', image])).stdout.trim();
    await makeFilesystem(mounted, { type: 'ext4' });
    const mnt = path.join(p.root, 'mnt');
    await fs.mkdir(mnt);
    await mount(mounted, mnt, { fstype: 'ext4' });
    await fs.copyFile(image, `${image}.new`);
    await fs.rename(`${image}.new`, image);
    expect(loopBindingOf(unused)?.deleted).toBe(true);
    expect(await p.a.releaseFenced()).toEqual({ devices: [unused], images: [] });
    expect(loopBindingOf(unused)).toBeNull();
    expect(loopBindingOf(mounted)?.deleted).toBe(true);
    await unmount(mnt);
    expect(await p.a.releaseFenced()).toEqual({ devices: [mounted], images: [] });
    expect(loopBindingOf(mounted)).toBeNull();
  });

  it('fences a device that is not mounted but held open by a process (raw device user): its fsync fails with EIO', async () => {
    const p = await pool();
    const v = await p.a.createVolume('ds', 8 * MiB);
    await p.a.attachVolume(v.blockdeviceId, 'instance-a');
    const oldDevice = await p.a.getDevicePath(v.blockdeviceId);
    const raw = await fs.open(oldDevice, 'r+');
    try {
      await raw.write(Buffer.from('acknowledged'), 0, 12, 0);
      await raw.sync();
      await p.b.detachVolume(v.blockdeviceId, { force: true });
      expect(classifyPoolFile(path.basename(loopBindingOf(oldDevice)?.backingFile ?? ''))?.kind).toBe('fenced');
      await raw.write(Buffer.from('after fence!'), 0, 12, 0);
      await expect(raw.sync()).rejects.toMatchObject({ code: 'EIO' });
    } finally {
      await raw.close();
    }
    await p.b.attachVolume(v.blockdeviceId, 'instance-b');
    const h = await fs.open(await p.b.getDevicePath(v.blockdeviceId), 'r');
    const buf = Buffer.alloc(12);
    await h.read(buf, 0, 12, 0);
    await h.close();
    expect(buf.toString()).toBe('acknowledged');
    // Closed: the deferred detach has taken the old device away; the fenced image is unused now.
    expect((await releaseUntil(p.b, (r) => r.images.length > 0)).images).toHaveLength(1);
    expect(fencedFiles(await fs.readdir(p.volumes))).toEqual([]);
    await p.b.detachVolume(v.blockdeviceId);
  });

  it('every write a raw-device writer had fsynced before the fence is in the copy (writers hammering the old device while it is fenced, 3 rounds)', async () => {
    // Issue 17 #6: a write that passed the immutable check just before the flag was set must not land after cp
    // read its range (see the comment in LoopbackDriver.fenceImage: the flag change waits for it).
    const p = await pool();
    const BLOCK = 4096;
    const SLOTS = 64;
    for (let round = 1; round <= 3; round++) {
      const v = await p.a.createVolume('ds', 8 * MiB);
      await p.a.attachVolume(v.blockdeviceId, 'instance-a');
      const oldDevice = await p.a.getDevicePath(v.blockdeviceId);
      const writers = [0, 1].map((w) => startRawWriter(oldDevice, w, w * SLOTS, SLOTS));
      await Promise.all(writers.map((w) => w.waitForAcked(100)));
      await p.b.detachVolume(v.blockdeviceId, { force: true });
      const failures = await Promise.all(writers.map((w) => withTimeout(w.failure, 10_000, 'a raw writer to fail')));
      for (const f of failures) expect(f.code).toMatch(/^E(IO|PERM)$/);
      const image = await fs.open(path.join(p.volumes, `${v.blockdeviceId}.img`), 'r');
      try {
        for (const w of writers) {
          for (const [slot, acked] of w.maxAckedBySlot()) {
            const buf = Buffer.alloc(BLOCK);
            await image.read(buf, 0, BLOCK, slot * BLOCK);
            const m = /^w(\d+) (\d+)\n/.exec(buf.toString('latin1'));
            const found = m !== null && Number(m[1]) === w.id ? Number(m[2]) : 0;
            if (found < acked)
              throw new Error(
                `round ${round}: block ${slot} of the copy holds write ${found} of writer ${w.id}, but write ${acked} had been fsynced`,
              );
          }
        }
      } finally {
        await image.close();
      }
      for (const w of writers) await w.kill();
      await releaseUntil(p.b, (r) => r.images.length > 0);
    }
  });

  it('on tmpfs, whose immutable flag does not stop writes through open files, refuses to force-detach a device in use and changes nothing', async () => {
    const root = await makeTempRoot('flocker-fence-tmpfs-');
    roots.push(root);
    const mountRoot = path.join(root, 'tmpfs');
    await fs.mkdir(mountRoot);
    expect((await execFileExec('mount', ['-t', 'tmpfs', '-o', 'size=64m', 'tmpfs', mountRoot])).exitCode).toBe(0);
    try {
      const a = new LoopbackDriver({ rootPath: mountRoot, instanceId: 'instance-a' });
      const b = new LoopbackDriver({ rootPath: mountRoot, instanceId: 'instance-b' });
      const v = await a.createVolume('ds', 8 * MiB);
      await a.attachVolume(v.blockdeviceId, 'instance-a');
      const device = await a.getDevicePath(v.blockdeviceId);
      const raw = await fs.open(device, 'r+');
      try {
        const failure = await b.detachVolume(v.blockdeviceId, { force: true }).catch((e: unknown) => e);
        expect(isStorageError(failure, 'BACKEND_ERROR')).toBe(true);
        expect(String(failure)).toMatch(
          /still in use.*does not refuse writes through files opened before.*Nothing was changed/,
        );
        const volumes = path.join(mountRoot, 'volumes');
        expect((await fs.readdir(volumes)).sort()).toEqual([`${v.blockdeviceId}.img`, `${v.blockdeviceId}.json`]);
        expect(loopBindingOf(device)?.backingFile).toBe(path.join(volumes, `${v.blockdeviceId}.img`));
        expect((await b.listVolumes())[0].attachedTo).toBe('instance-a');
      } finally {
        await raw.close();
      }
      await b.detachVolume(v.blockdeviceId, { force: true });
      expect((await b.listVolumes())[0].attachedTo).toBeNull();
    } finally {
      await destroyTempRoot(mountRoot).catch(() => undefined);
      await execFileExec('umount', ['-l', mountRoot]);
    }
  });

  it('force detach also detaches a device bound to no sector of the image (one /proc/partitions does not list)', async () => {
    const p = await pool();
    const v = await p.a.createVolume('ds', 8 * MiB);
    await p.a.attachVolume(v.blockdeviceId, 'instance-a');
    const image = path.join(p.volumes, `${v.blockdeviceId}.img`);
    const run = async (args: string[]): Promise<string> => {
      const r = await execFileExec('losetup', args);
      if (r.exitCode !== 0) throw new Error(`losetup ${args.join(' ')}: ${r.stderr}`);
      return r.stdout.trim();
    };
    // Bound at an offset past the end: capacity zero, so invisible in /proc/partitions.
    const empty = await run(['--find', '--show', '--offset', String(8 * MiB), image]);
    expect(await findLoopDevices(execFileExec, image)).toContain(empty);
    await p.b.detachVolume(v.blockdeviceId, { force: true });
    expect(await findLoopDevices(execFileExec, image)).toEqual([]);
  });

  it('without the immutable flag, refuses to force-detach a device in use and changes nothing; an unused one is simply detached', async () => {
    const noFlag: ExecFn = async (file, args) =>
      file === 'chattr'
        ? { exitCode: 1, stdout: '', stderr: `chattr: Operation not supported while setting flags on ${args[1]}\n` }
        : execFileExec(file, args);
    const p = await pool({ exec: noFlag, loopDiscovery: 'losetup' });
    const { id, device } = await attachedOnA(p);
    const mnt = path.join(p.root, 'mnt');
    await fs.mkdir(mnt);
    await mount(device, mnt, { fstype: 'ext4' });
    const failure = await p.b.detachVolume(id, { force: true }).catch((e: unknown) => e);
    expect(isStorageError(failure, 'BACKEND_ERROR')).toBe(true);
    expect(String(failure)).toMatch(
      /still in use.*does not support the immutable flag.*EOPNOTSUPP.*Nothing was changed/,
    );
    expect((await p.b.listVolumes())[0].attachedTo).toBe('instance-a');
    expect((await fs.readdir(p.volumes)).sort()).toEqual([`${id}.img`, `${id}.json`]);
    expect(await p.a.getDevicePath(id)).toBe(device);
    await fs.writeFile(path.join(mnt, 'still'), 'writable');
    await execFileExec('sync', ['-f', mnt]).then((r) => expect(r.exitCode).toBe(0));

    await unmount(mnt);
    await p.b.detachVolume(id, { force: true });
    expect((await p.b.listVolumes())[0].attachedTo).toBeNull();
    expect(await findLoopDevices(execFileExec, path.join(p.volumes, `${id}.img`))).toEqual([]);
    await expectStorageError(p.a.getDevicePath(id), 'UNATTACHED');
  });
});

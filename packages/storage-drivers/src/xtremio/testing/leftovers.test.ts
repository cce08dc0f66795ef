/**
 * A harness run killed before its cleanup (kill -9) left its temporary root and the loop devices the iscsiadm
 * stand-in bound under it, and its simulator running. The next start removes them: only roots whose name records a
 * process that is gone, never a live run's, one of another form, or any other loop device.
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { promises as fs, readdirSync, readFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileExec } from '../../exec';
import { listLoopBindings } from '../../losetup';
import { XtremioDriver } from '../XtremioDriver';
import { startSimulatedArray, type SimulatedArray } from './harness';
import { ownerGone, ownerOfRoot, processStart, type RootOwner, rootPrefix, selfOwner } from './leftovers';

jest.setTimeout(120_000);

/** The bound loop devices whose backing file lies under a directory of this name (anywhere: a claim moves it). */
async function loopsNamed(dirName: string): Promise<string[]> {
  const all = (await listLoopBindings()) ?? [];
  return all.filter((b) => b.backingFile.split('/').includes(dirName)).map((b) => b.device);
}

/** The pids whose command line mentions `text`. */
function processesWith(text: string): number[] {
  const pids: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (readFileSync(`/proc/${name}/cmdline`, 'utf8').includes(text)) pids.push(Number(name));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

async function until(what: string, check: () => boolean | Promise<boolean>, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** A process running the harness with one volume attached (a loop device under its root); killed by the test. */
const CHILD = `
const { startSimulatedArray } = require(${JSON.stringify(path.join(__dirname, 'harness.js'))});
const { XtremioDriver } = require(${JSON.stringify(path.join(__dirname, '..', 'XtremioDriver.js'))});
(async () => {
  const array = await startSimulatedArray('killed');
  const d = new XtremioDriver(await array.host('h'));
  const v = await d.createVolume(${JSON.stringify(randomUUID())}, 1);
  await d.attachVolume(v.blockdeviceId, await d.computeInstanceId());
  process.stdout.write(JSON.stringify({ root: array.root, device: await d.getDevicePath(v.blockdeviceId) }) + '\\n');
  setInterval(() => undefined, 60_000);
})().catch((e) => { process.stderr.write(String(e) + '\\n'); process.exit(1); });
`;

describe('a killed harness run: the next start removes what it left', () => {
  const arrays: SimulatedArray[] = [];
  const drivers: XtremioDriver[] = [];
  let decoy: { dir: string; device: string } | undefined;
  afterAll(async () => {
    for (const d of drivers) await d.close();
    for (const a of arrays) await a.cleanup();
    if (decoy !== undefined) {
      await execFileExec('losetup', ['-d', decoy.device]);
      await fs.rm(decoy.dir, { recursive: true, force: true });
    }
  });

  it('kill -9 of a run with a volume attached: its root, loop device and simulator gone; nothing else touched', async () => {
    // A live run in this process, with a volume attached: never swept.
    const live = await startSimulatedArray('live');
    arrays.push(live);
    const d = new XtremioDriver(await live.host('l'));
    drivers.push(d);
    const v = await d.createVolume(randomUUID(), 1);
    await d.attachVolume(v.blockdeviceId, await d.computeInstanceId());
    const liveDevice = await d.getDevicePath(v.blockdeviceId);
    // A root of another form (an older harness's, another tool's) with a loop device: never ours to remove.
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'flocker-xio-'));
    await fs.writeFile(path.join(dir, 'img'), Buffer.alloc(1 << 20));
    const bound = await execFileExec('losetup', ['--find', '--show', path.join(dir, 'img')]);
    decoy = { dir, device: bound.stdout.trim() };

    const child = spawn(process.execPath, ['-e', CHILD], { stdio: ['ignore', 'pipe', 'inherit'] });
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    const started = await new Promise<{ root: string; device: string }>((resolve, reject) => {
      let out = '';
      child.stdout.on('data', (c: Buffer) => {
        out += c.toString();
        if (out.includes('\n')) resolve(JSON.parse(out) as { root: string; device: string });
      });
      child.once('exit', (code) => reject(new Error(`the harness child exited with ${code}`)));
    });
    const name = path.basename(started.root);
    expect(await loopsNamed(name)).toHaveLength(1);
    expect(processesWith(started.root)).toHaveLength(1);
    child.kill('SIGKILL');
    await exited;
    // The simulator follows its parent (its stdin closed).
    await until('the killed run’s simulator to exit', () => processesWith(started.root).length === 0);
    // Left behind until a start: the root and its loop device.
    expect(await loopsNamed(name)).toHaveLength(1);

    arrays.push(await startSimulatedArray('next'));
    expect(await loopsNamed(name)).toEqual([]);
    await expect(fs.stat(started.root)).rejects.toMatchObject({ code: 'ENOENT' });
    expect((await fs.readdir(os.tmpdir())).filter((n) => n.includes(name))).toEqual([]);
    // Untouched: the live run's root and device, the other root's device.
    await fs.stat(live.root);
    expect(await loopsNamed(path.basename(live.root))).toEqual([liveDevice]);
    expect(await loopsNamed(path.basename(dir))).toEqual([decoy.device]);
  });
});

describe('which roots are a gone run’s (pure)', () => {
  const self: RootOwner = { ns: '4026531836', pid: 100, start: '5000' };
  it('a root’s name records its owner; names of another form record none', () => {
    const name = `${rootPrefix(self)}Ab3xYz`;
    expect(ownerOfRoot(name)).toEqual(self);
    for (const other of ['flocker-xio-Ab3xYz', 'flocker-xio-1-2-Ab3xYz', `${rootPrefix(self)}Ab3`, 'flocker-xyz'])
      expect(ownerOfRoot(other)).toBeUndefined();
  });
  it.each<[string, RootOwner, string | undefined, boolean]>([
    ['this process', self, '5000', false],
    ['a live process', { ...self, pid: 7, start: '42' }, '42', false],
    ['no such pid', { ...self, pid: 7 }, undefined, true],
    ['its pid reused by another process', { ...self, pid: 7, start: '41' }, '42', true],
    ['this pid, an earlier process', { ...self, start: '4000' }, '5000', true],
    ['another pid namespace', { ...self, ns: '4026532000', pid: 7 }, undefined, false],
  ])('%s', (_what, owner, startNow, gone) => {
    const startOf = (pid: number): string | undefined => (pid === self.pid ? self.start : startNow);
    expect(ownerGone(owner, self, startOf)).toBe(gone);
  });
  it('reads this process’s start time, and none for a pid that is not there', () => {
    const me = selfOwner();
    expect(me.pid).toBe(process.pid);
    expect(processStart(process.pid)).toBe(me.start);
    expect(processStart(2 ** 30)).toBeUndefined();
  });
});

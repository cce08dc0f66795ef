/**
 * The loopback driver's attach and detach against the bare kernel work (issue 23: both are on the critical
 * path of every move, the old host detaching and the new one attaching). Real loop devices (root only).
 *
 *   node packages/storage-drivers/dist/bench/attachBench.js [--pairs 30] [--against [name=]<dist dir of another build>]…
 *
 * Each side has its own pool with one volume and two instances (as the two hosts of a move) taking turns:
 * attach (attachVolume + getDevicePath, what the agent's attach action runs) then detach (detachVolume).
 * `raw` is the floor: the same ioctls through flocker-syshelper (LOOP_CTL_GET_FREE + LOOP_SET_FD, LOOP_CLR_FD)
 * without pool lock, record or checks; `losetup` the bare tool (`--find --show`, `-d`: a process each). With `--against` (the dist/ of an older build, e.g. from a
 * `git worktree`; repeatable), that build's driver runs as `old` (or the name given) in the same rounds. Each
 * round runs the floor, then the drivers in rotating order, so every driver sees the same load and follows each
 * other side equally often (a cycle right after another's record write pays for that in its fsync); medians and
 * p99 over the rounds, and the median of the per-round ratios against `new`.
 */
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { execFileExec, runChecked } from '../exec';
import { LoopIoctls } from '../losetup';
import { LoopbackDriver } from '../LoopbackDriver';

const MiB = 1024 * 1024;

interface Cycle {
  attach: number;
  detach: number;
}

interface Side {
  readonly name: string;
  cycle(round: number): Promise<Cycle>;
  close(): Promise<void>;
}

/** What a driver build exports that the bench uses (an older build's module is loaded untyped). */
interface DriverLike {
  createVolume(datasetId: string, size: number): Promise<{ blockdeviceId: string }>;
  attachVolume(blockdeviceId: string, instanceId: string): Promise<unknown>;
  getDevicePath(blockdeviceId: string): Promise<string>;
  detachVolume(blockdeviceId: string): Promise<void>;
  destroyVolume(blockdeviceId: string): Promise<void>;
  repair(): Promise<unknown>;
}
type DriverClass = new (options: { rootPath: string; instanceId: string }) => DriverLike;

async function timed<T>(fn: () => Promise<T>): Promise<[number, T]> {
  const started = performance.now();
  const result = await fn();
  return [performance.now() - started, result];
}

async function driverSide(name: string, Driver: DriverClass, roots: string[]): Promise<Side> {
  const root = await fs.mkdtemp(path.join(tmpdir(), `flocker-attach-bench-${name}-`));
  roots.push(root);
  const hosts = [
    new Driver({ rootPath: root, instanceId: 'bench-a' }),
    new Driver({ rootPath: root, instanceId: 'bench-b' }),
  ];
  const { blockdeviceId: id } = await hosts[0].createVolume('bench', 16 * MiB);
  return {
    name,
    async cycle(round) {
      const host = hosts[round % 2];
      const instance = round % 2 === 0 ? 'bench-a' : 'bench-b';
      const [attach, device] = await timed(async () => {
        await host.attachVolume(id, instance);
        return host.getDevicePath(id);
      });
      if (!/^\/dev\/loop\d+$/.test(device)) throw new Error(`${name}: attach answered ${device}`);
      const [detach] = await timed(() => host.detachVolume(id));
      return { attach, detach };
    },
    async close() {
      await hosts[0].detachVolume(id).catch(() => undefined);
      await hosts[1].detachVolume(id).catch(() => undefined);
      await hosts[0].destroyVolume(id);
      await hosts[0].repair();
    },
  };
}

async function rawSide(roots: string[]): Promise<Side> {
  const root = await fs.mkdtemp(path.join(tmpdir(), 'flocker-attach-bench-raw-'));
  roots.push(root);
  const image = path.join(root, 'raw.img');
  await fs.writeFile(image, '');
  await fs.truncate(image, 16 * MiB);
  const ioctls = new LoopIoctls();
  let bound: string | null = null;
  return {
    name: 'raw',
    async cycle() {
      const [attach, device] = await timed(() => ioctls.attach(image));
      if (device === null) throw new Error('flocker-syshelper cannot run here: no raw floor');
      bound = device;
      const [detach] = await timed(() => ioctls.detach(device));
      bound = null;
      return { attach, detach };
    },
    async close() {
      if (bound !== null) await ioctls.detach(bound).catch(() => undefined);
    },
  };
}

/** `losetup --find --show` and `losetup -d`: the bare tool, a process each (what the trace compared with). */
async function losetupSide(roots: string[]): Promise<Side> {
  const root = await fs.mkdtemp(path.join(tmpdir(), 'flocker-attach-bench-losetup-'));
  roots.push(root);
  const image = path.join(root, 'losetup.img');
  await fs.writeFile(image, '');
  await fs.truncate(image, 16 * MiB);
  let bound: string | null = null;
  return {
    name: 'losetup',
    async cycle() {
      const [attach, device] = await timed(async () =>
        (await runChecked(execFileExec, 'losetup', ['--find', '--show', image], 'losetup')).trim(),
      );
      bound = device;
      const [detach] = await timed(() => runChecked(execFileExec, 'losetup', ['-d', device], 'losetup -d'));
      bound = null;
      return { attach, detach };
    },
    async close() {
      if (bound !== null) await execFileExec('losetup', ['-d', bound]);
    },
  };
}

function quantile(xs: readonly number[], q: number): number {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)];
}

function parseArgs(argv: readonly string[]): { pairs: number; against: { name: string; dir: string }[] } {
  let pairs = 30;
  const against: { name: string; dir: string }[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--pairs') pairs = Number(argv[++i]);
    else if (argv[i] === '--against') {
      const m = /^(\w+)=(.*)$/.exec(argv[++i] ?? '');
      against.push(m ? { name: m[1], dir: m[2] } : { name: 'old', dir: argv[i] });
    } else throw new Error(`unknown argument ${argv[i]} (--pairs N, --against [name=]<dist dir>)`);
  }
  if (!Number.isInteger(pairs) || pairs < 1) throw new Error('--pairs needs a positive integer');
  return { pairs, against };
}

async function main(): Promise<void> {
  const { pairs, against } = parseArgs(process.argv.slice(2));
  const roots: string[] = [];
  const sides: Side[] = [];
  try {
    sides.push(await rawSide(roots));
    sides.push(await losetupSide(roots));
    sides.push(await driverSide('new', LoopbackDriver, roots));
    for (const { name, dir } of against) {
      // eslint-disable-next-line @typescript-eslint/no-require-imports -- another build, chosen at run time
      const other = require(path.resolve(dir, 'LoopbackDriver.js')) as { LoopbackDriver: DriverClass };
      sides.push(await driverSide(name, other.LoopbackDriver, roots));
    }
    // One warm-up round: helpers started, pool directories resolved.
    for (const side of sides) await side.cycle(0);
    const samples = new Map<string, Cycle[]>(sides.map((s) => [s.name, []]));
    // The floors first in every round, then the drivers in rotating order: each follows the floors (whose cycles
    // leave the journal idle) and each other driver (which just renamed a record) equally often.
    const floors = sides.slice(0, 2);
    const drivers = sides.slice(2);
    for (let round = 0; round < pairs; round++) {
      for (const floor of floors) samples.get(floor.name)!.push(await floor.cycle(round));
      for (let k = 0; k < drivers.length; k++) {
        const side = drivers[(round + k) % drivers.length];
        samples.get(side.name)!.push(await side.cycle(round));
      }
    }
    const fmt = (x: number): string => x.toFixed(2).padStart(7);
    console.log(`${pairs} interleaved rounds, load ${(await fs.readFile('/proc/loadavg', 'utf8')).split(' ')[0]}`);
    console.log('side     attach p50    p99   detach p50    p99    cycle p50    p99   (ms)');
    const base = samples.get('new')!;
    for (const [name, cycles] of samples) {
      const of = (f: (c: Cycle) => number): string =>
        `${fmt(quantile(cycles.map(f), 0.5))} ${fmt(quantile(cycles.map(f), 0.99))}`;
      console.log(
        `${name.padEnd(8)} ${of((c) => c.attach)}     ${of((c) => c.detach)}     ${of((c) => c.attach + c.detach)}`,
      );
    }
    for (const [name, cycles] of samples) {
      if (name === 'new') continue;
      const ratio = (f: (c: Cycle) => number): string =>
        quantile(
          cycles.map((c, i) => f(base[i]) / f(c)),
          0.5,
        ).toFixed(2);
      console.log(
        `new/${name} per-round median ratio: attach ${ratio((c) => c.attach)}, detach ${ratio((c) => c.detach)}, cycle ${ratio((c) => c.attach + c.detach)}`,
      );
    }
  } finally {
    for (const side of sides) await side.close().catch((e: unknown) => console.error(`${side.name}: ${String(e)}`));
    for (const root of roots) await fs.rm(root, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    console.error(e);
    process.exit(1);
  },
);

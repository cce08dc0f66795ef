/**
 * The loopback driver's share of a new volume and its removal (issue 23), step by step, against the bare kernel
 * work. Real loop devices (root only).
 *
 *   node packages/storage-drivers/dist/bench/claimBench.js [--pairs 20] [--volumes 8] [--size-mib 1024]
 *       [--against [name=]<dist dir of another build>]…
 *
 * A driver side runs what the agent runs for a plugin-created volume: claimSpare (onlyVolume, attach: the claim
 * of a pre-formatted, pre-attached spare), mount, then at the removal unmount, detachVolume and destroyVolume. The
 * spare is made before each round, untimed (the agent makes it while idle). Each pool also holds `--volumes`
 * other volumes (the claim's guard against a second volume reads every record). `raw` is the floor: mount(2) of a
 * pre-formatted image's pre-bound loop device, umount(2), LOOP_CLR_FD and unlink, through flocker-syshelper.
 * With `--against` (the dist/ of an older build, e.g. from a `git worktree`), that build's driver runs in the same
 * rounds, in rotating order after the floor; medians and p99 over the rounds, and the median per-round difference.
 */
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { mount, unmount } from '../blockdev';
import { execFileExec, runChecked } from '../exec';
import { LoopIoctls } from '../losetup';
import { LoopbackDriver } from '../LoopbackDriver';

const MiB = 1024 * 1024;
const STEPS = ['claim', 'mount', 'unmount', 'detach', 'destroy'] as const;
type Step = (typeof STEPS)[number];
type Cycle = Record<Step, number>;

interface Side {
  readonly name: string;
  prepare(round: number): Promise<void>;
  cycle(round: number): Promise<Cycle>;
  close(): Promise<void>;
}

/** What a driver build exports that the bench uses (an older build's module is loaded untyped). */
interface DriverLike {
  createVolume(datasetId: string, size: number): Promise<{ blockdeviceId: string }>;
  makeSpare(size: number): Promise<{ id: string }>;
  listSpares(): Promise<{ id: string }[]>;
  claimSpare(
    datasetId: string,
    size: number,
    options: { onlyVolume?: boolean; attach?: boolean },
  ): Promise<{ blockdeviceId: string; devicePath?: string } | undefined>;
  detachVolume(blockdeviceId: string): Promise<void>;
  destroyVolume(blockdeviceId: string): Promise<void>;
  destroySpare(id: string): Promise<void>;
  listVolumes(): Promise<{ blockdeviceId: string }[]>;
  repair(): Promise<unknown>;
}
type DriverClass = new (options: { rootPath: string; instanceId: string }) => DriverLike;

async function timed<T>(fn: () => Promise<T>): Promise<[number, T]> {
  const started = performance.now();
  const result = await fn();
  return [performance.now() - started, result];
}

async function driverSide(
  name: string,
  Driver: DriverClass,
  roots: string[],
  size: number,
  volumes: number,
): Promise<Side> {
  const root = await fs.mkdtemp(path.join(tmpdir(), `flocker-claim-bench-${name}-`));
  roots.push(root);
  const driver = new Driver({ rootPath: root, instanceId: `bench-${name}` });
  for (let i = 0; i < volumes; i++) await driver.createVolume(`other-${i}`, 16 * MiB);
  const mountPoint = path.join(root, 'mnt');
  await fs.mkdir(mountPoint);
  let mounted = false;
  return {
    name,
    async prepare() {
      if ((await driver.listSpares()).length === 0) await driver.makeSpare(size);
    },
    async cycle(round) {
      const [claim, claimed] = await timed(() =>
        driver.claimSpare(`bench-${round}`, size, { onlyVolume: true, attach: true }),
      );
      if (claimed?.devicePath === undefined) throw new Error(`${name}: no spare claimed with a device`);
      const device = claimed.devicePath;
      const [mountMs] = await timed(() => mount(device, mountPoint, { fstype: 'ext4' }));
      mounted = true;
      const [unmountMs] = await timed(() => unmount(mountPoint));
      mounted = false;
      const [detach] = await timed(() => driver.detachVolume(claimed.blockdeviceId));
      const [destroy] = await timed(() => driver.destroyVolume(claimed.blockdeviceId));
      return { claim, mount: mountMs, unmount: unmountMs, detach, destroy };
    },
    async close() {
      if (mounted) await unmount(mountPoint).catch(() => undefined);
      for (const s of await driver.listSpares()) await driver.destroySpare(s.id);
      for (const v of await driver.listVolumes()) {
        await driver.detachVolume(v.blockdeviceId).catch(() => undefined);
        await driver.destroyVolume(v.blockdeviceId);
      }
      await driver.repair();
    },
  };
}

/** The kernel's share: mount(2)/umount(2) of a pre-bound, pre-formatted image's device, LOOP_CLR_FD, unlink. */
async function rawSide(roots: string[], size: number): Promise<Side> {
  const root = await fs.mkdtemp(path.join(tmpdir(), 'flocker-claim-bench-raw-'));
  roots.push(root);
  const mountPoint = path.join(root, 'mnt');
  await fs.mkdir(mountPoint);
  const ioctls = new LoopIoctls();
  let device: string | null = null;
  let mounted = false;
  const image = path.join(root, 'raw.img');
  return {
    name: 'raw',
    async prepare() {
      await fs.writeFile(image, '');
      await fs.truncate(image, size);
      await runChecked(execFileExec, 'mkfs.ext4', ['-q', '-F', image], 'mkfs.ext4');
      device = await ioctls.attach(image);
      if (device === null) throw new Error('flocker-syshelper cannot run here: no raw floor');
    },
    async cycle() {
      const dev = device!;
      const [mountMs] = await timed(() => mount(dev, mountPoint, { fstype: 'ext4' }));
      mounted = true;
      const [unmountMs] = await timed(() => unmount(mountPoint));
      mounted = false;
      const [detach] = await timed(() => ioctls.detach(dev));
      device = null;
      const [destroy] = await timed(() => fs.rm(image));
      return { claim: 0, mount: mountMs, unmount: unmountMs, detach, destroy };
    },
    async close() {
      if (mounted) await unmount(mountPoint).catch(() => undefined);
      if (device !== null) await ioctls.detach(device).catch(() => undefined);
    },
  };
}

function quantile(xs: readonly number[], q: number): number {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)];
}

interface Args {
  pairs: number;
  volumes: number;
  size: number;
  against: { name: string; dir: string }[];
}

function parseArgs(argv: readonly string[]): Args {
  const args: Args = { pairs: 20, volumes: 8, size: 1024 * MiB, against: [] };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--pairs') args.pairs = Number(argv[++i]);
    else if (argv[i] === '--volumes') args.volumes = Number(argv[++i]);
    else if (argv[i] === '--size-mib') args.size = Number(argv[++i]) * MiB;
    else if (argv[i] === '--against') {
      const m = /^(\w+)=(.*)$/.exec(argv[++i] ?? '');
      args.against.push(m ? { name: m[1], dir: m[2] } : { name: 'old', dir: argv[i] });
    } else
      throw new Error(`unknown argument ${argv[i]} (--pairs N, --volumes N, --size-mib N, --against [name=]<dir>)`);
  }
  if (!Number.isInteger(args.pairs) || args.pairs < 1) throw new Error('--pairs needs a positive integer');
  if (!Number.isInteger(args.volumes) || args.volumes < 0) throw new Error('--volumes needs an integer ≥ 0');
  if (!Number.isInteger(args.size) || args.size < 64 * MiB) throw new Error('--size-mib needs an integer ≥ 64');
  return args;
}

async function main(): Promise<void> {
  const { pairs, volumes, size, against } = parseArgs(process.argv.slice(2));
  const roots: string[] = [];
  const sides: Side[] = [];
  try {
    sides.push(await rawSide(roots, size));
    sides.push(await driverSide('new', LoopbackDriver, roots, size, volumes));
    for (const { name, dir } of against) {
      // eslint-disable-next-line @typescript-eslint/no-require-imports -- another build, chosen at run time
      const other = require(path.resolve(dir, 'LoopbackDriver.js')) as { LoopbackDriver: DriverClass };
      sides.push(await driverSide(name, other.LoopbackDriver, roots, size, volumes));
    }
    // One warm-up round: helpers started, pool directories resolved.
    for (const side of sides) {
      await side.prepare(-1);
      await side.cycle(-1);
    }
    const samples = new Map<string, Cycle[]>(sides.map((s) => [s.name, []]));
    const floor = sides[0];
    const drivers = sides.slice(1);
    for (let round = 0; round < pairs; round++) {
      for (const side of sides) await side.prepare(round);
      // Let the spares' writes settle (the agent makes them only while idle), as before a `docker run`.
      await runChecked(execFileExec, 'sync', [], 'sync');
      samples.get(floor.name)!.push(await floor.cycle(round));
      for (let k = 0; k < drivers.length; k++) {
        const side = drivers[(round + k) % drivers.length];
        samples.get(side.name)!.push(await side.cycle(round));
      }
    }
    const fmt = (x: number): string => x.toFixed(2).padStart(6);
    console.log(
      `${pairs} interleaved rounds, ${volumes} other volumes per pool, ${size / MiB} MiB, load ${(await fs.readFile('/proc/loadavg', 'utf8')).split(' ')[0]}`,
    );
    console.log(
      `side     ${STEPS.map((s) => `${s.padStart(7)} p50    p99`).join('  ')}   new-volume p50  removal p50 (ms)`,
    );
    for (const [name, cycles] of samples) {
      const cols = STEPS.map(
        (s) =>
          `${fmt(
            quantile(
              cycles.map((c) => c[s]),
              0.5,
            ),
          )} ${fmt(
            quantile(
              cycles.map((c) => c[s]),
              0.99,
            ),
          )}`,
      );
      const create = quantile(
        cycles.map((c) => c.claim + c.mount),
        0.5,
      );
      const removal = quantile(
        cycles.map((c) => c.unmount + c.detach + c.destroy),
        0.5,
      );
      console.log(`${name.padEnd(8)} ${cols.join('  ')}   ${fmt(create)}        ${fmt(removal)}`);
    }
    const base = samples.get('new')!;
    for (const [name, cycles] of samples) {
      if (name === 'new' || name === 'raw') continue;
      const diff = (f: (c: Cycle) => number): string =>
        quantile(
          cycles.map((c, i) => f(base[i]) - f(c)),
          0.5,
        ).toFixed(2);
      const slower = (f: (c: Cycle) => number): number => cycles.filter((c, i) => f(c) > f(base[i])).length;
      console.log(
        `new−${name} per-round median (ms): ${STEPS.map((s) => `${s} ${diff((c) => c[s])}`).join(', ')}; ` +
          `claim+mount ${diff((c) => c.claim + c.mount)} (${name} slower in ${slower((c) => c.claim + c.mount)}/${cycles.length}), ` +
          `removal ${diff((c) => c.unmount + c.detach + c.destroy)} (${name} slower in ${slower((c) => c.unmount + c.detach + c.destroy)}/${cycles.length})`,
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

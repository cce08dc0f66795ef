#!/usr/bin/env node
/**
 * Benchmark (issue 20): snapshots and clones through the API with a real agent on a loopback
 * pool, on a pool file system without reflink (ext4: sparse copy) and with it (xfs
 * reflink=1, on a loop-mounted image), for a 1 GiB and a 10 GiB volume holding data:
 *   - snapshot latency: POST /v1/configuration/snapshots until /v1/state/snapshots holds it;
 *   - the frozen window (the agent's fsfreeze → thaw, from its log), against the raw
 *     `fsfreeze -f; cp --reflink=auto --sparse=always; fsfreeze -u` of the same image;
 *   - clone → mounted (POST datasets with source_snapshot_id) against create → mounted of a
 *     new volume of the same size, and the raw truncate + losetup + mkfs.ext4 + mount.
 *
 *   node packages/dataset-agent/dist/bench/snapshotBench.js --out bench.json [--runs 10] [--big-runs 3]
 *
 * Needs root (loop devices, mounts, fsfreeze).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import yargs from 'yargs';
import { FlockerClient, type ClusterSnapshot } from '@flocker/api';
import { parseMountInfo } from '@flocker/storage-drivers';
import { ms, stats, until, type Stats } from './bench';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

const mountPathOf = (s: ClusterSnapshot, node: string, id: string): string | undefined =>
  s.nodes.find((n) => n.uuid === node)?.manifestations.find((m) => m.dataset_id === id && m.status === 'mounted')?.path;
const held = (s: ClusterSnapshot, id: string): boolean =>
  s.nodes.some((n) => (n.snapshots ?? []).some((x) => x.snapshot_id === id && x.status === 'ready'));
const gone = (s: ClusterSnapshot, ids: readonly string[]): boolean =>
  s.nodes.every(
    (n) =>
      !(n.volumes ?? []).some((v) => ids.includes(v.dataset_id)) &&
      !(n.snapshots ?? []).some((x) => ids.includes(x.snapshot_id)),
  );

interface Case {
  pool: 'ext4 (sparse copy)' | 'xfs reflink=1 (reflink)';
  sizeGiB: number;
  dataMiB: number;
  runs: number;
  snapshot: Stats;
  frozen: Stats;
  rawFrozen: Stats;
  clone: Stats;
  create: Stats;
  rawCreate: Stats;
}

/** One control service and agent on a pool at `poolRoot`; `frozen` receives the agent's frozen windows by snapshot id. */
async function stack(
  dir: string,
  poolRoot: string,
  frozen: Map<string, number>,
): Promise<{ client: FlockerClient; node: string; stop: () => Promise<void> }> {
  const here = __dirname;
  const procs: ChildProcess[] = [];
  const control = spawn(
    process.execPath,
    [
      resolve(here, '../../../control-api/dist/main.js'),
      '--port',
      '0',
      '--host',
      '127.0.0.1',
      '--data-dir',
      join(dir, 'control'),
      '--log-level',
      'error',
      '--insecure-http',
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  procs.push(control);
  const [line] = (await once(control.stdout, 'data')) as [Buffer];
  const port = (JSON.parse(line.toString().split('\n')[0] ?? '{}') as { port: number }).port;
  writeFileSync(
    join(dir, 'agent.yml'),
    [
      'version: 1',
      `control-service: {hostname: 127.0.0.1, port: ${port}}`,
      `dataset: {backend: loopback, root_path: ${poolRoot}}`,
      `node: {state_dir: ${join(dir, 'state')}, mount_root: ${join(dir, 'mnt')}}`,
      'agent: {resync_interval_seconds: 10, log_level: info}',
      '',
    ].join('\n'),
  );
  const agent = spawn(process.execPath, [resolve(here, '../main.js'), '--config', join(dir, 'agent.yml')], {
    stdio: ['ignore', 'pipe', 2],
  });
  procs.push(agent);
  if (agent.stdout === null) throw new Error('the agent has no stdout');
  createInterface({ input: agent.stdout }).on('line', (l) => {
    if (!l.includes('frozenMs')) return;
    try {
      const entry = JSON.parse(l) as { snapshotId?: string; frozenMs?: number };
      if (entry.snapshotId !== undefined && entry.frozenMs !== undefined) frozen.set(entry.snapshotId, entry.frozenMs);
    } catch {
      // not a log entry
    }
  });
  const client = new FlockerClient({ baseUrl: `http://127.0.0.1:${port}` });
  await until(client, (s) => s.nodes.length > 0, 30_000);
  const node = (JSON.parse(readFileSync(join(dir, 'state', 'node.json'), 'utf8')) as { uuid: string }).uuid;
  return {
    client,
    node,
    stop: async () => {
      for (const p of procs.reverse()) {
        if (p.exitCode === null && p.signalCode === null) {
          p.kill('SIGTERM');
          await once(p, 'exit');
        }
      }
    },
  };
}

/** The raw baseline of a snapshot: freeze, copy the image the way the driver does, thaw. */
function rawSnapshot(mnt: string, image: string, copy: string): number {
  const start = process.hrtime.bigint();
  execFileSync('fsfreeze', ['-f', mnt]);
  try {
    execFileSync('cp', ['--reflink=auto', '--sparse=always', image, copy]);
  } finally {
    execFileSync('fsfreeze', ['-u', mnt]);
  }
  const took = ms(start);
  rmSync(copy);
  return took;
}

function rawCreate(dir: string, size: number): number {
  const img = join(dir, 'raw.img');
  const mnt = join(dir, 'raw');
  const start = process.hrtime.bigint();
  execFileSync('truncate', ['-s', String(size), img]);
  const dev = execFileSync('losetup', ['--find', '--show', img], { encoding: 'utf8' }).trim();
  execFileSync('mkfs.ext4', ['-q', '-E', 'lazy_itable_init=1,lazy_journal_init=1', dev]);
  mkdirSync(mnt, { recursive: true });
  execFileSync('mount', ['-t', 'ext4', dev, mnt]);
  const took = ms(start);
  execFileSync('umount', [mnt]);
  execFileSync('losetup', ['-d', dev]);
  rmSync(img);
  return took;
}

/** The loop device's backing image of a mount (the volume's image in the pool). */
function imageOf(mountPath: string): string {
  const m = parseMountInfo(readFileSync('/proc/self/mountinfo', 'utf8')).find((x) => x.mountPoint === mountPath);
  const loop = /\/dev\/(loop\d+)/.exec(m?.device ?? '')?.[1];
  if (loop === undefined) throw new Error(`${mountPath} is not a loop mount`);
  return readFileSync(`/sys/block/${loop}/loop/backing_file`, 'utf8').trim();
}

async function runCase(
  dir: string,
  pool: Case['pool'],
  poolRoot: string,
  sizeGiB: number,
  dataMiB: number,
  runs: number,
): Promise<Case> {
  const frozen = new Map<string, number>();
  const s = await stack(join(dir, `stack-${sizeGiB}`), poolRoot, frozen);
  const { client, node } = s;
  try {
    const size = sizeGiB * GiB;
    const src = await client.createDataset({ primary: node, maximum_size: size });
    let path: string | undefined;
    await until(client, (c) => (path = mountPathOf(c, node, src.dataset_id)) !== undefined);
    // Data in the volume: random (incompressible, and every block allocated in the image).
    execFileSync('dd', ['if=/dev/urandom', `of=${join(path!, 'data')}`, 'bs=1M', `count=${dataMiB}`, 'conv=fsync'], {
      stdio: 'ignore',
    });
    const image = imageOf(path!);
    const r = { snapshot: [] as number[], frozen: [] as number[], rawFrozen: [] as number[] };
    const c = { clone: [] as number[], create: [] as number[], raw: [] as number[] };
    for (let i = 0; i < runs; i++) {
      r.rawFrozen.push(rawSnapshot(path!, image, join(poolRoot, 'raw-copy.img')));
      let start = process.hrtime.bigint();
      const snap = await client.createSnapshot({ dataset_id: src.dataset_id });
      await until(client, (x) => held(x, snap.snapshot_id));
      r.snapshot.push(ms(start));
      r.frozen.push(frozen.get(snap.snapshot_id) ?? NaN);

      start = process.hrtime.bigint();
      const clone = await client.createDataset({ primary: node, source_snapshot_id: snap.snapshot_id });
      await until(client, (x) => mountPathOf(x, node, clone.dataset_id) !== undefined);
      c.clone.push(ms(start));
      start = process.hrtime.bigint();
      const fresh = await client.createDataset({ primary: node, maximum_size: size });
      await until(client, (x) => mountPathOf(x, node, fresh.dataset_id) !== undefined);
      c.create.push(ms(start));
      c.raw.push(rawCreate(dir, size));
      process.stderr.write(
        `${pool} ${sizeGiB} GiB run ${i + 1}/${runs}: snapshot ${r.snapshot[i]!.toFixed(0)} ms (frozen ${r.frozen[i]} ms, raw ${r.rawFrozen[i]!.toFixed(1)} ms), clone→mounted ${c.clone[i]!.toFixed(0)} ms, create→mounted ${c.create[i]!.toFixed(0)} ms, raw ${c.raw[i]!.toFixed(0)} ms\n`,
      );
      await Promise.all([client.deleteDataset(clone.dataset_id), client.deleteDataset(fresh.dataset_id)]);
      await client.deleteSnapshot(snap.snapshot_id);
      await until(client, (x) => gone(x, [clone.dataset_id, fresh.dataset_id, snap.snapshot_id]));
    }
    await client.deleteDataset(src.dataset_id);
    await until(client, (x) => gone(x, [src.dataset_id]));
    return {
      pool,
      sizeGiB,
      dataMiB,
      runs,
      snapshot: stats(r.snapshot),
      frozen: stats(r.frozen),
      rawFrozen: stats(r.rawFrozen),
      clone: stats(c.clone),
      create: stats(c.create),
      rawCreate: stats(c.raw),
    };
  } finally {
    await s.stop();
  }
}

async function main(): Promise<void> {
  const argv = yargs(process.argv.slice(2))
    .option('out', { type: 'string', demandOption: true })
    .option('runs', { type: 'number', default: 10, describe: 'runs for the 1 GiB volume' })
    .option('big-runs', { type: 'number', default: 3, describe: 'runs for the 10 GiB volume' })
    .strict()
    .parseSync();
  const dir = mkdtempSync(join(tmpdir(), 'flocker-snapbench-'));
  const cases: Case[] = [];
  try {
    // A reflink-capable pool: xfs with reflink=1 on a sparse image (room for the 10 GiB case's copies).
    const xfsImage = join(dir, 'xfs.img');
    execFileSync('truncate', ['-s', String(64 * GiB), xfsImage]);
    execFileSync('mkfs.xfs', ['-q', '-m', 'reflink=1', xfsImage]);
    const xfsPool = join(dir, 'xfs');
    mkdirSync(xfsPool);
    execFileSync('mount', ['-o', 'loop', xfsImage, xfsPool]);
    for (const [pool, root] of [
      ['xfs reflink=1 (reflink)', join(xfsPool, 'pool')],
      ['ext4 (sparse copy)', join(dir, 'ext4pool')],
    ] as const) {
      cases.push(await runCase(join(dir, pool.slice(0, 3) + '-1'), pool, root, 1, 256, argv.runs));
      cases.push(await runCase(join(dir, pool.slice(0, 3) + '-10'), pool, root, 10, 1024, argv['big-runs']));
    }
    writeFileSync(argv.out, JSON.stringify({ when: new Date().toISOString(), cases }, null, 2) + '\n');
    process.stdout.write(markdown(cases));
  } finally {
    cleanup(dir);
  }
}

const r2 = (n: number): number => Math.round(n * 100) / 100;

function markdown(cases: readonly Case[]): string {
  const row = (c: Case) =>
    `| ${c.pool} | ${c.sizeGiB} GiB (${c.dataMiB} MiB data) | ${c.runs} | ${c.snapshot.median} / ${c.snapshot.p99} | ` +
    `**${c.frozen.median}** / ${c.frozen.p99} | ${c.rawFrozen.median} / ${c.rawFrozen.p99} | ` +
    `${c.clone.median} / ${c.clone.p99} | ${c.create.median} / ${c.create.p99} | ${c.rawCreate.median} | ` +
    `${r2(c.clone.median / c.create.median)} |`;
  return [
    'One node, loopback backend, the volume mounted and holding random data. "snapshot" = POST /v1/configuration/snapshots',
    'until a backend reports it ready; "frozen" = how long the agent kept the file system frozen (fsfreeze → thaw, around',
    "the driver's copy), against the raw `fsfreeze -f; cp --reflink=auto --sparse=always; fsfreeze -u` of the same image",
    'in the same run; "clone → mounted" = POST datasets with source_snapshot_id until mounted, against "create → mounted"',
    'of a new volume of the same size and the raw truncate + losetup + mkfs.ext4 + mount. Medians / p99 in ms.',
    '',
    '| pool | volume | runs | snapshot | frozen | raw freeze+copy | clone → mounted | create → mounted | raw create | clone / create |',
    '|---|---|---|---|---|---|---|---|---|---|',
    ...cases.map(row),
    '',
    'Target: frozen window < 50 ms on loopback with reflink.',
    '',
  ].join('\n');
}

function cleanup(dir: string): void {
  const mounts = parseMountInfo(readFileSync('/proc/self/mountinfo', 'utf8')).filter((m) =>
    m.mountPoint.startsWith(dir + '/'),
  );
  for (const m of mounts.reverse()) execFileSync('umount', ['-l', m.mountPoint]);
  const loops = execFileSync('losetup', ['-l', '-n', '-O', 'NAME,BACK-FILE'], { encoding: 'utf8' });
  for (const l of loops.split('\n')) {
    const [dev, file] = l.trim().split(/\s+/, 2);
    if (dev && file?.startsWith(dir + '/')) execFileSync('losetup', ['-d', dev]);
  }
  rmSync(dir, { recursive: true, force: true });
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});

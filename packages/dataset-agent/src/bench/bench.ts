#!/usr/bin/env node
/**
 * Benchmark: create->mounted latency of a 1 GiB dataset through the API versus
 * the raw sequence (truncate + losetup + mkfs.ext4 + mount) in the same run,
 * delete latency, and the time to converge 100 datasets created at once.
 *
 *   node packages/dataset-agent/dist/bench/bench.js --out bench.json [--runs 10] [--many 100]
 *
 * Runs a control service and one agent (separate processes) on a temp loopback pool; needs root.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import {
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
  existsSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { once } from 'node:events';
import yargs from 'yargs';
import { FlockerClient, type ClusterSnapshot } from '@flocker/api';
import { parseMountInfo } from '@flocker/storage-drivers';

const GiB = 1024 * 1024 * 1024;

export interface Stats {
  samples: number[];
  median: number;
  p99: number;
  min: number;
  max: number;
}

export function stats(samples: number[]): Stats {
  const s = [...samples].sort((a, b) => a - b);
  const at = (q: number): number => s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)] ?? NaN;
  const median = s.length % 2 === 1 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
  const r = (n: number): number => Math.round(n * 100) / 100;
  return {
    samples: samples.map(r),
    median: r(median),
    p99: r(at(0.99)),
    min: r(s[0] ?? NaN),
    max: r(s[s.length - 1] ?? NaN),
  };
}

export function ms(start: bigint): number {
  return Number(process.hrtime.bigint() - start) / 1e6;
}

/** Waits (long-polling the cluster generation) until `done(snapshot)` holds. */
export async function until(
  client: FlockerClient,
  done: (s: ClusterSnapshot) => boolean,
  timeoutMs = 120_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let snap = await client.waitForCluster(undefined, 0);
  while (!done(snap)) {
    if (Date.now() > deadline) throw new Error('benchmark step timed out');
    snap = await client.waitForCluster(snap.generation, Math.min(5000, deadline - Date.now()));
  }
}

function mountedOn(s: ClusterSnapshot, node: string, ids: ReadonlySet<string>): boolean {
  const n = s.nodes.find((x) => x.uuid === node);
  const mounted = new Set((n?.manifestations ?? []).filter((m) => m.status === 'mounted').map((m) => m.dataset_id));
  for (const id of ids) if (!mounted.has(id)) return false;
  return true;
}

function goneFromPool(s: ClusterSnapshot, node: string, ids: ReadonlySet<string>): boolean {
  const n = s.nodes.find((x) => x.uuid === node);
  return n !== undefined && !(n.volumes ?? []).some((v) => ids.has(v.dataset_id));
}

function rawCreate(dir: string, i: number): { ms: number; cleanup: () => void } {
  const img = join(dir, `raw-${i}.img`);
  const mnt = join(dir, `raw-${i}`);
  const start = process.hrtime.bigint();
  execFileSync('truncate', ['-s', String(GiB), img]);
  const dev = execFileSync('losetup', ['--find', '--show', img], { encoding: 'utf8' }).trim();
  execFileSync('mkfs.ext4', ['-q', '-E', 'lazy_itable_init=1,lazy_journal_init=1', dev]);
  mkdirSync(mnt, { recursive: true });
  execFileSync('mount', ['-t', 'ext4', dev, mnt]);
  const took = ms(start);
  return {
    ms: took,
    cleanup: () => {
      execFileSync('umount', [mnt]);
      execFileSync('losetup', ['-d', dev]);
      rmSync(img);
    },
  };
}

async function main(): Promise<void> {
  const argv = yargs(process.argv.slice(2))
    .option('out', { type: 'string', demandOption: true, describe: 'where to write the JSON results' })
    .option('runs', { type: 'number', default: 10 })
    .option('many', { type: 'number', default: 100, describe: 'datasets created at once for the convergence test' })
    .option('concurrency', { type: 'number', default: 4, describe: "the agent's action concurrency" })
    .option('spares', {
      type: 'number',
      default: 2,
      describe: 'spare volumes per size class (agent.yml dataset.spares, issue 23); 0: none',
    })
    .option('agent-log-level', { type: 'string', default: 'warn', choices: ['error', 'warn', 'info', 'debug'] })
    .option('control-main', {
      type: 'string',
      describe: "the control service's main.js (default: this checkout's), e.g. to compare builds",
    })
    .strict()
    .parseSync();
  const here = __dirname;
  const controlMain = resolve(argv['control-main'] ?? resolve(here, '../../../control-api/dist/main.js'));
  const agentMain = resolve(here, '../main.js');
  const dir = mkdtempSync(join(tmpdir(), 'flocker-bench-'));
  const procs: ChildProcess[] = [];
  try {
    // Plain HTTP on loopback; a control service built with TLS support needs saying so.
    const insecure = readFileSync(controlMain, 'utf8').includes('insecure-http') ? ['--insecure-http'] : [];
    const control = spawn(
      process.execPath,
      [
        controlMain,
        '--port',
        '0',
        '--host',
        '127.0.0.1',
        '--data-dir',
        join(dir, 'control'),
        '--log-level',
        'error',
        ...insecure,
      ],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    procs.push(control);
    const [line] = (await once(control.stdout, 'data')) as [Buffer];
    const port = (JSON.parse(line.toString().split('\n')[0]!) as { port: number }).port;
    writeFileSync(
      join(dir, 'agent.yml'),
      [
        'version: 1',
        `control-service: {hostname: 127.0.0.1, port: ${port}}`,
        `dataset: {backend: loopback, root_path: ${join(dir, 'pool')}, spares: ${argv.spares}}`,
        `node: {state_dir: ${join(dir, 'state')}, mount_root: ${join(dir, 'mnt')}}`,
        `agent: {resync_interval_seconds: 10, concurrency: ${argv.concurrency}, log_level: ${argv['agent-log-level']}}`,
        '',
      ].join('\n'),
    );
    const agent = spawn(process.execPath, [agentMain, '--config', join(dir, 'agent.yml')], { stdio: ['ignore', 2, 2] }); // logs to stderr: stdout is the report
    procs.push(agent);
    const client = new FlockerClient({ baseUrl: `http://127.0.0.1:${port}` });
    await until(client, (s) => s.nodes.length > 0, 30_000);
    const node = (JSON.parse(readFileSync(join(dir, 'state', 'node.json'), 'utf8')) as { uuid: string }).uuid;

    const apiCreate: number[] = [];
    const apiDelete: number[] = [];
    const raw: number[] = [];
    for (let i = 0; i < argv.runs; i++) {
      const r = rawCreate(dir, i);
      raw.push(r.ms);
      r.cleanup();

      // Untimed: the agent refills its spares in the background; each timed run starts with the pool full.
      const sparesFull = await waitForSpares(join(dir, 'pool'), argv.spares, GiB);
      if (!sparesFull) process.stderr.write(`run ${i + 1}: the spare pool was not full after 10 s\n`);
      const startedAt = new Date().toISOString();
      let start = process.hrtime.bigint();
      const { dataset_id: id } = await client.createDataset({ primary: node, maximum_size: GiB });
      const acceptedMs = ms(start);
      await until(client, (s) => mountedOn(s, node, new Set([id])));
      apiCreate.push(ms(start));

      start = process.hrtime.bigint();
      await client.deleteDataset(id);
      await until(client, (s) => goneFromPool(s, node, new Set([id])));
      apiDelete.push(ms(start));
      process.stderr.write(
        `run ${i + 1}/${argv.runs} (${startedAt}): raw ${raw[i]!.toFixed(1)} ms, api create ${apiCreate[i]!.toFixed(1)} ms ` +
          `(accepted after ${acceptedMs.toFixed(1)} ms), delete ${apiDelete[i]!.toFixed(1)} ms\n`,
      );
    }

    let start = process.hrtime.bigint();
    const many = await Promise.all(
      Array.from({ length: argv.many }, () => client.createDataset({ primary: node, maximum_size: 64 * 1024 * 1024 })),
    );
    const ids = new Set(many.map((d) => d.dataset_id));
    await until(client, (s) => mountedOn(s, node, ids), 600_000);
    const convergeMs = ms(start);
    start = process.hrtime.bigint();
    await Promise.all([...ids].map((id) => client.deleteDataset(id)));
    await until(client, (s) => goneFromPool(s, node, ids), 600_000);
    const deleteManyMs = ms(start);
    process.stderr.write(
      `${argv.many} datasets: mounted in ${convergeMs.toFixed(0)} ms, deleted in ${deleteManyMs.toFixed(0)} ms\n`,
    );

    const create = stats(apiCreate);
    const rawStats = stats(raw);
    const result: BenchResult & { when: string } = {
      when: new Date().toISOString(),
      runs: argv.runs,
      createMounted1GiB: {
        api: create,
        raw: rawStats,
        ratioMedian: Math.round((create.median / rawStats.median) * 100) / 100,
        target: 1.3,
      },
      delete1GiB: stats(apiDelete),
      spares: argv.spares,
      converge: {
        datasets: argv.many,
        sizeBytes: 64 * 1024 * 1024,
        concurrency: argv.concurrency,
        createdToAllMountedMs: Math.round(convergeMs),
        deletedToAllGoneMs: Math.round(deleteManyMs),
      },
    };
    writeFileSync(argv.out, JSON.stringify(result, null, 2) + '\n');
    process.stdout.write(markdown(result));
  } finally {
    for (const p of procs.reverse()) {
      if (p.exitCode === null && p.signalCode === null) {
        p.kill('SIGTERM');
        await once(p, 'exit');
      }
    }
    cleanup(dir);
  }
}

interface BenchResult {
  runs: number;
  createMounted1GiB: { api: Stats; raw: Stats; ratioMedian: number; target: number };
  delete1GiB: Stats;
  spares: number;
  converge: {
    datasets: number;
    sizeBytes: number;
    concurrency: number;
    createdToAllMountedMs: number;
    deletedToAllGoneMs: number;
  };
}

/** The section scripts/bench.sh puts into BENCHMARKS.md. */
function markdown(r: BenchResult): string {
  const c = r.createMounted1GiB;
  return [
    `One node, loopback backend, ${r.runs} runs. "API" = POST /v1/configuration/datasets until the agent reports it mounted;`,
    '"raw" = `truncate` + `losetup` + `mkfs.ext4` + `mount` of a 1 GiB file in the same run.',
    r.spares > 0
      ? `The agent keeps ${r.spares} spare volumes per size class (issue 23): before each timed run the bench waited, untimed, ` +
        'for the pool to be full again, so each create claims a spare (rename, attach, mount: no truncate or mkfs).'
      : 'No spare volumes (dataset.spares: 0): each create makes its volume (truncate, attach, mkfs, mount).',
    '',
    '| measurement | median (ms) | p99 (ms) |',
    '|---|---|---|',
    `| create → mounted, 1 GiB, through the API | ${c.api.median} | ${c.api.p99} |`,
    `| raw sequence | ${c.raw.median} | ${c.raw.p99} |`,
    `| **ratio API / raw (median)** | **${c.ratioMedian}** (target ≤ ${c.target}) | |`,
    `| delete → volume gone | ${r.delete1GiB.median} | ${r.delete1GiB.p99} |`,
    '',
    `${r.converge.datasets} datasets created at once (64 MiB, agent concurrency ${r.converge.concurrency}): all mounted after ` +
      `${r.converge.createdToAllMountedMs} ms; all deleted and gone after ${r.converge.deletedToAllGoneMs} ms.`,
    '',
  ].join('\n');
}

/** Waits (up to 10 s) until the pool holds `count` complete spares of `size` bytes (issue 23); false if not. */
async function waitForSpares(pool: string, count: number, size: number): Promise<boolean> {
  if (count <= 0) return true;
  const spares = join(pool, 'spares');
  const full = (): boolean => {
    if (!existsSync(spares)) return false;
    const ready = readdirSync(spares).filter((n) => /^[0-9a-f-]{36}\.img$/.test(n));
    return ready.filter((n) => statSync(join(spares, n), { throwIfNoEntry: false })?.size === size).length >= count;
  };
  for (const t0 = Date.now(); Date.now() - t0 < 10_000; await new Promise((r) => setTimeout(r, 20))) {
    if (full()) return true;
  }
  return full();
}

/** Unmounts and detaches everything of this run, then removes its directory. */
function cleanup(dir: string): void {
  const mounts = parseMountInfo(readFileSync('/proc/self/mountinfo', 'utf8')).filter((m) =>
    m.mountPoint.startsWith(dir + '/'),
  );
  for (const m of mounts.reverse()) execFileSync('umount', ['-l', m.mountPoint]);
  // Spares hold a loop device of their own (pre-attached, issue 23): detach those too, or each run leaks them.
  for (const sub of [dir, join(dir, 'pool', 'volumes'), join(dir, 'pool', 'spares')]) {
    if (!existsSync(sub)) continue;
    for (const f of readdirSync(sub).filter((f) => f.endsWith('.img'))) {
      const out = execFileSync('losetup', ['-j', join(sub, f)], { encoding: 'utf8' });
      for (const l of out.split('\n').filter((x) => x.includes(':'))) execFileSync('losetup', ['-d', l.split(':')[0]!]);
    }
  }
  rmSync(dir, { recursive: true, force: true });
}

if (require.main === module) {
  main().catch((e: unknown) => {
    process.stderr.write(`bench failed: ${e instanceof Error ? e.stack : String(e)}\n`);
    process.exit(1);
  });
}

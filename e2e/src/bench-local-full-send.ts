/**
 * The local move's full send alone against raw `btrfs send | btrfs receive` (issue 24), interleaved
 * in one process so both see the same load (the machine is shared: a single pair says little):
 *   node e2e/dist/bench-local-full-send.js [--pairs 5] [--gib 1] [--out <json>] [--variants 128,256]
 * Two simulated hosts as in bench-local-move (each its own btrfs on its own loop device, B's
 * listener its own process, mutual TLS). Each pair, in alternating order: raw (A's snapshot piped
 * into B's pool), then the transfer's full send of the same snapshot (engine.send → TransferClient
 * → B's receive, with its write-out, until B kept it); after each, B's copy is deleted and both pools
 * written out, so every run starts from the same state. Reported: each run's time and CPU per GiB
 * (processes and kernel threads, see cpuMeter.ts), the medians, and the median of the pairs' ratios
 * (raw ms / transfer ms: the bench's throughput ratio). Needs root.
 * --variants (MiB, 0: none): receivers' write-out steps (BtrfsEngineOptions.writeOutEvery) compared
 * instead, one listener per step; each round runs raw and every step in a rotating order, and each
 * transfer is followed by the mover's settle (B's copy written out), timed; raw by the same write-out.
 */
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { TransferClient } from '@flocker/storage-drivers';
import { makeBtrfsLoopPool, makeTestCluster } from '@flocker/storage-drivers/testing';
import { CpuMeter, cpuPerGib } from './cpuMeter';
import { btrfsSource, startReceiver } from './localReceiver';

const MiB = 1024 * 1024;

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

interface Run {
  readonly ms: number;
  readonly cpu: ReturnType<typeof cpuPerGib>;
}

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[mid] ?? 0) : ((s[mid - 1] ?? 0) + (s[mid] ?? 0)) / 2;
};

async function main(): Promise<void> {
  const pairs = Number(arg('pairs') ?? 5);
  const dataMib = Math.round(Number(arg('gib') ?? 1) * 1024);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flocker-bench-full-send-'));
  const poolSize = (dataMib * 2 + 512) * MiB;
  const a = makeBtrfsLoopPool(dir, 'a-pool', poolSize);
  const b = makeBtrfsLoopPool(dir, 'b-pool', poolSize);
  const cluster = makeTestCluster();
  const cpu = new CpuMeter('flocker-bench-full-send');
  let server: ReturnType<typeof spawn> | undefined;
  const extra: Array<ReturnType<typeof spawn>> = [];
  try {
    const { ea, eb, id } = await btrfsSource(a.pool, b.pool, dataMib);
    const snapshot = await ea.createSnapshot(id, 'full');
    const rawDir = path.join(b.pool, 'raw');
    fs.mkdirSync(rawDir);

    const na = cluster.node();
    const nb = cluster.node();
    const receiver = startReceiver(dir, nb, b.pool);
    server = receiver.child;
    const port = await receiver.port;
    const client = new TransferClient({ host: '127.0.0.1', port, nodeUuid: nb.nodeUuid }, na);

    /** B's copy gone and both pools written out: the next run starts where this one did. */
    const reset = (copy: string): void => {
      execFileSync('btrfs', ['subvolume', 'delete', copy], { stdio: 'ignore' });
      for (const pool of [a.pool, b.pool]) execFileSync('btrfs', ['subvolume', 'sync', pool], { stdio: 'ignore' });
      execFileSync('sync');
    };
    const measure = async (work: () => Promise<number>): Promise<Run> => {
      const c0 = cpu.sample();
      const t0 = performance.now();
      const bytes = await work();
      const ms = performance.now() - t0;
      return { ms, cpu: cpuPerGib(c0, cpu.sample(), bytes) };
    };
    const raw = (): Promise<Run> =>
      measure(async () => {
        execFileSync('sh', ['-c', `btrfs send -q ${ea.snapshotPath(id, 'full')} | btrfs receive -e ${rawDir}`], {
          stdio: 'ignore',
        });
        return dataMib * MiB;
      }).finally(() => reset(path.join(rawDir, 'full')));
    const transfer = (): Promise<Run> =>
      measure(() =>
        client.receive(
          { datasetId: id, name: 'full', parent: null, identity: snapshot.identity },
          ea.send(id, 'full', null),
        ),
      ).finally(() => reset(eb.snapshotPath(id, 'full')));

    execFileSync('sync');
    const variants = arg('variants');
    if (variants !== undefined) {
      const steps = variants.split(',').map(Number);
      const clients: TransferClient[] = [];
      for (const step of steps) {
        const r = startReceiver(dir, nb, b.pool, { name: String(step), writeOutEvery: step * MiB });
        extra.push(r.child);
        clients.push(new TransferClient({ host: '127.0.0.1', port: await r.port, nodeUuid: nb.nodeUuid }, na));
      }
      /** Per round: raw, then each step; ms of the send and of the write-out after it. */
      const rows: Array<{ raw: { ms: number; settleMs: number }; steps: Array<{ ms: number; settleMs: number }> }> = [];
      for (let i = 0; i < pairs; i++) {
        const row: (typeof rows)[number] = { raw: { ms: 0, settleMs: 0 }, steps: [] };
        const kinds = [-1, ...steps.map((_, k) => k)];
        const order = kinds.map((_, k) => kinds[(k + i) % kinds.length] ?? -1);
        for (const k of order) {
          const t0 = performance.now();
          if (k < 0) {
            execFileSync('sh', ['-c', `btrfs send -q ${ea.snapshotPath(id, 'full')} | btrfs receive -e ${rawDir}`], {
              stdio: 'ignore',
            });
            const ms = performance.now() - t0;
            execFileSync('btrfs', ['filesystem', 'sync', b.pool], { stdio: 'ignore' });
            row.raw = { ms, settleMs: performance.now() - t0 - ms };
            reset(path.join(rawDir, 'full'));
          } else {
            const c = clients[k];
            if (c === undefined) throw new Error('no client');
            await c.receive(
              { datasetId: id, name: 'full', parent: null, identity: snapshot.identity },
              ea.send(id, 'full', null),
            );
            const ms = performance.now() - t0;
            await c.settle(id);
            row.steps[k] = { ms, settleMs: performance.now() - t0 - ms };
            reset(eb.snapshotPath(id, 'full'));
          }
        }
        rows.push(row);
        console.error(
          `round ${i}: raw ${Math.round(row.raw.ms)}+${Math.round(row.raw.settleMs)}; ${steps
            .map((st, k) => `${st}: ${Math.round(row.steps[k]?.ms ?? 0)}+${Math.round(row.steps[k]?.settleMs ?? 0)}`)
            .join('; ')}`,
        );
      }
      const lines = steps.map((st, k) => {
        const of = (f: (r: (typeof rows)[number]) => number): number => Math.round(median(rows.map(f)) * 1000) / 1000;
        return (
          `| ${st === 0 ? 'none' : `${st} MiB`} | ${(of((r) => r.steps[k]?.ms ?? 0) / 1000).toFixed(2)} s | ${of((r) => r.raw.ms / (r.steps[k]?.ms ?? 1))}× | ` +
          `${(of((r) => r.steps[k]?.settleMs ?? 0) / 1000).toFixed(2)} s | ${of((r) => (r.raw.ms + r.raw.settleMs) / ((r.steps[k]?.ms ?? 0) + (r.steps[k]?.settleMs ?? 1)))}× |`
        );
      });
      console.log(
        [
          `${dataMib} MiB, ${pairs} rounds (medians; ratios: median of the rounds' raw / step).`,
          `raw: ${Math.round(median(rows.map((r) => r.raw.ms)))} ms, its write-out after ${Math.round(median(rows.map((r) => r.raw.settleMs)))} ms`,
          '',
          '| write-out step | send | vs raw | settle after | send + settle vs raw + write-out |',
          '|---|---|---|---|---|',
          ...lines,
        ].join('\n'),
      );
      const out = arg('out');
      if (out !== undefined) fs.writeFileSync(out, `${JSON.stringify({ steps, rows }, null, 2)}\n`);
      return;
    }
    const runs: Array<{ raw: Run; transfer: Run }> = [];
    for (let i = 0; i < pairs; i++) {
      // Alternating order: neither side always runs right after the other's clean-up.
      const first = i % 2 === 0 ? await raw() : await transfer();
      const second = i % 2 === 0 ? await transfer() : await raw();
      runs.push(i % 2 === 0 ? { raw: first, transfer: second } : { raw: second, transfer: first });
    }

    const cpuMedian = (rs: Run[]) => ({
      processes: median(rs.map((r) => r.cpu.processes ?? 0)),
      kernelThreads: median(rs.map((r) => r.cpu.kernelThreads)),
      total: median(rs.map((r) => r.cpu.total ?? r.cpu.kernelThreads)),
    });
    const raws = runs.map((r) => r.raw);
    const transfers = runs.map((r) => r.transfer);
    const figures = {
      dataBytes: dataMib * MiB,
      pairs,
      raw: { medianMs: Math.round(median(raws.map((r) => r.ms))), cpuSecondsPerGib: cpuMedian(raws) },
      transfer: { medianMs: Math.round(median(transfers.map((r) => r.ms))), cpuSecondsPerGib: cpuMedian(transfers) },
      pairedThroughputVsRaw: Math.round(median(runs.map((r) => r.raw.ms / r.transfer.ms)) * 1000) / 1000,
      runs: runs.map((r) => ({ rawMs: Math.round(r.raw.ms), transferMs: Math.round(r.transfer.ms) })),
    };
    const out = arg('out');
    if (out !== undefined) fs.writeFileSync(out, `${JSON.stringify(figures, null, 2)}\n`);
    const cpuText = (c: ReturnType<typeof cpuMedian>): string =>
      `${c.total.toFixed(2)} s (processes ${c.processes.toFixed(2)}, kernel threads ${c.kernelThreads.toFixed(2)})`;
    console.log(
      [
        `${dataMib} MiB of random data, full send host A → host B, ${pairs} interleaved pairs (medians).`,
        '',
        '| | time | CPU per GiB |',
        '|---|---|---|',
        `| raw \`btrfs send \\| btrfs receive\` | ${(figures.raw.medianMs / 1000).toFixed(2)} s | ${cpuText(figures.raw.cpuSecondsPerGib)} |`,
        `| full send over mutual TLS (until B kept it) | ${(figures.transfer.medianMs / 1000).toFixed(2)} s | ${cpuText(figures.transfer.cpuSecondsPerGib)} |`,
        '',
        `Throughput vs raw, median of the pairs' ratios: ${figures.pairedThroughputVsRaw}× (target ≥ 0.8).`,
        `Pairs (raw / transfer ms): ${figures.runs.map((r) => `${r.rawMs}/${r.transferMs}`).join(', ')}.`,
      ].join('\n'),
    );
  } finally {
    server?.kill('SIGKILL');
    for (const x of extra) x.kill('SIGKILL');
    await cpu.close();
    b.destroy();
    a.destroy();
    cluster.destroy();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});

/**
 * Local-storage move benchmark (issue 24), btrfs engine, two simulated hosts each with its own btrfs
 * on its own loop device:
 *   node e2e/dist/bench-local-move.js --out <json> [--gib 1] [--catch-up]
 * - raw: `btrfs send | btrfs receive` of a snapshot of the data, host A's pool to host B's (one shell
 *   pipeline) — the floor; then B's copy written out (`btrfs filesystem sync`), a second row, and the
 *   raw copies' clean-up finished before the move starts (it took CPU from the move's full send);
 * - move: moveLocalDataset over mutual TLS (node certificates) of the same data: the full send while
 *   the volume is in use, then 1% of the data rewritten (random 1-MiB blocks) and the release at
 *   once (unmount on A; --catch-up: after the rounds caught up), the final delta, promoted and
 *   mounted on B. Reported: the full send's throughput vs raw (the headline: neither writes B's copy
 *   out), the same from the send's start (without the mover's look at both sides and its snapshot
 *   before it; raw's snapshot is not timed either), the full send until B's copy is written out
 *   (the mover's settle) vs raw written out, the whole move, and the unavailable window (release
 *   seen → mounted on B).
 * CPU: seconds per GiB of the raw pipeline and of the full send (every process of the benchmark — both
 * Node processes, btrfs send/receive, the write-out helper — by a cpuacct cgroup of its own, and
 * the host's kernel threads, where B's write-out and the loop devices' I/O run; the kernel threads
 * include other load on the host). On a host with N cores a send cannot take less than its CPU / N.
 * Every byte is verified (SHA-256 of the file on B vs A's final snapshot). Needs root.
 */
import { execFileSync } from 'node:child_process';
import { randomInt } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { moveLocalDataset, TransferClient } from '@flocker/storage-drivers';
import { makeBtrfsLoopPool, makeTestCluster } from '@flocker/storage-drivers/testing';
import { CpuMeter, cpuPerGib, type CpuSample } from './cpuMeter';
import { btrfsSource, startReceiver } from './localReceiver';

const MiB = 1024 * 1024;

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

const sha256 = (file: string): string => execFileSync('sha256sum', [file], { encoding: 'utf8' }).split(' ')[0] ?? '';
const seconds = (ms: number): string => (ms / 1000).toFixed(2);
const cpuText = (c: { processes: number | null; kernelThreads: number; total: number | null }): string =>
  c.processes !== null
    ? `${c.total?.toFixed(2)} s (processes ${c.processes.toFixed(2)}, kernel threads ${c.kernelThreads.toFixed(2)})`
    : `kernel threads ${c.kernelThreads.toFixed(2)} s (processes not measured: no cpuacct cgroup)`;

async function main(): Promise<void> {
  const gib = Number(arg('gib') ?? 1);
  const dataMib = Math.round(gib * 1024);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flocker-bench-local-'));
  const poolSize = (dataMib * 2 + 512) * MiB;
  const a = makeBtrfsLoopPool(dir, 'a-pool', poolSize);
  const b = makeBtrfsLoopPool(dir, 'b-pool', poolSize);
  const cluster = makeTestCluster();
  const cpu = new CpuMeter();
  try {
    const { ea, id, dataDir: pathA } = await btrfsSource(a.pool, b.pool, dataMib, path.join(dir, 'a-mnt'));
    const file = path.join(pathA, 'data');

    // The floor: btrfs send | btrfs receive of the same data, pool to pool.
    const rawSnap = path.join(a.pool, 'raw-snap');
    const rawDir = path.join(b.pool, 'raw');
    fs.mkdirSync(rawDir);
    execFileSync('btrfs', ['subvolume', 'snapshot', '-r', ea.datasetPath(id), rawSnap], { stdio: 'ignore' });
    execFileSync('sync');
    const rawCpu0 = cpu.sample();
    const r0 = performance.now();
    execFileSync('sh', ['-c', `btrfs send -q ${rawSnap} | btrfs receive -e ${rawDir}`], { stdio: 'ignore' });
    const rawMs = performance.now() - r0;
    const rawCpu1 = cpu.sample();
    // The same with B's copy written out (raw leaves it in memory, as the move's full send does).
    execFileSync('btrfs', ['filesystem', 'sync', b.pool], { stdio: 'ignore' });
    const rawSyncMs = performance.now() - r0;
    const rawBytes = Number(
      execFileSync('du', ['-sb', path.join(rawDir, 'raw-snap')], { encoding: 'utf8' }).split('\t')[0],
    );
    execFileSync('btrfs', ['subvolume', 'delete', path.join(rawDir, 'raw-snap')], { stdio: 'ignore' });
    execFileSync('btrfs', ['subvolume', 'delete', rawSnap], { stdio: 'ignore' });
    // The raw copy's clean-up (the deleted subvolumes' extents freed, written out) before the move, not during it.
    for (const pool of [a.pool, b.pool]) execFileSync('btrfs', ['subvolume', 'sync', pool], { stdio: 'ignore' });
    execFileSync('sync');

    // The move.
    const na = cluster.node();
    const nb = cluster.node();
    // Host B's side in its own process, as on another host (the sender and receiver do not share a CPU thread).
    const { child: server, port: listening } = startReceiver(dir, nb, b.pool);
    const port = await listening;
    const sends: Array<{ bytes: number; atMs: number; released: boolean }> = [];
    let firstSent: () => void = () => undefined;
    const fullSent = new Promise<void>((resolve) => (firstSent = resolve));
    let waiting: () => void = () => undefined;
    let changed = false;
    const caughtUp = new Promise<void>((resolve) => (waiting = resolve));
    let settledAtMs: number | undefined;
    let fullSendCpu1: CpuSample | undefined;
    const moveCpu0 = cpu.sample();
    const m0 = performance.now();
    // When the first send's stream began (engine.send called: btrfs send spawned, the connection opened):
    // what comes before it is the mover's own look at both sides and its snapshot, which raw does not time.
    let streamStartMs: number | undefined;
    const send = ea.send.bind(ea);
    ea.send = (...args: Parameters<typeof ea.send>) => {
      streamStartMs ??= performance.now() - m0;
      return send(...args);
    };
    const move = moveLocalDataset({
      engine: ea,
      target: new TransferClient({ host: '127.0.0.1', port, nodeUuid: nb.nodeUuid }, na),
      datasetId: id,
      size: 2 * dataMib * MiB,
      releasePollMs: 10,
      catchUpMs: 60_000,
      onSent: (s) => {
        sends.push({ bytes: s.bytes, atMs: performance.now() - m0, released: s.released });
        if (sends.length === 1) {
          fullSendCpu1 = cpu.sample();
          firstSent();
        }
      },
      // After a send before the release the mover has B write out what it received (settle).
      onSettled: (s) => {
        if (s.ok) settledAtMs ??= performance.now() - m0;
      },
      onProgress: (p) => {
        if (p.phase === 'waitingForRelease' && changed) waiting();
      },
    });
    await fullSent;
    // 1% of the data rewritten while the volume is still in use, in random 1-MiB blocks.
    const blocks = Math.max(1, Math.round(dataMib / 100));
    for (let i = 0; i < blocks; i++) {
      execFileSync('dd', [
        'if=/dev/urandom',
        `of=${file}`,
        'bs=1M',
        'count=1',
        `seek=${randomInt(0, dataMib)}`,
        'conv=notrunc,fsync',
        'status=none',
      ]);
    }
    changed = true;
    // Released at once: the 1% is (mostly) the final delta, the worst case for the unavailable window.
    if (arg('catch-up') !== undefined) await caughtUp;
    const u0 = performance.now();
    await ea.unmount(pathA);
    const result = await move;
    const unavailableOuterMs = performance.now() - u0;
    const moveMs = performance.now() - m0;
    server.kill('SIGKILL');
    const pathB = path.join(dir, 'b-mnt', id);
    const verified =
      sha256(path.join(pathB, 'data')) === sha256(path.join(ea.snapshotPath(id, result.finalSnapshot), 'data'));
    if (!verified) throw new Error('the data on B differs from the final snapshot on A');
    const full = sends[0]!;
    const fullThroughput = full.bytes / (full.atMs / 1000);
    const streamMs = full.atMs - (streamStartMs ?? 0);
    const streamThroughput = full.bytes / (streamMs / 1000);
    const rawThroughput = rawBytes / (rawMs / 1000);
    const rawCpu = cpuPerGib(rawCpu0, rawCpu1, rawBytes);
    const fullSendCpu = fullSendCpu1 !== undefined ? cpuPerGib(moveCpu0, fullSendCpu1, full.bytes) : null;
    const cores = os.cpus().length;
    const figures = {
      dataBytes: dataMib * MiB,
      changedBytes: blocks * MiB,
      raw: { ms: Math.round(rawMs), bytes: rawBytes, bytesPerSecond: Math.round(rawThroughput) },
      rawWrittenOut: { ms: Math.round(rawSyncMs) },
      fullSend: { ms: Math.round(full.atMs), bytes: full.bytes, bytesPerSecond: Math.round(fullThroughput) },
      throughputVsRaw: Math.round((fullThroughput / rawThroughput) * 100) / 100,
      fullSendStream: { ms: Math.round(streamMs), beforeStreamMs: Math.round(streamStartMs ?? 0) },
      streamThroughputVsRaw: Math.round((streamThroughput / rawThroughput) * 100) / 100,
      fullSendWrittenOut: settledAtMs !== undefined ? { ms: Math.round(settledAtMs) } : null,
      writtenOutVsRaw: settledAtMs !== undefined ? Math.round((rawSyncMs / settledAtMs) * 100) / 100 : null,
      cpuSecondsPerGib: { raw: rawCpu, fullSend: fullSendCpu, cores },
      sends: sends.map((s) => ({ bytes: s.bytes, released: s.released })),
      finalDeltaBytes: sends[sends.length - 1]?.bytes ?? 0,
      moveMs: Math.round(moveMs),
      unavailableMs: Math.round(result.unavailableMs),
      unavailableFromUnmountMs: Math.round(unavailableOuterMs),
      verified,
    };
    const out = arg('out');
    if (out !== undefined) fs.writeFileSync(out, `${JSON.stringify(figures, null, 2)}\n`);
    console.log(
      [
        `${gib} GiB of random data on host A's own btrfs (loop device), moved to host B's; ${blocks} MiB (1%) rewritten during phase 1, then released${arg('catch-up') !== undefined ? ' once the rounds caught up' : ' at once'}.`,
        '',
        '| | time | throughput |',
        '|---|---|---|',
        `| raw \`btrfs send \\| btrfs receive\` (floor) | ${seconds(rawMs)} s | ${(rawThroughput / MiB).toFixed(0)} MiB/s |`,
        `| move: full send over mutual TLS (phase 1) | ${seconds(full.atMs)} s | ${(fullThroughput / MiB).toFixed(0)} MiB/s (${figures.throughputVsRaw}× raw; target ≥ 0.8) |`,
        `| move: full send's stream alone (send started → kept on B; the ${((streamStartMs ?? 0) / 1000).toFixed(2)} s before it: the mover's look at both sides and its snapshot) | ${seconds(streamMs)} s | ${(streamThroughput / MiB).toFixed(0)} MiB/s (${figures.streamThroughputVsRaw}× raw) |`,
        `| raw, then B's copy written out (\`btrfs filesystem sync\`) | ${seconds(rawSyncMs)} s | ${(rawBytes / MiB / (rawSyncMs / 1000)).toFixed(0)} MiB/s |`,
        settledAtMs !== undefined
          ? `| move: full send, then B's copy written out (settle) | ${seconds(settledAtMs)} s | ${(full.bytes / MiB / (settledAtMs / 1000)).toFixed(0)} MiB/s (${figures.writtenOutVsRaw}× raw written out) |`
          : "| move: full send, then B's copy written out (settle) | (the settle failed) | |",
        `| move: total (${sends.length} sends: ${sends.map((s) => `${(s.bytes / MiB).toFixed(1)} MiB`).join(', ')}) | ${seconds(moveMs)} s | |`,
        `| unavailable: release seen → mounted on B (final delta ${(figures.finalDeltaBytes / 1024).toFixed(0)} KiB) | ${result.unavailableMs.toFixed(0)} ms (target < 1000) | |`,
        `| unavailable: unmount on A → move done (incl. release detection, clean-up) | ${unavailableOuterMs.toFixed(0)} ms | |`,
        '',
        `CPU per GiB (processes of the benchmark + the host's kernel threads, which include other load): raw ${cpuText(rawCpu)}; the move's full send ${fullSendCpu !== null ? cpuText(fullSendCpu) : '(not measured)'}. With ${cores} cores the full send cannot take less than ${fullSendCpu?.total != null ? `${(fullSendCpu.total / cores).toFixed(2)} s per GiB` : 'its CPU / cores'}.`,
        '',
        'Every byte verified (SHA-256 of the file on B vs the final snapshot on A).',
      ].join('\n'),
    );
  } finally {
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

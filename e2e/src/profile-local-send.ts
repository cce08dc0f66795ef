/**
 * Where the local move's full send spends its CPU (issue 24), per process, user vs system:
 *   node e2e/dist/profile-local-send.js [--runs 3] [--gib 1] [--strace <prefix>] [--perf <perf.data>]
 * Same two simulated hosts as bench-local-full-send (own btrfs pools on own loop devices; B's
 * listener its own process). Each round runs raw `btrfs send | btrfs receive` and the transfer's
 * full send (alternating order), then deletes B's copy and writes both pools out. Per run: wall
 * time, and CPU seconds (user/system) of: the sending Node process (this one), its children (btrfs
 * send, reaped), the receiving Node process, its children (btrfs receive, the write-out helper and
 * its syncs), and the host's kernel threads (write-out, loop devices); for raw, the shell's children.
 * A kernel thread that exits during a run takes its time with it (a negative kthreads figure).
 * --strace: `strace -c -w` of both Node processes' main threads during each transfer (syscall counts:
 * <prefix>.sender, <prefix>.receiver); --perf: `perf record -g` of both Node processes (all threads)
 * and their children during the transfer (NODE_OPTIONS=--perf-basic-prof names the JS frames).
 * Also prints the cipher the listener negotiates. Needs root.
 */
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import tls from 'node:tls';
import { TransferClient } from '@flocker/storage-drivers';
import { makeBtrfsLoopPool, makeTestCluster } from '@flocker/storage-drivers/testing';
import { procStat } from './cluster/processes';
import { btrfsSource, startReceiver } from './localReceiver';

const MiB = 1024 * 1024;
const TICK_S = 1 / (Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100);

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

/** utime, stime, cutime, cstime of a process, in s. */
function times(pid: number): [number, number, number, number] {
  const f = procStat(pid);
  if (f === undefined) return [0, 0, 0, 0];
  return [Number(f[11]) * TICK_S, Number(f[12]) * TICK_S, Number(f[13]) * TICK_S, Number(f[14]) * TICK_S];
}

function kernelThreads(): [number, number] {
  let u = 0;
  let s = 0;
  for (const pid of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    const f = procStat(pid);
    if (f?.[1] === '2') {
      u += Number(f[11]);
      s += Number(f[12]);
    }
  }
  return [u * TICK_S, s * TICK_S];
}

interface Sample {
  readonly self: [number, number, number, number];
  readonly receiver: [number, number, number, number];
  readonly kernel: [number, number];
}

async function main(): Promise<void> {
  const runs = Number(arg('runs') ?? 3);
  const dataMib = Math.round(Number(arg('gib') ?? 1) * 1024);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flocker-profile-send-'));
  const poolSize = (dataMib * 2 + 512) * MiB;
  const a = makeBtrfsLoopPool(dir, 'a-pool', poolSize);
  const b = makeBtrfsLoopPool(dir, 'b-pool', poolSize);
  const cluster = makeTestCluster();
  let receiverPid = 0;
  let kill: (() => void) | undefined;
  try {
    const { ea, eb, id } = await btrfsSource(a.pool, b.pool, dataMib);
    const snapshot = await ea.createSnapshot(id, 'full');
    const rawDir = path.join(b.pool, 'raw');
    fs.mkdirSync(rawDir);
    const na = cluster.node();
    const nb = cluster.node();
    const receiver = startReceiver(dir, nb, b.pool);
    kill = () => receiver.child.kill('SIGINT');
    receiverPid = receiver.child.pid ?? 0;
    const port = await receiver.port;
    const client = new TransferClient({ host: '127.0.0.1', port, nodeUuid: nb.nodeUuid }, na);
    // What the listener negotiates with a client offering the transfer's ciphers (TLS 1.3).
    const probe = tls.connect({
      host: '127.0.0.1',
      port,
      ...na,
      minVersion: 'TLSv1.3',
      ciphers: 'TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256',
      checkServerIdentity: () => undefined,
    });
    await new Promise<void>((resolve, reject) => {
      probe.once('secureConnect', resolve);
      probe.once('error', reject);
    });
    console.log(`negotiated: ${JSON.stringify(probe.getCipher())} ${probe.getProtocol()}`);
    probe.destroy();
    const reset = (copy: string): void => {
      execFileSync('btrfs', ['subvolume', 'delete', copy], { stdio: 'ignore' });
      for (const pool of [a.pool, b.pool]) execFileSync('btrfs', ['subvolume', 'sync', pool], { stdio: 'ignore' });
      execFileSync('sync');
    };
    const sample = (): Sample => ({ self: times(process.pid), receiver: times(receiverPid), kernel: kernelThreads() });
    const show = (label: string, ms: number, x: Sample, y: Sample): void => {
      const d = (i: number, p: 'self' | 'receiver'): string => (y[p][i]! - x[p][i]!).toFixed(2);
      const k = (i: number): string => (y.kernel[i]! - x.kernel[i]!).toFixed(2);
      console.log(
        `${label.padEnd(8)} ${(ms / 1000).toFixed(2)} s | sender node u ${d(0, 'self')} s ${d(1, 'self')} | sender children u ${d(2, 'self')} s ${d(3, 'self')} | ` +
          `receiver node u ${d(0, 'receiver')} s ${d(1, 'receiver')} | receiver children u ${d(2, 'receiver')} s ${d(3, 'receiver')} | kthreads u ${k(0)} s ${k(1)}`,
      );
    };
    const raw = async (): Promise<void> => {
      const x = sample();
      const t0 = performance.now();
      execFileSync('sh', ['-c', `btrfs send -q ${ea.snapshotPath(id, 'full')} | btrfs receive -e ${rawDir}`], {
        stdio: 'ignore',
      });
      const ms = performance.now() - t0;
      show('raw', ms, x, sample());
      reset(path.join(rawDir, 'full'));
    };
    const transfer = async (): Promise<void> => {
      const tracers =
        arg('strace') !== undefined
          ? [process.pid, receiverPid].map((pid, k) =>
              spawn(
                'strace',
                ['-c', '-w', '-o', `${arg('strace')}.${k === 0 ? 'sender' : 'receiver'}`, '-p', String(pid)],
                {
                  stdio: 'ignore',
                },
              ),
            )
          : arg('perf') !== undefined
            ? [
                spawn(
                  'perf',
                  ['record', '-g', '-p', `${process.pid},${receiverPid}`, '-o', arg('perf') ?? 'perf.data'],
                  {
                    stdio: 'ignore',
                  },
                ),
              ]
            : [];
      if (tracers.length > 0) await new Promise((r) => setTimeout(r, 500));
      const x = sample();
      const t0 = performance.now();
      await client.receive(
        { datasetId: id, name: 'full', parent: null, identity: snapshot.identity },
        ea.send(id, 'full', null),
      );
      const ms = performance.now() - t0;
      for (const t of tracers) t.kill('SIGINT');
      // The receive's last write-out and the helper's exit are reaped after the answer.
      await new Promise((r) => setTimeout(r, 1500));
      show('transfer', ms, x, sample());
      reset(eb.snapshotPath(id, 'full'));
    };
    execFileSync('sync');
    for (let i = 0; i < runs; i++) {
      if (i % 2 === 0) {
        await raw();
        await transfer();
      } else {
        await transfer();
        await raw();
      }
    }
  } finally {
    kill?.();
    await new Promise((r) => setTimeout(r, 1000));
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

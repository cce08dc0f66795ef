/**
 * Issue 24's throughput target against what any transport reaches on this host: the same `btrfs send`
 * stream of one snapshot into `btrfs receive` on another simulated host, through each transport, interleaved:
 *   node e2e/dist/bench-transfer-ceiling.js [--rounds 9] [--gib 1] [--kinds raw,socat-tcp,…] [--buffer <bytes>]
 *     [--go <binary>] [--out <json>]
 * Kinds (default: all, in this order, go-* only with --go; each round rotates the order by one; 9 rounds of
 * 9 kinds put each kind once in each position):
 *   raw         `btrfs send | btrfs receive` through a pipe (the floor every ratio is taken against);
 *   socat-tcp   plain TCP, no encryption: `btrfs send | socat` → `socat | btrfs receive`;
 *   socat-tls   the same over mutual TLS 1.3 (socat's OPENSSL, OpenSSL's libssl; the node certificates,
 *               the server's CN checked, AES-128-GCM first as the transfer offers);
 *   openssl     mutual TLS 1.3 by `openssl s_client` → `openssl s_server` (AES-128-GCM);
 *   go-tcp, go-tls  the same with a Go program of your own (crypto/tls: a second native TLS), given by
 *               --go <binary> taking bench-transfer-ceiling-pipe.js's arguments (left out without it);
 *   node-tcp    a minimal Node pipe over plain TCP (each side a Node process that spawns btrfs, as the agent does);
 *   node-tls    the same minimal Node pipe over mutual TLS 1.3 with the transfer's ciphers and checks;
 *   transfer    our full send: engine.send → TransferClient → the listener (its own process), as
 *               bench-local-full-send runs it.
 * Two simulated hosts as in bench-local-full-send: each its own btrfs on its own loop device, over the
 * loopback interface (127.0.0.1). Per run: the send's wall time (until B's receive exited / the transfer
 * answered), then the write-out after it (`btrfs filesystem sync` of B's pool; for transfer, the mover's
 * settle), timed apart, and the CPU per GiB of the bench's processes and the host's kernel threads
 * (cpuMeter.ts) for the send and for send + write-out. Then B's copy is deleted and both pools written
 * out. Reported: medians per kind, and the medians of each round's ratio raw / kind (throughput vs raw;
 * without and with the write-out), with the load average. Needs root, socat and openssl.
 * The node-* kinds' two sides: bench-transfer-ceiling-pipe.ts.
 */
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { TransferClient } from '@flocker/storage-drivers';
import { makeBtrfsLoopPool, makeTestCluster } from '@flocker/storage-drivers/testing';
import { z } from 'zod';
import { CpuMeter, type CpuSample, cpuPerGib } from './cpuMeter';
import { TRANSFER_CIPHERS } from './bench-transfer-ceiling-pipe';
import { btrfsSource, startReceiver } from './localReceiver';

const MiB = 1024 * 1024;
const KINDS = [
  'raw',
  'socat-tcp',
  'socat-tls',
  'openssl',
  'go-tcp',
  'go-tls',
  'node-tcp',
  'node-tls',
  'transfer',
] as const;
type Kind = (typeof KINDS)[number];

/** --help: the comment above, read from this (compiled) file. */
const help = (): string =>
  fs
    .readFileSync(__filename, 'utf8')
    .match(/\/\*\*([\s\S]*?)\*\//)?.[1]
    ?.replace(/^ \* ?/gm, '')
    .trim() ?? '';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[mid] ?? 0) : ((s[mid - 1] ?? 0) + (s[mid] ?? 0)) / 2;
};

/** A free port on 127.0.0.1 (closed again: the kind's listener takes it). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => resolve(typeof a === 'object' && a !== null ? a.port : 0));
    });
  });
}

/** Waits until something listens on 127.0.0.1:port (read from /proc: a probe connection would take s_server's one accept). */
async function listening(port: number, child: ReturnType<typeof spawn>): Promise<void> {
  const hex = `0100007F:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  for (let i = 0; i < 500; i++) {
    const table = fs.readFileSync('/proc/net/tcp', 'utf8');
    if (table.split('\n').some((l) => l.trim().split(/\s+/)[1] === hex && l.trim().split(/\s+/)[3] === '0A')) return;
    if (child.exitCode !== null) throw new Error(`the listener exited with ${child.exitCode}`);
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`nothing listens on port ${port}`);
}

function exited(child: ReturnType<typeof spawn>, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = (code: number | null): void =>
      code === 0 ? resolve() : reject(new Error(`${what} exited with ${code}`));
    if (child.exitCode !== null) done(child.exitCode);
    else child.once('exit', done);
  });
}

interface Run {
  readonly sendMs: number;
  readonly writeOutMs: number;
  readonly cpuSend: number | null;
  readonly cpuAll: number | null;
}

async function main(): Promise<void> {
  if (process.argv.includes('--help')) {
    console.log(help());
    return;
  }
  const rounds = Number(arg('rounds') ?? 9);
  const dataMib = Math.round(Number(arg('gib') ?? 1) * 1024);
  const buffer = Number(arg('buffer') ?? MiB);
  const go = arg('go');
  const kinds = z
    .array(z.enum(KINDS))
    .parse((arg('kinds') ?? KINDS.join(',')).split(','))
    .filter((k, i, all) => all.indexOf(k) === i && (go !== undefined || !k.startsWith('go-')));
  if (!kinds.includes('raw')) kinds.unshift('raw');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flocker-bench-ceiling-'));
  const poolSize = (dataMib * 2 + 512) * MiB;
  const a = makeBtrfsLoopPool(dir, 'a-pool', poolSize);
  const b = makeBtrfsLoopPool(dir, 'b-pool', poolSize);
  const cluster = makeTestCluster();
  const cpu = new CpuMeter('flocker-bench-ceiling');
  const children = new Set<ReturnType<typeof spawn>>();
  let receiverChild: ReturnType<typeof spawn> | undefined;
  try {
    const { ea, eb, id } = await btrfsSource(a.pool, b.pool, dataMib);
    const snapshot = await ea.createSnapshot(id, 'full');
    const snapPath = ea.snapshotPath(id, 'full');
    const rawDir = path.join(b.pool, 'raw');
    fs.mkdirSync(rawDir);
    const na = cluster.node();
    const nb = cluster.node();
    const certsOf = (name: string, n: typeof na): string => {
      const d = path.join(dir, name);
      fs.mkdirSync(d);
      fs.writeFileSync(path.join(d, 'cluster.crt'), n.ca);
      fs.writeFileSync(path.join(d, 'node.crt'), n.cert);
      fs.writeFileSync(path.join(d, 'node.key'), n.key);
      return d;
    };
    const aCerts = certsOf('a-certs', na);
    const bCerts = certsOf('b-certs-pipe', nb);
    // socat's libssl: TLS 1.3 with the transfer's order of ciphers (socat 1.7 has no option for TLS 1.3's).
    const opensslConf = path.join(dir, 'openssl.cnf');
    fs.writeFileSync(
      opensslConf,
      `openssl_conf = conf\n[conf]\nssl_conf = ssl\n[ssl]\nsystem_default = sys\n[sys]\nMinProtocol = TLSv1.3\nCiphersuites = ${TRANSFER_CIPHERS}\n`,
    );
    const env = { ...process.env, OPENSSL_CONF: opensslConf };
    // s_server's stdin: a FIFO opened read-write never reads as ended (at its end s_server would drop the connection).
    const never = path.join(dir, 'never');
    execFileSync('mkfifo', [never]);

    const receiver = startReceiver(dir, nb, b.pool);
    receiverChild = receiver.child;
    children.add(receiver.child);
    const client = new TransferClient({ host: '127.0.0.1', port: await receiver.port, nodeUuid: nb.nodeUuid }, na);

    const sh = (script: string): ReturnType<typeof spawn> => {
      // Its own process group: a failed run's pipeline is killed whole (see finally).
      const c = spawn('sh', ['-c', script], { stdio: ['ignore', 'ignore', 'inherit'], env, detached: true });
      children.add(c);
      c.once('exit', () => children.delete(c));
      return c;
    };
    /** A receiving and a sending command (the sender started once the receiver listens). */
    const pair = async (recv: (port: number) => string, send: (port: number) => string): Promise<void> => {
      const port = await freePort();
      const r = sh(recv(port));
      const rDone = exited(r, 'the receiving side');
      rDone.catch(() => undefined);
      await listening(port, r);
      const s = sh(send(port));
      await Promise.all([exited(s, 'the sending side'), rDone]);
    };
    const tlsA = `cert=${aCerts}/node.crt,key=${aCerts}/node.key,cafile=${aCerts}/cluster.crt,verify=1`;
    const tlsB = `cert=${bCerts}/node.crt,key=${bCerts}/node.key,cafile=${bCerts}/cluster.crt,verify=1`;
    const pipe = `${process.execPath} ${path.join(__dirname, 'bench-transfer-ceiling-pipe.js')}`;
    const sends: Record<Exclude<Kind, 'transfer'>, () => Promise<void>> = {
      raw: async () => {
        const c = sh(`btrfs send -q ${snapPath} | btrfs receive -e ${rawDir}`);
        await exited(c, 'raw');
      },
      'socat-tcp': () =>
        pair(
          (p) => `socat -u -b ${buffer} TCP-LISTEN:${p},bind=127.0.0.1,reuseaddr STDOUT | btrfs receive -e ${rawDir}`,
          (p) => `btrfs send -q ${snapPath} | socat -u -b ${buffer} STDIN TCP:127.0.0.1:${p}`,
        ),
      'socat-tls': () =>
        pair(
          (p) =>
            `socat -u -b ${buffer} OPENSSL-LISTEN:${p},bind=127.0.0.1,reuseaddr,${tlsB} STDOUT | btrfs receive -e ${rawDir}`,
          (p) =>
            `btrfs send -q ${snapPath} | socat -u -b ${buffer} STDIN OPENSSL:127.0.0.1:${p},${tlsA},commonname=node-${nb.nodeUuid}`,
        ),
      openssl: () =>
        pair(
          (p) =>
            `openssl s_server -quiet -naccept 1 -accept 127.0.0.1:${p} -cert ${bCerts}/node.crt -key ${bCerts}/node.key ` +
            `-CAfile ${bCerts}/cluster.crt -Verify 1 -verify_return_error -tls1_3 -ciphersuites ${TRANSFER_CIPHERS} 0<>${never} 2>/dev/null | btrfs receive -e ${rawDir}`,
          (p) =>
            `btrfs send -q ${snapPath} | openssl s_client -quiet -no_ign_eof -nocommands -connect 127.0.0.1:${p} -cert ${aCerts}/node.crt ` +
            `-key ${aCerts}/node.key -CAfile ${aCerts}/cluster.crt -verify_return_error -tls1_3 -ciphersuites ${TRANSFER_CIPHERS} ` +
            `-verify_hostname node-${nb.nodeUuid} 2>/dev/null`,
        ),
      'go-tcp': () =>
        pair(
          (p) => `${go} recv tcp ${p} ${bCerts} ${rawDir}`,
          (p) => `${go} send tcp ${p} ${aCerts} ${nb.nodeUuid} ${snapPath}`,
        ),
      'go-tls': () =>
        pair(
          (p) => `${go} recv tls ${p} ${bCerts} ${rawDir}`,
          (p) => `${go} send tls ${p} ${aCerts} ${nb.nodeUuid} ${snapPath}`,
        ),
      'node-tcp': () =>
        pair(
          (p) => `${pipe} recv tcp ${p} ${bCerts} ${rawDir}`,
          (p) => `${pipe} send tcp ${p} ${aCerts} ${nb.nodeUuid} ${snapPath}`,
        ),
      'node-tls': () =>
        pair(
          (p) => `${pipe} recv tls ${p} ${bCerts} ${rawDir}`,
          (p) => `${pipe} send tls ${p} ${aCerts} ${nb.nodeUuid} ${snapPath}`,
        ),
    };

    const reset = (copy: string): void => {
      execFileSync('btrfs', ['subvolume', 'delete', copy], { stdio: 'ignore' });
      for (const pool of [a.pool, b.pool]) execFileSync('btrfs', ['subvolume', 'sync', pool], { stdio: 'ignore' });
      execFileSync('sync');
    };
    const perGib = (x: CpuSample, y: CpuSample): number | null => cpuPerGib(x, y, dataMib * MiB).total;
    const run = async (kind: Kind): Promise<Run> => {
      const c0 = cpu.sample();
      const t0 = performance.now();
      if (kind === 'transfer')
        await client.receive(
          { datasetId: id, name: 'full', parent: null, identity: snapshot.identity },
          ea.send(id, 'full', null),
        );
      else await sends[kind]();
      const t1 = performance.now();
      const c1 = cpu.sample();
      const copy = kind === 'transfer' ? eb.snapshotPath(id, 'full') : path.join(rawDir, 'full');
      if (!fs.existsSync(copy)) throw new Error(`${kind}: B has no copy at ${copy}`);
      if (kind === 'transfer') await client.settle(id);
      else execFileSync('btrfs', ['filesystem', 'sync', b.pool], { stdio: 'ignore' });
      const t2 = performance.now();
      const c2 = cpu.sample();
      reset(copy);
      return { sendMs: t1 - t0, writeOutMs: t2 - t1, cpuSend: perGib(c0, c1), cpuAll: perGib(c0, c2) };
    };

    execFileSync('sync');
    const load0 = fs.readFileSync('/proc/loadavg', 'utf8').trim();
    const rows: Array<Partial<Record<Kind, Run>> & { load: string }> = [];
    for (let i = 0; i < rounds; i++) {
      const order = kinds.map((_, k) => kinds[(k + i) % kinds.length] ?? 'raw');
      const row: (typeof rows)[number] = { load: '' };
      for (const kind of order) row[kind] = await run(kind);
      row.load = fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
      rows.push(row);
      console.error(
        `round ${i} (load ${row.load}): ${order
          .map((k) => `${k} ${Math.round(row[k]?.sendMs ?? 0)}+${Math.round(row[k]?.writeOutMs ?? 0)}`)
          .join('; ')}`,
      );
    }
    const load1 = fs.readFileSync('/proc/loadavg', 'utf8').trim();

    const of = (kind: Kind, f: (r: Run, raw: Run) => number): number =>
      median(
        rows.flatMap((row) => {
          const r = row[kind];
          return r !== undefined && row.raw !== undefined ? [f(r, row.raw)] : [];
        }),
      );
    const s = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;
    const x = (v: number): string => `${v.toFixed(2)}×`;
    const table = kinds.map((k) => ({
      kind: k,
      sendMs: Math.round(of(k, (r) => r.sendMs)),
      vsRaw: Math.round(of(k, (r, raw) => raw.sendMs / r.sendMs) * 1000) / 1000,
      writeOutMs: Math.round(of(k, (r) => r.writeOutMs)),
      withWriteOutVsRaw:
        Math.round(of(k, (r, raw) => (raw.sendMs + raw.writeOutMs) / (r.sendMs + r.writeOutMs)) * 1000) / 1000,
      cpuSendPerGib: Math.round(of(k, (r) => r.cpuSend ?? Number.NaN) * 100) / 100,
      cpuAllPerGib: Math.round(of(k, (r) => r.cpuAll ?? Number.NaN) * 100) / 100,
    }));
    console.log(
      [
        `${dataMib} MiB of random data, full send host A → host B over 127.0.0.1, ${rounds} rounds in rotating order`,
        `(medians; ratios: median of the rounds' raw / kind). Load average before: ${load0}; after: ${load1}.`,
        '',
        '| transport | send | vs raw | write-out after | send + write-out vs raw + write-out | CPU s/GiB send | CPU s/GiB with write-out |',
        '|---|---|---|---|---|---|---|',
        ...table.map(
          (t) =>
            `| ${t.kind} | ${s(t.sendMs)} | ${x(t.vsRaw)} | ${s(t.writeOutMs)} | ${x(t.withWriteOutVsRaw)} | ${t.cpuSendPerGib.toFixed(2)} | ${t.cpuAllPerGib.toFixed(2)} |`,
        ),
      ].join('\n'),
    );
    const out = arg('out');
    if (out !== undefined)
      fs.writeFileSync(out, `${JSON.stringify({ dataMib, rounds, kinds, load0, load1, table, rows }, null, 2)}\n`);
  } finally {
    for (const c of children) {
      try {
        if (c === receiverChild) c.kill('SIGKILL');
        else if (c.pid !== undefined) process.kill(-c.pid, 'SIGKILL');
      } catch {
        // Gone already.
      }
    }
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

/**
 * A real 3-member etcd cluster on loopback for tests and the benchmark: free ports,
 * a private data directory, members that can be killed and restarted one by one.
 * Installs Debian's etcd through scripts/etcd.sh when it is missing.
 * With `tls: true` the members serve clients over https only and demand a client
 * certificate issued by a CA made for the cluster (openssl CLI); see EtcdTestPki.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { z } from 'zod';

const SCRIPT = path.resolve(__dirname, '../../../../scripts/etcd.sh');

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

const EndpointStatus = z.array(
  z.object({
    Endpoint: z.string(),
    Status: z.object({
      header: z.object({ member_id: z.union([z.number(), z.string()]) }),
      leader: z.union([z.number(), z.string()]),
    }),
  }),
);

/** PEM files of a TLS test cluster (paths). */
export interface EtcdTestPki {
  /** CA that issued the members' and the client's certificates. */
  ca: string;
  /** Client certificate (extendedKeyUsage clientAuth) and its key, issued by `ca`. */
  cert: string;
  key: string;
  /** A CA the members do not trust, and a client certificate it issued. */
  otherCa: string;
  otherCert: string;
  otherKey: string;
  /** The members' server certificate (SAN IP 127.0.0.1, localhost) and key. */
  serverCert: string;
  serverKey: string;
}

export interface EtcdTestClusterOptions {
  /** Client TLS with client-certificate authentication (peers stay plain on loopback). */
  tls?: boolean;
  /** Every start attempt ends by then (default 50 s: inside the suites' 60 s beforeAll). */
  startDeadlineMs?: number;
}

function openssl(args: string[]): void {
  execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

function newKey(file: string): void {
  openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', file]);
}

export function selfSignedCa(dir: string, name: string): { crt: string; key: string } {
  const key = path.join(dir, `${name}.key`);
  const crt = path.join(dir, `${name}.crt`);
  newKey(key);
  openssl([
    'req',
    '-x509',
    '-new',
    '-key',
    key,
    '-out',
    crt,
    '-days',
    '2',
    '-subj',
    `/CN=${name}`,
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  return { crt, key };
}

export function issue(
  dir: string,
  name: string,
  ca: { crt: string; key: string },
  extensions: string,
): { crt: string; key: string } {
  const key = path.join(dir, `${name}.key`);
  const crt = path.join(dir, `${name}.crt`);
  const csr = path.join(dir, `${name}.csr`);
  const ext = path.join(dir, `${name}.ext`);
  newKey(key);
  writeFileSync(ext, extensions);
  openssl(['req', '-new', '-key', key, '-out', csr, '-subj', `/CN=${name}`]);
  openssl([
    'x509',
    '-req',
    '-in',
    csr,
    '-CA',
    ca.crt,
    '-CAkey',
    ca.key,
    '-set_serial',
    `0x${randomBytes(8).toString('hex')}`,
    '-days',
    '2',
    '-out',
    crt,
    '-extfile',
    ext,
  ]);
  return { crt, key };
}

/** A CA, the members' server certificate, a client certificate, and an untrusted CA with its own client. */
export function makeEtcdTestPki(dir: string): EtcdTestPki {
  mkdirSync(dir, { recursive: true });
  const ca = selfSignedCa(dir, 'etcd-ca');
  // The server certificate also allows clientAuth: etcd 3.4's gateway dials its own members with it.
  const server = issue(
    dir,
    'etcd-server',
    ca,
    'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\nkeyUsage=critical,digitalSignature\nbasicConstraints=CA:FALSE\n',
  );
  const clientExt = 'extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature\nbasicConstraints=CA:FALSE\n';
  const client = issue(dir, 'flocker-control', ca, clientExt);
  const other = selfSignedCa(dir, 'other-ca');
  const otherClient = issue(dir, 'other-client', other, clientExt);
  return {
    ca: ca.crt,
    cert: client.crt,
    key: client.key,
    otherCa: other.crt,
    otherCert: otherClient.crt,
    otherKey: otherClient.key,
    serverCert: server.crt,
    serverKey: server.key,
  };
}

interface Member {
  name: string;
  client: number;
  peer: number;
  proc: ChildProcess | undefined;
}

export class EtcdTestCluster {
  private constructor(
    readonly dir: string,
    private readonly members: Member[],
    /** The certificates when started with `tls: true`. */
    readonly pki: EtcdTestPki | undefined,
  ) {}

  static async start(size = 3, options: EtcdTestClusterOptions = {}): Promise<EtcdTestCluster> {
    execFileSync(SCRIPT, ['install'], { stdio: 'inherit' });
    // A start that fails is tried again on new ports: the ports are free when chosen, but another process (the other
    // jest worker starting its own cluster) may bind one before etcd does, and a loaded host may take the 20 s.
    // Every attempt ends within the suites' 60 s hook (review FR-7): an attempt still running when jest gave up on
    // the hook would leave members nobody stops.
    const deadline = performance.now() + (options.startDeadlineMs ?? 50_000);
    for (let attempt = 1; ; attempt++) {
      const left = deadline - performance.now();
      try {
        return await EtcdTestCluster.startOnce(size, options, Math.min(20_000, Math.max(left, 1_000)));
      } catch (err) {
        if (attempt >= 3 || deadline - performance.now() < 5_000) throw err;
      }
    }
  }

  private static async startOnce(
    size: number,
    options: EtcdTestClusterOptions,
    healthyWithinMs: number,
  ): Promise<EtcdTestCluster> {
    const dir = mkdtempSync(path.join(tmpdir(), 'flocker-etcd-'));
    const members: Member[] = [];
    // A port freed by one freePort() may be handed out again by the next: never give two listeners one port (ci25:
    // m2's peer port was m0's client port, so m2 never started and the cluster never became healthy).
    const used = new Set<number>();
    const distinctPort = async (): Promise<number> => {
      for (;;) {
        const port = await freePort();
        if (!used.has(port)) {
          used.add(port);
          return port;
        }
      }
    };
    for (let i = 0; i < size; i++)
      members.push({ name: `m${i}`, client: await distinctPort(), peer: await distinctPort(), proc: undefined });
    const pki = options.tls === true ? makeEtcdTestPki(path.join(dir, 'pki')) : undefined;
    const cluster = new EtcdTestCluster(dir, members, pki);
    for (let i = 0; i < size; i++) cluster.startMember(i);
    try {
      await cluster.waitHealthy(cluster.endpoints, healthyWithinMs);
    } catch (err) {
      // The caller never gets the cluster to stop: its members must not outlive the failed start (ci25: they kept
      // jest from exiting).
      await cluster.stop().catch(() => undefined);
      throw err;
    }
    return cluster;
  }

  get endpoints(): string[] {
    const scheme = this.pki === undefined ? 'http' : 'https';
    return this.members.map((m) => `${scheme}://127.0.0.1:${m.client}`);
  }

  /** etcdctl's flags for this cluster's TLS (none without TLS). */
  private ctlTls(): string[] {
    const p = this.pki;
    return p === undefined ? [] : ['--cacert', p.ca, '--cert', p.cert, '--key', p.key];
  }

  endpoint(i: number): string {
    return this.endpoints[i] as string;
  }

  private member(i: number): Member {
    const m = this.members[i];
    if (m === undefined) throw new Error(`no etcd member ${i}`);
    return m;
  }

  startMember(i: number): void {
    const m = this.member(i);
    if (m.proc !== undefined) return;
    const initial = this.members.map((x) => `${x.name}=http://127.0.0.1:${x.peer}`).join(',');
    const log = openSync(path.join(this.dir, `${m.name}.log`), 'a');
    const url = (p: number): string => `http://127.0.0.1:${p}`;
    const clientUrl = this.pki === undefined ? url(m.client) : `https://127.0.0.1:${m.client}`;
    const tls =
      this.pki === undefined
        ? []
        : [
            '--cert-file',
            this.pki.serverCert,
            '--key-file',
            this.pki.serverKey,
            '--trusted-ca-file',
            this.pki.ca,
            '--client-cert-auth',
          ];
    // Short heartbeats and elections so a killed leader is replaced in well under a second.
    m.proc = spawn(
      'etcd',
      [
        '--name',
        m.name,
        '--data-dir',
        path.join(this.dir, m.name),
        '--listen-client-urls',
        clientUrl,
        '--advertise-client-urls',
        clientUrl,
        ...tls,
        '--listen-peer-urls',
        url(m.peer),
        '--initial-advertise-peer-urls',
        url(m.peer),
        '--initial-cluster',
        initial,
        '--initial-cluster-state',
        'new',
        '--initial-cluster-token',
        path.basename(this.dir),
        '--heartbeat-interval',
        '50',
        '--election-timeout',
        '500',
        '--max-request-bytes',
        '16777216',
        '--auto-compaction-mode',
        'revision',
        '--auto-compaction-retention',
        '1000',
      ],
      { stdio: ['ignore', log, log] },
    );
    const proc = m.proc;
    // A test process that dies without stop() must not leave etcd members behind.
    const reap = (): void => void proc.kill('SIGKILL');
    process.once('exit', reap);
    proc.once('exit', () => {
      process.removeListener('exit', reap);
      if (m.proc === proc) m.proc = undefined;
    });
  }

  /** Kills member i (SIGKILL by default) and waits until it is gone. */
  async kill(i: number, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const proc = this.member(i).proc;
    if (proc === undefined) return;
    const gone = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
    proc.kill(signal);
    await gone;
  }

  async restart(i: number): Promise<void> {
    this.startMember(i);
    await this.waitHealthy([this.endpoint(i)]);
  }

  /** Index of the current leader, asked of the running members. */
  leader(): number {
    const running = this.members.map((m, i) => ({ m, i })).filter(({ m }) => m.proc !== undefined);
    const out = execFileSync(
      'etcdctl',
      [
        '--endpoints',
        running.map(({ i }) => this.endpoint(i)).join(','),
        '--command-timeout',
        '2s',
        ...this.ctlTls(),
        'endpoint',
        'status',
        '-w',
        'json',
      ],
      {
        env: { ...process.env, ETCDCTL_API: '3' },
        encoding: 'utf8',
      },
    );
    const status = EndpointStatus.parse(JSON.parse(out));
    for (const s of status) {
      if (String(s.Status.leader) === String(s.Status.header.member_id)) {
        const i = this.endpoints.indexOf(s.Endpoint);
        if (i >= 0) return i;
      }
    }
    throw new Error('etcd has no leader');
  }

  async waitHealthy(endpoints: string[], timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        execFileSync(
          'etcdctl',
          ['--endpoints', endpoints.join(','), '--command-timeout', '1s', ...this.ctlTls(), 'endpoint', 'health'],
          {
            env: { ...process.env, ETCDCTL_API: '3' },
            stdio: 'ignore',
          },
        );
        return;
      } catch (err) {
        if (Date.now() > deadline)
          throw new Error(`etcd not healthy at ${endpoints.join(',')} (logs in ${this.dir}): ${String(err)}`, {
            cause: err,
          });
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }

  async stop(): Promise<void> {
    for (let i = 0; i < this.members.length; i++) await this.kill(i, 'SIGTERM');
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * A real 3-member etcd cluster on loopback for tests and the benchmark: free ports,
 * a private data directory, members that can be killed and restarted one by one.
 * Installs Debian's etcd through scripts/etcd.sh when it is missing.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, openSync, rmSync } from 'node:fs';
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
    Status: z.object({ header: z.object({ member_id: z.union([z.number(), z.string()]) }), leader: z.union([z.number(), z.string()]) }),
  }),
);

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
  ) {}

  static async start(size = 3): Promise<EtcdTestCluster> {
    execFileSync(SCRIPT, ['install'], { stdio: 'inherit' });
    const dir = mkdtempSync(path.join(tmpdir(), 'flocker-etcd-'));
    const members: Member[] = [];
    for (let i = 0; i < size; i++) members.push({ name: `m${i}`, client: await freePort(), peer: await freePort(), proc: undefined });
    const cluster = new EtcdTestCluster(dir, members);
    for (let i = 0; i < size; i++) cluster.startMember(i);
    await cluster.waitHealthy(cluster.endpoints);
    return cluster;
  }

  get endpoints(): string[] {
    return this.members.map((m) => `http://127.0.0.1:${m.client}`);
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
    // Short heartbeats and elections so a killed leader is replaced in well under a second.
    m.proc = spawn(
      'etcd',
      [
        '--name', m.name, '--data-dir', path.join(this.dir, m.name),
        '--listen-client-urls', url(m.client), '--advertise-client-urls', url(m.client),
        '--listen-peer-urls', url(m.peer), '--initial-advertise-peer-urls', url(m.peer),
        '--initial-cluster', initial, '--initial-cluster-state', 'new', '--initial-cluster-token', path.basename(this.dir),
        '--heartbeat-interval', '50', '--election-timeout', '500', '--max-request-bytes', '16777216',
        '--auto-compaction-mode', 'revision', '--auto-compaction-retention', '1000',
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
    const out = execFileSync('etcdctl', ['--endpoints', running.map(({ i }) => this.endpoint(i)).join(','), '--command-timeout', '2s', 'endpoint', 'status', '-w', 'json'], {
      env: { ...process.env, ETCDCTL_API: '3' },
      encoding: 'utf8',
    });
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
        execFileSync('etcdctl', ['--endpoints', endpoints.join(','), '--command-timeout', '1s', 'endpoint', 'health'], {
          env: { ...process.env, ETCDCTL_API: '3' },
          stdio: 'ignore',
        });
        return;
      } catch (err) {
        if (Date.now() > deadline) throw new Error(`etcd not healthy at ${endpoints.join(',')} (logs in ${this.dir}): ${String(err)}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }

  async stop(): Promise<void> {
    for (let i = 0; i < this.members.length; i++) await this.kill(i, 'SIGTERM');
    rmSync(this.dir, { recursive: true, force: true });
  }
}

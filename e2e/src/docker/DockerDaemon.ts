/**
 * A private dockerd for tests: its own data-root, exec-root, pidfile, API socket and
 * cgroup parent under a temp dir, no bridge and no iptables, and its own network
 * namespace, so it disturbs nothing else on the machine. Plugin discovery
 * (/run/docker/plugins) stays machine-global.
 *
 * The network namespace matters: dockerd with `--bridge none` deletes the default
 * bridge interface (docker0) of its netns at start, which in the root netns was the
 * user's own Docker bridge (issue 17). Tests run containers with `--network none`.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { exec, until, type ExecResult } from './exec';
import { Docker0Guard } from './hostNetwork';

export const DOCKER_CLI = ['/usr/local/bin/docker', '/usr/bin/docker'].find((p) => fs.existsSync(p)) ?? 'docker';

export class DockerDaemon {
  readonly socket: string;
  private readonly pidfile: string;
  private readonly logFile: string;
  /** The host's docker0 as it was before this daemon first started; checked after each start and stop. */
  private docker0: Docker0Guard | undefined;

  constructor(
    readonly dir: string,
    readonly cgroupParent: string,
    /** A named netns (ip netns) to run in instead of a new empty one, and extra dockerd flags. */
    private readonly opts: { netns?: string; extraArgs?: readonly string[] } = {},
  ) {
    this.socket = path.join(dir, 'docker.sock');
    this.pidfile = path.join(dir, 'docker.pid');
    this.logFile = path.join(dir, 'dockerd.log');
  }

  async start(): Promise<void> {
    fs.mkdirSync(this.dir, { recursive: true });
    this.docker0 ??= new Docker0Guard(`the private dockerd in ${this.dir}`);
    const log = fs.openSync(this.logFile, 'a');
    // unshare and nsenter exec dockerd in place (no fork), so the child's pid is dockerd's.
    const netns =
      this.opts.netns === undefined ? ['unshare', '--net'] : ['nsenter', `--net=/run/netns/${this.opts.netns}`];
    const child = spawn(
      netns[0] ?? 'unshare',
      [
        ...netns.slice(1),
        '--',
        'dockerd',
        '--data-root',
        path.join(this.dir, 'data'),
        '--exec-root',
        path.join(this.dir, 'exec'),
        '--pidfile',
        this.pidfile,
        '-H',
        `unix://${this.socket}`,
        '--bridge',
        'none',
        '--iptables=false',
        '--ip-masq=false',
        '--cgroup-parent',
        this.cgroupParent,
        ...(this.opts.extraArgs ?? []),
      ],
      { stdio: ['ignore', log, log], detached: true },
    );
    fs.closeSync(log);
    child.unref();
    let exited = false;
    child.on('exit', () => (exited = true));
    await until(
      'dockerd to answer',
      async () => {
        if (exited) throw new Error(`dockerd exited; see ${this.logFile}`);
        return (await this.docker(['version', '--format', '{{.Server.Version}}'], { check: false })).code === 0;
      },
      60_000,
      100,
    );
    this.docker0.check();
  }

  pid(): number | undefined {
    try {
      return Number(fs.readFileSync(this.pidfile, 'utf8').trim()) || undefined;
    } catch {
      return undefined;
    }
  }

  /** SIGTERM and wait until it is gone (it stops its containers first). */
  async stop(): Promise<void> {
    const pid = this.pid();
    if (pid === undefined) return;
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      return;
    }
    await until('dockerd to exit', () => !isAlive(pid), 60_000, 100);
    this.docker0?.check();
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }

  /** Run the docker CLI against this daemon; by default a failure throws. */
  docker(args: readonly string[], opts: { check?: boolean; timeoutMs?: number } = {}): Promise<ExecResult> {
    return exec([DOCKER_CLI, '-H', `unix://${this.socket}`, ...args], opts);
  }

  log(): string {
    try {
      return fs.readFileSync(this.logFile, 'utf8');
    } catch {
      return '';
    }
  }
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * The whole single-host stack for Docker e2e tests and benchmarks: the control service
 * (in this process), a dataset agent on a loopback pool in a temp root, the Docker
 * plugin (a child process, so tests can kill it) and a private dockerd. Everything
 * talks mutual TLS with certificates of a CA made for this stack.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { FlockerClient, nodeCommonName, tlsDispatcher } from '@flocker/api';
import { ClusterPki } from '../cluster/pki';
import { createLogger, startControlService, type ControlService } from '@flocker/control-api';
import { callPlugin } from '@flocker/volume-plugin/testing';
import { DockerDaemon, isAlive } from './DockerDaemon';
import { exec, until } from './exec';
import { buildTinyRootfsTar } from './tinyImage';
import { releaseMountsAndLoops } from '../loopPools';
import { removeTree } from '../removeTree';

export const TINY_IMAGE = 'flocker-e2e-tiny:latest';

export function packageMain(pkg: string): string {
  return path.join(path.dirname(require.resolve(`${pkg}/package.json`)), 'dist', 'main.js');
}

/** A child process with its output appended to a log file. */
export class ChildService {
  private child: ChildProcess | undefined;
  constructor(
    readonly name: string,
    private readonly argv: readonly string[],
    readonly logFile: string,
    private readonly env: NodeJS.ProcessEnv = process.env,
  ) {}

  start(): void {
    const log = fs.openSync(this.logFile, 'a');
    const [cmd, ...args] = this.argv;
    this.child = spawn(cmd ?? 'false', args, { stdio: ['ignore', log, log], env: this.env });
    fs.closeSync(log);
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    await exited;
    clearTimeout(timer);
  }

  log(): string {
    try {
      return fs.readFileSync(this.logFile, 'utf8');
    } catch {
      return '';
    }
  }
}

export interface FlockerDockerStackOptions {
  /** Driver (and socket) name; default flocker-e2e-<pid>. */
  driver?: string;
  mountTimeoutSeconds?: number;
  /** The agent's and the plugin's log level; debug adds a sub-ms `t` to every line (tracing). Default info. */
  logLevel?: 'info' | 'debug';
  /** Extra plugin flags, e.g. ['--idle-lease-seconds', '0'] for a test about lease counting, not idle leases. */
  pluginArgs?: readonly string[];
}

export class FlockerDockerStack {
  readonly driver: string;
  readonly socketPath: string;
  readonly root: string;
  readonly dockerd: DockerDaemon;
  readonly agentConfig: string;
  control!: ControlService;
  /** An API user client (admin). */
  client!: FlockerClient;
  pki!: ClusterPki;
  plugin!: ChildService;
  agent!: ChildService;
  nodeUuid = '';

  private constructor(opts: FlockerDockerStackOptions) {
    this.driver = opts.driver ?? `flocker-e2e-${process.pid}`;
    this.socketPath = `/run/docker/plugins/${this.driver}.sock`;
    // Short path: Unix socket paths are limited to 108 bytes.
    this.root = fs.mkdtempSync(path.join(os.tmpdir(), 'fdk-'));
    this.dockerd = new DockerDaemon(path.join(this.root, 'd'), `/${this.driver}`);
    this.agentConfig = path.join(this.root, 'agent.yml');
  }

  static async start(opts: FlockerDockerStackOptions = {}): Promise<FlockerDockerStack> {
    const stack = new FlockerDockerStack(opts);
    try {
      await stack.boot(opts);
    } catch (err) {
      await stack.close();
      throw err;
    }
    return stack;
  }

  private async boot(opts: FlockerDockerStackOptions): Promise<void> {
    const logger = createLogger('error');
    this.pki = await ClusterPki.create(path.join(this.root, 'pki'), ['127.0.0.1', 'localhost']);
    this.control = await startControlService({
      port: 0,
      host: '127.0.0.1',
      dataDir: path.join(this.root, 'control'),
      logger,
      tls: this.pki.serverCredentials(),
    });
    this.client = new FlockerClient({ baseUrl: this.control.url, dispatcher: await this.pki.userDispatcher('admin') });
    // cluster.crt, node.crt and node.key beside agent.yml: the agent and the plugin use HTTPS as this node.
    const certUuid = await this.pki.installNode(this.root);
    fs.writeFileSync(
      this.agentConfig,
      [
        'version: 1',
        `control-service: {hostname: 127.0.0.1, port: ${this.control.port}}`,
        `dataset: {backend: loopback, root_path: ${path.join(this.root, 'pool')}}`,
        // This stack's own dockerd: the one whose containers a self-fence stops, and the plugin reconciles with.
        `node: {state_dir: ${path.join(this.root, 'agent')}, mount_root: ${path.join(this.root, 'mnt')}, host: e2e-host, docker_socket: ${this.dockerd.socket}}`,
        `agent: {log_level: ${opts.logLevel ?? 'info'}}`,
        '',
      ].join('\n'),
    );
    this.agent = new ChildService(
      'agent',
      [process.execPath, packageMain('@flocker/dataset-agent'), '--config', this.agentConfig],
      path.join(this.root, 'agent.log'),
    );
    this.agent.start();
    this.plugin = new ChildService(
      'plugin',
      [
        process.execPath,
        packageMain('@flocker/volume-plugin'),
        '--agent-config',
        this.agentConfig,
        '--socket',
        this.socketPath,
        '--docker-socket',
        this.dockerd.socket,
        '--mount-timeout',
        String(opts.mountTimeoutSeconds ?? 60),
        ...(opts.pluginArgs ?? []),
      ],
      path.join(this.root, 'plugin.log'),
      opts.logLevel !== undefined ? { ...process.env, FLOCKER_LOG_LEVEL: opts.logLevel } : process.env,
    );
    await this.startPlugin();
    await until(
      'the agent to report',
      async () => (await this.client.waitForCluster(undefined, 0)).nodes.length > 0,
      30_000,
      100,
    );
    this.nodeUuid = (
      JSON.parse(fs.readFileSync(path.join(this.root, 'agent', 'node.json'), 'utf8')) as { uuid: string }
    ).uuid;
    if (this.nodeUuid !== certUuid)
      throw new Error(`node.json names ${this.nodeUuid}, but the node certificate ${certUuid}`);
    // The plugin must be up before dockerd, or dockerd stalls restoring plugin volumes.
    await this.dockerd.start();
    const tar = await buildTinyRootfsTar(this.root);
    await this.dockerd.docker(['import', tar, TINY_IMAGE]);
  }

  /** A client holding a node certificate of this stack's CA: acts as node `uuid` (e.g. "another host"). */
  async clientAsNode(uuid: string): Promise<FlockerClient> {
    const pem = await this.pki.issue(nodeCommonName(uuid), 'node');
    return new FlockerClient({
      baseUrl: this.control.url,
      dispatcher: tlsDispatcher({ ca: fs.readFileSync(this.pki.caFile), cert: pem.certificate, key: pem.privateKey }),
    });
  }

  async startPlugin(): Promise<void> {
    this.plugin.start();
    await until('the plugin socket', () => fs.existsSync(this.socketPath), 60_000, 50);
    // The socket exists before the listener accepts only for a moment; wait for accept.
    await until(
      'the plugin to answer',
      async () => (await callPlugin(this.socketPath, '/Plugin.Activate').catch(() => undefined))?.status === 200,
      30_000,
      50,
    );
  }

  async killPlugin(): Promise<void> {
    await this.plugin.stop('SIGKILL');
  }

  docker(args: readonly string[], opts: { check?: boolean; timeoutMs?: number } = {}) {
    return this.dockerd.docker(args, opts);
  }

  /** `docker run` of the tiny image, no network, with Flocker volume `vol` at /data, running `script`. */
  private runArgs(vol: string, script: string, extra: readonly string[]): string[] {
    return [
      'run',
      '--network',
      'none',
      ...extra,
      '-v',
      `${vol}:/data`,
      '--volume-driver',
      this.driver,
      TINY_IMAGE,
      'sh',
      '-c',
      script,
    ];
  }

  /** Runs a throw-away container with `vol` at /data and returns its output. */
  async runWith(vol: string, script: string, extra: readonly string[] = []): Promise<string> {
    return (await this.docker(this.runArgs(vol, script, ['--rm', ...extra]))).stdout;
  }

  /** Starts a detached container `name` with `vol` at /data running `script`. */
  startWith(name: string, vol: string, script: string, extra: readonly string[] = []) {
    return this.docker(this.runArgs(vol, script, ['-d', '--name', name, ...extra]));
  }

  /** The dataset behind a Docker volume name (non-deleted), if any. */
  async dataset(name: string) {
    return (await this.client.listDatasets()).find((d) => !d.deleted && d.metadata.name === name);
  }

  logs(): string {
    return (
      ['plugin', 'agent']
        .map((n) => `---- ${n}\n${(n === 'plugin' ? this.plugin : this.agent)?.log().slice(-4000)}`)
        .join('\n') + `\n---- dockerd\n${this.dockerd.log().slice(-3000)}`
    );
  }

  /** Stop everything and remove every mount, loop device, cgroup and file it made. */
  async close(): Promise<void> {
    await this.dockerd
      .docker(['rm', '-f', '-v', ...(await this.containerIds())], { check: false })
      .catch(() => undefined);
    await this.dockerd.stop().catch(() => undefined);
    await this.plugin?.stop().catch(() => undefined);
    await this.agent?.stop().catch(() => undefined);
    await this.control?.close().catch(() => undefined);
    fs.rmSync(this.socketPath, { force: true });
    // A loop device still bound fails the close (after the cgroups), the directory kept to look at.
    const leak = await cleanupUnder(this.root).then(
      () => undefined,
      (e: unknown) => (e instanceof Error ? e : new Error(String(e))),
    );
    for (const ctl of safeReaddir('/sys/fs/cgroup')) {
      const dir = path.join('/sys/fs/cgroup', ctl, this.driver);
      if (fs.existsSync(dir))
        await exec(['find', dir, '-depth', '-type', 'd', '-exec', 'rmdir', '{}', ';'], { check: false });
    }
    if (leak !== undefined) throw leak;
    removeTree(this.root);
  }

  private async containerIds(): Promise<string[]> {
    if (this.dockerd.pid() === undefined || !isAlive(this.dockerd.pid() ?? -1)) return [];
    const r = await this.dockerd.docker(['ps', '-aq'], { check: false });
    return r.stdout.split('\n').filter(Boolean);
  }
}

function safeReaddir(dir: string): string[] {
  try {
    return fs.readdirSync(dir);
  } catch {
    return [];
  }
}

/**
 * Unmount everything under `root` (deepest first; a file system an agent left frozen is thawed first) and
 * detach the loop devices backed by files there, waiting for the kernel to let them go (loopPools).
 */
export function cleanupUnder(root: string): Promise<void> {
  const left = releaseMountsAndLoops(root);
  return left.length === 0
    ? Promise.resolve()
    : Promise.reject(new Error(`loop devices still bound after the teardown of ${root}: ${left.join(', ')}`));
}

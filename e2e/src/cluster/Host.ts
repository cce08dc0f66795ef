/**
 * One simulated host: its own net + mount + UTS namespaces, running a dataset
 * agent, the Docker volume plugin and a dockerd, all in the same mount ns (P3).
 */
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import type { FlockerClient } from '@flocker/api';
import { firstLogTime, reportedSince } from './agentReport';
import { TINY_IMAGE } from './image';
import {
  agentConfigYaml,
  agentResyncSeconds,
  daemonConfig,
  type ClusterBackend,
  type ClusterLayout,
  type ControlServiceSettings,
  type HostLayout,
} from './layout';
import { mountLocalDisk } from './localDisks';
import { createHostMountNs, inHost, isMountPoint, releaseHostMountNs, setHostLink } from './namespaces';
import { hostDaemonEnv, isAlive, readPidFile, removeCgroup, spawnDetached, stopPid, waitGone } from './processes';
import { ClusterError, run, waitFor, type RunOptions, type RunResult } from './run';
import { killHostProcesses } from './teardown';

export const PLUGIN_SOCKET = '/run/docker/plugins/flocker.sock';
export const VOLUME_DRIVER = 'flocker';

/** argv of each component; the defaults run this repository's built packages. */
export interface ComponentCommands {
  /** tlsDir holds cluster.crt, control-service.crt and control-service.key. */
  control: (a: ControlServiceSettings) => string[];
  agent: (a: { config: string }) => string[];
  /** dockerSocket: the host's dockerd, which the plugin reconciles its mounts and leases with. */
  plugin: (a: { agentConfig: string; socket: string; dockerSocket: string }) => string[];
  dockerd: (a: { daemonJson: string }) => string[];
  /** The container agent (flocker-container-agent); default: this repository's build. */
  containerAgent?: (a: { agentConfig: string; dockerSocket: string }) => string[];
}

export interface HostContext {
  cluster: ClusterLayout;
  commands: ComponentCommands;
  client: FlockerClient;
  withAgents: boolean;
  withPlugin: boolean;
  withDocker: boolean;
  /** Start flocker-container-agent after dockerd (cluster.sh up; review T2 F3). */
  withContainerAgents: boolean;
  startTimeoutMs: number;
  nodeTimeoutSeconds: number;
  dockerCliEnv: NodeJS.ProcessEnv;
  backend: ClusterBackend;
}

export class ClusterHost {
  constructor(
    readonly layout: HostLayout,
    private readonly ctx: HostContext,
  ) {}

  get name(): string {
    return this.layout.name;
  }
  get address(): string {
    return this.layout.address;
  }

  /** Runs argv inside this host's namespaces (nsenter). Throws on non-zero exit unless check: false. */
  exec(argv: readonly string[], opts?: RunOptions): Promise<RunResult> {
    return run([...inHost(this.layout), ...argv], opts);
  }

  /** Runs the docker CLI against this host's daemon. */
  docker(args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
    return run(['docker', '-H', `unix://${this.layout.dockerSocket}`, ...args], {
      timeoutMs: 120_000,
      env: this.ctx.dockerCliEnv,
      ...opts,
    });
  }

  /** The node UUID the agent persisted, or undefined before its first start. */
  nodeUuid(): string | undefined {
    try {
      const doc: unknown = JSON.parse(fs.readFileSync(path.join(this.layout.stateDir, 'node.json'), 'utf8'));
      if (typeof doc === 'object' && doc !== null && 'uuid' in doc && typeof doc.uuid === 'string') return doc.uuid;
    } catch {
      // not created yet
    }
    return undefined;
  }

  /** Like nodeUuid(), but throws when the agent never ran. */
  requireNodeUuid(): string {
    const uuid = this.nodeUuid();
    if (uuid === undefined)
      throw new ClusterError('NODE_UNKNOWN', `host ${this.name} has no node UUID yet (agent never started)`);
    return uuid;
  }

  era(): string {
    return fs.readFileSync(this.layout.eraFile, 'utf8').trim();
  }

  /** Writes the host's files (configs, era); called once when the host is created. */
  prepare(): void {
    const h = this.layout;
    for (const d of [h.dir, h.stateDir, h.mountRoot, h.logDir]) fs.mkdirSync(d, { recursive: true });
    fs.writeFileSync(
      h.agentConfig,
      agentConfigYaml(this.ctx.cluster, h, agentResyncSeconds(this.ctx.nodeTimeoutSeconds), this.ctx.backend),
    );
    fs.writeFileSync(h.daemonJson, JSON.stringify(daemonConfig(h), null, 2) + '\n');
    if (!fs.existsSync(h.eraFile)) this.newEra();
  }

  private newEra(): void {
    fs.writeFileSync(this.layout.eraFile, randomUUID() + '\n');
  }

  private spawnInHost(argv: string[], log: string, pidFile: string, env?: Record<string, string>): number {
    const pid = spawnDetached(
      [...inHost(this.layout), ...argv],
      path.join(this.layout.logDir, log),
      hostDaemonEnv(process.env, env),
    );
    fs.writeFileSync(pidFile, `${pid}\n`);
    return pid;
  }

  private async ensureAlive(pid: number, what: string): Promise<void> {
    if (!isAlive(pid)) {
      throw new ClusterError(
        'COMPONENT_EXITED',
        `${what} on host ${this.name} exited during start-up; see ${this.layout.logDir}`,
      );
    }
  }

  /**
   * Starts the dataset agent and waits until the control service knows this host's
   * current era; returns the node UUID. `env` adds variables, e.g.
   * FLOCKER_AGENT_CRASH_AFTER=unmount:1 to make it SIGKILL itself after an action.
   *
   * A same-era restart (the control service knew the era before the spawn) also waits until the new process has
   * reported (a last_seen no older than its first log line): else this returns before the agent's Node process has
   * even started (1-6 s under load), and a test observing "what the restarted agent does" observes nothing (s22
   * FAIL-A). Not on a partitioned host (disconnect()), nor when the control service did not answer before the spawn;
   * `reported: false` skips that wait too, for an agent restarted where it cannot reach the control service otherwise;
   * `wait: false` skips every wait.
   */
  async startAgent(
    opts: { env?: Record<string, string>; wait?: boolean; reported?: boolean } = {},
  ): Promise<string | undefined> {
    if (this.agentPid() !== undefined)
      throw new ClusterError('ALREADY_RUNNING', `agent on host ${this.name} is running`);
    const era = this.era();
    const sameEra =
      opts.wait !== false && opts.reported !== false
        ? await this.ctx.client.nodeByEra(era).then(
            () => true,
            () => false, // a new era (404), or the control service not answering: the era wait below suffices
          )
        : false;
    const logFile = path.join(this.layout.logDir, 'agent.log');
    const logFrom = fileSize(logFile);
    const argv = this.ctx.commands.agent({ config: this.layout.agentConfig });
    const pid = this.spawnInHost(argv, 'agent.log', this.layout.agentPidFile, opts.env);
    if (opts.wait === false) return undefined;
    const uuid = await waitFor(
      `agent of host ${this.name} to report era ${era}`,
      async () => {
        await this.ensureAlive(pid, 'the dataset agent');
        return await this.ctx.client.nodeByEra(era);
      },
      { timeoutMs: this.ctx.startTimeoutMs, intervalMs: 50 },
    );
    // A partitioned host's agent cannot report until it is healed: the era wait is all there is to wait for.
    if (sameEra && (await this.linkIsUp())) await this.waitReportedSince(pid, uuid, era, logFile, logFrom);
    return uuid;
  }

  /** Waits until the agent process `pid` (its log from byte `logFrom` on) has reported node `uuid`. */
  private async waitReportedSince(
    pid: number,
    uuid: string,
    era: string,
    logFile: string,
    logFrom: number,
  ): Promise<void> {
    // Generous: the new process takes seconds to start on a loaded host, then looks at its backend before reporting.
    const timeoutMs = Math.max(this.ctx.startTimeoutMs, 90_000);
    let startedAt: number | undefined;
    let lastSeen: string | undefined;
    const outcome = await waitFor(
      `the restarted agent of host ${this.name} to report`,
      async () => {
        if (!isAlive(pid)) return 'exited';
        startedAt ??= firstLogTime(readFrom(logFile, logFrom));
        if (startedAt === undefined) return undefined;
        const view = await this.ctx.client.waitForCluster(undefined, 0);
        lastSeen = view.nodes.find((n) => n.uuid === uuid)?.last_seen;
        return reportedSince(lastSeen, startedAt) ? 'reported' : undefined;
      },
      { timeoutMs, intervalMs: 200 },
    ).catch((e: unknown) => {
      if (!(e instanceof ClusterError) || e.code !== 'WAIT_TIMEOUT') throw e;
      const tail = readFrom(logFile, logFrom).trimEnd().split('\n').slice(-15).join('\n');
      throw new ClusterError(
        'AGENT_NOT_REPORTED',
        `the agent of host ${this.name} (pid ${pid}), restarted in era ${era} which the control service already ` +
          `knew, has not reported node ${uuid} within ${timeoutMs} ms (its first log line: ` +
          `${startedAt === undefined ? 'none yet' : new Date(startedAt).toISOString()}; the node's last_seen: ` +
          `${lastSeen ?? 'not shown'}). An agent restarted where it cannot reach the control service (a ` +
          `partition, the control service down) needs startAgent({ reported: false }).\n${e.message}\n` +
          `--- ${logFile} since the restart\n${tail}`,
      );
    });
    if (outcome === 'exited') {
      throw new ClusterError(
        'COMPONENT_EXITED',
        `the dataset agent on host ${this.name} exited after its restart before reporting; see ${logFile}`,
      );
    }
  }

  async startPlugin(): Promise<void> {
    if (this.pluginPid() !== undefined)
      throw new ClusterError('ALREADY_RUNNING', `plugin on host ${this.name} is running`);
    const pid = this.spawnInHost(
      this.ctx.commands.plugin({
        agentConfig: this.layout.agentConfig,
        socket: PLUGIN_SOCKET,
        dockerSocket: this.layout.dockerSocket,
      }),
      'plugin.log',
      this.layout.pluginPidFile,
    );
    // The socket lives in the host's private /run; /proc/<pid>/root shows that mount ns.
    await waitFor(
      `plugin socket on host ${this.name}`,
      async () => {
        await this.ensureAlive(pid, 'the volume plugin');
        return fs.existsSync(`/proc/${pid}/root${PLUGIN_SOCKET}`) ? true : undefined;
      },
      { timeoutMs: this.ctx.startTimeoutMs, intervalMs: 25 },
    );
  }

  async startDocker(): Promise<void> {
    if (this.dockerPid() !== undefined)
      throw new ClusterError('ALREADY_RUNNING', `dockerd on host ${this.name} is running`);
    fs.rmSync(this.layout.dockerSocket, { force: true });
    // A SIGKILLed dockerd takes its containerd along (parent-death signal): give that one a moment to die
    // (else the new dockerd adopts it and waits in vain for its socket). Either may then linger as a zombie
    // until PID 1 reaps it; a dockerd started meanwhile takes a zombie's pid file for a live daemon and refuses
    // to start ("pid file found") or, again, waits for a dead containerd.
    // A pid file naming some other program (a reused pid) is stale too.
    const containerdPidFile = path.join(this.layout.dir, 'docker-exec', 'containerd', 'containerd.pid');
    const containerd = readPidFile(containerdPidFile);
    if (containerd !== undefined && runs(containerd, 'containerd')) await waitGone([containerd], 2_000);
    for (const [pidFile, program] of [
      [String(daemonConfig(this.layout).pidfile), 'dockerd'],
      [containerdPidFile, 'containerd'],
    ] as const) {
      const pid = readPidFile(pidFile);
      if (pid !== undefined && !(isAlive(pid) && runs(pid, program))) fs.rmSync(pidFile, { force: true });
    }
    const pid = this.spawnInHost(
      this.ctx.commands.dockerd({ daemonJson: this.layout.daemonJson }),
      'dockerd.log',
      this.layout.dockerPidFile,
    );
    await waitFor(
      `dockerd on host ${this.name}`,
      async () => {
        await this.ensureAlive(pid, 'dockerd');
        return (await pingDocker(this.layout.dockerSocket)) ? true : undefined;
      },
      { timeoutMs: this.ctx.startTimeoutMs, intervalMs: 25 },
    );
    const has = await this.docker(['image', 'inspect', '--format', '{{.Id}}', TINY_IMAGE], { check: false });
    if (has.code !== 0) await this.docker(['import', this.ctx.cluster.imageTar, TINY_IMAGE]);
  }

  /**
   * Starts flocker-container-agent in this host (it finds the control service and its
   * node as the plugin does, through agent.yml) and waits until it has reported.
   */
  async startContainerAgent(opts: { resyncSeconds?: number } = {}): Promise<void> {
    if (this.containerAgentPid() !== undefined)
      throw new ClusterError('ALREADY_RUNNING', `container agent on host ${this.name} is running`);
    const args = { agentConfig: this.layout.agentConfig, dockerSocket: this.layout.dockerSocket };
    const argv = this.ctx.commands.containerAgent?.(args) ?? [
      process.execPath,
      path.join(__dirname, '..', '..', '..', 'packages/container-agent/dist/main.js'),
      '--agent-config',
      args.agentConfig,
      '--docker-socket',
      args.dockerSocket,
      '--resync',
      String(opts.resyncSeconds ?? 2),
    ];
    const pid = this.spawnInHost(argv, 'container-agent.log', this.containerAgentPidFile);
    const log = path.join(this.layout.logDir, 'container-agent.log');
    await waitFor(
      `container agent of host ${this.name} to report`,
      async () => {
        await this.ensureAlive(pid, 'the container agent');
        return fs.existsSync(log) && fs.readFileSync(log, 'utf8').includes('"containers reported"') ? true : undefined;
      },
      { timeoutMs: this.ctx.startTimeoutMs, intervalMs: 50 },
    );
  }

  get containerAgentPidFile(): string {
    return path.join(this.layout.dir, 'container-agent.pid');
  }
  containerAgentPid(): number | undefined {
    return livePid(this.containerAgentPidFile);
  }
  killContainerAgent(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    return stopPid(this.containerAgentPid(), signal);
  }

  /**
   * dockerd discovers legacy volume plugins lazily, and Swarm only schedules a task
   * with a plugin volume on nodes whose dockerd already lists that plugin
   * ("missing plugin on 1 node"). Creating and removing a throwaway volume registers it.
   */
  async registerVolumePlugin(): Promise<void> {
    const name = `flocker-register-${this.name}-${randomUUID().slice(0, 8)}`;
    await this.docker(['volume', 'create', '--driver', VOLUME_DRIVER, name]);
    await this.docker(['volume', 'rm', name]);
  }

  agentPid(): number | undefined {
    return livePid(this.layout.agentPidFile);
  }
  pluginPid(): number | undefined {
    return livePid(this.layout.pluginPidFile);
  }
  dockerPid(): number | undefined {
    return livePid(this.layout.dockerPidFile);
  }

  killAgent(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    return stopPid(this.agentPid(), signal);
  }
  killPlugin(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    return stopPid(this.pluginPid(), signal);
  }
  /** Stops dockerd only; with SIGKILL its containerd and containers keep running, as after a daemon crash. */
  killDocker(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    return stopPid(this.dockerPid(), signal, 20_000);
  }

  /** Network partition: the host keeps running but cannot reach anyone. */
  disconnect(): Promise<void> {
    return setHostLink(this.layout, false);
  }
  reconnect(): Promise<void> {
    return setHostLink(this.layout, true);
  }

  /** False after powerOff() (its mount namespace is no longer pinned) until powerOn(). */
  isPoweredOn(): boolean {
    return isMountPoint(this.layout.mntPin);
  }

  /** False while the host is partitioned (disconnect()). */
  async linkIsUp(): Promise<boolean> {
    const { stdout } = await run(['ip', '-n', this.layout.netns, '-o', 'link', 'show', 'eth0'], { check: false });
    return /<[^>]*\bUP\b[^>]*>/.test(stdout);
  }

  /**
   * Starts the components that are not running (say after a SIGKILL), in the safe order, without a
   * new era: what a host does when its daemons are restarted after a crash. Returns what it started. The agent is
   * waited for until it has reported (startAgent); `agentReported: false` where it cannot reach the control service.
   */
  async startStopped(opts: { agentReported?: boolean } = {}): Promise<string[]> {
    const started: string[] = [];
    if (this.ctx.withAgents && this.agentPid() === undefined) {
      await this.startAgent({ reported: opts.agentReported ?? true });
      started.push('agent');
    }
    if (this.ctx.withPlugin && this.pluginPid() === undefined) {
      await this.startPlugin();
      started.push('plugin');
    }
    if (this.ctx.withDocker && this.dockerPid() === undefined) {
      await this.startDocker();
      started.push('dockerd');
    }
    if (this.ctx.withContainerAgents && this.containerAgentPid() === undefined) {
      await this.startContainerAgent();
      started.push('container agent');
    }
    return started;
  }

  /**
   * Starts what this host is configured to run, in the safe order: agent, plugin, then dockerd (P10), then the
   * container agent (it drives that dockerd). `firstBoot` (startCluster: a new host, its dockerd without a volume to
   * restore): agent, plugin and dockerd start at once, as P10's order protects nothing yet (the plugin waits for the
   * agent's node.json by itself); one after the other they were ~2-3 s of every cluster's start on 2 cores.
   */
  async start(opts: { firstBoot?: boolean } = {}): Promise<void> {
    if (opts.firstBoot === true) {
      const started = await Promise.allSettled([
        this.ctx.withAgents ? this.startAgent() : undefined,
        this.ctx.withPlugin ? this.startPlugin() : undefined,
        this.ctx.withDocker ? this.startDocker() : undefined,
      ]);
      for (const s of started) if (s.status === 'rejected') throw s.reason;
    } else {
      if (this.ctx.withAgents) await this.startAgent();
      if (this.ctx.withPlugin) await this.startPlugin();
      if (this.ctx.withDocker) await this.startDocker();
    }
    if (this.ctx.withContainerAgents) await this.startContainerAgent();
  }

  /** Hard power-off: every process of the host dies, its mount namespace and all mounts in it vanish. */
  async powerOff(): Promise<void> {
    const left = await killHostProcesses(this.layout);
    if (left.length > 0)
      throw new ClusterError('KILL_FAILED', `host ${this.name}: processes ${left.join(', ')} survived SIGKILL`);
    await releaseHostMountNs(this.layout);
    removeCgroup(this.layout.cgroupParent);
    // /run is a tmpfs in real life: dockerd's runtime state does not survive a boot.
    fs.rmSync(path.join(this.layout.dir, 'docker-exec'), { recursive: true, force: true });
  }

  /** Boots after powerOff(): a new era, a fresh mount namespace (its disks mounted), then start(). */
  async powerOn(): Promise<void> {
    if (this.isPoweredOn()) throw new ClusterError('POWERED_ON', `host ${this.name} is powered on; power it off first`);
    this.newEra();
    await createHostMountNs(this.layout);
    await this.mountDisks();
    await this.start();
  }

  /** What a boot mounts before the agent starts: the local backend's pool (its own btrfs file system). */
  async mountDisks(): Promise<void> {
    if (this.ctx.backend === 'local') await mountLocalDisk(this.layout);
  }

  /** Simulated reboot: powerOff() then powerOn(). Loop devices stay attached, like cloud volumes. */
  async reboot(): Promise<void> {
    await this.powerOff();
    await this.powerOn();
  }
}

/** Whether process pid runs `program` (the basename of its argv[0]); false for zombies and the gone. */
function runs(pid: number, program: string): boolean {
  try {
    const argv0 = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')[0] ?? '';
    return path.basename(argv0) === program;
  } catch {
    return false;
  }
}

function fileSize(file: string): number {
  try {
    return fs.statSync(file).size;
  } catch {
    return 0;
  }
}

/** The text of `file` from byte `offset` on ('' when it is missing). */
function readFrom(file: string, offset: number): string {
  try {
    return fs.readFileSync(file).subarray(offset).toString('utf8');
  } catch {
    return '';
  }
}

function livePid(file: string): number | undefined {
  const pid = readPidFile(file);
  return pid !== undefined && isAlive(pid) ? pid : undefined;
}

export function pingDocker(socketPath: string, timeoutMs = 1_000): Promise<boolean> {
  return new Promise((resolve) => {
    const req = http.get({ socketPath, path: '/_ping', timeout: timeoutMs }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => {
      req.destroy();
      resolve(false);
    });
  });
}

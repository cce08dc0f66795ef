/**
 * Real dataset agents (spawned `flocker-dataset-agent` processes) on loopback pools under
 * a temp directory, with the control service in this process: the setup the local agent
 * e2e tests share. Needs root (loop devices, mounts).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import {
  createWriteStream,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { FlockerClient } from '@flocker/api';
import { startControlService, type ControlService, type ControlServiceOptions } from '@flocker/control-api';
import { firstLogTime, reportedSince } from './cluster/agentReport';
import { killProcessGroups } from './cluster/processes';
import { waitFor as waitUntil } from './cluster/run';
import { releaseMountsAndLoopsOrThrow } from './loopPools';
import { removeTree } from './removeTree';

export const AGENT_MAIN = join(resolve(__dirname, '../..'), 'packages/dataset-agent/dist/main.js');

export interface AgentProc {
  readonly name: string;
  readonly proc: ChildProcess;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** The size of `<dir>/<name>.log` at the spawn: this process's lines come after it. */
  readonly logFrom: number;
}

/** What an agent's agent.yml says besides the paths under the bed's directory. */
export interface AgentSettings {
  /** The pool directory under the bed's directory (default "pool"). */
  readonly pool?: string;
  readonly resyncSeconds?: number;
  readonly backoffMaxSeconds?: number;
}

export { mountsUnder, releaseMountsAndLoops } from './loopPools';

async function startControl(
  dir: string,
  dataDir: string,
  nodeTimeoutSeconds: number,
  extra: Partial<ControlServiceOptions> = {},
): Promise<{ control: ControlService; client: FlockerClient }> {
  const control = await startControlService({
    port: 0,
    host: '127.0.0.1',
    dataDir: join(dir, dataDir),
    nodeTimeoutSeconds,
    logLevel: 'error',
    ...extra,
  });
  return { control, client: new FlockerClient({ baseUrl: control.url }) };
}

export class LocalAgentBed {
  private readonly agents = new Set<AgentProc>();
  /** The process group of every agent started (each its own), exited ones too: a tool it ran may outlive it. */
  private readonly groups = new Set<number>();

  private constructor(
    readonly dir: string,
    private current: { control: ControlService; client: FlockerClient },
  ) {}

  /**
   * A temp directory named from `prefix` and a control service (node timeout 60 s) on `<dir>/control`;
   * `control` adds options of that service (e.g. testOnlyMinSnapshotIntervalSeconds).
   */
  static async start(prefix: string, control: Partial<ControlServiceOptions> = {}): Promise<LocalAgentBed> {
    const dir = mkdtempSync(join(tmpdir(), prefix));
    return new LocalAgentBed(dir, await startControl(dir, 'control', 60, control));
  }

  get control(): ControlService {
    return this.current.control;
  }
  get client(): FlockerClient {
    return this.current.client;
  }

  /** Closes the control service and starts another on `<dir>/<dataDir>`; agent configs written from now on name it. */
  async replaceControl(
    dataDir: string,
    nodeTimeoutSeconds: number,
  ): Promise<{ control: ControlService; client: FlockerClient }> {
    await this.current.control.close();
    this.current = await startControl(this.dir, dataDir, nodeTimeoutSeconds);
    return this.current;
  }

  configPath(name: string): string {
    return join(this.dir, `${name}.yml`);
  }

  writeAgentConfig(
    name: string,
    { pool = 'pool', resyncSeconds = 2, backoffMaxSeconds = 2 }: AgentSettings = {},
  ): void {
    const node = join(this.dir, name);
    writeFileSync(
      this.configPath(name),
      [
        'version: 1',
        `control-service: {hostname: 127.0.0.1, port: ${this.control.port}}`,
        `dataset: {backend: loopback, root_path: ${join(this.dir, pool)}}`,
        `node: {state_dir: ${join(node, 'state')}, mount_root: ${join(node, 'mnt')}, era_file: ${join(node, 'era')}}`,
        `agent: {resync_interval_seconds: ${resyncSeconds}, default_dataset_size: 67108864, backoff_initial_seconds: 0.2, backoff_max_seconds: ${backoffMaxSeconds}}`,
        '',
      ].join('\n'),
    );
  }

  /**
   * Spawns agent `name` (the default agent.yml unless one was written, era "era-<name>" unless set), logging to
   * `<dir>/<name>.log`, in a process group of its own (see close).
   */
  startAgent(name: string, env: Record<string, string> = {}): AgentProc {
    if (!existsSync(this.configPath(name))) this.writeAgentConfig(name);
    mkdirSync(join(this.dir, name), { recursive: true });
    if (!existsSync(join(this.dir, name, 'era'))) writeFileSync(join(this.dir, name, 'era'), `era-${name}\n`);
    const logFrom = fileSize(join(this.dir, `${name}.log`));
    const log = createWriteStream(join(this.dir, `${name}.log`), { flags: 'a' });
    const proc = spawn(process.execPath, [AGENT_MAIN, '--config', this.configPath(name)], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    if (proc.pid !== undefined) this.groups.add(proc.pid);
    proc.stdout?.pipe(log);
    proc.stderr?.pipe(log);
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) =>
      proc.on('exit', (code, signal) => res({ code, signal })),
    );
    const a = { name, proc, exited, logFrom };
    this.agents.add(a);
    void exited.then(() => this.agents.delete(a));
    return a;
  }

  /**
   * startAgent, then reported: for a test that looks at what the (re)started agent does. startAgent returns at the
   * spawn; after a restart of a node the control service knows (the same state directory), the node is listed, and
   * "registered", before the new process has even started (1-6 s under load): ClusterHost.startAgent waits the same
   * way (s22, 778cbc3). Not for an agent that cannot report (its control service down, a crash before its report).
   */
  async startAgentReported(name: string, env: Record<string, string> = {}): Promise<AgentProc> {
    const a = this.startAgent(name, env);
    await this.reported(a);
    return a;
  }

  /**
   * Waits until agent process `a` has reported: its node's last_seen in the whole snapshot no older than the
   * process's first log line (it logs before its first report, and the one before it was gone by then). Throws at
   * once when the process exits first. Returns the node's uuid.
   */
  async reported(a: AgentProc, timeoutMs = 90_000): Promise<string> {
    const logFile = join(this.dir, `${a.name}.log`);
    let startedAt: number | undefined;
    let lastSeen: string | undefined;
    const outcome = await this.waitFor(
      `agent ${a.name} (pid ${a.proc.pid}) to report`,
      async () => {
        if (a.proc.exitCode !== null || a.proc.signalCode !== null) return { exited: true } as const;
        startedAt ??= firstLogTime(readFrom(logFile, a.logFrom));
        const uuid = startedAt === undefined ? undefined : this.nodeUuidIfKnown(a.name);
        if (uuid === undefined) return undefined;
        lastSeen = (await this.client.waitForCluster(undefined, 0)).nodes.find((n) => n.uuid === uuid)?.last_seen;
        return reportedSince(lastSeen, startedAt) ? ({ exited: false, uuid } as const) : undefined;
      },
      timeoutMs,
      200,
    );
    if (outcome.exited) {
      throw new Error(
        `agent ${a.name} (pid ${a.proc.pid}) exited (${a.proc.exitCode ?? a.proc.signalCode}) before it reported ` +
          `(its first log line: ${startedAt === undefined ? 'none' : new Date(startedAt).toISOString()}; its ` +
          `node's last_seen: ${lastSeen ?? 'not shown'})\n${this.logs()}`,
      );
    }
    return outcome.uuid;
  }

  /** nodeUuid, or undefined while the agent has not written node.json (or is writing it). */
  private nodeUuidIfKnown(name: string): string | undefined {
    try {
      return this.nodeUuid(name);
    } catch {
      return undefined;
    }
  }

  nodeUuid(name: string): string {
    return (JSON.parse(readFileSync(join(this.dir, name, 'state', 'node.json'), 'utf8')) as { uuid: string }).uuid;
  }

  /** The last lines of every agent's log, for a failure message. */
  logs(): string {
    return readdirSync(this.dir)
      .filter((f) => f.endsWith('.log'))
      .map((f) => `--- ${f}\n${readFileSync(join(this.dir, f), 'utf8').split('\n').slice(-15).join('\n')}`)
      .join('\n');
  }

  waitFor<T>(
    what: string,
    probe: () => Promise<T | undefined | false> | T | undefined | false,
    timeoutMs = 30_000,
    intervalMs = 25,
  ): Promise<T> {
    return waitUntil(what, probe, { timeoutMs, intervalMs, context: () => this.logs() });
  }

  /**
   * Kills every agent's process group — the agent and any losetup, mount or btrfs it ran, also of an agent
   * that was killed or crashed before — and waits until none of them is left; closes the control service,
   * then removes every mount and loop device of the directory, and it.
   */
  async close(): Promise<void> {
    const survivors = await killProcessGroups(this.groups);
    // Gone from the kernel: their exit events follow (not waited for on a survivor, which would hang).
    if (survivors.length === 0) for (const a of [...this.agents]) await a.exited;
    try {
      await this.control.close();
    } finally {
      // Also when the test failed or the close threw: a device left bound outlives the run (see loopPools).
      releaseMountsAndLoopsOrThrow(this.dir);
      removeTree(this.dir);
    }
    if (survivors.length > 0) throw new Error(`agent processes still alive after SIGKILL: ${survivors.join(' ')}`);
  }
}

function fileSize(file: string): number {
  try {
    return statSync(file).size;
  } catch {
    return 0;
  }
}

/** The text of `file` from byte `offset` on ('' when it is missing). */
function readFrom(file: string, offset: number): string {
  try {
    return readFileSync(file).subarray(offset).toString('utf8');
  } catch {
    return '';
  }
}

/**
 * startCluster(): N simulated Docker hosts plus a control service on one machine.
 * See e2e/README.md for the layout and shared/notes/cluster-harness.md for why
 * each namespace trick is needed.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { FlockerClient, tlsDispatcher } from '@flocker/api';
import { CONTROL_ENV, CONTROL_NODE_FLAGS } from '@flocker/control-api';
import { ClusterHost, type ComponentCommands } from './Host';
import { buildTinyImage } from './image';
import { clusterLayout, controlServiceFlags, MAX_SLOTS, type ClusterBackend, type ClusterLayout } from './layout';
import { makeLocalDisk, removeLocalDisks } from './localDisks';
import {
  addNetns,
  createControlNetns,
  createHostMountNs,
  createHostNetns,
  createSwitch,
  ensurePinDir,
  inNetns,
} from './namespaces';
import { ClusterPki } from './pki';
import { isAlive, readPidFile, spawnDetached, stopPid } from './processes';
import { ClusterError, run, waitFor } from './run';
import { readState, writeState, type ClusterStateFile } from './state';
import { teardown, type TeardownReport } from './teardown';
import { removeTree } from '../removeTree';
import { failuresSoFar, keepLogsOfFailure } from './failedLogs';

export interface ClusterOptions {
  hosts: number;
  /** Where all state lives; default a fresh temporary directory, removed on stop(). */
  baseDir?: string;
  /** Start a dockerd per host (and, unless withPlugin is false, the volume plugin). Default false. */
  withDocker?: boolean;
  withPlugin?: boolean;
  /** Start a dataset agent per host. Default true. */
  withAgents?: boolean;
  /**
   * Start a container agent per host after its dockerd (needs Docker and the dataset agent), as `cluster.sh up`
   * does; the fault commands then restart it with the host's other daemons. Default false (suites start their own).
   */
  withContainerAgents?: boolean;
  /** Control service --node-timeout. Default 10. */
  nodeTimeoutSeconds?: number;
  /** Control service --lease-grace (seconds a dead node keeps its leases). Default: not passed (the service's 5 s). */
  leaseGraceSeconds?: number;
  /**
   * The hosts' storage. Default loopback: one pool of sparse files shared by every host. local (issue 24): each
   * host its own btrfs file system on its own loop device (<host dir>/pool.img, mounted at <host dir>/pool in the
   * host's mount namespace), moves copied host to host over mutual TLS on the bridge (transfer port 4525).
   */
  backend?: ClusterBackend;
  /** Override how components are launched. */
  commands?: Partial<ComponentCommands>;
  /** Per-component start-up limit. Default 30 s. */
  startTimeoutMs?: number;
}

export const REPO_ROOT = path.resolve(__dirname, '..', '..', '..');

export const defaultCommands: ComponentCommands = {
  // As installed (the deb's wrapper, main.ts's #! line, ./dev, the benchmark): the service's node flags and environment.
  control: (settings) => [
    'env',
    ...Object.entries(CONTROL_ENV).map(([k, v]) => `${k}=${v}`),
    process.execPath,
    ...CONTROL_NODE_FLAGS,
    path.join(REPO_ROOT, 'packages/control-api/dist/main.js'),
    ...controlServiceFlags(settings),
  ],
  agent: ({ config }) => [
    process.execPath,
    path.join(REPO_ROOT, 'packages/dataset-agent/dist/main.js'),
    '--config',
    config,
  ],
  plugin: ({ agentConfig, socket, dockerSocket }) => [
    process.execPath,
    path.join(REPO_ROOT, 'packages/volume-plugin/dist/main.js'),
    '--agent-config',
    agentConfig,
    '--socket',
    socket,
    '--docker-socket',
    dockerSocket,
  ],
  dockerd: ({ daemonJson }) => ['dockerd', '--config-file', daemonJson],
};

/** The agent as another build's dataset-agent dist runs it (a copy outside the repo, A/B benches): this repo's modules. */
export function agentFromDist(dist: string): ComponentCommands['agent'] {
  return ({ config }) => [
    'env',
    `NODE_PATH=${path.join(REPO_ROOT, 'node_modules')}`,
    process.execPath,
    path.join(dist, 'main.js'),
    '--config',
    config,
  ];
}

export class Cluster {
  readonly client: FlockerClient;
  readonly hosts: ClusterHost[];
  private stopped = false;
  /** Failed tests recorded before this cluster started: one recorded after keeps its logs at stop (failedLogs). */
  private readonly failureMark = failuresSoFar();

  /** Environment for the `flocker` CLI to reach this cluster's control service as API user admin. */
  cliEnv(): Record<string, string> {
    const admin = adminFiles(this.layout);
    return {
      FLOCKER_CONTROL_URL: this.layout.controlUrl,
      FLOCKER_CA_CERT: admin.ca,
      FLOCKER_CERT: admin.cert,
      FLOCKER_KEY: admin.key,
    };
  }

  constructor(
    readonly layout: ClusterLayout,
    readonly state: ClusterStateFile,
    readonly commands: ComponentCommands,
    startTimeoutMs = 30_000,
  ) {
    // Every cluster talks mutual TLS; the harness itself is the API user admin.
    const admin = adminFiles(layout);
    this.client = new FlockerClient({
      baseUrl: layout.controlUrl,
      timeoutMs: 10_000,
      ...(fs.existsSync(admin.key)
        ? {
            dispatcher: tlsDispatcher({
              ca: fs.readFileSync(admin.ca),
              cert: fs.readFileSync(admin.cert),
              key: fs.readFileSync(admin.key),
            }),
          }
        : {}),
    });
    const ctx = {
      cluster: layout,
      commands,
      client: this.client,
      withAgents: state.withAgents,
      withPlugin: state.withPlugin,
      withDocker: state.withDocker,
      withContainerAgents: state.withContainerAgents ?? false,
      startTimeoutMs,
      nodeTimeoutSeconds: state.nodeTimeoutSeconds,
      backend: this.backend,
      dockerCliEnv: { ...process.env, DOCKER_CONFIG: path.join(layout.baseDir, 'docker-cli') },
    };
    this.hosts = layout.hosts.map((h) => new ClusterHost(h, ctx));
  }

  get baseDir(): string {
    return this.layout.baseDir;
  }

  get backend(): ClusterBackend {
    return this.state.backend ?? 'loopback';
  }

  host(name: string): ClusterHost {
    const h = this.hosts.find((x) => x.name === name);
    if (h === undefined)
      throw new ClusterError(
        'HOST_UNKNOWN',
        `no host named ${name}; hosts are ${this.hosts.map((x) => x.name).join(', ')}`,
      );
    return h;
  }

  /** Runs argv in the control service's network namespace. */
  execInControlNetns(argv: readonly string[]): ReturnType<typeof run> {
    return run([...inNetns(this.layout.controlNetns), ...argv]);
  }

  controlPid(): number | undefined {
    const pid = readPidFile(this.layout.controlPidFile);
    return pid !== undefined && isAlive(pid) ? pid : undefined;
  }

  async startControl(): Promise<void> {
    if (this.controlPid() !== undefined) throw new ClusterError('ALREADY_RUNNING', 'the control service is running');
    const l = this.layout;
    fs.mkdirSync(l.controlDir, { recursive: true });
    const argv = this.commands.control({
      port: l.controlPort,
      dataDir: path.join(l.controlDir, 'data'),
      nodeTimeoutSeconds: this.state.nodeTimeoutSeconds,
      ...(this.state.leaseGraceSeconds !== undefined ? { leaseGraceSeconds: this.state.leaseGraceSeconds } : {}),
      tlsDir: l.pkiDir,
    });
    const pid = spawnDetached([...inNetns(l.controlNetns), ...argv], path.join(l.controlDir, 'control.log'));
    fs.writeFileSync(l.controlPidFile, `${pid}\n`);
    await waitFor(
      'the control service to answer',
      async () => {
        if (!isAlive(pid))
          throw new ClusterError('COMPONENT_EXITED', `the control service exited; see ${l.controlDir}/control.log`);
        return await this.client.version();
      },
      { timeoutMs: 30_000, intervalMs: 50 },
    );
  }

  killControl(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    return stopPid(this.controlPid(), signal);
  }

  /** Removes every trace of the cluster. Safe to call twice and after a failed start. */
  async stop(): Promise<TeardownReport> {
    const first = !this.stopped;
    this.stopped = true;
    const keep = process.env.FLOCKER_E2E_KEEP === '1';
    // A test failed while it ran: its logs outlive the base directory (printed to stderr).
    if (first && !keep) keepLogsOfFailure(this.layout, this.failureMark);
    const report = await teardown(this.layout, { removeBaseDir: this.state.removeBaseDir && !keep });
    // Logs stay in a kept baseDir; the state file goes once nothing is left to clean.
    if (report.survivors.length === 0 && report.loopDevicesLeft.length === 0) {
      // The hosts' btrfs images (local backend) too: sparse, but holding every volume's data; the next up starts empty.
      if (!keep) removeLocalDisks(this.layout.hosts);
      fs.rmSync(this.layout.stateFile, { force: true });
    }
    return report;
  }

  get isStopped(): boolean {
    return this.stopped;
  }
}

/** The harness's API user certificate, written by startCluster. */
function adminFiles(layout: ClusterLayout): { ca: string; cert: string; key: string } {
  return {
    ca: path.join(layout.pkiDir, 'cluster.crt'),
    cert: path.join(layout.pkiDir, 'admin.crt'),
    key: path.join(layout.pkiDir, 'admin.key'),
  };
}

function requireRoot(): void {
  if (process.getuid?.() !== 0)
    throw new ClusterError('NOT_ROOT', 'the cluster harness needs root (namespaces, mounts, loop devices)');
}

async function claimSlot(): Promise<number> {
  for (let slot = 0; slot < MAX_SLOTS; slot++) {
    if (fs.existsSync(`/run/netns/fl${slot}-sw`) || fs.existsSync(`/sys/class/net/fl${slot}-ctl`)) continue;
    try {
      await addNetns(`fl${slot}-sw`); // atomic: fails if another cluster took it meanwhile
      return slot;
    } catch {
      // taken concurrently; try the next one
    }
  }
  throw new ClusterError('NO_FREE_SLOT', `all ${MAX_SLOTS} cluster slots are in use; run scripts/cluster.sh down`);
}

/** Prepares baseDir: a fresh temp dir, or a given dir whose previous cluster (if any) is torn down first. */
async function prepareBaseDir(given: string | undefined): Promise<{ baseDir: string; removeBaseDir: boolean }> {
  if (given === undefined)
    return { baseDir: fs.mkdtempSync(path.join(os.tmpdir(), 'flocker-e2e-')), removeBaseDir: true };
  const baseDir = path.resolve(given);
  const old = readState(path.join(baseDir, 'cluster.json'));
  if (old !== undefined) {
    if (fs.existsSync(`/run/netns/fl${old.slot}-sw`)) {
      throw new ClusterError(
        'CLUSTER_RUNNING',
        `a cluster is already running in ${baseDir}; stop it first (scripts/cluster.sh down)`,
      );
    }
    await teardown(clusterLayout(baseDir, old.slot, old.hosts));
  }
  if (fs.existsSync(baseDir) && fs.readdirSync(baseDir).length > 0) {
    const looksOurs = fs.existsSync(path.join(baseDir, 'hosts')) || fs.existsSync(path.join(baseDir, 'control'));
    if (!looksOurs)
      throw new ClusterError('BASE_DIR_NOT_EMPTY', `${baseDir} is not empty and is not a cluster directory`);
    removeTree(baseDir);
  }
  fs.mkdirSync(baseDir, { recursive: true });
  return { baseDir, removeBaseDir: false };
}

/** What startCluster records of its options (cluster.json), with their defaults; a backend only when one is asked for. */
export function clusterState(
  options: ClusterOptions,
  where: { slot: number; baseDir: string; removeBaseDir: boolean },
): ClusterStateFile {
  const withDocker = options.withDocker ?? false;
  return {
    version: 1,
    slot: where.slot,
    baseDir: where.baseDir,
    hosts: options.hosts,
    withDocker,
    withPlugin: withDocker && (options.withPlugin ?? true),
    withAgents: options.withAgents ?? true,
    ...(withDocker && (options.withAgents ?? true) && options.withContainerAgents === true
      ? { withContainerAgents: true }
      : {}),
    nodeTimeoutSeconds: options.nodeTimeoutSeconds ?? 10,
    ...(options.leaseGraceSeconds !== undefined ? { leaseGraceSeconds: options.leaseGraceSeconds } : {}),
    ...(options.backend !== undefined ? { backend: options.backend } : {}),
    createdAt: new Date().toISOString(),
    removeBaseDir: where.removeBaseDir,
  };
}

export async function startCluster(options: ClusterOptions): Promise<Cluster> {
  requireRoot();
  const { baseDir, removeBaseDir } = await prepareBaseDir(options.baseDir);
  const slot = await claimSlot();
  const layout = clusterLayout(baseDir, slot, options.hosts);
  const state = clusterState(options, { slot, baseDir, removeBaseDir });
  writeState(layout.stateFile, state);
  // A CA per cluster: the control certificate names both addresses it is reached at,
  // every host gets a node certificate beside its agent.yml, the harness an API user's.
  let pki: ClusterPki;
  try {
    pki = await ClusterPki.create(layout.pkiDir, [layout.controlBridgeAddress, layout.controlRootAddress]);
    await pki.user('admin');
  } catch (err) {
    await teardown(layout, { removeBaseDir: removeBaseDir && process.env.FLOCKER_E2E_KEEP !== '1' }).catch(
      () => undefined,
    );
    throw err;
  }
  const cluster = new Cluster(layout, state, { ...defaultCommands, ...options.commands }, options.startTimeoutMs);
  try {
    fs.mkdirSync(layout.poolDir, { recursive: true });
    const image = state.withDocker ? buildTinyImage(layout.imageTar) : Promise.resolve('');
    image.catch(() => undefined); // awaited below; avoid an unhandled rejection meanwhile
    await ensurePinDir(layout.nsDir);
    await createSwitch(layout);
    await createControlNetns(layout);
    for (const h of layout.hosts) await createHostNetns(layout, h);
    await Promise.all(layout.hosts.map((h) => createHostMountNs(h)));
    for (const h of cluster.hosts) h.prepare();
    if (cluster.backend === 'local') await Promise.all(layout.hosts.map((h) => makeLocalDisk(h)));
    await Promise.all(cluster.hosts.map((h) => h.mountDisks()));
    await Promise.all(layout.hosts.map((h) => pki.installNode(h.dir)));
    await cluster.startControl();
    await image;
    await Promise.all(cluster.hosts.map((h) => h.start({ firstBoot: true })));
    return cluster;
  } catch (err) {
    await cluster.stop().catch(() => undefined);
    throw err;
  }
}

/** Reattaches to a cluster started by another process (the CLI). */
export function openCluster(baseDir: string, commands: Partial<ComponentCommands> = {}): Cluster {
  const state = readState(path.join(path.resolve(baseDir), 'cluster.json'));
  if (state === undefined) throw new ClusterError('NO_CLUSTER', `no cluster in ${baseDir} (no cluster.json)`);
  return new Cluster(clusterLayout(state.baseDir, state.slot, state.hosts), state, { ...defaultCommands, ...commands });
}

export { run };

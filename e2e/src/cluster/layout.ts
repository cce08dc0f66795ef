/**
 * Pure naming and addressing of one cluster. Everything the harness creates is
 * named after the cluster's slot, so several clusters can coexist and teardown
 * can find every piece from the slot alone.
 *
 * Network plan (private, never routed off this machine):
 * - a bridge in its own netns `fl<slot>-sw`; hosts are 10.77.0.11, .12, …/24 on it;
 * - the control service runs in netns `fl<slot>-ctl`: 10.77.0.2/24 on the bridge
 *   (what agents use) and, towards the root netns, a veth /30 in 10.77.1.0/24
 *   (what the test process uses); nothing else is added to the root netns.
 */
import * as path from 'node:path';

export const MAX_SLOTS = 64;
export const MAX_HOSTS = 26;
export const CONTROL_PORT = 4523;
export const BRIDGE_CONTROL_ADDRESS = '10.77.0.2';

/**
 * Where the hosts' datasets live: `loopback` (the default), one pool of sparse files shared by every host, a move
 * re-attaches the image elsewhere; `local` (issue 24), each host its own btrfs file system on its own loop device,
 * a move copies the data host to host over mutual TLS (the transfer port, on the bridge).
 */
export type ClusterBackend = 'loopback' | 'local';
/** The local backend's transfer listener, on each host's bridge address (one netns per host: the same port on all). */
export const LOCAL_TRANSFER_PORT = 4525;
/** Each host's btrfs image (sparse: only what is written takes disk space; a volume's size is a quota, not checked against it). */
export const LOCAL_POOL_BYTES = 4 * 1024 ** 3;

export interface HostLayout {
  index: number;
  /** a, b, c, … */
  name: string;
  netns: string;
  hostname: string;
  address: string;
  dir: string;
  mntPin: string;
  utsPin: string;
  cgroupParent: string;
  vethSwitchSide: string;
  dockerSocket: string;
  daemonJson: string;
  dockerPidFile: string;
  agentConfig: string;
  agentPidFile: string;
  pluginPidFile: string;
  stateDir: string;
  mountRoot: string;
  eraFile: string;
  logDir: string;
  /** Local backend: the image of the host's own btrfs file system (on a loop device from `up` to `down`)… */
  localPoolImage: string;
  /** …mounted here in the host's mount namespace only: the agent's `dataset.pool`. */
  localPool: string;
}

export interface ClusterLayout {
  slot: number;
  baseDir: string;
  nsDir: string;
  poolDir: string;
  switchNetns: string;
  controlNetns: string;
  /** veth end in the root netns */
  rootVeth: string;
  rootAddress: string;
  /** the control netns end of the root veth */
  controlRootAddress: string;
  controlDir: string;
  controlPidFile: string;
  controlPort: number;
  /** URL the test process (root netns) uses */
  controlUrl: string;
  /** The cluster's CA, the control certificate and API user certificates (see pki.ts). */
  pkiDir: string;
  /** hostname agents in the cluster use */
  controlBridgeAddress: string;
  imageTar: string;
  stateFile: string;
  hosts: HostLayout[];
}

export function hostName(index: number): string {
  if (!Number.isInteger(index) || index < 0 || index >= MAX_HOSTS) {
    throw new RangeError(`host index must be 0..${MAX_HOSTS - 1}, got ${index}`);
  }
  return String.fromCharCode(97 + index);
}

export function clusterLayout(baseDir: string, slot: number, hostCount: number): ClusterLayout {
  if (!path.isAbsolute(baseDir)) throw new RangeError(`baseDir must be absolute, got ${baseDir}`);
  if (!Number.isInteger(slot) || slot < 0 || slot >= MAX_SLOTS) {
    throw new RangeError(`slot must be 0..${MAX_SLOTS - 1}, got ${slot}`);
  }
  if (!Number.isInteger(hostCount) || hostCount < 1 || hostCount > MAX_HOSTS) {
    throw new RangeError(`hosts must be 1..${MAX_HOSTS}, got ${hostCount}`);
  }
  const prefix = `fl${slot}`;
  const nsDir = path.join(baseDir, 'ns');
  const hosts: HostLayout[] = [];
  for (let i = 0; i < hostCount; i++) {
    const name = hostName(i);
    const dir = path.join(baseDir, 'hosts', name);
    hosts.push({
      index: i,
      name,
      netns: `${prefix}-${name}`,
      hostname: `host-${name}`,
      address: `10.77.0.${11 + i}`,
      dir,
      mntPin: path.join(nsDir, `${name}.mnt`),
      utsPin: path.join(nsDir, `${name}.uts`),
      cgroupParent: `/${prefix}-${name}`,
      vethSwitchSide: `v${name}`,
      dockerSocket: path.join(dir, 'docker.sock'),
      daemonJson: path.join(dir, 'daemon.json'),
      dockerPidFile: path.join(dir, 'docker.harness.pid'),
      agentConfig: path.join(dir, 'agent.yml'),
      agentPidFile: path.join(dir, 'agent.pid'),
      pluginPidFile: path.join(dir, 'plugin.pid'),
      stateDir: path.join(dir, 'state'),
      mountRoot: path.join(dir, 'mnt'),
      eraFile: path.join(dir, 'era'),
      logDir: path.join(dir, 'log'),
      localPoolImage: path.join(dir, 'pool.img'),
      localPool: path.join(dir, 'pool'),
    });
  }
  const rootAddress = `10.77.1.${slot * 4 + 1}`;
  const controlRootAddress = `10.77.1.${slot * 4 + 2}`;
  return {
    slot,
    baseDir,
    nsDir,
    poolDir: path.join(baseDir, 'pool'),
    switchNetns: `${prefix}-sw`,
    controlNetns: `${prefix}-ctl`,
    rootVeth: `${prefix}-ctl`,
    rootAddress,
    controlRootAddress,
    controlDir: path.join(baseDir, 'control'),
    controlPidFile: path.join(baseDir, 'control', 'control.pid'),
    controlPort: CONTROL_PORT,
    controlUrl: `https://${controlRootAddress}:${CONTROL_PORT}`,
    pkiDir: path.join(baseDir, 'pki'),
    controlBridgeAddress: BRIDGE_CONTROL_ADDRESS,
    imageTar: path.join(baseDir, 'image', 'tiny.tar'),
    stateFile: path.join(baseDir, 'cluster.json'),
    hosts,
  };
}

/** What the control service is started with (besides the program itself). */
export interface ControlServiceSettings {
  port: number;
  dataDir: string;
  /** --node-timeout T: a node silent this long is declared dead. */
  nodeTimeoutSeconds: number;
  /** --lease-grace G: a dead node's leases are released G seconds later; undefined: the service's default. */
  leaseGraceSeconds?: number;
  tlsDir: string;
}

/** flocker-control's flags for a cluster: listens on every address of its netns (bridge and root veth). */
export function controlServiceFlags(s: ControlServiceSettings): string[] {
  const flags = [
    '--port',
    String(s.port),
    '--host',
    '0.0.0.0',
    '--data-dir',
    s.dataDir,
    '--node-timeout',
    String(s.nodeTimeoutSeconds),
  ];
  if (s.leaseGraceSeconds !== undefined) flags.push('--lease-grace', String(s.leaseGraceSeconds));
  flags.push('--tls-dir', s.tlsDir);
  return flags;
}

/** The agent.yml `dataset:` section of a backend (see packages/dataset-agent/README.md). */
function datasetSection(layout: ClusterLayout, host: HostLayout, backend: ClusterBackend): string[] {
  if (backend === 'local') {
    return [
      'dataset:',
      '  backend: local',
      '  engine: btrfs',
      `  pool: ${JSON.stringify(host.localPool)}`,
      `  transfer_port: ${LOCAL_TRANSFER_PORT}`,
    ];
  }
  return ['dataset:', '  backend: loopback', `  root_path: ${JSON.stringify(layout.poolDir)}`];
}

/** Renders the agent's YAML configuration (see packages/dataset-agent). */
export function agentConfigYaml(
  layout: ClusterLayout,
  host: HostLayout,
  resyncSeconds: number,
  backend: ClusterBackend = 'loopback',
): string {
  return [
    'version: 1',
    'control-service:',
    `  hostname: ${JSON.stringify(layout.controlBridgeAddress)}`,
    `  port: ${layout.controlPort}`,
    ...datasetSection(layout, host, backend),
    'node:',
    `  state_dir: ${JSON.stringify(host.stateDir)}`,
    `  mount_root: ${JSON.stringify(host.mountRoot)}`,
    `  host: ${JSON.stringify(host.address)}`,
    `  era_file: ${JSON.stringify(host.eraFile)}`,
    // The host's own dockerd, whose containers a self-fencing agent stops.
    `  docker_socket: ${JSON.stringify(host.dockerSocket)}`,
    'agent:',
    `  resync_interval_seconds: ${resyncSeconds}`,
    '  backoff_max_seconds: 2',
    '',
  ].join('\n');
}

/**
 * Agents report at least once per resync interval; keep that well inside the
 * control service's node timeout so live nodes are never declared dead.
 */
export function agentResyncSeconds(nodeTimeoutSeconds: number): number {
  return Math.min(10, Math.max(0.5, Math.round((nodeTimeoutSeconds / 3) * 10) / 10));
}

/** dockerd configuration: every path private to the host (pitfalls P5, P9 of cluster-harness.md). */
export function daemonConfig(host: HostLayout): Record<string, unknown> {
  return {
    'data-root': path.join(host.dir, 'docker-data'),
    'exec-root': path.join(host.dir, 'docker-exec'),
    // dockerd refuses a pidfile naming a live process, so it gets its own, apart from the harness's.
    pidfile: path.join(host.dir, 'dockerd.pid'),
    hosts: [`unix://${host.dockerSocket}`],
    'storage-driver': 'overlay2',
    'cgroup-parent': host.cgroupParent,
  };
}

/**
 * Where the plugin finds the control service and its node identity: the dataset
 * agent's /etc/flocker/agent.yml and `<state_dir>/node.json`, with overrides.
 */
import {
  configDirOf,
  controlUrl as controlUrlOf,
  DEFAULT_CONFIG_PATH,
  DEFAULT_DOCKER_SOCKET,
  loadControlCredentials,
  loadNodeConfig,
  metricsListen,
  NodeConfigError,
  readNodeTls,
  resolveNodeConnection,
  waitForNodeUuid as sharedWaitForNodeUuid,
  type ControlCredentials,
} from '@flocker/node-config';
import { DEFAULT_METRICS_PORTS, type MetricsCheckHost } from '@flocker/metrics';
import { DEFAULT_MOUNT_SAFETY_WINDOW_MS, DEFAULT_RECONCILE_INTERVAL_MS } from './DockerReconciler';
import { DEFAULT_IDLE_LEASE_SECONDS } from './idleLeases';
import type { PropagatedMountPaths } from './managed/PropagatedMounts';
import { VolumePluginError } from './protocol';
import { DEFAULT_VOLUME_SIZE, parseSize } from './volumeOptions';

export { DEFAULT_DOCKER_SOCKET, DEFAULT_STATE_DIR, NODE_FILE } from '@flocker/node-config';
export const DEFAULT_AGENT_CONFIG = DEFAULT_CONFIG_PATH;
export const DEFAULT_SOCKET = '/run/docker/plugins/flocker.sock';
export const DEFAULT_MOUNT_TIMEOUT_MS = 100_000;
export const MOUNTS_FILE = 'plugin-mounts.json';

/** PEM contents of the node's TLS credentials, and the node UUID its certificate names. */
export type PluginTls = ControlCredentials;

/** The shared node configuration's errors, as the plugin's own (same codes). */
function toPluginError(e: unknown): unknown {
  return e instanceof NodeConfigError ? new VolumePluginError(e.code, e.message) : e;
}

function asPluginErrorSync<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    throw toPluginError(e);
  }
}

async function asPluginError<T>(f: () => Promise<T>): Promise<T> {
  return f().catch((e: unknown) => {
    throw toPluginError(e);
  });
}

export interface PluginSettings {
  controlUrl: string;
  /** HTTPS with the node's certificate; absent = plain HTTP. */
  tls?: PluginTls;
  nodeUuid: string;
  socketPath: string;
  stateDir: string;
  mountTimeoutMs: number;
  defaultSize: number;
  /** This host's dockerd, to reconcile mount IDs with the containers it runs; absent or '' = no reconciling. */
  dockerSocket?: string;
  /** Period of the reconcile with dockerd (ms); 0 = only when the connection to dockerd is (re)made. */
  reconcileIntervalMs?: number;
  /** Mount IDs and "created" containers younger than this count as in use (ms). */
  mountSafetyWindowMs?: number;
  /** How long a volume no container here uses keeps its lease (ms; let go of on request); 0 = released at once. */
  idleLeaseMs?: number;
  /** The metrics and health listener (/metrics, /healthz, /readyz); absent = none. */
  metrics?: { host: string; port: number; allowedHosts?: readonly string[]; checkHost?: MetricsCheckHost };
  /** A managed (v2) plugin: answer paths inside the propagated mount (managed/PropagatedMounts). */
  propagated?: PropagatedMountPaths;
  /** The agent's mount root on the host (--host-mount-root or agent.yml), when known: the kernel's table is followed there. */
  hostMountRoot?: string;
}

export interface PluginArgs {
  agentConfig?: string;
  controlUrl?: string;
  nodeUuid?: string;
  socket?: string;
  stateDir?: string;
  /** Seconds. */
  mountTimeout?: number;
  defaultSize?: string;
  /** Seconds to wait for the agent to write node.json. */
  nodeWait?: number;
  /** dockerd's API socket; "none" or "" turns reconciling with Docker off. */
  dockerSocket?: string;
  /** Seconds between reconciles with dockerd; 0 = only when dockerd (re)appears. */
  reconcileInterval?: number;
  /** Seconds. */
  mountSafetyWindow?: number;
  /** Seconds a volume no container uses keeps its lease; 0 = released after the last Unmount. */
  idleLeaseSeconds?: number;
  /** The metrics listener's address and port (0 = none); default agent.yml metrics:, else 127.0.0.1:4532. */
  metricsAddress?: string;
  metricsPort?: number;
  /** The node's TLS files, instead of those agent.yml names (all three together). */
  caFile?: string;
  certFile?: string;
  keyFile?: string;
  /** A managed plugin's propagatedMount; with it, hostMountSeenAt is where the host's mount root is seen. */
  propagatedMount?: string;
  hostMountSeenAt?: string;
  /** The agent's mount root on the host (default: node.mount_root of agent.yml). */
  hostMountRoot?: string;
}

/** Environment variables a managed plugin's config.json sets (docker plugin set), as flags; '' = unset. */
export const PLUGIN_ENV: Readonly<Record<string, keyof PluginArgs>> = {
  FLOCKER_AGENT_CONFIG: 'agentConfig',
  FLOCKER_CONTROL_URL: 'controlUrl',
  FLOCKER_CA_FILE: 'caFile',
  FLOCKER_CERT_FILE: 'certFile',
  FLOCKER_KEY_FILE: 'keyFile',
  FLOCKER_STATE_DIR: 'stateDir',
  FLOCKER_DOCKER_SOCKET: 'dockerSocket',
  FLOCKER_PROPAGATED_MOUNT: 'propagatedMount',
  FLOCKER_HOST_MOUNT_SEEN_AT: 'hostMountSeenAt',
  FLOCKER_HOST_MOUNT_ROOT: 'hostMountRoot',
};

type StringArg = 'agentConfig' | 'controlUrl' | 'caFile' | 'certFile' | 'keyFile' | 'stateDir' | 'dockerSocket';

/** The settings of PLUGIN_ENV found (non-empty) in `env`; flags given on the command line win over them. */
export function argsFromEnv(
  env: Readonly<Record<string, string | undefined>>,
): Partial<Record<StringArg | 'propagatedMount' | 'hostMountSeenAt' | 'hostMountRoot', string>> {
  const out: Partial<Record<string, string>> = {};
  for (const [name, key] of Object.entries(PLUGIN_ENV)) {
    const v = env[name]?.trim();
    if (v !== undefined && v !== '') out[key] = v;
  }
  return out;
}

/** The node credentials of explicit --ca-file/--cert-file/--key-file, if any (all three or none). */
function explicitTls(args: PluginArgs): PluginTls | undefined {
  const { caFile, certFile, keyFile } = args;
  if (caFile === undefined && certFile === undefined && keyFile === undefined) return undefined;
  if (caFile === undefined || certFile === undefined || keyFile === undefined)
    throw new VolumePluginError('CONFIG_INVALID', '--ca-file, --cert-file and --key-file go together.');
  return asPluginErrorSync(() => loadControlCredentials({ ca: caFile, cert: certFile, key: keyFile }));
}

export interface AgentYamlSettings {
  controlUrl: string;
  stateDir: string;
  tls?: PluginTls;
}

/** The control service and state_dir of agent.yml (the shared node configuration), with the node's TLS. */
export function readAgentYaml(file: string): AgentYamlSettings {
  return asPluginErrorSync(() => {
    const config = loadNodeConfig(file);
    const tls = readNodeTls(config['control-service'], configDirOf(file));
    return {
      controlUrl: controlUrlOf(config['control-service'], tls !== undefined),
      stateDir: config.node.state_dir,
      ...(tls ? { tls } : {}),
    };
  });
}

/** Wait (bounded) for the dataset agent to create `<stateDir>/node.json`, and read the UUID (NODE_UNKNOWN). */
export function waitForNodeUuid(stateDir: string, timeoutMs: number): Promise<string> {
  return asPluginError(() => sharedWaitForNodeUuid(stateDir, timeoutMs));
}

/** Flags first, then agent.yml (`control-service`, `node`, `plugin:`), then the defaults. */
export async function resolveSettings(args: PluginArgs): Promise<PluginSettings> {
  const explicit = explicitTls(args);
  const node = await asPluginError(() =>
    resolveNodeConnection(explicit ? { ...args, nodeUuid: args.nodeUuid ?? explicit.nodeUuid } : args),
  );
  const tls = explicit ?? node.tls;
  // Certificates given apart from agent.yml mean HTTPS, whatever agent.yml's directory holds.
  const controlUrl = explicit ? node.controlUrl.replace(/(^|,)http:\/\//g, '$1https://') : node.controlUrl;
  if (explicit && node.nodeUuid !== explicit.nodeUuid)
    throw new VolumePluginError(
      'CONFIG_INVALID',
      `--node-uuid ${node.nodeUuid} is not the node named by the certificate (${explicit.nodeUuid}).`,
    );
  const plugin = node.config?.plugin;
  const hostMountRoot = args.hostMountRoot ?? node.config?.node.mount_root;
  if (args.propagatedMount !== undefined && (args.hostMountSeenAt === undefined || hostMountRoot === undefined))
    throw new VolumePluginError(
      'CONFIG_INVALID',
      '--propagated-mount needs --host-mount-seen-at and the host mount root (--host-mount-root or agent.yml).',
    );
  const dockerSocket = args.dockerSocket ?? node.config?.node.docker_socket ?? DEFAULT_DOCKER_SOCKET;
  const metrics = metricsListen(node.config?.metrics, 'plugin', DEFAULT_METRICS_PORTS['docker-plugin'], {
    address: args.metricsAddress,
    port: args.metricsPort,
  });
  return {
    ...(metrics !== undefined ? { metrics } : {}),
    controlUrl,
    ...(tls ? { tls } : {}),
    ...(args.propagatedMount !== undefined && args.hostMountSeenAt !== undefined && hostMountRoot !== undefined
      ? { propagated: { propagatedMount: args.propagatedMount, seenAt: args.hostMountSeenAt, hostMountRoot } }
      : {}),
    ...(hostMountRoot !== undefined ? { hostMountRoot } : {}),
    nodeUuid: node.nodeUuid,
    stateDir: node.stateDir,
    socketPath: args.socket ?? DEFAULT_SOCKET,
    mountTimeoutMs:
      seconds('--mount-timeout', args.mountTimeout ?? plugin?.mount_timeout_seconds, DEFAULT_MOUNT_TIMEOUT_MS / 1000) *
      1000,
    defaultSize: args.defaultSize === undefined ? DEFAULT_VOLUME_SIZE : parseSize(args.defaultSize),
    dockerSocket: dockerSocket === 'none' ? '' : dockerSocket,
    reconcileIntervalMs:
      seconds(
        '--reconcile-interval',
        args.reconcileInterval ?? plugin?.reconcile_interval_seconds,
        DEFAULT_RECONCILE_INTERVAL_MS / 1000,
      ) * 1000,
    mountSafetyWindowMs:
      seconds(
        '--mount-safety-window',
        args.mountSafetyWindow ?? plugin?.mount_safety_window_seconds,
        DEFAULT_MOUNT_SAFETY_WINDOW_MS / 1000,
      ) * 1000,
    idleLeaseMs:
      seconds('--idle-lease-seconds', args.idleLeaseSeconds ?? plugin?.idle_lease_seconds, DEFAULT_IDLE_LEASE_SECONDS) *
      1000,
  };
}

function seconds(flag: string, value: number | undefined, fallback: number): number {
  const v = value ?? fallback;
  if (!Number.isFinite(v) || v < 0)
    throw new VolumePluginError('CONFIG_INVALID', `${flag} ${v} is not a number of seconds (0 or more).`);
  return v;
}

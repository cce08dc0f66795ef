/**
 * Where the plugin finds the control service and its node identity: the dataset
 * agent's /etc/flocker/agent.yml and `<state_dir>/node.json`, with overrides.
 */
import {
  configDirOf,
  controlUrl as controlUrlOf,
  DEFAULT_CONFIG_PATH,
  DEFAULT_DOCKER_SOCKET,
  loadNodeConfig,
  metricsListen,
  NodeConfigError,
  readNodeTls,
  resolveNodeConnection,
  waitForNodeUuid as sharedWaitForNodeUuid,
  type ControlCredentials,
} from '@flocker/node-config';
import { DEFAULT_METRICS_PORTS } from '@flocker/metrics';
import { DEFAULT_MOUNT_SAFETY_WINDOW_MS, DEFAULT_RECONCILE_INTERVAL_MS } from './DockerReconciler';
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
  /** The metrics and health listener (/metrics, /healthz, /readyz); absent = none. */
  metrics?: { host: string; port: number };
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
  /** The metrics listener's address and port (0 = none); default agent.yml metrics:, else 127.0.0.1:4532. */
  metricsAddress?: string;
  metricsPort?: number;
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
  const node = await asPluginError(() => resolveNodeConnection(args));
  const plugin = node.config?.plugin;
  const dockerSocket = args.dockerSocket ?? node.config?.node.docker_socket ?? DEFAULT_DOCKER_SOCKET;
  const metrics = metricsListen(node.config?.metrics, 'plugin', DEFAULT_METRICS_PORTS['docker-plugin'], {
    address: args.metricsAddress,
    port: args.metricsPort,
  });
  return {
    ...(metrics !== undefined ? { metrics } : {}),
    controlUrl: node.controlUrl,
    ...(node.tls ? { tls: node.tls } : {}),
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
  };
}

function seconds(flag: string, value: number | undefined, fallback: number): number {
  const v = value ?? fallback;
  if (!Number.isFinite(v) || v < 0)
    throw new VolumePluginError('CONFIG_INVALID', `${flag} ${v} is not a number of seconds (0 or more).`);
  return v;
}

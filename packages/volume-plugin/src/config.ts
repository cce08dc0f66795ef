/**
 * Where the plugin finds the control service and its node identity: the dataset
 * agent's /etc/flocker/agent.yml and `<state_dir>/node.json`, with overrides.
 */
import { X509Certificate } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createSecureContext } from 'node:tls';
import { controlUrlsFromHosts, identityFromCommonName, Uuid, type TlsCredentials } from '@flocker/api';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { DEFAULT_MOUNT_SAFETY_WINDOW_MS, DEFAULT_RECONCILE_INTERVAL_MS } from './DockerReconciler';
import { VolumePluginError } from './protocol';
import { DEFAULT_VOLUME_SIZE, parseSize } from './volumeOptions';

export const DEFAULT_AGENT_CONFIG = '/etc/flocker/agent.yml';
export const DEFAULT_SOCKET = '/run/docker/plugins/flocker.sock';
export const DEFAULT_STATE_DIR = '/var/lib/flocker/agent';
export const DEFAULT_MOUNT_TIMEOUT_MS = 100_000;
export const NODE_FILE = 'node.json';
export const MOUNTS_FILE = 'plugin-mounts.json';
export const DEFAULT_DOCKER_SOCKET = '/var/run/docker.sock';

/** Only the parts of agent.yml the plugin needs; the rest belongs to the agent. */
const AgentYaml = z
  .object({
    'control-service': z
      .object({
        hostname: z.string().min(1),
        port: z.number().int().min(1).max(65535).default(4523),
        hostnames: z.array(z.string().min(1)).optional(),
        ca_file: z.string().min(1).optional(),
        cert_file: z.string().min(1).optional(),
        key_file: z.string().min(1).optional(),
        insecure_http: z.boolean().optional(),
      })
      .loose(),
    node: z.object({ state_dir: z.string().min(1).optional() }).loose().optional(),
  })
  .loose();

const NodeFile = z.object({ uuid: Uuid }).loose();

/** PEM contents of the node's TLS credentials, and the node UUID its certificate names. */
export interface PluginTls extends TlsCredentials {
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
  nodeUuid: string;
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
}

export interface AgentYamlSettings {
  controlUrl: string;
  stateDir?: string;
  tls?: PluginTls;
}

/**
 * The dataset agent's convention (the plugin uses its node's credentials):
 * cluster.crt, node.crt, node.key beside agent.yml, or control-service
 * ca_file/cert_file/key_file; none of them, or insecure_http: true, means HTTP.
 */
export function readNodeTls(
  cs: { ca_file?: string | undefined; cert_file?: string | undefined; key_file?: string | undefined; insecure_http?: boolean | undefined },
  configDir: string,
): PluginTls | undefined {
  if (cs.insecure_http === true) return undefined;
  const at = (p: string | undefined, name: string) => (p === undefined ? path.join(configDir, name) : path.resolve(configDir, p));
  const files = { ca: at(cs.ca_file, 'cluster.crt'), cert: at(cs.cert_file, 'node.crt'), key: at(cs.key_file, 'node.key') };
  const explicit = cs.ca_file !== undefined || cs.cert_file !== undefined || cs.key_file !== undefined;
  const missing = [files.ca, files.cert, files.key].filter((f) => !fs.existsSync(f));
  if (missing.length === 3 && !explicit) return undefined;
  if (missing.length > 0) {
    throw new VolumePluginError(
      'CONFIG_INVALID',
      `TLS to the control service needs ${files.ca}, ${files.cert} and ${files.key}; missing: ${missing.join(', ')}. Install the node's certificate or set control-service.insecure_http: true.`,
    );
  }
  const [ca, cert, key] = [files.ca, files.cert, files.key].map((f) => fs.readFileSync(f)) as [Buffer, Buffer, Buffer];
  let cn: string | undefined;
  try {
    createSecureContext({ ca, cert, key });
    cn = new X509Certificate(cert).subject.split('\n').find((l) => l.startsWith('CN='))?.slice(3);
  } catch (err) {
    throw new VolumePluginError('CONFIG_INVALID', `the TLS files ${files.cert}, ${files.key}, ${files.ca} do not fit together: ${(err as Error).message}`);
  }
  const identity = cn === undefined ? undefined : identityFromCommonName(cn);
  if (identity?.kind !== 'node') {
    throw new VolumePluginError('CONFIG_INVALID', `${files.cert} is not a node certificate (common name ${cn ?? '(none)'}, expected node-<uuid>).`);
  }
  return { ca, cert, key, nodeUuid: identity.uuid };
}

export function readAgentYaml(file: string): AgentYamlSettings {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new VolumePluginError('CONFIG_UNREADABLE', `cannot read the agent configuration ${file}: ${(err as Error).message}`);
  }
  const parsed = AgentYaml.safeParse(parseYaml(text));
  if (!parsed.success) {
    throw new VolumePluginError('CONFIG_INVALID', `${file} is invalid: ${z.prettifyError(parsed.error)}`);
  }
  const cs = parsed.data['control-service'];
  const host = cs.hostname.includes(':') ? `[${cs.hostname}]` : cs.hostname;
  const stateDir = parsed.data.node?.state_dir;
  const tls = readNodeTls(cs, path.dirname(path.resolve(file)));
  const controlUrl = cs.hostnames !== undefined ? controlUrlsFromHosts(tls ? 'https' : 'http', cs.hostname, cs.port, cs.hostnames) : `${tls ? 'https' : 'http'}://${host}:${cs.port}`;
  return { controlUrl, ...(stateDir ? { stateDir } : {}), ...(tls ? { tls } : {}) };
}

/** Wait (bounded) for the dataset agent to create `<stateDir>/node.json`, and read the UUID. */
export async function waitForNodeUuid(stateDir: string, timeoutMs: number): Promise<string> {
  const file = path.join(stateDir, NODE_FILE);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const parsed = NodeFile.safeParse(JSON.parse(fs.readFileSync(file, 'utf8')));
      if (parsed.success) return parsed.data.uuid;
    } catch {
      // Not there yet (or half written): try again.
    }
    if (Date.now() >= deadline) {
      throw new VolumePluginError(
        'NODE_UNKNOWN',
        `${file} did not appear within ${Math.round(timeoutMs / 1000)} s; start flocker-dataset-agent first or pass --node-uuid.`,
      );
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

export async function resolveSettings(args: PluginArgs): Promise<PluginSettings> {
  const needsYaml = args.controlUrl === undefined || (args.stateDir === undefined && args.nodeUuid === undefined);
  const fromYaml = needsYaml || args.agentConfig !== undefined ? tryAgentYaml(args.agentConfig ?? DEFAULT_AGENT_CONFIG, needsYaml) : undefined;
  const controlUrl = args.controlUrl ?? fromYaml?.controlUrl;
  if (!controlUrl) throw new VolumePluginError('CONFIG_INVALID', 'no control service address: pass --agent-config or --control-url');
  const stateDir = args.stateDir ?? fromYaml?.stateDir ?? DEFAULT_STATE_DIR;
  const tls = fromYaml?.tls;
  // With a node certificate, the certificate is the node's identity.
  const given = args.nodeUuid ?? tls?.nodeUuid ?? (await waitForNodeUuid(stateDir, (args.nodeWait ?? 60) * 1000));
  const parsedUuid = Uuid.safeParse(given);
  if (!parsedUuid.success) throw new VolumePluginError('CONFIG_INVALID', `--node-uuid ${given} is not a UUID`);
  // Canonical (lower case), as the control service stores and answers it: comparisons with snapshots hold.
  const nodeUuid = parsedUuid.data;
  if (tls && nodeUuid !== tls.nodeUuid) {
    throw new VolumePluginError('CONFIG_INVALID', `--node-uuid ${nodeUuid} is not the node named by the certificate (${tls.nodeUuid}).`);
  }
  return {
    controlUrl,
    ...(tls ? { tls } : {}),
    nodeUuid,
    stateDir,
    socketPath: args.socket ?? DEFAULT_SOCKET,
    mountTimeoutMs: (args.mountTimeout ?? DEFAULT_MOUNT_TIMEOUT_MS / 1000) * 1000,
    defaultSize: args.defaultSize === undefined ? DEFAULT_VOLUME_SIZE : parseSize(args.defaultSize),
    dockerSocket: args.dockerSocket === undefined ? DEFAULT_DOCKER_SOCKET : args.dockerSocket === 'none' ? '' : args.dockerSocket,
    reconcileIntervalMs: seconds('--reconcile-interval', args.reconcileInterval, DEFAULT_RECONCILE_INTERVAL_MS / 1000) * 1000,
    mountSafetyWindowMs: seconds('--mount-safety-window', args.mountSafetyWindow, DEFAULT_MOUNT_SAFETY_WINDOW_MS / 1000) * 1000,
  };
}

function seconds(flag: string, value: number | undefined, fallback: number): number {
  const v = value ?? fallback;
  if (!Number.isFinite(v) || v < 0) throw new VolumePluginError('CONFIG_INVALID', `${flag} ${v} is not a number of seconds (0 or more).`);
  return v;
}

function tryAgentYaml(file: string, required: boolean): AgentYamlSettings | undefined {
  try {
    return readAgentYaml(file);
  } catch (err) {
    if (required) throw err;
    return undefined;
  }
}

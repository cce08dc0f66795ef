/**
 * One node's configuration, /etc/flocker/agent.yml (ClusterHQ Flocker's format plus the
 * `node:`, `agent:` and `plugin:` sections of this build), read the same way by the three
 * agents of a node: the dataset agent, the Docker plugin and the container agent.
 *
 * This module owns the sections every agent reads (`version`, `control-service`, `node`,
 * `plugin`), the TLS convention (cluster.crt, node.crt, node.key beside agent.yml) and the
 * control-service URL. The dataset agent extends {@link NodeConfigSchema} with its own
 * strict `dataset:` and `agent:` sections; the other agents leave those two alone
 * (whatever they hold), so an agent-only key never stops the plugin.
 */
import { X509Certificate } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { createSecureContext } from 'node:tls';
import { controlUrlsFromHosts, identityFromCommonName, type TlsCredentials } from '@flocker/api';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';

export const DEFAULT_CONFIG_PATH = '/etc/flocker/agent.yml';
export const DEFAULT_CONTROL_PORT = 4523;
export const DEFAULT_STATE_DIR = '/var/lib/flocker/agent';
export const DEFAULT_MOUNT_ROOT = '/flocker';
export const DEFAULT_DOCKER_SOCKET = '/var/run/docker.sock';

export type NodeConfigErrorCode =
  | 'CONFIG_NOT_FOUND'
  | 'CONFIG_UNREADABLE'
  | 'CONFIG_INVALID'
  | 'IDENTITY_INVALID'
  /** No node UUID: no flag, no node certificate, and the dataset agent wrote no node.json in time. */
  | 'NODE_UNKNOWN';

/** A configuration problem, with a stable code; each agent turns it into its own error type. */
export class NodeConfigError extends Error {
  constructor(
    readonly code: NodeConfigErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'NodeConfigError';
  }
}

// ---- Schema -----------------------------------------------------------------

export const ControlServiceSchema = z
  .object({
    hostname: z.string().min(1, { error: 'must name the control service host' }),
    /** A port to connect to: 1 to 65535 (port 0 means "any" only when listening). */
    port: z.number().int().min(1).max(65535).default(DEFAULT_CONTROL_PORT),
    /** More control replicas ("host" or "host:port") to fail over to; all share one etcd-backed configuration. */
    hostnames: z.array(z.string().min(1)).optional(),
    /** TLS files; default cluster.crt, node.crt and node.key beside agent.yml. Relative paths are relative to agent.yml. */
    ca_file: z.string().min(1).optional(),
    cert_file: z.string().min(1).optional(),
    key_file: z.string().min(1).optional(),
    /** Talk plain HTTP even when certificates exist (development only). */
    insecure_http: z.boolean().optional(),
  })
  .strict();

export const NodeSectionSchema = z
  .object({
    /** The dataset agent's node.json (the node UUID) and its other state; the plugin's plugin-mounts.json. */
    state_dir: z.string().min(1).default(DEFAULT_STATE_DIR),
    mount_root: z.string().min(1).default(DEFAULT_MOUNT_ROOT),
    host: z.string().min(1).optional(),
    era_file: z.string().min(1).optional(),
    /** This host's dockerd (self-fence, the plugin's reconcile, the container agent); default /var/run/docker.sock. */
    docker_socket: z.string().min(1).optional(),
  })
  .strict();

/** The Docker plugin's settings (each overridden by its command-line flag of the same name). */
export const PluginSectionSchema = z
  .object({
    /** --mount-timeout: seconds Mount waits for the volume (Docker gives up at 120). */
    mount_timeout_seconds: z.number().positive().optional(),
    /** --reconcile-interval: seconds between reconciles with dockerd; 0 = only when dockerd (re)appears. */
    reconcile_interval_seconds: z.number().min(0).optional(),
    /** --mount-safety-window: seconds a mount ID (or a created container) counts as in use. */
    mount_safety_window_seconds: z.number().min(0).optional(),
    /** --idle-lease-seconds: how long a volume no container uses keeps its lease (handed over on request); default 60. */
    idle_lease_seconds: z.number().min(0).optional(),
  })
  .strict();

/**
 * The metrics and health listener of each agent (GET /metrics, /healthz, /readyz), each overridden by the agent's
 * --metrics-address / --metrics-port flags. Unauthenticated, so 127.0.0.1 unless said otherwise; a port of 0 turns
 * that agent's listener off. Defaults: dataset agent 4531, Docker plugin 4532, container agent 4533. allowed_hosts:
 * the names a request's Host may carry on a connection over loopback besides the built-in ones. check_host: which
 * connections have their Host checked, 'loopback' (default) or 'always' (@flocker/metrics MetricsCheckHost).
 */
export const MetricsSectionSchema = z
  .object({
    address: z.string().min(1).optional(),
    dataset_agent_port: z.number().int().min(0).max(65535).optional(),
    plugin_port: z.number().int().min(0).max(65535).optional(),
    container_agent_port: z.number().int().min(0).max(65535).optional(),
    // Names (besides addresses, localhost, the hostname, FLOCKER_METRICS_ALLOWED_HOSTS) a Host may carry on a
    // loopback listener; a network-bound listener checks no Host (review s27 F5).
    allowed_hosts: z.array(z.string().min(1).max(253)).max(64).optional(),
    // 'always': every connection's Host is checked, not only loopback ones: a port published from a container (or any
    // NAT/proxy from the host's 127.0.0.1) arrives on a network address (review s28 G3). Default: the environment's
    // FLOCKER_METRICS_CHECK_HOST, else 'loopback'.
    check_host: z.enum(['loopback', 'always']).optional(),
  })
  .strict();

/**
 * agent.yml as every agent reads it. `dataset:` and `agent:` belong to the dataset agent,
 * which replaces them by its strict schemas (and requires `version` and `dataset`).
 */
export const NodeConfigSchema = z
  .object({
    version: z.literal(1, { error: 'must be 1 (the only configuration format version)' }).optional(),
    'control-service': ControlServiceSchema,
    node: NodeSectionSchema.default({ state_dir: DEFAULT_STATE_DIR, mount_root: DEFAULT_MOUNT_ROOT }),
    plugin: PluginSectionSchema.optional(),
    metrics: MetricsSectionSchema.optional(),
    dataset: z.unknown().optional(),
    agent: z.unknown().optional(),
  })
  .strict();

export type NodeConfig = z.infer<typeof NodeConfigSchema>;
export type ControlServiceSection = z.infer<typeof ControlServiceSchema>;
export type PluginSection = z.infer<typeof PluginSectionSchema>;
export type MetricsSection = z.infer<typeof MetricsSectionSchema>;

/** One line per problem, each naming the field, e.g. `control-service.port: expected number`. */
export function formatIssues(error: z.ZodError): string {
  return error.issues
    .map((i) => {
      const where = i.path.length > 0 ? i.path.map(String).join('.') : '(top level)';
      return `${where}: ${i.message}`;
    })
    .join('\n');
}

/** Validate a parsed document against a schema; CONFIG_INVALID names every field at fault. */
export function parseWith<S extends z.ZodType>(schema: S, doc: unknown, source = 'configuration'): z.infer<S> {
  const result = schema.safeParse(doc);
  if (!result.success)
    throw new NodeConfigError('CONFIG_INVALID', `${source} is invalid:\n${formatIssues(result.error)}`);
  return result.data;
}

export function parseNodeConfig(doc: unknown, source = 'configuration'): NodeConfig {
  return parseWith(NodeConfigSchema, doc, source);
}

/** The YAML document of a configuration file. CONFIG_NOT_FOUND, CONFIG_UNREADABLE, CONFIG_INVALID (not YAML). */
export function readConfigDocument(path: string = DEFAULT_CONFIG_PATH): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT')
      throw new NodeConfigError('CONFIG_NOT_FOUND', `cannot read the agent configuration ${path}: it does not exist`);
    throw new NodeConfigError(
      'CONFIG_UNREADABLE',
      `cannot read the agent configuration ${path}: ${(e as Error).message}`,
    );
  }
  try {
    return parseYaml(text);
  } catch (e) {
    throw new NodeConfigError('CONFIG_INVALID', `${path} is not valid YAML: ${(e as Error).message}`);
  }
}

/** Read and validate agent.yml as the plugin and the container agent see it. */
export function loadNodeConfig(path: string = DEFAULT_CONFIG_PATH): NodeConfig {
  return parseNodeConfig(readConfigDocument(path), path);
}

/** The directory agent.yml lives in, against which TLS files are found. */
export function configDirOf(configPath: string): string {
  return dirname(resolve(configPath));
}

// ---- Connection to the control service -------------------------------------

export const CLUSTER_CERT_FILE = 'cluster.crt';
export const NODE_CERT_FILE = 'node.crt';
export const NODE_KEY_FILE = 'node.key';

export interface ControlTlsFiles {
  ca: string;
  cert: string;
  key: string;
}

/** The keys the TLS convention reads (the rest of the section may come along). */
type TlsKeys = Partial<ControlServiceSection>;

/**
 * Flocker's convention: cluster.crt, node.crt and node.key beside agent.yml mean
 * HTTPS with this node's certificate. Explicit *_file entries override; with
 * `insecure_http: true`, or when none of the files exists, plain HTTP.
 * A partial set is a mistake worth stopping for, not a reason to fall back.
 */
export function controlTlsFiles(
  cs: TlsKeys,
  configDir: string,
  exists: (path: string) => boolean = existsSync,
): ControlTlsFiles | undefined {
  if (cs.insecure_http === true) return undefined;
  const at = (p: string | undefined, name: string) =>
    p === undefined ? join(configDir, name) : isAbsolute(p) ? p : resolve(configDir, p);
  const files = {
    ca: at(cs.ca_file, CLUSTER_CERT_FILE),
    cert: at(cs.cert_file, NODE_CERT_FILE),
    key: at(cs.key_file, NODE_KEY_FILE),
  };
  const explicit = cs.ca_file !== undefined || cs.cert_file !== undefined || cs.key_file !== undefined;
  const missing = [files.ca, files.cert, files.key].filter((f) => !exists(f));
  if (missing.length === 0) return files;
  if (!explicit && missing.length === 3) return undefined;
  throw new NodeConfigError(
    'CONFIG_INVALID',
    `TLS to the control service needs ${files.ca}, ${files.cert} and ${files.key}; ${missing.join(', ')} ${missing.length === 1 ? 'is' : 'are'} missing. ` +
      "Install the cluster certificate and this node's certificate (flocker-ca create-node-certificate), or set control-service.insecure_http: true.",
  );
}

/** PEM contents of the node's TLS credentials, and the node UUID its certificate names. */
export interface ControlCredentials extends TlsCredentials {
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
  /** The node UUID named by the certificate's common name: the node's identity. */
  nodeUuid: string;
}

/** The common name of a certificate's subject. */
function commonName(cert: X509Certificate): string | undefined {
  for (const line of cert.subject.split('\n')) if (line.startsWith('CN=')) return line.slice(3);
  return undefined;
}

/**
 * Reads the TLS files, checks the key matches the certificate, and takes the node UUID
 * from node.crt. CONFIG_INVALID for files that cannot be read or do not fit together,
 * IDENTITY_INVALID for a certificate that names no node.
 */
export function loadControlCredentials(files: ControlTlsFiles): ControlCredentials {
  const read = (path: string): Buffer => {
    try {
      return readFileSync(path);
    } catch (e) {
      throw new NodeConfigError('CONFIG_INVALID', `cannot read ${path}: ${(e as Error).message}`);
    }
  };
  const ca = read(files.ca);
  const cert = read(files.cert);
  const key = read(files.key);
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch (e) {
    throw new NodeConfigError('CONFIG_INVALID', `${files.cert} is not a PEM certificate: ${(e as Error).message}`);
  }
  try {
    createSecureContext({ ca, cert, key });
  } catch (e) {
    throw new NodeConfigError(
      'CONFIG_INVALID',
      `${files.key} does not belong to ${files.cert} (or ${files.ca} is not a certificate): ${(e as Error).message}`,
    );
  }
  const cn = commonName(x509);
  const identity = cn === undefined ? undefined : identityFromCommonName(cn);
  if (identity?.kind !== 'node') {
    throw new NodeConfigError(
      'IDENTITY_INVALID',
      `${files.cert} is not a node certificate (common name ${cn ?? '(none)'}, expected node-<uuid>); create one with flocker-ca create-node-certificate`,
    );
  }
  return { ca, cert, key, nodeUuid: identity.uuid };
}

/** The node's credentials by the TLS convention, or none (plain HTTP). */
export function readNodeTls(cs: TlsKeys, configDir: string): ControlCredentials | undefined {
  const files = controlTlsFiles(cs, configDir);
  return files === undefined ? undefined : loadControlCredentials(files);
}

/**
 * The control service's base URL: `hostname` (an IPv6 address bracketed) and `port`, then
 * every replica of `hostnames`, comma-separated for FlockerClient's failover.
 */
export function controlUrl(
  cs: Pick<ControlServiceSection, 'hostname' | 'port' | 'hostnames'>,
  secure: boolean,
): string {
  return controlUrlsFromHosts(secure ? 'https' : 'http', cs.hostname, cs.port, cs.hostnames ?? []);
}

/**
 * Where an agent's metrics listener listens: its flags, else agent.yml's `metrics:`, else 127.0.0.1 and the agent's
 * default port; undefined when the port is 0 (turned off). A --metrics-port that is no port (yargs turns `abc` into
 * NaN) is CONFIG_INVALID: the agent would otherwise run without its listener, with only a warning.
 */
export function metricsListen(
  section: MetricsSection | undefined,
  agent: 'dataset_agent' | 'plugin' | 'container_agent',
  defaultPort: number,
  flags: { address?: string | undefined; port?: number | undefined } = {},
): { host: string; port: number; allowedHosts?: readonly string[]; checkHost?: 'loopback' | 'always' } | undefined {
  if (flags.port !== undefined && !(Number.isInteger(flags.port) && flags.port >= 0 && flags.port <= 65535))
    throw new NodeConfigError('CONFIG_INVALID', `--metrics-port ${String(flags.port)} is not a port (0 to 65535)`);
  const port = flags.port ?? section?.[`${agent}_port`] ?? defaultPort;
  if (port === 0) return undefined;
  return {
    host: flags.address ?? section?.address ?? '127.0.0.1',
    port,
    ...(section?.allowed_hosts !== undefined ? { allowedHosts: section.allowed_hosts } : {}),
    ...(section?.check_host !== undefined ? { checkHost: section.check_host } : {}),
  };
}

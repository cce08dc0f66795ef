/**
 * The agent's configuration file, in ClusterHQ Flocker's `agent.yml` format
 * plus optional `node:` and `agent:` sections of this build.
 */
import { X509Certificate } from 'node:crypto';
import { createSecureContext } from 'node:tls';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { identityFromCommonName } from '@flocker/api';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { CinderDriverOptionsSchema, ebsDatasetConfigSchema, type CinderDriverOptions, type EbsDatasetConfig } from '@flocker/storage-drivers';
import { AgentError } from './errors';
import type { ClusterIdentity } from './poolSafety';

export const DEFAULT_CONFIG_PATH = '/etc/flocker/agent.yml';
export const DEFAULT_CONTROL_PORT = 4523;

const LoopbackBackend = z
  .object({
    backend: z.literal('loopback'),
    root_path: z.string().min(1).default('/var/lib/flocker/loopback'),
    /** Bytes; loopback allocation unit used to round sizes up. */
    allocation_unit: z.number().int().positive().optional(),
    /**
     * The cluster the pool belongs to (written to <root_path>/pool.json by the first agent);
     * default: the cluster UUID in cluster.crt. Set it only to override that.
     */
    cluster_id: z.string().min(1).optional(),
  })
  .strict();

// The `dataset:` section is first checked for a known backend name, then validated
// by that backend's own schema (the drivers own their options), so every issue
// is reported with its path under `dataset.`.
const BACKENDS = ['loopback', 'aws', 'openstack'] as const;
const Dataset = z
  .object({ backend: z.enum(BACKENDS, { error: 'backend must be one of "loopback", "aws", "openstack"' }) })
  .loose();

const OpenStackBackend = CinderDriverOptionsSchema.and(z.object({ backend: z.literal('openstack') }));

export const AgentConfigSchema = z
  .object({
    version: z.literal(1, { error: 'must be 1 (the only configuration format version)' }),
    'control-service': z
      .object({
        hostname: z.string().min(1, { error: 'must name the control service host' }),
        port: z.number().int().min(0).max(65535).default(DEFAULT_CONTROL_PORT),
        /** More control replicas ("host" or "host:port") to fail over to; all share one etcd-backed configuration. */
        hostnames: z.array(z.string().min(1)).optional(),
        /** TLS files; default cluster.crt, node.crt and node.key beside agent.yml. Relative paths are relative to agent.yml. */
        ca_file: z.string().min(1).optional(),
        cert_file: z.string().min(1).optional(),
        key_file: z.string().min(1).optional(),
        /** Talk plain HTTP even when certificates exist (development only). */
        insecure_http: z.boolean().optional(),
      })
      .strict(),
    dataset: Dataset,
    node: z
      .object({
        state_dir: z.string().min(1).default('/var/lib/flocker/agent'),
        mount_root: z.string().min(1).default('/flocker'),
        host: z.string().min(1).optional(),
        era_file: z.string().min(1).optional(),
        /** This host's dockerd, whose containers a self-fence stops; default /var/run/docker.sock. */
        docker_socket: z.string().min(1).optional(),
      })
      .strict()
      .default({ state_dir: '/var/lib/flocker/agent', mount_root: '/flocker' }),
    agent: z
      .object({
        resync_interval_seconds: z.number().positive().default(10),
        /** Size of a dataset whose maximum_size is null. */
        default_dataset_size: z.number().int().positive().default(1024 * 1024 * 1024),
        /** Independent datasets converged at once. */
        concurrency: z.number().int().min(1).max(64).default(4),
        backoff_initial_seconds: z.number().positive().default(0.5),
        backoff_max_seconds: z.number().positive().default(30),
        log_level: z.enum(['error', 'warn', 'info', 'debug']).default('info'),
        /**
         * Fence this node (stop containers using its volumes, unmount them) after this long
         * without a confirmed configuration. Default and upper limit: half the control
         * service's node timeout.
         */
        self_fence_seconds: z.number().positive().optional(),
      })
      .strict()
      .default({
        resync_interval_seconds: 10,
        default_dataset_size: 1024 * 1024 * 1024,
        concurrency: 4,
        backoff_initial_seconds: 0.5,
        backoff_max_seconds: 30,
        log_level: 'info',
      }),
  })
  .strict();

export type AgentConfig = z.infer<typeof AgentConfigSchema>;
export type LoopbackBackendConfig = z.infer<typeof LoopbackBackend>;
export type AwsBackendConfig = EbsDatasetConfig;
export type OpenStackBackendConfig = CinderDriverOptions & { backend: 'openstack' };
export type DatasetBackendConfig = LoopbackBackendConfig | AwsBackendConfig | OpenStackBackendConfig;
/** A configuration whose `dataset:` section has been validated by its backend's schema. */
export type RunnableAgentConfig = Omit<AgentConfig, 'dataset'> & { dataset: DatasetBackendConfig };

function parseBackend(dataset: { backend: (typeof BACKENDS)[number] }): z.ZodSafeParseResult<DatasetBackendConfig> {
  switch (dataset.backend) {
    case 'loopback':
      return LoopbackBackend.safeParse(dataset);
    case 'aws':
      return ebsDatasetConfigSchema.safeParse(dataset);
    case 'openstack':
      return OpenStackBackend.safeParse(dataset);
  }
}

/** One line per problem, each naming the field, e.g. `control-service.port: expected number`. */
export function formatIssues(error: z.ZodError): string {
  return error.issues
    .map((i) => {
      const where = i.path.length > 0 ? i.path.map(String).join('.') : '(top level)';
      return `${where}: ${i.message}`;
    })
    .join('\n');
}

/** Validate an already parsed document. Throws AgentError CONFIG_INVALID / BACKEND_NOT_AVAILABLE. */
export function parseAgentConfig(doc: unknown, source = 'configuration'): RunnableAgentConfig {
  const result = AgentConfigSchema.safeParse(doc);
  if (!result.success) {
    throw new AgentError('CONFIG_INVALID', `${source} is invalid:\n${formatIssues(result.error)}`);
  }
  const config = result.data;
  const dataset = parseBackend(config.dataset);
  if (!dataset.success) {
    const issues = dataset.error.issues.map((i) => ({ ...i, path: ['dataset', ...i.path] }));
    throw new AgentError('CONFIG_INVALID', `${source} is invalid:\n${formatIssues(new z.ZodError(issues))}`);
  }
  return { ...config, dataset: dataset.data };
}

/** Read and validate a YAML configuration file. */
export function loadAgentConfig(path: string = DEFAULT_CONFIG_PATH): RunnableAgentConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new AgentError('CONFIG_NOT_FOUND', `configuration file ${path} does not exist`);
    throw new AgentError('CONFIG_UNREADABLE', `cannot read configuration file ${path}: ${(e as Error).message}`);
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (e) {
    throw new AgentError('CONFIG_INVALID', `${path} is not valid YAML: ${(e as Error).message}`);
  }
  return parseAgentConfig(doc, path);
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

type ControlServiceSection = AgentConfig['control-service'];

/**
 * Flocker's convention: cluster.crt, node.crt and node.key beside agent.yml mean
 * HTTPS with this node's certificate. Explicit *_file entries override; with
 * `insecure_http: true`, or when none of the files exists, plain HTTP.
 * A partial set is a mistake worth stopping for, not a reason to fall back.
 */
export function controlTlsFiles(
  cs: ControlServiceSection,
  configDir: string,
  exists: (path: string) => boolean = existsSync,
): ControlTlsFiles | undefined {
  if (cs.insecure_http === true) return undefined;
  const at = (p: string | undefined, name: string) => (p === undefined ? join(configDir, name) : isAbsolute(p) ? p : resolve(configDir, p));
  const files = { ca: at(cs.ca_file, CLUSTER_CERT_FILE), cert: at(cs.cert_file, NODE_CERT_FILE), key: at(cs.key_file, NODE_KEY_FILE) };
  const explicit = cs.ca_file !== undefined || cs.cert_file !== undefined || cs.key_file !== undefined;
  const missing = [files.ca, files.cert, files.key].filter((f) => !exists(f));
  if (missing.length === 0) return files;
  if (!explicit && missing.length === 3) return undefined;
  throw new AgentError(
    'CONFIG_INVALID',
    `TLS to the control service needs ${files.ca}, ${files.cert} and ${files.key}; ${missing.join(', ')} ${missing.length === 1 ? 'is' : 'are'} missing. ` +
      'Install the cluster certificate and this node\'s certificate (flocker-ca create-node-certificate), or set control-service.insecure_http: true.',
  );
}

export interface ControlCredentials {
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

/** Reads the TLS files, checks the key matches the certificate, and takes the node UUID from node.crt. */
export function loadControlCredentials(files: ControlTlsFiles): ControlCredentials {
  const read = (path: string): Buffer => {
    try {
      return readFileSync(path);
    } catch (e) {
      throw new AgentError('CONFIG_INVALID', `cannot read ${path}: ${(e as Error).message}`);
    }
  };
  const ca = read(files.ca);
  const cert = read(files.cert);
  const key = read(files.key);
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch (e) {
    throw new AgentError('CONFIG_INVALID', `${files.cert} is not a PEM certificate: ${(e as Error).message}`);
  }
  try {
    createSecureContext({ ca, cert, key });
  } catch (e) {
    throw new AgentError('CONFIG_INVALID', `${files.key} does not belong to ${files.cert} (or ${files.ca} is not a certificate): ${(e as Error).message}`);
  }
  const cn = commonName(x509);
  const identity = cn === undefined ? undefined : identityFromCommonName(cn);
  if (identity?.kind !== 'node') {
    throw new AgentError('IDENTITY_INVALID', `${files.cert} is not a node certificate (common name ${cn ?? '(none)'}, expected node-<uuid>); create one with flocker-ca create-node-certificate`);
  }
  return { ca, cert, key, nodeUuid: identity.uuid };
}

/**
 * The cluster's identity, which a storage pool carries (pool.json): `dataset.cluster_id`
 * when agent.yml sets it; else the cluster UUID that flocker-ca writes into the CA
 * certificate's subject (O=<uuid>), or for a CA made otherwise its SHA-256 fingerprint
 * (`ca-sha256:<hex>`). The CA is what the agent trusts the control service by: every
 * node and the control service of one cluster share it, another cluster has another.
 * Without either (plain HTTP, no cluster_id): none (null).
 */
export function clusterIdentity(dataset: DatasetBackendConfig, caPem?: Buffer, caPath = CLUSTER_CERT_FILE): ClusterIdentity {
  if (dataset.cluster_id !== undefined) return { id: dataset.cluster_id, source: 'dataset.cluster_id in agent.yml' };
  if (caPem !== undefined) {
    let ca: X509Certificate;
    try {
      ca = new X509Certificate(caPem);
    } catch (e) {
      throw new AgentError('CONFIG_INVALID', `${caPath} is not a PEM certificate: ${(e as Error).message}`);
    }
    const org = ca.subject.split('\n').find((line) => line.startsWith('O='))?.slice(2);
    if (org !== undefined && UUID.test(org)) return { id: org.toLowerCase(), source: `the cluster certificate ${caPath} (subject O=)` };
    return { id: `ca-sha256:${ca.fingerprint256.replace(/:/g, '').toLowerCase()}`, source: `the fingerprint of the cluster certificate ${caPath}` };
  }
  return { id: null, source: 'nowhere (plain HTTP to the control service and no dataset.cluster_id in agent.yml)' };
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The directory agent.yml lives in, against which TLS files are found. */
export function configDirOf(configPath: string): string {
  return dirname(resolve(configPath));
}

/**
 * The agent's configuration file, in ClusterHQ Flocker's `agent.yml` format
 * plus optional `node:`, `agent:` and `plugin:` sections of this build. The sections
 * every agent of the node reads, the TLS convention and the control URL are
 * @flocker/node-config's; `dataset:` and `agent:` are this agent's.
 */
import { X509Certificate } from 'node:crypto';
import {
  CLUSTER_CERT_FILE,
  controlTlsFiles as sharedControlTlsFiles,
  loadControlCredentials as sharedLoadControlCredentials,
  NodeConfigError,
  NodeConfigSchema,
  parseWith,
  readConfigDocument,
  DEFAULT_CONFIG_PATH,
  formatIssues,
  type ControlCredentials,
  type ControlTlsFiles,
} from '@flocker/node-config';
import { z } from 'zod';
import {
  CinderDriverOptionsSchema,
  ebsDatasetConfigSchema,
  type CinderDriverOptions,
  type EbsDatasetConfig,
  XtremioDriverOptionsSchema,
  type XtremioDriverOptions,
  ScaleIoOptionsSchema,
  type ScaleIoOptions,
} from '@flocker/storage-drivers';
import { AgentError } from './errors';
import type { ClusterIdentity } from './poolSafety';

export {
  configDirOf,
  DEFAULT_CONFIG_PATH,
  DEFAULT_CONTROL_PORT,
  formatIssues,
  type ControlCredentials,
  type ControlTlsFiles,
} from '@flocker/node-config';

/** The shared node configuration's errors, as the agent's own (same codes). */
function asAgentError<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof NodeConfigError)
      throw new AgentError(e.code === 'NODE_UNKNOWN' ? 'IDENTITY_INVALID' : e.code, e.message);
    throw e;
  }
}

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
    /**
     * Spare volumes kept per size class (issue 23): pre-made, pre-formatted, never written; a new
     * dataset claims one instead of waiting for create + format. 0 turns them off.
     */
    spares: z.number().int().min(0).max(16).default(2),
    /**
     * Size classes (bytes) kept filled besides default_dataset_size, e.g. the Docker plugin's default
     * (10 GiB); other sizes are learned from what datasets ask for.
     */
    spare_sizes: z.array(z.number().int().positive()).max(4).optional(),
  })
  .strict();

/**
 * Local storage (issue 24): each dataset on this node's own pool (a btrfs file system's path, or
 * a ZFS pool/file system name); a move is a transfer to the new primary's agent over mutual TLS
 * with the node certificates, on transfer_port (the same on every node of the cluster).
 */
const LocalBackend = z
  .object({
    backend: z.literal('local'),
    engine: z.enum(['btrfs', 'zfs'], { error: 'engine must be "btrfs" or "zfs"' }),
    pool: z.string().min(1),
    transfer_port: z.number().int().min(1).max(65535).default(4525),
    /** Between a standby replica's snapshots when the dataset's metadata does not say (default 30). */
    replica_interval_seconds: z.number().int().min(1).max(86_400).optional(),
    /**
     * After a move away, how many of the dataset's move snapshots the old node keeps once the new
     * one has mounted (default 1: the final one, the base of an incremental move back; 0: none).
     */
    keep_source_snapshots: z.number().int().min(0).max(64).optional(),
    cluster_id: z.string().min(1).optional(),
  })
  .strict();

// The `dataset:` section is first checked for a known backend name, then validated
// by that backend's own schema (the drivers own their options), so every issue
// is reported with its path under `dataset.`.
const BACKENDS = ['loopback', 'aws', 'openstack', 'local', 'xtremio', 'rackspace', 'scaleio'] as const;
const Dataset = z
  .object({
    backend: z.enum(BACKENDS, {
      error: 'backend must be one of "loopback", "aws", "openstack", "local", "xtremio", "rackspace", "scaleio"',
    }),
  })
  .loose();

const OpenStackBackend = CinderDriverOptionsSchema.and(z.object({ backend: z.literal('openstack') }));
const XtremioBackend = XtremioDriverOptionsSchema.extend({ backend: z.literal('xtremio') });
// Rackspace Cloud Block Storage: the Cinder driver behind Rackspace Identity (auth_plugin rackspace unless set).
const RackspaceBackend = CinderDriverOptionsSchema.and(z.object({ backend: z.literal('rackspace') }));
const ScaleIoBackend = ScaleIoOptionsSchema.and(z.object({ backend: z.literal('scaleio') }));

/**
 * Where this agent sends backups and reads restores from (issue 20): an S3-compatible
 * service. Every field is optional: what is missing comes from the standard AWS_*
 * environment variables (AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL, AWS_REGION,
 * AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY) and the SDK's chain. The bucket and prefix
 * are each backup's target (s3://bucket/prefix), not settings.
 */
export const BackupSettingsSchema = z
  .object({
    endpoint: z.url().optional(),
    region: z.string().min(1).optional(),
    access_key_id: z.string().min(1).optional(),
    secret_access_key: z.string().min(1).optional(),
    force_path_style: z.boolean().optional(),
  })
  .strict()
  .refine((b) => (b.access_key_id === undefined) === (b.secret_access_key === undefined), {
    message: 'access_key_id and secret_access_key go together',
  });

/**
 * The node configuration every agent reads (control-service, node, plugin; @flocker/node-config)
 * with the dataset agent's own sections: `version` and `dataset` required, `agent` strict.
 */
export const AgentConfigSchema = NodeConfigSchema.extend({
  version: z.literal(1, { error: 'must be 1 (the only configuration format version)' }),
  dataset: Dataset,
  /** Backups to object storage (issue 20); absent: backups only with AWS_* credentials in the environment. */
  backup: BackupSettingsSchema.optional(),
  agent: z
    .object({
      resync_interval_seconds: z.number().positive().default(10),
      /** Size of a dataset whose maximum_size is null. */
      default_dataset_size: z
        .number()
        .int()
        .positive()
        .default(1024 * 1024 * 1024),
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
});

export type AgentConfig = z.infer<typeof AgentConfigSchema>;
export type LoopbackBackendConfig = z.infer<typeof LoopbackBackend>;
export type AwsBackendConfig = EbsDatasetConfig;
export type OpenStackBackendConfig = CinderDriverOptions & { backend: 'openstack' };
export type LocalBackendConfig = z.infer<typeof LocalBackend>;
export type XtremioBackendConfig = XtremioDriverOptions & { backend: 'xtremio' };
export type RackspaceBackendConfig = CinderDriverOptions & { backend: 'rackspace' };
export type ScaleIoBackendConfig = ScaleIoOptions & { backend: 'scaleio' };
export type DatasetBackendConfig =
  | LoopbackBackendConfig
  | AwsBackendConfig
  | OpenStackBackendConfig
  | LocalBackendConfig
  | XtremioBackendConfig
  | RackspaceBackendConfig
  | ScaleIoBackendConfig;
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
    case 'local':
      return LocalBackend.safeParse(dataset);
    case 'xtremio':
      return XtremioBackend.safeParse(dataset);
    case 'rackspace':
      return RackspaceBackend.safeParse({ auth_plugin: 'rackspace', ...dataset });
    case 'scaleio':
      return ScaleIoBackend.safeParse(dataset);
  }
}

/** Validate an already parsed document. Throws AgentError CONFIG_INVALID. */
export function parseAgentConfig(doc: unknown, source = 'configuration'): RunnableAgentConfig {
  const config = asAgentError(() => parseWith(AgentConfigSchema, doc, source));
  const dataset = parseBackend(config.dataset);
  if (!dataset.success) {
    const issues = dataset.error.issues.map((i) => ({ ...i, path: ['dataset', ...i.path] }));
    throw new AgentError('CONFIG_INVALID', `${source} is invalid:\n${formatIssues(new z.ZodError(issues))}`);
  }
  return { ...config, dataset: dataset.data };
}

/** Read and validate a YAML configuration file (CONFIG_NOT_FOUND, CONFIG_UNREADABLE, CONFIG_INVALID). */
export function loadAgentConfig(path: string = DEFAULT_CONFIG_PATH): RunnableAgentConfig {
  return parseAgentConfig(
    asAgentError(() => readConfigDocument(path)),
    path,
  );
}

// ---- Connection to the control service (the shared convention, with AgentError) ----

/** {@link sharedControlTlsFiles}: cluster.crt, node.crt and node.key beside agent.yml, or the *_file entries. */
export function controlTlsFiles(
  cs: AgentConfig['control-service'],
  configDir: string,
  exists?: (path: string) => boolean,
): ControlTlsFiles | undefined {
  return asAgentError(() => sharedControlTlsFiles(cs, configDir, exists));
}

/** Reads the TLS files, checks the key matches the certificate, and takes the node UUID from node.crt. */
export function loadControlCredentials(files: ControlTlsFiles): ControlCredentials {
  return asAgentError(() => sharedLoadControlCredentials(files));
}

/**
 * The cluster's identity, which a storage pool carries (pool.json): `dataset.cluster_id`
 * when agent.yml sets it; else the cluster UUID that flocker-ca writes into the CA
 * certificate's subject (O=<uuid>), or for a CA made otherwise its SHA-256 fingerprint
 * (`ca-sha256:<hex>`). The CA is what the agent trusts the control service by: every
 * node and the control service of one cluster share it, another cluster has another.
 * Without either (plain HTTP, no cluster_id): none (null).
 */
export function clusterIdentity(
  dataset: DatasetBackendConfig,
  caPem?: Buffer,
  caPath = CLUSTER_CERT_FILE,
): ClusterIdentity {
  if (dataset.cluster_id !== undefined) return { id: dataset.cluster_id, source: 'dataset.cluster_id in agent.yml' };
  if (caPem !== undefined) {
    let ca: X509Certificate;
    try {
      ca = new X509Certificate(caPem);
    } catch (e) {
      throw new AgentError('CONFIG_INVALID', `${caPath} is not a PEM certificate: ${(e as Error).message}`);
    }
    const org = ca.subject
      .split('\n')
      .find((line) => line.startsWith('O='))
      ?.slice(2);
    if (org !== undefined && UUID.test(org))
      return { id: org.toLowerCase(), source: `the cluster certificate ${caPath} (subject O=)` };
    return {
      id: `ca-sha256:${ca.fingerprint256.replace(/:/g, '').toLowerCase()}`,
      source: `the fingerprint of the cluster certificate ${caPath}`,
    };
  }
  return { id: null, source: 'nowhere (plain HTTP to the control service and no dataset.cluster_id in agent.yml)' };
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * The agent's configuration file, in ClusterHQ Flocker's `agent.yml` format
 * plus optional `node:` and `agent:` sections of this build.
 */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { AgentError } from './errors';

export const DEFAULT_CONFIG_PATH = '/etc/flocker/agent.yml';
export const DEFAULT_CONTROL_PORT = 4523;

const LoopbackBackend = z
  .object({
    backend: z.literal('loopback'),
    root_path: z.string().min(1).default('/var/lib/flocker/loopback'),
    /** Bytes; loopback allocation unit used to round sizes up. */
    allocation_unit: z.number().int().positive().optional(),
  })
  .strict();

// Names of the cloud backends are reserved so their configuration parses and fails with a clear message.
const ReservedBackend = z.object({ backend: z.enum(['aws', 'openstack']) }).loose();

const Dataset = z.discriminatedUnion('backend', [LoopbackBackend, ReservedBackend], {
  error: (issue) =>
    issue.code === 'invalid_union' ? 'backend must be one of "loopback", "aws", "openstack"' : undefined,
});

export const AgentConfigSchema = z
  .object({
    version: z.literal(1, { error: 'must be 1 (the only configuration format version)' }),
    'control-service': z
      .object({
        hostname: z.string().min(1, { error: 'must name the control service host' }),
        port: z.number().int().min(0).max(65535).default(DEFAULT_CONTROL_PORT),
      })
      .strict(),
    dataset: Dataset,
    node: z
      .object({
        state_dir: z.string().min(1).default('/var/lib/flocker/agent'),
        mount_root: z.string().min(1).default('/flocker'),
        host: z.string().min(1).optional(),
        era_file: z.string().min(1).optional(),
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
/** A configuration whose backend this build can run. */
export type RunnableAgentConfig = AgentConfig & { dataset: LoopbackBackendConfig };

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
  if (config.dataset.backend !== 'loopback') {
    throw new AgentError(
      'BACKEND_NOT_AVAILABLE',
      `${source}: dataset.backend: "${config.dataset.backend}" is not available in this build yet; use "loopback"`,
    );
  }
  return { ...config, dataset: config.dataset };
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

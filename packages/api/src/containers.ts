/**
 * Wire schemas of Flocker's container API (v1 `/configuration/containers`,
 * `/state/containers`, `/configuration/_compose`), the container agent's channel,
 * and the pure reading of flocker-deploy's files (Flocker's application and
 * deployment formats, and Docker Compose files as application files).
 */
import { z } from 'zod';
import {
  atMostEntries,
  DatasetId,
  isSafeKey,
  KEY_MESSAGES,
  MINIMUM_DATASET_SIZE,
  NODE_REPORT_ARRAY_MAX,
  NodeUuid,
  RESERVED_KEY_MESSAGE,
  SafeKey,
} from './schemas';
import { parseSize, SizeError } from './sizes';
import { volumeNameProblem } from './volumeNames';

/** Docker's container-name alphabet; also a DNS-friendly application name. */
export const ContainerName = z
  .string()
  .regex(/^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$/, {
    message: 'must be 1-63 letters, digits, "_", "." or "-", starting with a letter or digit',
  })
  .describe('A name unique across the cluster.');

export const PortNumber = z.number().int().min(1).max(65535);

/** The most ports, links or command-line words one container may have (far above any real container). */
export const CONTAINER_ARRAY_MAX = 4096;
/** The most environment variables one container may have (as CONTAINER_ARRAY_MAX). */
export const ENVIRONMENT_MAX_ENTRIES = 4096;
/** The longest environment variable name (far above any real one). */
export const ENVIRONMENT_NAME_MAX_LENGTH = 1024;
/** The longest environment variable value: Linux's MAX_ARG_STRLEN (128 KiB); a longer NAME=value cannot be exec'd. */
export const ENVIRONMENT_VALUE_MAX_LENGTH = 131_072;

export const ContainerPort = z
  .object({
    internal: PortNumber.describe('Port inside the container.'),
    external: PortNumber.describe("Port on the node's address."),
  })
  .strict();

export const ContainerLink = z
  .object({
    alias: z.string().regex(/^[a-zA-Z][a-zA-Z0-9_-]*$/, {
      message: 'must start with a letter and hold only letters, digits, "_" and "-"',
    }),
    local_port: PortNumber.describe('The port the linking container is told to use (names its environment variables).'),
    remote_port: PortNumber.describe('The external port of the linked container.'),
  })
  .strict();

export const Mountpoint = z.string().regex(/^\/[^\0]*$/, { message: 'must be an absolute path' });

export const ContainerVolume = z.object({ dataset_id: DatasetId, mountpoint: Mountpoint }).strict();

// Bounded (entries, name and value lengths) so an oversized request is refused early (T6 F-A).
export const Environment = atMostEntries(
  ENVIRONMENT_MAX_ENTRIES,
  `at most ${ENVIRONMENT_MAX_ENTRIES} environment variables`,
  z.record(
    z
      .string()
      .max(ENVIRONMENT_NAME_MAX_LENGTH, {
        message: `environment variable names are at most ${ENVIRONMENT_NAME_MAX_LENGTH} characters`,
      })
      .regex(/^[^=\0]+$/, { message: 'environment variable names are non-empty and hold no "="' })
      .refine(isSafeKey, { message: RESERVED_KEY_MESSAGE }),
    z.string().max(ENVIRONMENT_VALUE_MAX_LENGTH, {
      message: `environment variable values are at most ${ENVIRONMENT_VALUE_MAX_LENGTH} characters`,
    }),
    KEY_MESSAGES,
  ),
);

export const RestartPolicy = z.discriminatedUnion('name', [
  z.object({ name: z.literal('never') }).strict(),
  z.object({ name: z.literal('always') }).strict(),
  z.object({ name: z.literal('on-failure'), maximum_retry_count: z.number().int().positive().optional() }).strict(),
]);

/** A configured container (request and response of the v1 API; defaults filled in). */
export const ContainerConfiguration = z
  .object({
    name: ContainerName,
    node_uuid: NodeUuid,
    image: z.string().min(1).max(512),
    // Bounded so an oversized request is refused early (T6 F-A): a container publishes far fewer ports than this.
    ports: z.array(ContainerPort).max(CONTAINER_ARRAY_MAX).default([]),
    environment: Environment.default({}),
    links: z.array(ContainerLink).max(CONTAINER_ARRAY_MAX).default([]),
    volumes: z
      .array(ContainerVolume)
      .max(1, { message: 'at most one volume per container (as in Flocker)' })
      .default([]),
    restart_policy: RestartPolicy.default({ name: 'never' }),
    cpu_shares: z.number().int().positive().optional(),
    memory_limit: z.number().int().positive().optional(),
    command_line: z.array(z.string()).max(CONTAINER_ARRAY_MAX).optional(),
  })
  .strict();

export const CreateContainerRequest = ContainerConfiguration;
export const MoveContainerRequest = z.object({ node_uuid: NodeUuid }).strict();

/**
 * Why a container agent cannot create or start a container (it keeps retrying, backing off):
 * IMAGE_NOT_FOUND (the image is not on the node: the agent does not pull), INVALID_CONTAINER_SPEC
 * (Docker refused the settings), PORT_IN_USE (an external port is taken on the node), NAME_IN_USE
 * (a container not made by Flocker has the name), VOLUME_UNAVAILABLE (the volume could not be
 * mounted yet, e.g. it is still moving), VOLUME_NOT_FOUND (the container's dataset is deleted or has
 * no name), DOCKER_ERROR (anything else).
 */
export const ContainerErrorCode = z.enum([
  'IMAGE_NOT_FOUND',
  'INVALID_CONTAINER_SPEC',
  'PORT_IN_USE',
  'NAME_IN_USE',
  'VOLUME_UNAVAILABLE',
  'VOLUME_NOT_FOUND',
  'DOCKER_ERROR',
]);

/** The codes that retrying alone will not fix: someone must act (flocker-deploy --wait stops on them). */
export const CONTAINER_ERRORS_NEEDING_ACTION: ReadonlySet<ContainerErrorCode> = new Set<ContainerErrorCode>([
  'IMAGE_NOT_FOUND',
  'INVALID_CONTAINER_SPEC',
  'PORT_IN_USE',
  'NAME_IN_USE',
]);

export const ContainerError = z
  .object({
    code: ContainerErrorCode,
    message: z.string().max(4096).describe("Docker's (or the agent's) reason, e.g. No such image: x."),
    attempts: z.number().int().positive().describe('Failed attempts in a row.'),
    since: z.string().max(64).describe('When the first of them failed (ISO 8601, the agent clock).'),
  })
  .strict()
  .describe(
    'The last failure to create or start the container, or why Docker does not run it (a crash loop, a non-zero exit: DOCKER_ERROR); absent while it runs.',
  );

/**
 * Which configuration a reported container runs: containerConfigId of the configured container whose spec it runs
 * (flocker-deploy --wait counts a container as deployed only when it is the configured one). Absent from container
 * agents before session 18, and for a container created by one of them that no longer matches its configuration.
 */
export const ContainerConfigId = z.string().regex(/^[0-9a-f]{16}$/);

/** What `GET /v1/state/containers` lists: containers as their nodes' container agents report them. */
export const ContainerState = z
  .object({
    name: ContainerName,
    node_uuid: NodeUuid,
    image: z.string(),
    running: z.boolean(),
    error: ContainerError.optional(),
    config: ContainerConfigId.optional(),
    reported_at: z
      .string()
      .max(64)
      .optional()
      .describe("ISO 8601 time the control service received its node's container report (absent from older services)."),
  })
  .strict();

/** Agent channel: a container agent reports the Flocker containers on its node (and those it fails to create). */
export const ContainerReport = z
  .object({
    containers: z
      .array(
        z
          .object({
            name: ContainerName,
            image: z.string(),
            running: z.boolean(),
            error: ContainerError.optional(),
            config: ContainerConfigId.optional(),
          })
          .strict(),
      )
      .max(NODE_REPORT_ARRAY_MAX),
  })
  .strict();

/** `POST /v1/configuration/_compose`: flocker-deploy's two files, parsed from YAML to JSON. */
export const ComposeRequest = z
  .object({
    applications: z
      .record(SafeKey, z.unknown(), KEY_MESSAGES)
      .describe('The application file (Flocker format or Docker Compose).'),
    deployment: z
      .record(SafeKey, z.unknown(), KEY_MESSAGES)
      .describe('The deployment file: version 1, nodes: {address or UUID: [names]}.'),
  })
  .strict();

export type ContainerPort = z.infer<typeof ContainerPort>;
export type ContainerLink = z.infer<typeof ContainerLink>;
export type ContainerVolume = z.infer<typeof ContainerVolume>;
export type RestartPolicy = z.infer<typeof RestartPolicy>;
export type ContainerConfiguration = z.infer<typeof ContainerConfiguration>;
export type CreateContainerRequest = z.input<typeof CreateContainerRequest>;
export type MoveContainerRequest = z.infer<typeof MoveContainerRequest>;
export type ContainerErrorCode = z.infer<typeof ContainerErrorCode>;
export type ContainerError = z.infer<typeof ContainerError>;
export type ContainerState = z.infer<typeof ContainerState>;
export type ContainerReport = z.infer<typeof ContainerReport>;
export type ComposeRequest = z.infer<typeof ComposeRequest>;

// ---- flocker-deploy files ----------------------------------------------------

const SizeValue = z.union([z.number().int().positive(), z.string().min(1)]);

/** One application of Flocker's application file. */
export const FlockerApplication = z
  .object({
    image: z.string().min(1),
    ports: z.array(ContainerPort).max(CONTAINER_ARRAY_MAX).optional(),
    environment: Environment.optional(),
    links: z.array(ContainerLink).max(CONTAINER_ARRAY_MAX).optional(),
    volume: z.object({ mountpoint: Mountpoint, maximum_size: SizeValue.optional() }).strict().optional(),
    restart_policy: RestartPolicy.optional(),
    cpu_shares: z.number().int().positive().optional(),
    mem_limit: z.number().int().positive().optional(),
    command_line: z.array(z.string()).max(CONTAINER_ARRAY_MAX).optional(),
  })
  .strict();

export const FlockerApplicationFile = z
  .object({ version: z.literal(1), applications: z.record(ContainerName, FlockerApplication) })
  .strict();

export const DeploymentFile = z
  .object({
    version: z.literal(1),
    nodes: z.record(
      z.string().min(1).refine(isSafeKey, { message: RESERVED_KEY_MESSAGE }),
      z.union([ContainerName, z.array(ContainerName)]),
      KEY_MESSAGES,
    ),
  })
  .strict();

const ComposePortSpec = z.union([z.number().int(), z.string().min(1)]);
/** The subset of a Docker Compose service Flocker understood (plus `restart`). */
export const ComposeService = z
  .object({
    image: z.string().min(1),
    ports: z.array(ComposePortSpec).max(CONTAINER_ARRAY_MAX).optional(),
    environment: atMostEntries(
      ENVIRONMENT_MAX_ENTRIES,
      `at most ${ENVIRONMENT_MAX_ENTRIES} environment variables`,
      z.union([z.record(SafeKey, z.union([z.string(), z.number(), z.boolean()]), KEY_MESSAGES), z.array(z.string())]),
    ).optional(),
    links: z.array(z.string().min(1)).max(CONTAINER_ARRAY_MAX).optional(),
    volumes: z
      .array(z.string().min(1))
      .max(1, { message: 'at most one volume per application (as in Flocker)' })
      .optional(),
    mem_limit: z.union([z.number().int().positive(), z.string().min(1)]).optional(),
    cpu_shares: z.number().int().positive().optional(),
    command: z.union([z.string(), z.array(z.string()).max(CONTAINER_ARRAY_MAX)]).optional(),
    restart: z.string().optional(),
  })
  .strict();

/** An application as the control service applies it: every field resolved. */
export interface Application {
  image: string;
  ports: ContainerPort[];
  environment: Record<string, string>;
  links: ContainerLink[];
  /** `name`: the Flocker volume (dataset metadata.name) to mount; absent, the application's own name. */
  volume?: { name?: string; mountpoint: string; maximum_size?: number };
  restart_policy: RestartPolicy;
  cpu_shares?: number;
  memory_limit?: number;
  command_line?: string[];
}

/** A problem in a file, at a path inside it (keys and indices), for mapping back to a line. */
export interface FileIssue {
  path: (string | number)[];
  message: string;
}

export type FileResult<T> = { ok: true; value: T } | { ok: false; issues: FileIssue[] };

type FileFormat = 'flocker' | 'compose';

const FLOCKER_KEYS = Object.keys(FlockerApplication.shape).join(', ');
const COMPOSE_KEYS = Object.keys(ComposeService.shape).join(', ');

/** Keys people write in one format that the other spells differently (Compose users writing Flocker's and back). */
const KEY_HINTS: Record<FileFormat, Record<string, string>> = {
  flocker: {
    command: 'the key is command_line, a list: command_line: ["sh", "-c", "echo hi"]',
    entrypoint: 'Flocker has no entrypoint: put the whole command in command_line',
    volumes: 'the key is volume, one per application: volume: {mountpoint: /data, maximum_size: 10G}',
    restart: 'the key is restart_policy: restart_policy: {name: always} (never, always, on-failure)',
    memory_limit: 'the key is mem_limit (bytes)',
    mem: 'the key is mem_limit (bytes)',
    env: 'the key is environment',
    expose: 'the key is ports: [{internal: 80, external: 8080}]',
    depends_on: 'Flocker has no depends_on: use links, which also set the linked address',
  },
  compose: {
    command_line: 'in a Docker Compose file the key is command',
    volume: 'in a Docker Compose file the key is volumes: ["name:/path"] or ["/path"]',
    restart_policy: 'in a Docker Compose file the key is restart: no, always, unless-stopped or on-failure[:N]',
    memory_limit: 'the key is mem_limit',
    env: 'the key is environment',
    expose: 'the key is ports: ["8080:80"]',
  },
};

/** Why an unknown key of an application is refused, with the key that was probably meant. */
export function unknownKeyMessage(format: FileFormat, key: string): string {
  const hint = KEY_HINTS[format][key];
  if (hint !== undefined) return `unknown key "${key}": ${hint}`;
  const keys = format === 'flocker' ? FLOCKER_KEYS : COMPOSE_KEYS;
  return `unknown key "${key}"; ${format === 'flocker' ? "Flocker's application format" : 'a Docker Compose service'} takes only ${keys}`;
}

/**
 * zod's issues as file issues. An unknown key gets an issue of its own, at the key; an
 * unknown key of an application (at `applicationDepth` in the path) names what was meant.
 */
function zodIssues(
  error: z.ZodError,
  prefix: (string | number)[] = [],
  context?: { format: FileFormat; applicationDepth: number },
): FileIssue[] {
  return error.issues.flatMap((i) => {
    const path = [...prefix, ...i.path.filter((p): p is string | number => typeof p !== 'symbol')];
    if (i.code !== 'unrecognized_keys') return [{ path, message: i.message }];
    return i.keys.map((key) => ({
      path: [...path, key],
      message:
        context !== undefined && path.length === context.applicationDepth
          ? unknownKeyMessage(context.format, key)
          : `unknown key "${key}"`,
    }));
  });
}

function size(
  value: string | number,
  path: (string | number)[],
  issues: FileIssue[],
  minimum: number,
): number | undefined {
  if (typeof value === 'number') {
    if (value >= minimum) return value;
    issues.push({ path, message: `must be at least ${minimum} bytes` });
    return undefined;
  }
  try {
    return parseSize(value, minimum);
  } catch (err) {
    issues.push({ path, message: err instanceof SizeError ? err.message : String(err) });
    return undefined;
  }
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Is this an application file in Flocker's own format (rather than Docker Compose)? */
export function isFlockerApplicationFile(doc: unknown): boolean {
  return isRecord(doc) && 'applications' in doc && 'version' in doc;
}

/** Reads an application file: Flocker's format, or Docker Compose (v1 top-level services, or `services:`). */
export function parseApplicationFile(doc: unknown): FileResult<Record<string, Application>> {
  if (!isRecord(doc)) return { ok: false, issues: [{ path: [], message: 'the application file must be a mapping' }] };
  if (isFlockerApplicationFile(doc)) return parseFlockerApplications(doc);
  const services = 'services' in doc ? doc['services'] : doc;
  const prefix = 'services' in doc ? ['services'] : [];
  return parseCompose(services, prefix);
}

function parseFlockerApplications(doc: unknown): FileResult<Record<string, Application>> {
  const parsed = FlockerApplicationFile.safeParse(doc);
  if (!parsed.success)
    return { ok: false, issues: zodIssues(parsed.error, [], { format: 'flocker', applicationDepth: 2 }) };
  const issues: FileIssue[] = [];
  const out: Record<string, Application> = {};
  for (const [name, app] of Object.entries(parsed.data.applications)) {
    let volume: Application['volume'];
    if (app.volume !== undefined) {
      const max = app.volume.maximum_size;
      const bytes =
        max === undefined
          ? undefined
          : size(max, ['applications', name, 'volume', 'maximum_size'], issues, MINIMUM_DATASET_SIZE);
      volume = { mountpoint: app.volume.mountpoint, ...(bytes !== undefined ? { maximum_size: bytes } : {}) };
    }
    out[name] = {
      image: app.image,
      ports: app.ports ?? [],
      environment: app.environment ?? {},
      links: app.links ?? [],
      ...(volume !== undefined ? { volume } : {}),
      restart_policy: app.restart_policy ?? { name: 'never' },
      ...(app.cpu_shares !== undefined ? { cpu_shares: app.cpu_shares } : {}),
      ...(app.mem_limit !== undefined ? { memory_limit: app.mem_limit } : {}),
      ...(app.command_line !== undefined ? { command_line: app.command_line } : {}),
    };
  }
  return issues.length > 0 ? { ok: false, issues } : { ok: true, value: out };
}

function composePort(spec: string | number, path: (string | number)[], issues: FileIssue[]): ContainerPort | undefined {
  const m = /^(?:(?:\d{1,3}\.){3}\d{1,3}:)?(\d+):(\d+)(?:\/tcp)?$/.exec(String(spec));
  const external = m ? Number(m[1]) : NaN;
  const internal = m ? Number(m[2]) : NaN;
  if (!PortNumber.safeParse(external).success || !PortNumber.safeParse(internal).success) {
    issues.push({ path, message: `port "${spec}" must be "external:internal" (TCP), e.g. "8080:80"` });
    return undefined;
  }
  return { internal, external };
}

function composeRestart(spec: string | undefined, path: (string | number)[], issues: FileIssue[]): RestartPolicy {
  if (spec === undefined || spec === 'no') return { name: 'never' };
  if (spec === 'always' || spec === 'unless-stopped') return { name: 'always' };
  const m = /^on-failure(?::(\d+))?$/.exec(spec);
  if (m)
    return m[1] !== undefined && Number(m[1]) > 0
      ? { name: 'on-failure', maximum_retry_count: Number(m[1]) }
      : { name: 'on-failure' };
  issues.push({ path, message: `restart "${spec}" must be no, always, unless-stopped or on-failure[:N]` });
  return { name: 'never' };
}

function parseCompose(services: unknown, prefix: (string | number)[]): FileResult<Record<string, Application>> {
  const file = z.record(ContainerName, ComposeService).safeParse(services);
  if (!file.success)
    return {
      ok: false,
      issues: zodIssues(file.error, prefix, { format: 'compose', applicationDepth: prefix.length + 1 }),
    };
  const issues: FileIssue[] = [];
  const ports = new Map<string, ContainerPort[]>();
  for (const [name, svc] of Object.entries(file.data)) {
    const list: ContainerPort[] = [];
    (svc.ports ?? []).forEach((p, i) => {
      const port = composePort(p, [...prefix, name, 'ports', i], issues);
      if (port !== undefined) list.push(port);
    });
    ports.set(name, list);
  }
  const out: Record<string, Application> = {};
  for (const [name, svc] of Object.entries(file.data)) {
    const at = (...p: (string | number)[]) => [...prefix, name, ...p];
    const environment: Record<string, string> = {};
    if (Array.isArray(svc.environment)) {
      svc.environment.forEach((kv, i) => {
        const eq = kv.indexOf('=');
        if (eq <= 0) issues.push({ path: at('environment', i), message: `"${kv}" must be NAME=value` });
        else if (!isSafeKey(kv.slice(0, eq)))
          issues.push({ path: at('environment', i), message: RESERVED_KEY_MESSAGE });
        else environment[kv.slice(0, eq)] = kv.slice(eq + 1);
      });
    } else {
      for (const [k, v] of Object.entries(svc.environment ?? {})) environment[k] = String(v);
    }
    const links: ContainerLink[] = [];
    (svc.links ?? []).forEach((spec, i) => {
      const [target = '', alias = target] = spec.split(':');
      const targetPorts = ports.get(target);
      if (targetPorts === undefined) {
        issues.push({ path: at('links', i), message: `links to "${target}", which is not a service in this file` });
      } else if (targetPorts.length === 0) {
        issues.push({
          path: at('links', i),
          message: `links to "${target}", which publishes no ports (Flocker links connect to published ports)`,
        });
      } else {
        for (const p of targetPorts) links.push({ alias, local_port: p.internal, remote_port: p.external });
      }
    });
    const v = svc.volumes?.[0];
    const volume = v === undefined ? undefined : composeVolume(v, at('volumes', 0), issues);
    const memory = svc.mem_limit === undefined ? undefined : size(svc.mem_limit, at('mem_limit'), issues, 1);
    const command =
      svc.command === undefined
        ? undefined
        : typeof svc.command === 'string'
          ? ['/bin/sh', '-c', svc.command]
          : svc.command;
    out[name] = {
      image: svc.image,
      ports: ports.get(name) ?? [],
      environment,
      links,
      ...(volume !== undefined ? { volume } : {}),
      restart_policy: composeRestart(svc.restart, at('restart'), issues),
      ...(svc.cpu_shares !== undefined ? { cpu_shares: svc.cpu_shares } : {}),
      ...(memory !== undefined ? { memory_limit: memory } : {}),
      ...(command !== undefined ? { command_line: command } : {}),
    };
  }
  return issues.length > 0 ? { ok: false, issues } : { ok: true, value: out };
}

/**
 * A Compose volume: `/path` (a Flocker volume named after the application) or
 * `name:/path[:rw]` (the Flocker volume `name`). Host paths and read-only mounts are refused.
 */
function composeVolume(
  spec: string,
  path: (string | number)[],
  issues: FileIssue[],
): Application['volume'] | undefined {
  const refuse = (message: string) => {
    issues.push({ path, message });
    return undefined;
  };
  const parts = spec.split(':');
  const [first = '', second, mode] = parts;
  if (parts.length === 1) {
    return first.startsWith('/')
      ? { mountpoint: first }
      : refuse(`volume "${spec}" must be a container path (/data) or name:/path (pgdata:/var/lib/postgresql/data)`);
  }
  if (parts.length > 3 || second === undefined) return refuse(`volume "${spec}" must be name:/path or /path`);
  if (mode !== undefined && mode !== 'rw') {
    return refuse(
      mode === 'ro'
        ? `volume "${spec}": Flocker volumes are mounted read-write (drop ":ro")`
        : `volume "${spec}": the mode "${mode}" is not supported (only rw)`,
    );
  }
  if (/^[./~]/.test(first)) {
    return refuse(
      `volume "${spec}" mounts a host path, which does not move with the container: use a volume name (data:${second}) or just ${second}`,
    );
  }
  const problem = volumeNameProblem(first);
  if (problem !== undefined) return refuse(`volume "${spec}": ${problem}`);
  if (!second.startsWith('/')) return refuse(`volume "${spec}": the container path "${second}" must be absolute`);
  return { name: first, mountpoint: second };
}

/** Reads a deployment file: node (address or UUID) → application names, one node per application. */
export function parseDeploymentFile(doc: unknown): FileResult<Map<string, string>> {
  const parsed = DeploymentFile.safeParse(doc);
  if (!parsed.success) return { ok: false, issues: zodIssues(parsed.error) };
  const where = new Map<string, string>();
  const issues: FileIssue[] = [];
  for (const [node, names] of Object.entries(parsed.data.nodes)) {
    const list = typeof names === 'string' ? [names] : names;
    list.forEach((name, i) => {
      const other = where.get(name);
      if (other !== undefined) {
        issues.push({
          path: ['nodes', node, ...(typeof names === 'string' ? [] : [i])],
          message: `application "${name}" is already deployed on ${other}; an application runs on one node`,
        });
      } else where.set(name, node);
    });
  }
  return issues.length > 0 ? { ok: false, issues } : { ok: true, value: where };
}

export function formatIssuePath(path: readonly (string | number)[]): string {
  return path.length === 0 ? '(top level)' : path.map((p) => String(p)).join('.');
}

/**
 * What a deployment will do, pure: the applications the files deploy against the
 * containers configured now. A deployment replaces the whole container configuration,
 * so every configured container the files do not deploy is removed; the plan says so
 * before anything is applied (and is all that `--dry-run` does). Also the reading of
 * the container agents' errors while `--wait` waits.
 */
import {
  type Application,
  CONTAINER_ERRORS_NEEDING_ACTION,
  type ContainerConfiguration,
  type ContainerError,
  type ContainerState,
  type DatasetConfiguration,
  formatSize,
  METADATA_NAME_KEY,
  type NodeSummary,
  UUID_SHAPED,
} from '@flocker/api';
import { visible } from '../format';

export interface PlanEntry {
  name: string;
  image: string;
  /** The node's address (or the deployment file's key when no node has it). */
  node: string;
  /** What changes, e.g. `node 10.0.0.1 → 10.0.0.2`, `image a → b`; empty for added and removed. */
  changes: string[];
}

export interface DeployPlan {
  added: PlanEntry[];
  changed: PlanEntry[];
  removed: PlanEntry[];
  unchanged: PlanEntry[];
  /** Deployment-file node keys that name no known node (the control service will refuse them). */
  unknownNodes: string[];
  /** Applications whose maximum_size is smaller than their existing volume's (the control service refuses: TD-3). */
  shrinks: string[];
  /**
   * Volumes the deploy would make (no live volume has the name) whose name is shaped like a dataset id: refused, as
   * `flocker volumes create` refuses one (review TN F1: such a name makes "name or id" ambiguous).
   */
  idShapedVolumes: { application: string; volume: string; namedAfterApplication: boolean }[];
}

/** A deployment file's node key → a node UUID: the UUID itself or the address a node reports. */
export function resolveNode(key: string, nodes: readonly NodeSummary[]): string | undefined {
  const byUuid = nodes.find((n) => n.uuid === key.toLowerCase());
  if (byUuid !== undefined) return byUuid.uuid;
  const byHost = nodes.filter((n) => n.host === key);
  return byHost.length === 1 ? byHost[0]?.uuid : undefined;
}

const same = (a: unknown, b: unknown) => JSON.stringify(a ?? null) === JSON.stringify(b ?? null);
const sorted = <T>(xs: readonly T[]) => [...xs].map((x) => JSON.stringify(x)).sort();

function differences(
  name: string,
  app: Application,
  current: ContainerConfiguration,
  volumeNames: ReadonlyMap<string, string>,
  host: (uuid: string) => string,
  node: string | undefined,
  key: string,
): string[] {
  const out: string[] = [];
  if (node !== current.node_uuid) {
    out.push(
      `node ${host(current.node_uuid)} → ${node === undefined ? `${key} (not known)` : host(node)}${current.volumes.length > 0 ? ' (its volume moves with it)' : ''}`,
    );
  }
  if (app.image !== current.image) out.push(`image ${current.image} → ${app.image}`);
  if (!same(sorted(app.ports), sorted(current.ports))) out.push('ports');
  if (!same(app.environment, current.environment)) out.push('environment');
  if (!same(sorted(app.links), sorted(current.links))) out.push('links');
  const v = current.volumes[0];
  const was = v === undefined ? undefined : `${volumeNames.get(v.dataset_id) ?? v.dataset_id}:${v.mountpoint}`;
  const now = app.volume === undefined ? undefined : `${app.volume.name ?? name}:${app.volume.mountpoint}`;
  if (was !== now) out.push(`volume ${was ?? 'none'} → ${now ?? 'none'}`);
  if (!same(app.restart_policy, current.restart_policy)) out.push('restart_policy');
  if (app.cpu_shares !== current.cpu_shares) out.push('cpu_shares');
  if (app.memory_limit !== current.memory_limit) out.push('mem_limit');
  if (!same(app.command_line, current.command_line)) out.push('command_line');
  return out;
}

export function deployPlan(
  apps: Readonly<Record<string, Application>>,
  placement: ReadonlyMap<string, string>,
  configured: readonly ContainerConfiguration[],
  nodes: readonly NodeSummary[],
  datasets: readonly DatasetConfiguration[],
): DeployPlan {
  const hosts = new Map(nodes.map((n) => [n.uuid, n.host]));
  const host = (uuid: string) => hosts.get(uuid) ?? uuid;
  const volumeNames = new Map<string, string>();
  for (const d of datasets) {
    const n = d.metadata[METADATA_NAME_KEY];
    if (n !== undefined) volumeNames.set(d.dataset_id, n);
  }
  // The size of the volume compose uses: the first live dataset of that name, with or without a size (review FR-9:
  // skipping unsized ones showed a grow, or missed a refusal, for a volume compose leaves as it is). Undefined: unsized.
  const sizes = new Map<string, number | undefined>();
  for (const d of datasets) {
    const n = d.metadata[METADATA_NAME_KEY];
    if (n !== undefined && !d.deleted && !sizes.has(n)) sizes.set(n, d.maximum_size ?? undefined);
  }
  const plan: DeployPlan = {
    added: [],
    changed: [],
    removed: [],
    unchanged: [],
    unknownNodes: [],
    shrinks: [],
    idShapedVolumes: [],
  };
  const current = new Map(configured.map((c) => [c.name, c]));
  for (const [name, key] of placement) {
    const app = apps[name];
    if (app === undefined) continue;
    const node = resolveNode(key, nodes);
    if (node === undefined && !plan.unknownNodes.includes(key)) plan.unknownNodes.push(key);
    const where = node === undefined ? key : host(node);
    // An existing volume given another size (TD-3): compose grows it, or refuses a smaller one.
    const volumeName = app.volume === undefined ? undefined : (app.volume.name ?? name);
    const had = volumeName === undefined ? undefined : sizes.get(volumeName);
    const asked = app.volume?.maximum_size;
    // The control service's compose makes a volume no live dataset is named as; an existing one is only used.
    if (volumeName !== undefined && !sizes.has(volumeName) && UUID_SHAPED.test(volumeName)) {
      plan.idShapedVolumes.push({
        application: name,
        volume: volumeName,
        namedAfterApplication: app.volume?.name === undefined,
      });
    }
    const resize: string[] = [];
    if (had !== undefined && asked !== undefined && asked > had)
      resize.push(`maximum_size ${formatSize(had)} → ${formatSize(asked)} (the volume grows)`);
    if (had !== undefined && asked !== undefined && asked < had)
      plan.shrinks.push(
        `${name}: maximum_size ${formatSize(asked)} is smaller than the volume ${volumeName} (${formatSize(had)}): volumes do not shrink, the deploy will be refused`,
      );
    const was = current.get(name);
    if (was === undefined) {
      plan.added.push({ name, image: app.image, node: where, changes: resize });
      continue;
    }
    const changes = [...differences(name, app, was, volumeNames, host, node, key), ...resize];
    (changes.length > 0 ? plan.changed : plan.unchanged).push({ name, image: app.image, node: where, changes });
  }
  for (const c of configured) {
    if (!placement.has(c.name))
      plan.removed.push({ name: c.name, image: c.image, node: host(c.node_uuid), changes: [] });
  }
  return plan;
}

/** The plan as lines for a terminal: + added, ~ changed, - removed, = unchanged. */
export function formatPlan(plan: DeployPlan, deploymentFile: string): string[] {
  const lines = [
    `plan: ${plan.added.length} to add, ${plan.changed.length} to change, ${plan.removed.length} to remove, ${plan.unchanged.length} unchanged`,
  ];
  for (const e of plan.added)
    lines.push(`  + ${e.name}: ${e.image} on ${e.node}${e.changes.length > 0 ? ` (${e.changes.join('; ')})` : ''}`);
  for (const e of plan.changed) lines.push(`  ~ ${e.name}: ${e.changes.join('; ')}`);
  for (const e of plan.removed) {
    lines.push(`  - ${e.name}: ${e.image} on ${e.node} (configured now, not in ${deploymentFile}: removed)`);
  }
  for (const e of plan.unchanged) lines.push(`  = ${e.name}: ${e.image} on ${e.node}`);
  for (const key of plan.unknownNodes) lines.push(`  ! ${deploymentFile} names node ${key}, which is not known`);
  for (const shrink of plan.shrinks) lines.push(`  ! ${shrink}`);
  for (const v of plan.idShapedVolumes) {
    lines.push(
      `  ! ${v.application}: the new volume ${v.volume}${v.namedAfterApplication ? ' (named after the application)' : ''} is shaped like a volume id, which a new volume's name cannot be (commands take a volume's name or its id): choose another name; the deploy will be refused`,
    );
  }
  // One line each: a line feed in a host or another client's image cannot start another.
  return lines.map(visible);
}

/** What to do about an error that retrying will not fix. */
const REMEDY: Partial<Record<ContainerError['code'], (image: string) => string>> = {
  IMAGE_NOT_FOUND: (image) =>
    `the container agent does not pull images: pull it on that node (docker pull ${image}) or correct image: in the application file`,
  PORT_IN_USE: () => 'free the port on that node or change the external port in the application file',
  NAME_IN_USE: () => 'a container not made by Flocker has this name on that node: remove or rename it',
  INVALID_CONTAINER_SPEC: () => 'Docker refused the settings: correct the application in the application file',
};

export interface StuckContainer {
  name: string;
  node_uuid: string;
  image: string;
  error: ContainerError;
}

/**
 * Pure: the deployed containers whose agent reports an error that needs someone to act.
 * `before` holds the errors reported before this deployment (`name@node` → since): for a
 * container this deployment changed, an error of that same streak is the old
 * configuration's and is ignored (the agent starts a new streak for a new spec).
 */
export function stuckContainers(
  configured: readonly ContainerConfiguration[],
  state: readonly ContainerState[],
  changed: ReadonlySet<string>,
  before: ReadonlyMap<string, string>,
): StuckContainer[] {
  const out: StuckContainer[] = [];
  for (const c of configured) {
    const s = state.find((x) => x.name === c.name && x.node_uuid === c.node_uuid);
    const error = s?.error;
    if (s === undefined || error === undefined || s.running || !CONTAINER_ERRORS_NEEDING_ACTION.has(error.code))
      continue;
    if (changed.has(c.name) && before.get(`${c.name}@${c.node_uuid}`) === error.since) continue;
    out.push({ name: c.name, node_uuid: c.node_uuid, image: c.image, error });
  }
  return out;
}

/** `name@node` → since of every error reported now (see stuckContainers). */
export function errorStreaks(state: readonly ContainerState[]): Map<string, string> {
  return new Map(state.flatMap((s) => (s.error === undefined ? [] : [[`${s.name}@${s.node_uuid}`, s.error.since]])));
}

export function describeStuck(s: StuckContainer, host: string): string {
  const remedy = REMEDY[s.error.code]?.(s.image);
  return visible(
    `${s.name} cannot start on ${host}: ${s.error.code}: ${s.error.message}${remedy !== undefined ? ` (${remedy})` : ''}`,
  );
}

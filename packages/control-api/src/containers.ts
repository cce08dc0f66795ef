/**
 * Flocker's container rules as pure functions on the immutable configuration:
 * create, move, delete and compose (flocker-deploy). No I/O; routes call these
 * through ControlState.mutate.
 *
 * Containers use their volume through the Docker plugin on their node, which names
 * a volume by the dataset's metadata.name. Moving a container moves its dataset: at
 * once when nobody holds the dataset's lease, else (the old node's container still
 * running) the plugin on the new node moves it once the old one let go.
 */
import { randomUUID } from 'node:crypto';
import {
  type Application,
  ContainerConfiguration,
  type DatasetConfiguration,
  formatIssuePath,
  formatSize,
  METADATA_NAME_KEY,
  parseApplicationFile,
  parseDeploymentFile,
} from '@flocker/api';
import { type Applied, type Configuration, liveLease } from './configuration';
import { type DataNodeRule, keepDataNode, movedTo } from './dataNode';
import { ConfigurationError, INVALID_REQUEST_MAX_ISSUES } from './errors';
import { requireNewName } from './names';
import { deleteEntry, setEntry } from './PersistentMap';

const EMPTY: ReadonlyMap<string, ContainerConfiguration> = new Map();

export function containersOf(config: Configuration): ReadonlyMap<string, ContainerConfiguration> {
  return config.containers ?? EMPTY;
}

function withContainers(config: Configuration, containers: ReadonlyMap<string, ContainerConfiguration>): Configuration {
  return { ...config, version: config.version + 1, containers };
}

function requireNode(config: Configuration, uuid: string): void {
  if (!config.nodes.has(uuid)) {
    throw new ConfigurationError(
      'UNKNOWN_NODE',
      `The node ${uuid} is not known: a node becomes known when its dataset agent first reports.`,
    );
  }
}

function requireContainer(config: Configuration, name: string): ContainerConfiguration {
  const c = containersOf(config).get(name);
  if (c === undefined) throw new ConfigurationError('CONTAINER_NOT_FOUND', `No container named ${name} is configured.`);
  return c;
}

/** The checks of one container against itself and the others (all but `except`). */
function checkContainer(
  config: Configuration,
  c: ContainerConfiguration,
  others: Iterable<ContainerConfiguration>,
): void {
  const aliases = new Set<string>();
  const localPorts = new Set<number>();
  for (const link of c.links) {
    if (aliases.has(link.alias.toLowerCase())) {
      throw new ConfigurationError(
        'LINK_ALIAS_COLLISION',
        `The container ${c.name} has two links with the alias ${link.alias}.`,
      );
    }
    if (localPorts.has(link.local_port)) {
      throw new ConfigurationError(
        'LINK_PORT_COLLISION',
        `The container ${c.name} has two links with local port ${link.local_port}.`,
      );
    }
    aliases.add(link.alias.toLowerCase());
    localPorts.add(link.local_port);
  }
  const external = new Set<number>();
  for (const p of c.ports) {
    if (external.has(p.external)) {
      throw new ConfigurationError(
        'CONTAINER_PORT_COLLISION',
        `The container ${c.name} publishes external port ${p.external} twice.`,
      );
    }
    external.add(p.external);
  }
  const volume = c.volumes[0];
  for (const o of others) {
    // External ports are unique across the cluster (as in Flocker): links find their target by port.
    const clash = o.ports.find((p) => external.has(p.external));
    if (clash !== undefined) {
      throw new ConfigurationError(
        'CONTAINER_PORT_COLLISION',
        `External port ${clash.external} is already used by the container ${o.name}.`,
      );
    }
    if (volume !== undefined && o.volumes.some((v) => v.dataset_id === volume.dataset_id)) {
      throw new ConfigurationError(
        'DATASET_IN_USE',
        `The dataset ${volume.dataset_id} is already used by the container ${o.name}.`,
      );
    }
  }
  if (volume !== undefined) volumeDataset(config, volume.dataset_id);
}

function volumeDataset(config: Configuration, id: string): DatasetConfiguration {
  const d = config.datasets.get(id);
  if (d === undefined || d.deleted)
    throw new ConfigurationError('DATASET_NOT_FOUND', `No dataset with id ${id} exists.`);
  if (d.metadata[METADATA_NAME_KEY] === undefined) {
    throw new ConfigurationError(
      'DATASET_NOT_A_VOLUME',
      `The dataset ${id} has no metadata.name: containers use datasets as Docker volumes, which the plugin finds by that name. Create the dataset with metadata {"name": "<volume name>"}.`,
    );
  }
  return d;
}

export function createContainer(config: Configuration, c: ContainerConfiguration): Applied<ContainerConfiguration> {
  const containers = containersOf(config);
  if (containers.has(c.name))
    throw new ConfigurationError('CONTAINER_NAME_COLLISION', `A container named ${c.name} already exists.`);
  requireNode(config, c.node_uuid);
  checkContainer(config, c, containers.values());
  const volume = c.volumes[0];
  if (volume !== undefined) {
    const d = volumeDataset(config, volume.dataset_id);
    if (d.primary !== c.node_uuid) {
      throw new ConfigurationError(
        'DATASET_ON_DIFFERENT_NODE',
        `The dataset ${d.dataset_id} is on node ${d.primary}, not on ${c.node_uuid}.`,
      );
    }
  }
  return { config: withContainers(config, setEntry(containers, c.name, c)), result: c, status: 201 };
}

/**
 * The dataset follows its container when nothing pins it elsewhere (see the file comment), with the
 * node that may hold its data recorded (dataNode.ts).
 */
function followDataset(
  config: Configuration,
  c: ContainerConfiguration,
  now: number,
  dataNode: DataNodeRule,
): Configuration {
  const volume = c.volumes[0];
  if (volume === undefined) return config;
  const d = config.datasets.get(volume.dataset_id);
  if (d === undefined || d.deleted || d.primary === c.node_uuid) return config;
  const lease = liveLease(config, d.dataset_id, now);
  if (lease !== undefined && lease.node_uuid !== c.node_uuid) return config;
  return {
    ...config,
    version: config.version + 1,
    datasets: setEntry(config.datasets, d.dataset_id, movedTo(d, c.node_uuid, dataNode)),
  };
}

export function moveContainer(
  config: Configuration,
  name: string,
  nodeUuid: string,
  now: number,
  dataNode: DataNodeRule = keepDataNode,
): Applied<ContainerConfiguration> {
  const current = requireContainer(config, name);
  if (current.node_uuid === nodeUuid) return { config, result: current, status: 200 };
  requireNode(config, nodeUuid);
  const next: ContainerConfiguration = { ...current, node_uuid: nodeUuid };
  const moved = withContainers(config, setEntry(containersOf(config), name, next));
  return { config: followDataset(moved, next, now, dataNode), result: next, status: 200 };
}

export function deleteContainer(config: Configuration, name: string): Applied<ContainerConfiguration> {
  const current = requireContainer(config, name);
  return { config: withContainers(config, deleteEntry(containersOf(config), name)), result: current, status: 200 };
}

/** Resolves a deployment file's node key: a node UUID, or the address a node reports. */
export function resolveNodeKey(config: Configuration, key: string): string {
  const lower = key.toLowerCase();
  if (config.nodes.has(lower)) return lower;
  const byHost = [...config.nodes.values()].filter((n) => n.host === key);
  if (byHost.length === 1 && byHost[0] !== undefined) return byHost[0].uuid;
  if (byHost.length > 1) {
    throw new ConfigurationError(
      'AMBIGUOUS_NODE',
      `Several nodes report the address ${key}; name the node by its UUID in the deployment file.`,
    );
  }
  const known = [...config.nodes.values()].map((n) => `${n.host} (${n.uuid})`).join(', ');
  throw new ConfigurationError(
    'UNKNOWN_NODE',
    `The deployment file names node ${key}, which is not known. Known nodes: ${known || 'none'}.`,
  );
}

/** A refused file's error: its first INVALID_REQUEST_MAX_ISSUES issues named, then how many more (T6 F-A). */
function fileError(which: string, issues: { path: (string | number)[]; message: string }[]): ConfigurationError {
  const first = issues[0];
  const named = issues.slice(0, INVALID_REQUEST_MAX_ISSUES).map((i) => `${formatIssuePath(i.path)}: ${i.message}`);
  const more = issues.length - named.length;
  const text = [...named, ...(more > 0 ? [`and ${more} more issue${more === 1 ? '' : 's'}`] : [])].join('; ');
  return new ConfigurationError(
    'INVALID_CONFIGURATION_FILE',
    `The ${which} file is invalid: ${first ? text : 'unknown problem'}`,
  );
}

/**
 * An existing volume an application file gives another maximum_size (review T8, TD-3): grown to a larger one, as
 * updateDataset grows one (its agent resizes it); a smaller one is refused (volumes do not shrink), rather than
 * silently ignored. Unchanged without a size in the file, with the same one, or for a volume without a size, so the
 * same files applied again change nothing.
 */
function resizedForApplication(
  found: DatasetConfiguration,
  volumeName: string,
  asked: number | undefined,
): DatasetConfiguration {
  const had = found.maximum_size ?? undefined;
  // Without a maximum_size the volume has its backend's default size, which may be larger: left as it is.
  if (asked === undefined || had === undefined || asked === had) return found;
  if (asked < had) {
    throw new ConfigurationError(
      'DATASET_SHRINK',
      `The volume ${volumeName} is ${formatSize(had)} (${had} bytes); the application file gives it maximum_size ${formatSize(asked)} (${asked} bytes), and volumes do not shrink: give it at least ${formatSize(had)}, or no maximum_size.`,
    );
  }
  return { ...found, maximum_size: asked };
}

/**
 * flocker-deploy: the configured containers become exactly the deployed applications.
 * A container whose node changed moves (and its volume with it); an application
 * with a volume gets the dataset of that name (the application's own unless the file names
 * one), created on its node if missing, grown if the file gives it a larger maximum_size.
 */
export function compose(
  config: Configuration,
  applicationsDoc: unknown,
  deploymentDoc: unknown,
  now: number,
  newId: () => string = randomUUID,
  dataNode: DataNodeRule = keepDataNode,
): Applied<ContainerConfiguration[]> {
  const apps = parseApplicationFile(applicationsDoc);
  if (!apps.ok) throw fileError('application', apps.issues);
  const deployment = parseDeploymentFile(deploymentDoc);
  if (!deployment.ok) throw fileError('deployment', deployment.issues);
  const placement = new Map<string, string>();
  for (const [name, nodeKey] of deployment.value) {
    // Own keys only: a name such as constructor must not find Object.prototype's.
    if (!Object.hasOwn(apps.value, name)) {
      throw new ConfigurationError(
        'UNKNOWN_APPLICATION',
        `The deployment file deploys ${name}, which the application file does not define.`,
      );
    }
    placement.set(name, resolveNodeKey(config, nodeKey));
  }
  let next = config;
  const wanted: ContainerConfiguration[] = [];
  for (const [name, node] of placement) {
    const app = apps.value[name] as Application;
    let volumes: ContainerConfiguration['volumes'] = [];
    if (app.volume !== undefined) {
      // Compose's name:/path names the volume; else it is named after the application.
      const volumeName = app.volume.name ?? name;
      const found = [...next.datasets.values()].find((d) => !d.deleted && d.metadata[METADATA_NAME_KEY] === volumeName);
      let dataset: DatasetConfiguration;
      if (found === undefined) {
        // A new volume's name: the rule of every create (names.ts); the whole deployment is refused.
        requireNewName('volume', volumeName);
        dataset = {
          dataset_id: newId(),
          primary: node,
          ...(app.volume.maximum_size !== undefined ? { maximum_size: app.volume.maximum_size } : {}),
          metadata: { [METADATA_NAME_KEY]: volumeName },
          deleted: false,
        };
        next = { ...next, version: next.version + 1, datasets: setEntry(next.datasets, dataset.dataset_id, dataset) };
      } else {
        dataset = found;
        const resized = resizedForApplication(found, volumeName, app.volume.maximum_size);
        if (resized !== found)
          next = { ...next, version: next.version + 1, datasets: setEntry(next.datasets, found.dataset_id, resized) };
      }
      volumes = [{ dataset_id: dataset.dataset_id, mountpoint: app.volume.mountpoint }];
    }
    wanted.push({
      name,
      node_uuid: node,
      image: app.image,
      ports: app.ports,
      environment: app.environment,
      links: app.links,
      volumes,
      restart_policy: app.restart_policy,
      ...(app.cpu_shares !== undefined ? { cpu_shares: app.cpu_shares } : {}),
      ...(app.memory_limit !== undefined ? { memory_limit: app.memory_limit } : {}),
      ...(app.command_line !== undefined ? { command_line: app.command_line } : {}),
    });
  }
  // What a file yields must be a container the configuration's own schema reads back: one it refuses would be
  // stored, answered 500 and leave the store unreadable at the next start.
  for (const c of wanted) {
    const parsed = ContainerConfiguration.safeParse(c);
    if (!parsed.success)
      throw fileError(
        'application',
        parsed.error.issues.map((i) => ({
          path: [c.name, ...i.path.filter((p): p is string | number => typeof p !== 'symbol')],
          message: i.message,
        })),
      );
  }
  wanted.forEach((c, i) => checkContainer(next, c, wanted.slice(0, i)));
  let containers = containersOf(next);
  for (const name of containers.keys()) if (!placement.has(name)) containers = deleteEntry(containers, name);
  for (const c of wanted) {
    const old = containers.get(c.name);
    // Unchanged containers keep their object, so the log records only real changes.
    if (old === undefined || JSON.stringify(old) !== JSON.stringify(c)) containers = setEntry(containers, c.name, c);
  }
  if (containers !== containersOf(next)) next = withContainers(next, containers);
  for (const c of wanted) next = followDataset(next, c, now, dataNode);
  return { config: next, result: [...containersOf(next).values()], status: 200 };
}

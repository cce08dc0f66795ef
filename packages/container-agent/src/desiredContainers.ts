/**
 * What Docker should run on this node, as plain data: the configured containers
 * for this node turned into Docker specs, with links resolved to environment
 * variables (as Flocker did) and volumes named by their dataset's metadata.name.
 */
import { createHash } from 'node:crypto';
import {
  containerConfigId,
  METADATA_NAME_KEY,
  type ContainerConfiguration,
  type ContainerLink,
  type DatasetConfiguration,
  type NodeSummary,
} from '@flocker/api';

export interface DockerSpec {
  name: string;
  image: string;
  /** `NAME=value`, sorted. */
  env: string[];
  ports: { internal: number; external: number }[];
  volume?: { name: string; mountpoint: string };
  restartPolicy: { Name: 'no' | 'always' | 'on-failure'; MaximumRetryCount: number };
  cpuShares?: number;
  memory?: number;
  cmd?: string[];
}

export interface DesiredContainer {
  spec: DockerSpec;
  /** Hash of the spec, kept as a label: a container whose label differs is recreated. */
  hash: string;
  /** containerConfigId of the configured container: reported for a container that runs this spec (--wait compares). */
  config?: string;
  /** No volume, or its dataset's primary is this node (not moved elsewhere meanwhile). */
  volumeHere: boolean;
}

/** A container this node cannot run yet, and why. */
export interface Blocked {
  name: string;
  image: string;
  reason: string;
}

/**
 * Flocker's link variables: `<ALIAS>_PORT_<local>_TCP=tcp://host:remote` and the
 * _ADDR/_PORT/_PROTO parts, as Docker's own links name them.
 */
export function linkEnvironment(link: ContainerLink, host: string): Record<string, string> {
  const base = `${link.alias.toUpperCase().replace(/-/g, '_')}_PORT_${link.local_port}`;
  const url = `tcp://${host}:${link.remote_port}`;
  return {
    [base]: url,
    [`${base}_TCP`]: url,
    [`${base}_TCP_ADDR`]: host,
    [`${base}_TCP_PORT`]: String(link.remote_port),
    [`${base}_TCP_PROTO`]: 'tcp',
  };
}

/**
 * The address a link reaches: the node of the container publishing `remote_port`
 * (external ports are unique in the cluster); failing that, this node's own address,
 * as in Flocker.
 */
export function linkHost(
  port: number,
  all: readonly ContainerConfiguration[],
  hosts: ReadonlyMap<string, string>,
  myHost: string,
): string {
  const target = all.find((c) => c.ports.some((p) => p.external === port));
  return (target !== undefined ? hosts.get(target.node_uuid) : undefined) ?? myHost;
}

export function specHash(spec: DockerSpec): string {
  return createHash('sha256').update(JSON.stringify(spec)).digest('hex').slice(0, 16);
}

export function desiredContainers(
  me: string,
  containers: readonly ContainerConfiguration[],
  datasets: readonly DatasetConfiguration[],
  nodes: readonly NodeSummary[],
): { desired: DesiredContainer[]; blocked: Blocked[] } {
  const hosts = new Map(nodes.map((n) => [n.uuid, n.host]));
  const myHost = hosts.get(me) ?? '127.0.0.1';
  const desired: DesiredContainer[] = [];
  const blocked: Blocked[] = [];
  for (const c of containers) {
    if (c.node_uuid !== me) continue;
    const env: Record<string, string> = {};
    for (const link of c.links)
      Object.assign(env, linkEnvironment(link, linkHost(link.remote_port, containers, hosts, myHost)));
    Object.assign(env, c.environment);
    let volume: DockerSpec['volume'];
    let volumeHere = true;
    const v = c.volumes[0];
    if (v !== undefined) {
      const d = datasets.find((x) => x.dataset_id === v.dataset_id && !x.deleted);
      const name = d?.metadata[METADATA_NAME_KEY];
      if (name === undefined) {
        blocked.push({
          name: c.name,
          image: c.image,
          reason: `its dataset ${v.dataset_id} ${d === undefined ? 'does not exist' : 'has no metadata.name (volume name)'}`,
        });
        continue;
      }
      volume = { name, mountpoint: v.mountpoint };
      volumeHere = d?.primary === me;
    }
    const rp = c.restart_policy;
    const spec: DockerSpec = {
      name: c.name,
      image: c.image,
      env: Object.entries(env)
        .map(([k, val]) => `${k}=${val}`)
        .sort(),
      ports: [...c.ports].sort((a, b) => a.internal - b.internal || a.external - b.external),
      ...(volume !== undefined ? { volume } : {}),
      restartPolicy:
        rp.name === 'never'
          ? { Name: 'no', MaximumRetryCount: 0 }
          : rp.name === 'always'
            ? { Name: 'always', MaximumRetryCount: 0 }
            : { Name: 'on-failure', MaximumRetryCount: rp.maximum_retry_count ?? 0 },
      ...(c.cpu_shares !== undefined ? { cpuShares: c.cpu_shares } : {}),
      ...(c.memory_limit !== undefined ? { memory: c.memory_limit } : {}),
      ...(c.command_line !== undefined ? { cmd: c.command_line } : {}),
    };
    desired.push({ spec, hash: specHash(spec), config: containerConfigId(c), volumeHere });
  }
  return { desired, blocked };
}

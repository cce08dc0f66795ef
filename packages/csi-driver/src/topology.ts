/**
 * The pure decisions of CSI topology and capacity: a node's storage zone (what its dataset
 * agent reports) as a topology segment, which live node a new volume goes to under a
 * TopologyRequirement, and what GetCapacity answers. No I/O here.
 */
import { createHash } from 'node:crypto';
import { MINIMUM_DATASET_SIZE } from '@flocker/api';
import { status } from '@grpc/grpc-js';
import { CsiError } from './mapping';

/** The one topology key: the storage zone, within which a volume moves between nodes without copying. */
export const TOPOLOGY_ZONE_KEY = 'topology.flocker.clusterhq.io/zone';

/** CreateVolume refuses smaller limits (Flocker's minimum dataset size); GetCapacity's minimum_volume_size. */
export const MINIMUM_VOLUME_SIZE = MINIMUM_DATASET_SIZE;

/** What GetCapacity answers for a node whose backend gives neither free bytes nor a largest volume. */
export const UNBOUNDED_CAPACITY = Number.MAX_SAFE_INTEGER;

/** Topology segments: key → value. */
export type Segments = Readonly<Record<string, string>>;

/** A CSI segment value: at most 63 characters, alphanumeric at both ends, `-_.` or alphanumerics between. */
const SEGMENT_VALUE = /^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$/;

/**
 * A zone as a segment value: itself when CSI allows it (a loopback pool's UUID, an EBS or
 * Cinder availability zone), else `z-` and a digest of it, so that equal zones stay equal.
 */
export function zoneSegment(zone: string): string {
  return SEGMENT_VALUE.test(zone) ? zone : `z-${createHash('sha256').update(zone).digest('hex').slice(0, 40)}`;
}

/** The topology of a node reporting `zone`; undefined for a node that reports none (an older agent, no zone known). */
export function nodeTopology(zone: string | undefined): Segments | undefined {
  return zone === undefined ? undefined : { [TOPOLOGY_ZONE_KEY]: zoneSegment(zone) };
}

/**
 * Whether a node of topology `node` lies in the `requested` segments: the node has every key
 * asked for (keys compare case-insensitively, as the spec says), with the same value. An
 * empty request matches every node; a node without topology matches only that.
 */
export function inTopology(node: Segments | undefined, requested: Segments): boolean {
  const own = new Map(Object.entries(node ?? {}).map(([k, v]) => [k.toLowerCase(), v]));
  return Object.entries(requested).every(([k, v]) => own.get(k.toLowerCase()) === v);
}

export interface TopologyRequirement {
  readonly requisite: readonly Segments[];
  readonly preferred: readonly Segments[];
}

/** A live node CreateVolume may put a volume on. */
export interface PlacementNode {
  readonly uuid: string;
  readonly zone?: string;
  /** How many volumes it has now (the tie-breaker: fewest first). */
  readonly volumes: number;
}

function leastLoaded<T extends PlacementNode>(nodes: readonly T[]): T | undefined {
  return [...nodes].sort((a, b) => a.volumes - b.volumes || (a.uuid < b.uuid ? -1 : a.uuid > b.uuid ? 1 : 0))[0];
}

/**
 * The node a new volume goes to (its primary; the volume is then accessible from that node's
 * zone). The spec's order: the preferred topologies first to last (each limited to the
 * requisite ones when those are given), then any requisite topology, then (no requisite) any
 * node; among the nodes of one step, the one with the fewest volumes. A requisite no live
 * node lies in is RESOURCE_EXHAUSTED ("unable to provision in accessible_topology"); no live
 * node at all is UNAVAILABLE (the CO retries).
 */
export function choosePlacement<T extends PlacementNode>(live: readonly T[], req: TopologyRequirement | undefined): T {
  if (live.length === 0) throw new CsiError(status.UNAVAILABLE, 'no live Flocker node to create the volume on');
  const requisite = req?.requisite ?? [];
  const preferred = req?.preferred ?? [];
  const where = (n: T) => nodeTopology(n.zone);
  const allowed =
    requisite.length === 0 ? [...live] : live.filter((n) => requisite.some((t) => inTopology(where(n), t)));
  for (const t of preferred) {
    const chosen = leastLoaded(allowed.filter((n) => inTopology(where(n), t)));
    if (chosen !== undefined) return chosen;
  }
  const chosen = leastLoaded(allowed);
  if (chosen !== undefined) return chosen;
  throw new CsiError(
    status.RESOURCE_EXHAUSTED,
    `no live Flocker node lies in the requisite topologies ${JSON.stringify(requisite)} (live nodes' zones: ${
      [...new Set(live.map((n) => (n.zone === undefined ? 'none' : zoneSegment(n.zone))))].join(', ') || 'none'
    })`,
  );
}

/** The accessible_topology of a volume whose primary reports `zone`: that zone, or none (reachable from every node). */
export function volumeTopology(zone: string | undefined): { segments: Segments }[] {
  const t = nodeTopology(zone);
  return t === undefined ? [] : [{ segments: t }];
}

/** A live node as GetCapacity sees it. */
export interface CapacityNode {
  readonly zone?: string;
  /** Free bytes of its backend, when it has a figure. */
  readonly availableBytes?: number;
  /** The largest volume its backend can create, when known. */
  readonly maxVolumeSize?: number;
}

/**
 * GetCapacity's available_capacity: the smallest figure among the live nodes in `topology`
 * (all live nodes without one), since CreateVolume may put the volume on any of them. A node's
 * figure is its backend's free bytes; a backend without one (EBS, Cinder: the cloud has no
 * free-space figure) is limited only by its largest volume, and without that too by nothing
 * (UNBOUNDED_CAPACITY). No live node in the topology: 0, nothing can be created there.
 */
export function availableCapacity(live: readonly CapacityNode[], topology: Segments | undefined): number {
  const figures = live
    .filter((n) => topology === undefined || inTopology(nodeTopology(n.zone), topology))
    .map((n) => n.availableBytes ?? n.maxVolumeSize ?? UNBOUNDED_CAPACITY);
  return figures.length === 0 ? 0 : Math.min(...figures);
}

/**
 * Why an existing volume (CreateVolume again with its name) does not satisfy `req`: its
 * primary's zone is in none of the requisite topologies. Undefined when it does, when there is
 * no requisite, or when the zone is not known (a retry of the same call must not fail then).
 */
export function topologyConflict(zone: string | undefined, req: TopologyRequirement | undefined): string | undefined {
  const requisite = req?.requisite ?? [];
  if (zone === undefined || requisite.length === 0) return undefined;
  if (requisite.some((t) => inTopology(nodeTopology(zone), t))) return undefined;
  return `it is in zone ${zoneSegment(zone)}, outside the requisite topologies ${JSON.stringify(requisite)}`;
}

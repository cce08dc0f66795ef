/**
 * Serialized response bodies, cached per configuration version / state generation:
 * with 10,000 datasets and 1,000 agents each big body is built once per change and
 * the same Buffer is written to every reader. Bodies are assembled from per-value
 * JSON fragments (datasets and reports are immutable values, each stringified once),
 * so a change costs a string join, not a walk through a serializer.
 * Outgoing bodies are checked against their schemas only when `validate` is on (tests):
 * their parts were validated on the way in, and a check of megabytes per change
 * would dominate the service's time.
 */
import { z } from 'zod';
import { ClusterSnapshot, DatasetConfiguration, DatasetState, NodeSummary } from '@flocker/api';
import { aliveNodes, deriveDatasetState, isAlive, nodeSummaries } from './clusterState';
import { leaseView, liveLease, type StoredLease } from './configuration';
import type { ControlState } from './ControlState';
import { jsonOf } from './json';

interface Cached {
  key: string;
  body: Buffer;
}

export class Views {
  private cache = new Map<string, Cached>();
  private index:
    | { key: string; byPrimary: Map<string, DatasetConfiguration[]>; holders: Map<string, Set<string>>; leaseOrder: Map<string, number> }
    | undefined;

  constructor(
    private readonly state: ControlState,
    private readonly validate = false,
  ) {}

  private memo(name: string, key: string, schema: z.ZodType, build: () => string): Buffer {
    const hit = this.cache.get(name);
    if (hit !== undefined && hit.key === key) return hit.body;
    const json = build();
    if (this.validate) schema.parse(JSON.parse(json));
    const body = Buffer.from(json);
    this.cache.set(name, { key, body });
    return body;
  }

  datasets(): Buffer {
    const config = this.state.configuration;
    return this.memo('datasets', String(config.version), z.array(DatasetConfiguration), () => joinArray(config.datasets.values()));
  }

  /** Depends on node reports and liveness only, so configuration writes do not rebuild it. */
  datasetState(): Buffer {
    const s = this.state;
    return this.memo('datasetState', `${s.instanceId}.${s.stateGeneration}`, z.array(DatasetState), () =>
      JSON.stringify(deriveDatasetState(aliveNodes(s.reportedNodes(), s.now(), s.nodeTimeoutMs))),
    );
  }

  nodes(): Buffer {
    const s = this.state;
    return this.memo('nodes', `${s.instanceId}.${s.stateGeneration}`, z.array(NodeSummary), () =>
      JSON.stringify(nodeSummaries(aliveNodes(s.reportedNodes(), s.now(), s.nodeTimeoutMs))),
    );
  }

  /** Lease lifetimes in a snapshot are rounded to the second it was built; rebuilt at least every second. */
  snapshot(): Buffer {
    const s = this.state;
    const now = s.now();
    return this.memo('snapshot', `${s.generation}@${Math.floor(now / 1000)}`, ClusterSnapshot, () => {
      const leases: string[] = [];
      for (const lease of s.configuration.leases.values()) {
        if (lease.expires_at === null || lease.expires_at > now) leases.push(JSON.stringify(leaseView(lease, now)));
      }
      const nodes: string[] = [];
      for (const uuid of s.reportedNodeIds()) nodes.push(this.nodeStateJson(uuid, now));
      return snapshotJson(s.generation, s.configurationTag, joinArray(s.configuration.datasets.values()), `[${leases.join(',')}]`, `[${nodes.join(',')}]`);
    });
  }

  private nodeStateJson(uuid: string, now: number): string {
    const node = this.state.reportedNode(uuid);
    const json = this.state.reportJson(uuid);
    if (node === undefined || json === undefined) return '';
    // NodeState = the report plus two fields; splice them into the report's JSON.
    const alive = isAlive(node, now, this.state.nodeTimeoutMs);
    return `${json.slice(0, -1)},"alive":${alive},"last_seen":${JSON.stringify(new Date(node.lastSeen).toISOString())}}`;
  }

  /**
   * The snapshot one node needs: datasets whose primary it is or that it holds, their
   * leases, and the states of itself and of the nodes holding those datasets. With
   * many nodes this keeps each long-poll answer small (kilobytes, not megabytes).
   */
  snapshotFor(node: string): string {
    const s = this.state;
    const now = s.now();
    const generation = s.generation;
    if (this.index === undefined || this.index.key !== generation) {
      const byPrimary = new Map<string, DatasetConfiguration[]>();
      for (const d of s.configuration.datasets.values()) {
        const list = byPrimary.get(d.primary);
        if (list === undefined) byPrimary.set(d.primary, [d]);
        else list.push(d);
      }
      const holders = new Map<string, Set<string>>();
      for (const { report } of s.reportedNodes()) {
        for (const m of report.manifestations) {
          const set = holders.get(m.dataset_id);
          if (set === undefined) holders.set(m.dataset_id, new Set([report.uuid]));
          else set.add(report.uuid);
        }
      }
      const leaseOrder = new Map<string, number>();
      for (const id of s.configuration.leases.keys()) leaseOrder.set(id, leaseOrder.size);
      this.index = { key: generation, byPrimary, holders, leaseOrder };
    }
    const { byPrimary, holders, leaseOrder } = this.index;
    const config = s.configuration;
    const datasets = new Map<string, DatasetConfiguration>();
    for (const d of byPrimary.get(node) ?? []) datasets.set(d.dataset_id, d);
    const own = s.reportedNode(node);
    if (own !== undefined) {
      const ids = own.report.manifestations.map((m) => m.dataset_id);
      for (const v of own.report.volumes ?? []) if (v.attached_to === own.report.instance_id) ids.push(v.dataset_id);
      for (const id of ids) {
        const d = config.datasets.get(id);
        if (d !== undefined) datasets.set(id, d);
      }
    }
    const nodeIds = new Set<string>([node]);
    for (const id of datasets.keys()) for (const holder of holders.get(id) ?? []) nodeIds.add(holder);
    // Looked up per dataset (then put in the configuration's lease order), not by scanning every lease per agent.
    const leased: StoredLease[] = [];
    for (const id of datasets.keys()) {
      const lease = liveLease(config, id, now);
      if (lease !== undefined) leased.push(lease);
    }
    if (leased.length > 1) leased.sort((a, b) => (leaseOrder.get(a.dataset_id) ?? 0) - (leaseOrder.get(b.dataset_id) ?? 0));
    const leases = leased.map((l) => JSON.stringify(leaseView(l, now)));
    const nodes: string[] = [];
    for (const id of nodeIds) if (s.reportedNode(id) !== undefined) nodes.push(this.nodeStateJson(id, now));
    const json = snapshotJson(generation, s.configurationTag, joinArray(datasets.values()), `[${leases.join(',')}]`, `[${nodes.join(',')}]`);
    if (this.validate) ClusterSnapshot.parse(JSON.parse(json));
    return json;
  }
}

function joinArray(values: Iterable<object>): string {
  const parts: string[] = [];
  for (const v of values) parts.push(jsonOf(v));
  return `[${parts.join(',')}]`;
}

function snapshotJson(generation: string, tag: string, datasets: string, leases: string, nodes: string): string {
  return `{"generation":${JSON.stringify(generation)},"configuration_tag":${JSON.stringify(tag)},"datasets":${datasets},"leases":${leases},"nodes":${nodes}}`;
}

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
import {
  BackupConfiguration,
  BackupState,
  ClusterSnapshot,
  DatasetConfiguration,
  DatasetState,
  type NodeReport,
  NodeStateSummary,
  SnapshotConfiguration,
  SnapshotState,
} from '@flocker/api';
import { backupConfigurations, deriveBackupState } from './backups';
import { aliveNodes, deriveDatasetState, deriveSnapshotState, isAlive, nodeSummaries } from './clusterState';
import { leaseView, liveLease, type StoredLease } from './configuration';
import type { ControlState } from './ControlState';
import { jsonOf } from './json';
import { PersistentMap } from './PersistentMap';

interface Cached {
  key: string;
  body: Buffer;
}

export class Views {
  private cache = new Map<string, Cached>();
  /** Datasets by primary node, kept up to date from the configuration's changes (not rebuilt per write). */
  private primaries:
    | { datasets: ReadonlyMap<string, DatasetConfiguration>; byPrimary: Map<string, Map<string, DatasetConfiguration>> }
    | undefined;
  /** Nodes holding a manifestation of each dataset, updated per changed report. */
  private holding:
    { stateKey: string; reports: Map<string, NodeReport>; holders: Map<string, Set<string>> } | undefined;
  private leaseOrdering: { leases: ReadonlyMap<string, StoredLease>; order: Map<string, number> } | undefined;

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
    return this.memo('datasets', String(config.version), z.array(DatasetConfiguration), () =>
      joinArray(config.datasets.values()),
    );
  }

  snapshots(): Buffer {
    const config = this.state.configuration;
    return this.memo('snapshots', String(config.version), z.array(SnapshotConfiguration), () =>
      joinArray(config.snapshots?.values() ?? []),
    );
  }

  /** What the backends hold, from alive nodes' reports (like datasetState, not rebuilt by configuration writes). */
  snapshotState(): Buffer {
    const s = this.state;
    return this.memo('snapshotState', `${s.instanceId}.${s.stateGeneration}`, z.array(SnapshotState), () =>
      JSON.stringify(deriveSnapshotState(aliveNodes(s.reportedNodes(), s.now(), s.nodeTimeoutMs))),
    );
  }

  /** Backup requests (issue 20): the snapshots that carry a backup target. */
  backups(): Buffer {
    const config = this.state.configuration;
    return this.memo('backups', String(config.version), z.array(BackupConfiguration), () =>
      JSON.stringify(backupConfigurations(config)),
    );
  }

  /** Backups as the alive agents running them report them. */
  backupState(): Buffer {
    const s = this.state;
    return this.memo('backupState', `${s.instanceId}.${s.stateGeneration}`, z.array(BackupState), () =>
      JSON.stringify(deriveBackupState(aliveNodes(s.reportedNodes(), s.now(), s.nodeTimeoutMs))),
    );
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
    return this.memo('nodes', `${s.instanceId}.${s.stateGeneration}`, z.array(NodeStateSummary), () =>
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
      return snapshotJson(
        s,
        joinArray(s.configuration.datasets.values()),
        `[${leases.join(',')}]`,
        `[${nodes.join(',')}]`,
        snapshotsJson(s.configuration),
      );
    });
  }

  private nodeStateJson(uuid: string, now: number): string {
    const node = this.state.reportedNode(uuid);
    const json = this.state.reportJson(uuid);
    if (node === undefined || json === undefined) return '';
    // NodeState = the report plus alive, last_seen and (while dead) dead_since; splice them into the report's JSON.
    const alive = isAlive(node, now, this.state.nodeTimeoutMs);
    const dead = alive
      ? ''
      : `,"dead_since":${JSON.stringify(new Date(node.lastSeen + this.state.nodeTimeoutMs).toISOString())}`;
    return `${json.slice(0, -1)},"alive":${alive},"last_seen":${JSON.stringify(new Date(node.lastSeen).toISOString())}${dead}}`;
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
    const byPrimary = this.byPrimary();
    const holders = this.holders();
    const leaseOrder = this.leaseOrder();
    const config = s.configuration;
    const datasets = new Map<string, DatasetConfiguration>();
    for (const d of byPrimary.get(node)?.values() ?? []) datasets.set(d.dataset_id, d);
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
    if (leased.length > 1)
      leased.sort((a, b) => (leaseOrder.get(a.dataset_id) ?? 0) - (leaseOrder.get(b.dataset_id) ?? 0));
    const leases = leased.map((l) => JSON.stringify(leaseView(l, now)));
    const nodes: string[] = [];
    for (const id of nodeIds) if (s.reportedNode(id) !== undefined) nodes.push(this.nodeStateJson(id, now));
    const json = snapshotJson(
      {
        generation,
        configurationTag: s.configurationTag,
        nodeTimeoutMs: s.nodeTimeoutMs,
        leaseGraceMs: s.leaseGraceMs,
      },
      joinArray(datasets.values()),
      `[${leases.join(',')}]`,
      `[${nodes.join(',')}]`,
      // Every configured snapshot: few, and a node may have to destroy one of a dataset it never held.
      snapshotsJson(config),
    );
    if (this.validate) ClusterSnapshot.parse(JSON.parse(json));
    return json;
  }

  /**
   * Applies the configuration's changes since the last call to the by-primary index:
   * a write touches a few datasets, so this is a small diff (PersistentMap shares its
   * base between versions), where a rebuild walked all 10,000 datasets per write and
   * left megabytes of garbage behind.
   */
  private byPrimary(): Map<string, Map<string, DatasetConfiguration>> {
    const next = this.state.configuration.datasets;
    const index = this.primaries;
    if (index !== undefined && index.datasets === next) return index.byPrimary;
    const diff = index !== undefined ? PersistentMap.diff(index.datasets, next) : undefined;
    if (index === undefined || diff === undefined || diff.deletes.length + diff.sets.length > 256) {
      const byPrimary = new Map<string, Map<string, DatasetConfiguration>>();
      for (const d of next.values()) addTo(byPrimary, d.primary, d.dataset_id, d);
      this.primaries = { datasets: next, byPrimary };
      return byPrimary;
    }
    const { byPrimary, datasets: prev } = index;
    for (const id of [...diff.deletes, ...diff.sets]) {
      const old = prev.get(id);
      if (old !== undefined) removeFrom(byPrimary, old.primary, id);
    }
    for (const id of diff.sets) {
      const d = next.get(id);
      if (d !== undefined) addTo(byPrimary, d.primary, id, d);
    }
    index.datasets = next;
    return byPrimary;
  }

  /** Holders of each dataset; only the reports that changed since the last call are re-read. */
  private holders(): Map<string, Set<string>> {
    const s = this.state;
    const stateKey = `${s.instanceId}.${s.stateGeneration}`;
    if (this.holding === undefined) this.holding = { stateKey: '', reports: new Map(), holders: new Map() };
    const index = this.holding;
    if (index.stateKey === stateKey) return index.holders;
    const seen = new Set<string>();
    for (const { report } of s.reportedNodes()) {
      seen.add(report.uuid);
      const old = index.reports.get(report.uuid);
      if (old === report) continue;
      if (old !== undefined) for (const m of old.manifestations) removeFrom(index.holders, m.dataset_id, report.uuid);
      for (const m of report.manifestations) addMember(index.holders, m.dataset_id, report.uuid);
      index.reports.set(report.uuid, report);
    }
    for (const [uuid, old] of index.reports) {
      if (seen.has(uuid)) continue;
      for (const m of old.manifestations) removeFrom(index.holders, m.dataset_id, uuid);
      index.reports.delete(uuid);
    }
    index.stateKey = stateKey;
    return index.holders;
  }

  private leaseOrder(): Map<string, number> {
    const leases = this.state.configuration.leases;
    if (this.leaseOrdering?.leases === leases) return this.leaseOrdering.order;
    const order = new Map<string, number>();
    for (const id of leases.keys()) order.set(id, order.size);
    this.leaseOrdering = { leases, order };
    return order;
  }
}

/** Adds `member` to the collection under `key` of a Map of Maps (insertion-ordered) or Sets. */
function addTo<V>(index: Map<string, Map<string, V>>, key: string, member: string, value: V): void {
  const bucket = index.get(key);
  if (bucket === undefined) index.set(key, new Map([[member, value]]));
  else bucket.set(member, value);
}

function addMember(index: Map<string, Set<string>>, key: string, member: string): void {
  const bucket = index.get(key);
  if (bucket === undefined) index.set(key, new Set([member]));
  else bucket.add(member);
}

function removeFrom(
  index: Map<string, { delete(member: string): boolean; readonly size: number }>,
  key: string,
  member: string,
): void {
  const bucket = index.get(key);
  if (bucket === undefined) return;
  bucket.delete(member);
  if (bucket.size === 0) index.delete(key);
}

function joinArray(values: Iterable<object>): string {
  const parts: string[] = [];
  for (const v of values) parts.push(jsonOf(v));
  return `[${parts.join(',')}]`;
}

interface SnapshotHead {
  readonly generation: string;
  readonly configurationTag: string;
  readonly nodeTimeoutMs: number;
  readonly leaseGraceMs: number;
}

/** The configured snapshots as the agent channel's `snapshots` member ('' when none: agents from before them parse strictly). */
function snapshotsJson(config: { readonly snapshots?: ReadonlyMap<string, SnapshotConfiguration> }): string {
  return config.snapshots === undefined || config.snapshots.size === 0
    ? ''
    : `"snapshots":${joinArray(config.snapshots.values())},`;
}

function snapshotJson(head: SnapshotHead, datasets: string, leases: string, nodes: string, snapshots = ''): string {
  const timing = `"node_timeout_seconds":${head.nodeTimeoutMs / 1000},"lease_grace_seconds":${head.leaseGraceMs / 1000}`;
  return `{"generation":${JSON.stringify(head.generation)},"configuration_tag":${JSON.stringify(head.configurationTag)},"datasets":${datasets},${snapshots}"leases":${leases},"nodes":${nodes},${timing}}`;
}

/**
 * Forgetting a retired node (session 18; review FR finding 9, review RV2 finding 6). The file store keeps the identity
 * of every block-backend node that ever reported (node_identities.json): after each restart such a node is declared
 * dead and held as a ghost (NodeReports.declareUnreported: a node-dead event, a dead row, an `n:` entry in every agent
 * view), for ever; and a node named in a dataset's accepted-loss-from marker that never reports again stays named for
 * ever. DELETE /v1/configuration/nodes/:node lets an operator end both for one node.
 *
 * Pure: what the service knows comes in as ForgetFacts. What forgetting does to this process's knowledge of the node
 * is what a restart does to it (no report since the start, no identity, not in the configuration's nodes), so it is as
 * safe as a restart is, with two configuration changes, both in the refusing direction: the node leaves the
 * configuration's nodes (a dataset or lease naming it is refused there until it reports again), and it leaves every
 * accepted-loss-from marker (its branch, should it come back, is kept aside only if a user accepts the loss again).
 * The data-node marker is kept: it may say where a local dataset's data is.
 */
import {
  acceptedLossNodes,
  canonicalId,
  METADATA_ACCEPTED_LOSS_FROM_KEY,
  METADATA_DATA_NODE_KEY,
  NodeUuid,
} from '@flocker/api';
import type { Applied, Configuration } from './configuration';
import { containersOf } from './containers';
import type { NodeIdentity } from './ConfigurationStore';
import { settledLossMarks } from './dataNode';
import { deleteEntry, setEntry } from './PersistentMap';
import { ConfigurationError } from './errors';

/** What the service knows of the nodes, for forgetting one. */
export interface ForgetFacts {
  /** The latest configuration (its nodes, datasets, leases, containers). */
  readonly config: Configuration;
  /** The identities recorded (file store). */
  readonly identities: ReadonlyMap<string, NodeIdentity>;
  /** The host of each node this process holds a report of (its own since this start, or a ghost's), dead or alive. */
  readonly reported: ReadonlyMap<string, string>;
  /** Whether the node counts alive now (a report since this start within the node timeout). */
  alive(uuid: string): boolean;
  /**
   * False for a node held only from the store's read at this start (etcd), not heard from since (ReportedNode.
   * heardSinceStart): not reporting, but not known dead before start + T either. Absent: every reported node was heard.
   */
  heardSinceStart?(uuid: string): boolean;
  /**
   * The datasets whose volume a live node's latest report shows attached to `uuid`'s compute instance (block storage):
   * a new primary force-detaches a volume only from an instance its view shows dead, and that is this node's entry.
   */
  attachedTo(uuid: string): readonly string[];
  /** Whether this process has served for a node timeout: a node that has not reported since is not reporting. */
  readonly pastStartTimeout: boolean;
  readonly nodeTimeoutMs: number;
}

/** A node as the operator named it, resolved: its UUID and the host it is known by, if any. */
export interface ForgetTarget {
  readonly uuid: string;
  readonly host: string | undefined;
}

/** `host <host> (node <uuid>)`, or `node <uuid>` when the host is not known. */
export function nodeName(target: ForgetTarget): string {
  return target.host === undefined ? `node ${target.uuid}` : `host ${target.host} (node ${target.uuid})`;
}

function namedInLossMarker(config: Configuration, uuid: string): boolean {
  for (const d of config.datasets.values()) {
    if (acceptedLossNodes(d.metadata[METADATA_ACCEPTED_LOSS_FROM_KEY]).includes(uuid)) return true;
  }
  return false;
}

function hostOf(facts: ForgetFacts, uuid: string): string | undefined {
  return facts.reported.get(uuid) ?? facts.identities.get(uuid)?.host ?? facts.config.nodes.get(uuid)?.host;
}

/**
 * The node `key` names: a UUID the service knows (configuration, identity, a report since this start, an accepted-loss
 * marker), or the host exactly one such node reported. NODE_NOT_FOUND (404) when none; AMBIGUOUS_NODE (400) when a host
 * names several.
 */
export function resolveForgetTarget(key: string, facts: ForgetFacts): ForgetTarget {
  const id = canonicalId(key);
  if (NodeUuid.safeParse(id).success) {
    const known =
      facts.config.nodes.has(id) ||
      facts.identities.has(id) ||
      facts.reported.has(id) ||
      namedInLossMarker(facts.config, id);
    if (!known) {
      throw new ConfigurationError(
        'NODE_NOT_FOUND',
        `No node ${id} is known (it never reported, or it was forgotten already).`,
      );
    }
    return { uuid: id, host: hostOf(facts, id) };
  }
  const byHost = new Set<string>();
  for (const n of facts.config.nodes.values()) if (n.host === key) byHost.add(n.uuid);
  for (const n of facts.identities.values()) if (n.host === key) byHost.add(n.uuid);
  for (const [uuid, host] of facts.reported) if (host === key) byHost.add(uuid);
  const uuids = [...byHost].sort();
  const only = uuids[0];
  if (only === undefined) {
    throw new ConfigurationError(
      'NODE_NOT_FOUND',
      `No node is known by the host ${key} (it never reported, or it was forgotten already; a UUID names one too).`,
    );
  }
  if (uuids.length > 1) {
    throw new ConfigurationError(
      'AMBIGUOUS_NODE',
      `Several nodes reported the host ${key}: name the one to forget by its UUID (${uuids.join(', ')}).`,
      uuids.map((u) => `host ${key} (node ${u})`),
    );
  }
  return { uuid: only, host: hostOf(facts, only) };
}

/**
 * What must happen before the node may be forgotten, one sentence each (empty: it may be). A node still reporting is
 * not retired; one that is a dataset's primary, holds a lease or has a configured container is still part of the
 * configuration (forgetting it would strand them).
 */
export function forgetRefusals(target: ForgetTarget, facts: ForgetFacts): string[] {
  const { uuid } = target;
  const { config } = facts;
  const seconds = Math.ceil(facts.nodeTimeoutMs / 1000);
  const out: string[] = [];
  if (facts.alive(uuid)) {
    out.push(
      `Its dataset agent is reporting (the node is alive): stop its agents for good (or retire the host), then wait the node timeout (${seconds} s) until it is declared dead.`,
    );
  } else if ((!facts.reported.has(uuid) || facts.heardSinceStart?.(uuid) === false) && !facts.pastStartTimeout) {
    out.push(
      `The control service started less than the node timeout (${seconds} s) ago and the node has not reported since: wait that long (a node that reports is not retired).`,
    );
  }
  for (const d of config.datasets.values()) {
    if (d.deleted || d.primary !== uuid) continue;
    out.push(
      `It is the primary of dataset ${d.dataset_id}: move it to another node (flocker volumes move ${d.dataset_id} <node>) or destroy it.`,
    );
  }
  for (const lease of config.leases.values()) {
    if (lease.node_uuid !== uuid) continue;
    out.push(
      `It holds the lease on dataset ${lease.dataset_id}${lease.pinned === true ? ' (pinned)' : ''}: release it (flocker leases release ${lease.dataset_id}).`,
    );
  }
  for (const id of facts.attachedTo(uuid)) {
    out.push(
      `The volume of dataset ${id} is still attached to its compute instance: wait until the dataset's primary has detached it (its agent does, seeing this node dead), or detach it in the storage backend.`,
    );
  }
  for (const c of containersOf(config).values()) {
    if (c.node_uuid !== uuid) continue;
    out.push(`Container ${c.name} is configured on it: move it to another node or delete it (flocker-deploy).`);
  }
  return out;
}

/** Throws NODE_IN_USE (409), its errors the refusals, when the node may not be forgotten (forgetRefusals). */
export function requireForgettable(target: ForgetTarget, facts: ForgetFacts): void {
  const refusals = forgetRefusals(target, facts);
  if (refusals.length === 0) return;
  throw new ConfigurationError(
    'NODE_IN_USE',
    `${nodeName(target)} may not be forgotten yet: ${refusals.join(' ')}`,
    refusals,
  );
}

/** What forgetting removed from the configuration, and what still names the node. */
export interface ForgottenInConfiguration {
  /** Datasets whose accepted-loss-from marker named it (no longer). */
  readonly acceptedLossDatasets: string[];
  /** Datasets whose data-node marker names it (kept). */
  readonly dataNodeDatasets: string[];
}

/**
 * The configuration without the node: out of its nodes and out of every accepted-loss-from marker (the key goes with
 * its last node). The same configuration (version unchanged) when neither names it: forgetting again is a no-op.
 */
export function forgetNodeInConfiguration(config: Configuration, uuid: string): Applied<ForgottenInConfiguration> {
  const marks = [];
  const dataNodeDatasets: string[] = [];
  for (const d of config.datasets.values()) {
    const marker = d.metadata[METADATA_ACCEPTED_LOSS_FROM_KEY];
    if (marker !== undefined && acceptedLossNodes(marker).includes(uuid))
      marks.push({ datasetId: d.dataset_id, marker, drop: [uuid] });
    if (d.metadata[METADATA_DATA_NODE_KEY] === uuid) dataNodeDatasets.push(d.dataset_id);
  }
  // Deleted datasets' markers too (settledLossMarks skips them): nothing reads them, but the node is to be named nowhere.
  const settled = settledLossMarks(config, marks);
  let next = settled.config;
  const acceptedLossDatasets = [...settled.result];
  for (const m of marks) {
    if (acceptedLossDatasets.includes(m.datasetId)) continue;
    const d = next.datasets.get(m.datasetId);
    if (d === undefined) continue;
    const { [METADATA_ACCEPTED_LOSS_FROM_KEY]: _gone, ...rest } = d.metadata;
    const left = acceptedLossNodes(m.marker).filter((n) => n !== uuid);
    const metadata = left.length === 0 ? rest : { ...rest, [METADATA_ACCEPTED_LOSS_FROM_KEY]: left.join(',') };
    const datasets = setEntry(next.datasets, m.datasetId, { ...d, metadata });
    next = { ...next, version: next === config ? config.version + 1 : next.version, datasets };
    acceptedLossDatasets.push(m.datasetId);
  }
  if (next.nodes.has(uuid)) {
    next = {
      ...next,
      version: next === config ? config.version + 1 : next.version,
      nodes: deleteEntry(next.nodes, uuid),
    };
  }
  return { config: next, result: { acceptedLossDatasets, dataNodeDatasets }, status: 200 };
}

/**
 * The identities worth keeping at load (file store): a node's identity is recorded only once the node is in the
 * configuration's nodes (ControlState.report registers it first), so an identity whose node is not there was forgotten
 * and the service stopped between the configuration's commit and the identity file's rewrite: this finishes it.
 */
export function identitiesToKeep(
  identities: ReadonlyMap<string, NodeIdentity>,
  config: Pick<Configuration, 'nodes'>,
): { keep: Map<string, NodeIdentity>; dropped: string[] } {
  const keep = new Map<string, NodeIdentity>();
  const dropped: string[] = [];
  for (const [uuid, identity] of identities) {
    if (config.nodes.has(uuid)) keep.set(uuid, identity);
    else dropped.push(uuid);
  }
  return { keep, dropped };
}

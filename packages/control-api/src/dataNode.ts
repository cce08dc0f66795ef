/**
 * The data-node marker (issue 24, local storage): in the same commit as every change of a
 * dataset's primary, the control service records in its metadata (@flocker/api
 * METADATA_DATA_NODE_KEY) a node that may hold the dataset's data. A node other than the primary
 * can hold a local dataset's live copy only after its primary changed, and node states are kept
 * in memory: after a restart of this service (or for a dead holder whose report it forgot) the new
 * primary's view shows no holder, and without the marker its agent would make a new, empty dataset
 * which the holder, once back, takes for the live copy and retires its own for. With it the agent
 * waits for a holder to show (dataset-agent localChanges).
 *
 * Pure: what the service knows (reports received since it started, the holders and retainers they
 * list) comes in as DataNodeFacts; configuration.ts and containers.ts take the resulting rule as a
 * function, so they stay pure too.
 */
import {
  acceptedLossNodes,
  type DatasetConfiguration,
  isLocalBackend,
  METADATA_ACCEPT_DATA_LOSS_KEY,
  METADATA_ACCEPT_REPLICA_LOSS_KEY,
  METADATA_ACCEPTED_LOSS_FROM_KEY,
  METADATA_DATA_NODE_KEY,
  METADATA_MAX_LENGTH,
  type NodeReport,
} from '@flocker/api';
import type { ReportedNode } from './clusterState';
import type { Applied, Configuration } from './configuration';
import { setEntry } from './PersistentMap';

/** What the service knows of one dataset where its primary changes. */
export interface DataNodeFacts {
  /** The primary being left. */
  readonly oldPrimary: string;
  /** The primary being moved to. */
  readonly newPrimary: string;
  /** The marker the dataset carries now, if any. */
  readonly marker: string | undefined;
  /** Nodes whose latest report (received since this service started) lists a live copy of it, alive or dead. */
  readonly holders: Iterable<string>;
  /** Nodes whose latest report lists it retained without a live copy (a local node's `retained`). */
  readonly retainers: Iterable<string>;
  /**
   * What backend the node's latest report since this service started says it has: 'local' (a
   * local-backend node), 'other' (a block backend), undefined when it has not reported since.
   */
  readonly backend: (node: string) => 'local' | 'other' | undefined;
}

/**
 * The marker after the move: a node (set it), null (remove it: the service knows for sure nobody
 * holds the data), or undefined (leave the metadata as it is: a block backend's dataset).
 *
 * - The old primary reports a block backend, or has not reported since this service started and
 *   the new primary reports one: unaffected (undefined).
 * - A node known to hold a live copy: that node (the old primary when it is one of them, else the
 *   least uuid: the same answer on every replica).
 * - Else the old primary, when it has not reported since this service started (its report is what
 *   was forgotten); else the current marker, when its node has not reported since either (a move
 *   before it, its data not shown anywhere yet: still where it may be).
 * - Else a node known to retain something of it, chosen as the holders are. After the nodes that
 *   may hold a live copy: a retainer has none to push, and named as the new primary (a replica's
 *   node) its agent would take the marker for itself (review FR).
 * - Otherwise nobody holds it for sure (the old primary reported, listing neither a live nor a
 *   retained copy, no other node lists one, and the marker's node, if any, reported too): null.
 */
export function dataNodeAfterMove(facts: DataNodeFacts): string | null | undefined {
  const { oldPrimary, marker } = facts;
  const backend = facts.backend(oldPrimary);
  if (backend === 'other' || (backend === undefined && facts.backend(facts.newPrimary) === 'other')) return undefined;
  const holder = preferring(oldPrimary, facts.holders);
  if (holder !== undefined) return holder;
  if (backend === undefined) return oldPrimary;
  if (marker !== undefined && marker !== oldPrimary && facts.backend(marker) === undefined) return marker;
  return preferring(oldPrimary, facts.retainers) ?? null;
}

/** `preferred` when it is among `nodes`, else the least of them; undefined when there are none. */
function preferring(preferred: string, nodes: Iterable<string>): string | undefined {
  let least: string | undefined;
  for (const n of nodes) {
    if (n === preferred) return n;
    if (least === undefined || n < least) least = n;
  }
  return least;
}

/** The marker a dataset whose primary changes gets: as dataNodeAfterMove answers (see there). */
export type DataNodeRule = (dataset: DatasetConfiguration, newPrimary: string) => string | null | undefined;

/** The rule when the caller knows nothing (tests of other rules): the metadata stays as it is. */
export const keepDataNode: DataNodeRule = () => undefined;

/**
 * Whether accept-replica-loss, set before a move and not given again with it, stays for that move (session 16,
 * review U2 finding 2: an opt-in kept for ever applied to every later failover, a plain `docker run` then promoted
 * an old replica and acknowledged writes were gone). It stays only when it can have been given for leaving the old
 * primary: that node is dead and its last report (since this service started) lists the live copy (the way before
 * the CLI flag: set the metadata, then move in a second request). Otherwise it was for a move to the old primary
 * that never completed, or is left over: a new move needs its own opt-in (dropping one only asks the user again).
 */
export type ReplicaOptInRule = (dataset: DatasetConfiguration) => boolean;

/** The rule when the caller knows nothing of the nodes: an opt-in not given with the move goes. */
export const dropReplicaOptIn: ReplicaOptInRule = () => false;

/** The rule from what the service knows: the old primary dead (`dead`), its last report listing a live copy. */
export function replicaOptInRule(
  holdersOf: (datasetId: string) => Iterable<string> | undefined,
  dead: (node: string) => boolean,
): ReplicaOptInRule {
  return (d) => dead(d.primary) && [...(holdersOf(d.dataset_id) ?? [])].includes(d.primary);
}

/**
 * The loss opt-ins: each answers one move's refusal, and goes once that move completed or the primary changed. Only
 * an API user may set one (authorization.ts).
 */
export const LOSS_OPT_IN_KEYS: readonly string[] = [METADATA_ACCEPT_REPLICA_LOSS_KEY, METADATA_ACCEPT_DATA_LOSS_KEY];

/**
 * The dataset moved to `primary`, its marker set as `rule` answers (a change of primary only). A
 * local dataset's move (the rule answers) also drops the loss opt-ins: each answers one move's
 * refusal, and kept it would apply to a later one nobody was asked for (accept-data-loss: start the
 * dataset empty in a restart race, review FR; accept-replica-loss: promote an old replica at the
 * next failover, review U2). accept-replica-loss stays where `replicaOptIn` says it was given for
 * this move; an update that moves and sets an opt-in sets it again after this (configuration.ts).
 */
export function movedTo(
  dataset: DatasetConfiguration,
  primary: string,
  rule: DataNodeRule,
  replicaOptIn: ReplicaOptInRule = dropReplicaOptIn,
): DatasetConfiguration {
  if (primary === dataset.primary) return dataset;
  const marker = rule(dataset, primary);
  const had = dataset.metadata[METADATA_DATA_NODE_KEY];
  const optedIn = LOSS_OPT_IN_KEYS.some((k) => Object.hasOwn(dataset.metadata, k));
  if (marker === undefined || ((marker ?? undefined) === had && !optedIn)) return { ...dataset, primary };
  const rest: Record<string, string> = { ...dataset.metadata };
  delete rest[METADATA_DATA_NODE_KEY];
  for (const k of LOSS_OPT_IN_KEYS) delete rest[k];
  const replicaLoss = dataset.metadata[METADATA_ACCEPT_REPLICA_LOSS_KEY];
  if (replicaLoss !== undefined && replicaOptIn(dataset)) rest[METADATA_ACCEPT_REPLICA_LOSS_KEY] = replicaLoss;
  return { ...dataset, primary, metadata: marker === null ? rest : { ...rest, [METADATA_DATA_NODE_KEY]: marker } };
}

/** Where the rule reads what the service knows (ControlState: its node reports and view index). */
export interface DataNodeSources {
  /** The node's latest report, received since this service started (own or through the store). */
  readonly reportedNode: (uuid: string) => ReportedNode | undefined;
  /** Nodes whose latest report lists a live copy of the dataset. */
  readonly holdersOf: (datasetId: string) => Iterable<string> | undefined;
  /** Nodes whose latest report lists the dataset retained. */
  readonly retainersOf: (datasetId: string) => Iterable<string> | undefined;
}

/**
 * A node's backend as its latest report since this service started says ('local': a local-backend
 * node, 'other': a block backend); undefined when it has not reported since.
 */
export function reportedBackend(
  reportedNode: (uuid: string) => ReportedNode | undefined,
): (node: string) => { readonly kind: 'local' | 'other'; readonly name: string } | undefined {
  return (node) => {
    const reported = reportedNode(node);
    if (reported === undefined) return undefined;
    const name = reported.report.backend;
    return { kind: isLocalBackend(name) ? 'local' : 'other', name };
  };
}

/** reportedBackend of a running service (ControlState): its latest node reports, read at each call. */
export function serviceBackend(state: {
  reportedNode(uuid: string): ReportedNode | undefined;
}): ReturnType<typeof reportedBackend> {
  return reportedBackend((uuid) => state.reportedNode(uuid));
}

/** The rule as this service knows the nodes now (read at each move: O(the dataset's holders)). */
export function dataNodeRule(sources: DataNodeSources): DataNodeRule {
  const reported = reportedBackend(sources.reportedNode);
  const backend = (node: string): 'local' | 'other' | undefined => reported(node)?.kind;
  return (dataset, newPrimary) =>
    dataNodeAfterMove({
      oldPrimary: dataset.primary,
      newPrimary,
      marker: dataset.metadata[METADATA_DATA_NODE_KEY],
      holders: sources.holdersOf(dataset.dataset_id) ?? [],
      retainers: sources.retainersOf(dataset.dataset_id) ?? [],
      backend,
    });
}

/** The rule of a running service (ControlState): its node reports and its view index's holders and retainers. */
export function serviceDataNodeRule(state: {
  reportedNode(uuid: string): ReportedNode | undefined;
  readonly nodeViews: {
    holdersOf(datasetId: string): ReadonlySet<string> | undefined;
    retainersOf(datasetId: string): ReadonlySet<string> | undefined;
  };
}): DataNodeRule {
  return dataNodeRule({
    reportedNode: (uuid) => state.reportedNode(uuid),
    holdersOf: (id) => state.nodeViews.holdersOf(id),
    retainersOf: (id) => state.nodeViews.retainersOf(id),
  });
}

/** A marker that may go: the dataset, its primary holding the data, and the marker seen (it must not change before). */
export interface SettledMarker {
  readonly datasetId: string;
  readonly primary: string;
  readonly marker: string;
}

/**
 * The markers a local node's report lets go (U's item 6: a completed move's marker named the old node for ever, read
 * as "the data is there"). Once the primary has the dataset mounted (`mountedOnPrimary`: a "mounted" the service
 * takes as current, built after its agent acted on the move) and no other node holds a live copy (`holders`: the
 * nodes whose latest report lists one), the data is on the primary alone: the marker's purpose (keep the primary
 * from starting an empty copy while a holder is unseen) is met by the primary itself, and the next move records one
 * again. The marked node must have reported since this service started (a node not heard from may still hold a
 * live copy: a source killed after the promote, before its retire). Looked at: datasets the report shows mounted on this node as primary, and datasets marked with this node
 * that its report no longer lists (`previous`: its report before; the old primary retired its copy). O(the report's
 * manifestations); a block node's report is not looked at.
 */
export function markersToSettle(
  config: { readonly datasets: ReadonlyMap<string, DatasetConfiguration> },
  report: NodeReport,
  previous: NodeReport | undefined,
  mountedOnPrimary: (datasetId: string, primary: string) => boolean,
  holders: (datasetId: string) => ReadonlySet<string> | undefined,
  /** Whether the node has reported since this service started (else what it holds is not known). */
  reported: (node: string) => boolean,
): SettledMarker[] {
  if (!isLocalBackend(report.backend)) return [];
  const { candidates } = settleCandidates(report, previous);
  const out: SettledMarker[] = [];
  for (const id of candidates) {
    const d = config.datasets.get(id);
    const marker = d?.metadata[METADATA_DATA_NODE_KEY];
    if (d === undefined || d.deleted || marker === undefined || marker === d.primary) continue;
    // This node is the primary (its report), or the marked node (a report without its copy any more).
    if (d.primary !== report.uuid && marker !== report.uuid) continue;
    const held = holders(id);
    if (held === undefined || held.size !== 1 || !held.has(d.primary)) continue;
    // The marked node's copies are known (its report since this service started lists none live).
    if (marker !== report.uuid && !reported(marker)) continue;
    if (!mountedOnPrimary(id, d.primary)) continue;
    out.push({ datasetId: id, primary: d.primary, marker });
  }
  return out;
}

/**
 * The datasets a local node's report may settle a marker of (markersToSettle, lossMarksToSettle): those it shows
 * mounted (`mounted`), and those its previous report listed and this one does not (it let go of its copy).
 */
function settleCandidates(
  report: NodeReport,
  previous: NodeReport | undefined,
): { mounted: Set<string>; candidates: Set<string> } {
  const mounted = new Set<string>();
  for (const m of report.manifestations) if (m.status === 'mounted') mounted.add(m.dataset_id);
  const candidates = new Set(mounted);
  if (previous !== undefined && previous.manifestations.length > 0) {
    const listed = new Set(report.manifestations.map((m) => m.dataset_id));
    for (const m of previous.manifestations) if (!listed.has(m.dataset_id)) candidates.add(m.dataset_id);
  }
  return { mounted, candidates };
}

/**
 * The settles (markersToSettle, optInsToSettle, lossMarksToSettle) whose dataset entry in `latest` (the configuration
 * the commit applies them to) is still the one in `seen` (the configuration they were computed on). Review RV finding
 * 6: writes waiting for their commit sit in between, and a move away and one back with a new opt-in leaves the same
 * primary, so the checks on values (primary, marker) pass and the opt-in just given for the move back went with a
 * report of the old era. Entries are immutable (a change makes a new one), so the same entry means nothing changed
 * since; a skipped one is settled at the node's next report. O(settles).
 */
export function stillAsSeen<T extends { readonly datasetId: string }>(
  seen: { readonly datasets: ReadonlyMap<string, DatasetConfiguration> },
  latest: { readonly datasets: ReadonlyMap<string, DatasetConfiguration> },
  settles: readonly T[],
): readonly T[] {
  if (seen.datasets === latest.datasets) return settles;
  return settles.filter((s) => latest.datasets.get(s.datasetId) === seen.datasets.get(s.datasetId));
}

/** The markers removed where the dataset is as `settled` saw it (same primary and marker); the same value when none. */
export function settledDataNodes(config: Configuration, settled: readonly SettledMarker[]): Applied<string[]> {
  let datasets: ReadonlyMap<string, DatasetConfiguration> | undefined;
  const removed: string[] = [];
  for (const s of settled) {
    const d = (datasets ?? config.datasets).get(s.datasetId);
    if (d === undefined || d.deleted || d.primary !== s.primary || d.metadata[METADATA_DATA_NODE_KEY] !== s.marker)
      continue;
    const { [METADATA_DATA_NODE_KEY]: _gone, ...metadata } = d.metadata;
    datasets = setEntry(datasets ?? config.datasets, s.datasetId, { ...d, metadata });
    removed.push(s.datasetId);
  }
  if (datasets === undefined) return { config, result: [], status: 200 };
  return { config: { ...config, version: config.version + 1, datasets }, result: removed, status: 200 };
}

/** A dataset whose loss opt-ins may go: its move to `primary` completed (it must still be the primary). */
export interface SettledOptIn {
  readonly datasetId: string;
  readonly primary: string;
  /**
   * The nodes whose divergent copy the consumed opt-in covers (RV finding 1): recorded in the same commit as the
   * opt-in's removal (METADATA_ACCEPTED_LOSS_FROM_KEY), so that their agent, once back, keeps a copy branched from
   * the primary's aside instead of refusing. Only the data-node marker's node (a failover's old primary, the dead
   * holder mounted over with accept-data-loss), when its latest report lists a live copy or it has not reported since
   * this service started; never another holder: its copy is not the one the user was asked about (review RV2).
   */
  readonly lossFrom?: readonly string[];
}

/**
 * The loss opt-ins a local node's report lets go (review U2 finding 2): the report shows the dataset mounted on this
 * node as its primary, a "mounted" the service takes as current (`mountedOnPrimary`: built after its agent acted on
 * the move). The move the opt-in was given for is then over, and the next one needs its own. Another node still
 * listing a live copy does not keep it (a dead holder's copy, mounted over with accept-data-loss, may never report
 * again). A service killed before the removal's commit removes it at the primary's next report. O(the report's
 * manifestations); a block node's report is not looked at.
 */
export function optInsToSettle(
  config: { readonly datasets: ReadonlyMap<string, DatasetConfiguration> },
  report: NodeReport,
  mountedOnPrimary: (datasetId: string, primary: string) => boolean,
  holders: (datasetId: string) => ReadonlySet<string> | undefined = () => undefined,
  /** Whether the node has reported since this service started: the data-node marker's node is named unless it has and lists no live copy. */
  reported: (node: string) => boolean = () => false,
): SettledOptIn[] {
  if (!isLocalBackend(report.backend)) return [];
  const out: SettledOptIn[] = [];
  for (const m of report.manifestations) {
    if (m.status !== 'mounted') continue;
    const d = config.datasets.get(m.dataset_id);
    if (d === undefined || d.deleted || d.primary !== report.uuid) continue;
    if (!LOSS_OPT_IN_KEYS.some((k) => Object.hasOwn(d.metadata, k))) continue;
    if (!mountedOnPrimary(d.dataset_id, d.primary)) continue;
    // Only the marker's node: the copy the opt-in answered for (a failover's old primary, the dead holder the
    // refusal named). Another node listing a live copy (e.g. a move's source written after its final snapshot,
    // refusing TWO_LIVE_COPIES) holds writes nobody gave up: named, its agent would keep them aside (review RV2).
    const held = holders(d.dataset_id) ?? new Set<string>();
    const marked = d.metadata[METADATA_DATA_NODE_KEY];
    const covered = marked !== undefined && marked !== d.primary && (held.has(marked) || !reported(marked));
    out.push({ datasetId: d.dataset_id, primary: d.primary, ...(covered ? { lossFrom: [marked] } : {}) });
  }
  return out;
}

/** The accepted-loss marker's value naming `nodes` (sorted, at most what a metadata value holds); undefined: none. */
function lossMarkerValue(nodes: Iterable<string>): string | undefined {
  let value = '';
  for (const n of [...new Set(nodes)].sort()) {
    const next = value === '' ? n : `${value},${n}`;
    if (next.length > METADATA_MAX_LENGTH) break;
    value = next;
  }
  return value === '' ? undefined : value;
}

/** The opt-ins removed where the dataset still has the primary `settled` saw; the same value when none. */
export function settledOptIns(config: Configuration, settled: readonly SettledOptIn[]): Applied<string[]> {
  let datasets: ReadonlyMap<string, DatasetConfiguration> | undefined;
  const removed: string[] = [];
  for (const s of settled) {
    const d = (datasets ?? config.datasets).get(s.datasetId);
    if (d === undefined || d.deleted || d.primary !== s.primary) continue;
    if (!LOSS_OPT_IN_KEYS.some((k) => Object.hasOwn(d.metadata, k))) continue;
    const metadata: Record<string, string> = { ...d.metadata };
    for (const k of LOSS_OPT_IN_KEYS) delete metadata[k];
    // The primary, mounted (optInsToSettle), holds the live copy: no divergent one of its own to cover.
    const lossFrom = lossMarkerValue(
      [...acceptedLossNodes(d.metadata[METADATA_ACCEPTED_LOSS_FROM_KEY]), ...(s.lossFrom ?? [])].filter(
        (n) => n !== d.primary,
      ),
    );
    if (lossFrom !== undefined) metadata[METADATA_ACCEPTED_LOSS_FROM_KEY] = lossFrom;
    datasets = setEntry(datasets ?? config.datasets, s.datasetId, { ...d, metadata });
    removed.push(s.datasetId);
  }
  if (datasets === undefined) return { config, result: [], status: 200 };
  return { config: { ...config, version: config.version + 1, datasets }, result: removed, status: 200 };
}

/** An accepted-loss marker whose nodes `drop` may go off it: the marker as seen (it must not change before). */
export interface SettledLossMark {
  readonly datasetId: string;
  readonly marker: string;
  readonly drop: readonly string[];
}

/**
 * The accepted-loss markers' nodes a local node's report lets go (RV finding 1: a stale marker would let a later
 * branch of that node's copy be kept aside silently): a named node that has reported since this service started
 * (`reported`) and whose latest report lists no live copy of the dataset (`holders`: its copy kept aside or
 * retired), or that is the primary and reports it mounted (its copy is the live one: moved back to it, say, it
 * keeps it for good, and a marker left on it would cover a later branch nobody accepted). Looked at: datasets the
 * report shows mounted on this node as primary (every report of the primary: a
 * service killed before the commit removes it at the next one), and datasets the node's previous report listed and
 * this one does not (the named node let go of its copy). A change of primary does not remove it: the named node may
 * still come back. O(the report's manifestations); a block node's report is not looked at.
 */
export function lossMarksToSettle(
  config: { readonly datasets: ReadonlyMap<string, DatasetConfiguration> },
  report: NodeReport,
  previous: NodeReport | undefined,
  holders: (datasetId: string) => ReadonlySet<string> | undefined,
  reported: (node: string) => boolean,
): SettledLossMark[] {
  if (!isLocalBackend(report.backend)) return [];
  const { mounted: mountedHere, candidates } = settleCandidates(report, previous);
  const out: SettledLossMark[] = [];
  for (const id of candidates) {
    const d = config.datasets.get(id);
    const marker = d?.metadata[METADATA_ACCEPTED_LOSS_FROM_KEY];
    if (d === undefined || d.deleted || marker === undefined) continue;
    const held = holders(id);
    const drop = acceptedLossNodes(marker).filter(
      (n) => (reported(n) && held?.has(n) !== true) || (n === d.primary && n === report.uuid && mountedHere.has(id)),
    );
    if (drop.length > 0) out.push({ datasetId: id, marker, drop });
  }
  return out;
}

/** The nodes taken off the markers where each is as `settled` saw it; the same value when none. */
export function settledLossMarks(config: Configuration, settled: readonly SettledLossMark[]): Applied<string[]> {
  let datasets: ReadonlyMap<string, DatasetConfiguration> | undefined;
  const changed: string[] = [];
  for (const s of settled) {
    const d = (datasets ?? config.datasets).get(s.datasetId);
    if (d === undefined || d.deleted || d.metadata[METADATA_ACCEPTED_LOSS_FROM_KEY] !== s.marker) continue;
    const { [METADATA_ACCEPTED_LOSS_FROM_KEY]: _gone, ...rest } = d.metadata;
    const left = lossMarkerValue(acceptedLossNodes(s.marker).filter((n) => !s.drop.includes(n)));
    const metadata = left === undefined ? rest : { ...rest, [METADATA_ACCEPTED_LOSS_FROM_KEY]: left };
    datasets = setEntry(datasets ?? config.datasets, s.datasetId, { ...d, metadata });
    changed.push(s.datasetId);
  }
  if (datasets === undefined) return { config, result: [], status: 200 };
  return { config: { ...config, version: config.version + 1, datasets }, result: changed, status: 200 };
}

/**
 * What the nodes report and whether they are alive: the dataset agents' node reports
 * (with liveness: alive, dead since when, back) and the container agents' container
 * reports, both state rather than configuration (kept in memory; on a shared store,
 * node reports and container reports reach every replica through it).
 */
import type { Logger } from 'winston';
import {
  type ActionError,
  type ContainerReport,
  type ContainerState,
  isLocalBackend,
  type NodeReport,
} from '@flocker/api';
import type { Configuration } from './configuration';
import type { NodeIdentity } from './ConfigurationStore';
import { isAlive, type LivenessClock, liveSeen, type ReportedNode } from './clusterState';
import { type EventRing, nodeBackEvent, nodeDeadEvent } from './events';

/** A container agent reports at least this often; a report older than 3 intervals is stale. */
export const CONTAINER_REPORT_INTERVAL_MS = 10_000;
export const CONTAINER_REPORT_STALE_MS = 3 * CONTAINER_REPORT_INTERVAL_MS;

export interface StoredContainerReport {
  report: ContainerReport;
  /** Wall-clock epoch ms the report came (reported_at, shared): shown, never timed against. */
  lastSeen: number;
  /**
   * When this process heard it (its own report, or a new last_seen through the store), on the monotonic clock:
   * staleness is measured from it (review FR F13: a wall-clock step, or another replica's clock, must not make a fresh
   * report stale nor keep a silent agent's fresh). Absent: lastSeen (then `now` is on the wall clock).
   */
  heardAt?: number;
  /** The last last_seen the store delivered (externalContainers): a different one is news. */
  storeSeen?: number;
}

/** Pure: the containers fresh reports show, with their nodes. `now`: on heardAt's (monotonic) clock. */
export function containerStates(
  reports: ReadonlyMap<string, StoredContainerReport>,
  now: number,
  staleMs = CONTAINER_REPORT_STALE_MS,
): ContainerState[] {
  const out: ContainerState[] = [];
  for (const [node, { report, lastSeen, heardAt }] of reports) {
    if (now - (heardAt ?? lastSeen) > staleMs) continue;
    for (const c of report.containers) {
      out.push({
        name: c.name,
        node_uuid: node,
        image: c.image,
        running: c.running,
        ...(c.error !== undefined ? { error: c.error } : {}),
        // Which configuration it runs (flocker-deploy --wait compares it) and when its node's agent said so (a
        // silent container agent is shown as such): additive members of the v1 entry.
        ...(c.config !== undefined ? { config: c.config } : {}),
        reported_at: new Date(lastSeen).toISOString(),
      });
    }
  }
  return out;
}

export interface NodeReportsOptions {
  nodeTimeoutMs: number;
  /** Wall-clock epoch ms: the lastSeen shown and shared. */
  now: () => number;
  /** Monotonic ms, what liveness and the time dead are measured on; default `now` (tests with one fake clock). */
  mono?: () => number;
  /**
   * When this process started serving (on `mono`): known nodes that never report after it count as dead from
   * startedAt + T.
   */
  startedAt: number;
  logger: Logger;
  events: EventRing;
  /** The committed configuration (lease holders known from it may be declared dead). */
  configuration: () => Configuration;
  /** Node state changed (a report that says something new, a node dead or back): the generation moved. */
  onStateChange: (nodes: readonly string[]) => void;
  /** The set of dead nodes changed: when their leases are due for release may have moved. */
  onDeadNodesChanged: () => void;
  /**
   * A report of an alive node whose only news is its configuration version (both defined): every configuration
   * change anywhere makes each agent's next heartbeat carry a higher one, so at 10,000 nodes this is the usual
   * report. Whether it changes what the service shows (ControlState: it ends, or starts, a hidden stale "mounted").
   * If so (rare: once per move back whose stale report it ends) it is a state change of the node as any other (its
   * view's long-polls wake too: a client waiting on it for D mounted on N reads /v1/state/datasets next,
   * docs/performance.md), and the report is shared with its version; else only the version and the time are kept.
   */
  versionShows?: (uuid: string, report: NodeReport, before: number, after: number) => boolean;
  /** What each node last reported about itself before this start (stores without node reports: the file store). */
  identities?: ReadonlyMap<string, NodeIdentity>;
}

/**
 * A report as kept and answered, and the configuration version it carried (NodeReport.configuration_version):
 * read by the stale-mount rule (ControlState.staleMounts) only, never in a node state the service answers
 * (agents one release behind parse those strictly, docs/compatibility.md).
 */
function withoutVersion(report: NodeReport): { report: NodeReport; version: number | undefined } {
  if (report.configuration_version === undefined) return { report, version: undefined };
  const { configuration_version: version, ...rest } = report;
  return { report: rest, version };
}

/** Whether `received` carries a configuration version later than `held` (a defined one). */
function laterVersion(received: NodeReport, held: number | undefined): boolean {
  const v = received.configuration_version;
  return v !== undefined && held !== undefined && v > held;
}

/**
 * The report object already held when `json` and `version` repeat it for an alive node (a heartbeat with nothing
 * new: no state generation follows), else undefined. Views key on the report object (the stale "mounted" hidden,
 * ControlState.staleMounts; the alive list kept per generation, Views.aliveOf): a new object of the same report in
 * the same generation made a list kept from before it miss what staleMounts hides on the new one (review RC).
 * Without a version (an older agent) a new object always: the session-9 rule takes a later report, even the same, as
 * acted on (mountVerdict), and that ends the hiding, so the key changes.
 */
function sameReport(
  previous: Held | undefined,
  wasAlive: boolean,
  json: string,
  version: number | undefined,
): NodeReport | undefined {
  if (previous === undefined || !wasAlive || version === undefined) return undefined;
  return previous.json === json && previous.version === version ? previous.report : undefined;
}

/**
 * `report` with the fence a liveness-only report states (W7): the agent's own state, known without a look at its
 * backend, so the liveness report's (none: no fence, or one lifted over an hour ago) and not the held report's. A
 * restarted agent lifts a kept fence once its liveness reports are accepted: `flocker status` kept showing 'fenced'.
 */
function withFencing(report: NodeReport, received: NodeReport, stated: boolean): NodeReport {
  if (received.fencing !== undefined) return { ...report, fencing: received.fencing };
  // No fence in it: none only when the report says it states its fence (backend_unseen.fencing_stated; review s27
  // F12). An agent before the marker (before W7: never a fence in a liveness report) said nothing of it: the held
  // fence stays (a 'fenced' node read 'none' and its container agent never saw the lift that restarts the victims).
  // A report read from the store (`stated`) carries the fence its replica resolved so: taken as it is.
  if (!stated && received.backend_unseen?.fencing_stated !== true) return report;
  const { fencing: _held, ...rest } = report;
  return rest;
}

/** What a liveness-only report says (NodeReport.backend_unseen): since when, and for what, its agent waits. */
export type BackendUnseen = NonNullable<NodeReport['backend_unseen']>;

/**
 * The condition as held and shared (review s28 F1): {since, reason}, as every release parses it. fencing_stated is
 * never shared through the store: a replica one release behind parses shared reports strictly (a "corrupt" key there:
 * it never hears the node, declares it dead after T and releases its leases). The fence it decides is in the shared
 * report itself (withFencing resolved it), and a replica reading a report from the store takes that fence as stated.
 */
function heldCondition(c: BackendUnseen): BackendUnseen {
  return { since: c.since, reason: c.reason };
}

/**
 * The error a node's state shows while its agent sends liveness-only reports (T1 S0): an error entry of no dataset,
 * so every client and agent of any release parses it and the CLI and web UI print it as they print node errors.
 */
export function backendUnreachableError(c: BackendUnseen): ActionError {
  return {
    action: 'observe',
    code: 'BACKEND_UNREACHABLE',
    message:
      `its storage backend has not answered since the dataset agent started (${c.reason}): the node is alive; ` +
      'its volumes are shown as its last full report had them',
    attempts: 0,
    since: c.since,
  };
}

/** Whether a liveness-only report comes from the boot, instance and backend of the held report (its lists may hold). */
function sameBoot(held: NodeReport, received: NodeReport): boolean {
  return (
    held.era === received.era &&
    held.instance_id === received.instance_id &&
    held.backend === received.backend &&
    held.host === received.host
  );
}

/** A liveness-only report's identity, its lists empty (they mean nothing): what an unknown node is held as. */
function identityReport(received: NodeReport): NodeReport {
  const { uuid, era, host, instance_id, backend, version, zone } = received;
  return {
    uuid,
    era,
    host,
    instance_id,
    backend,
    manifestations: [],
    errors: [],
    ...(zone !== undefined ? { zone } : {}),
    ...(version !== undefined ? { version } : {}),
  };
}

/**
 * A node alive through liveness-only reports with no report of its state held (the control service restarted too,
 * or a new node): alive, its state unknown. Kept out of every state list and view (an empty list there would read
 * "nothing mounted or attached there"), as a node not reported since this start is; it claims its instance.
 */
interface Unknown extends ReportedNode {
  readonly report: NodeReport;
  heardAt: number;
  heardSinceStart: boolean;
  lastSeen: number;
  storeSeen?: number;
  condition: BackendUnseen;
}

interface Held extends ReportedNode {
  /** ReportedNode.heardAt, always set here (on NodeReports.clock). */
  heardAt: number;
  /** ReportedNode.heardSinceStart, always set here. */
  heardSinceStart: boolean;
  /**
   * The last last_seen the store delivered for the node (external): a different one means a replica heard from it
   * (even one whose wall clock stepped back, so its last_seen is older than ours). Undefined: none yet.
   */
  storeSeen?: number;
  /** The report as kept and answered (no version), as JSON. */
  json: string;
  /** The latest configuration version it carried (ControlState.mountVerdict reads it). */
  version: number | undefined;
  /**
   * What this replica last handed the store to share (publishReport's JSON: with the version then), undefined for a
   * report received through the store; and the version the store holds. A version-only report shares `shared` again,
   * so the store writes nothing new (it refreshes last_seen as for an unchanged report), until node timeout / 4 after
   * the last share (versionOnly).
   */
  shared: string | undefined;
  sharedVersion: number | undefined;
  /** When `shared` last changed (its last_seen). */
  sharedAt: number;
  /**
   * Set while the node sends liveness-only reports (T1 S0): `report` is `base` (its last full report) with the
   * BACKEND_UNREACHABLE error; what is shared is `base` with `condition`.
   */
  unseen?: { base: NodeReport; condition: BackendUnseen };
}

export class NodeReports {
  private readonly nodes = new Map<string, Held>();
  /** Node uuids by the compute instance their latest report names: a report's claims are looked up (reportClaims). */
  private readonly byInstance = new Map<string, Set<string>>();
  private readonly aliveSet = new Set<string>();
  /** Nodes alive with their state unknown (Unknown), never in `nodes`. */
  private readonly unknown = new Map<string, Unknown>();
  /**
   * Nodes declared dead and not back: reported nodes whose last report is older than
   * the node timeout, and (after startedAt + T) lease holders known from the configuration and block-backend nodes
   * known from their identity that have not reported since this process started.
   */
  private readonly deadNodes = new Map<string, { deadSince: number; host: string }>();
  /** What liveness is measured on: monotonic `now`, wall-clock `wallNow` (ReportedNode.clock of every held node). */
  readonly clock: LivenessClock;
  private readonly containers = new Map<string, StoredContainerReport>();
  private unreportedChecked = false;
  /** When the wait for nodes unreported since this start began (startedAt, later: the store answering again). */
  private unreportedFrom: number;
  /**
   * Nodes declared dead without a report since this start (declareUnreported) whose identity is known: held
   * with a report of that identity and no manifestations, shown dead in every agent view until they report. Their
   * lastSeen is unreportedFrom (no report since; so dead_since is unreportedFrom + T, as for the lease release). A new set at
   * each change (ControlState compares).
   */
  private ghostSet: ReadonlySet<string> = new Set();
  private stateGen = 0;
  private closed = false;

  /** When this process started serving, on the wall clock as it read at construction (storedStale). */
  private readonly startWall: number;

  constructor(private readonly options: NodeReportsOptions) {
    this.clock = { now: options.mono ?? options.now, wallNow: options.now };
    this.startWall = this.clock.wallNow() - (this.clock.now() - options.startedAt);
    this.unreportedFrom = options.startedAt;
  }

  /**
   * Every node held alive (or unknown) counts as heard now, and the nodes unreported since this start get T from now
   * (review FR19-10): called while this replica's store does not answer and when it answers again. Cut off, it hears
   * no node (the agents report to another replica), so silence says nothing of them; back, the reports shared
   * meanwhile come through its watch (reconnecting on its own backoff) within T, as at a start.
   */
  heardAll(): void {
    const at = this.mono();
    const now = this.options.now();
    const lapsed: string[] = [];
    for (const [uuid, held] of this.nodes) {
      if (!this.aliveSet.has(uuid) || held.heardAt >= at) continue;
      // Past its timeout, not declared dead yet: a list built meanwhile left it out (see record).
      if (this.lapsed(held, now)) lapsed.push(uuid);
      held.heardAt = at;
    }
    for (const node of this.unknown.values()) if (node.heardAt < at) node.heardAt = at;
    if (!this.unreportedChecked) this.unreportedFrom = Math.max(this.unreportedFrom, at);
    if (lapsed.length > 0) this.changed(lapsed);
  }

  /**
   * Whether the node is held only from the store's read at this start (never heard since) and its stored last_seen
   * was already older than the node timeout then, by this process's wall clock: a retired node whose report the store
   * keeps (review FR F2). It counts alive until start + T all the same (failover timing never trusts one replica's wall
   * clock with another host's times: 1946fbf); only what is said of it differs — no node_dead announcement at
   * start + T (it was dead before), and the whole snapshot notes it (notHeardError). A wrong clock costs words only.
   */
  storedStale(uuid: string): boolean {
    const node = this.nodes.get(uuid);
    return (
      node !== undefined &&
      node.heardSinceStart === false &&
      !this.ghostSet.has(uuid) &&
      node.lastSeen < this.startWall - this.options.nodeTimeoutMs
    );
  }

  /** The error the whole snapshot shows for a storedStale node while it still counts alive. */
  notHeardError(uuid: string): ActionError | undefined {
    const node = this.nodes.get(uuid);
    if (node === undefined || !this.storedStale(uuid)) return undefined;
    const lastSeen = new Date(node.lastSeen).toISOString();
    const deadAt = new Date(liveSeen(node) + this.options.nodeTimeoutMs).toISOString();
    return {
      action: 'observe',
      code: 'NOT_HEARD_SINCE_START',
      message:
        `not heard from since this control service started; its last report (${lastSeen}) is older than the node ` +
        `timeout: declared dead at ${deadAt} unless it reports (a retired node: flocker nodes forget)`,
      attempts: 0,
      since: lastSeen,
    };
  }

  /** Monotonic ms (liveness). */
  private mono(): number {
    return this.clock.now();
  }

  /** Counts node report and liveness changes (configuration changes not included). */
  get generation(): number {
    return this.stateGen;
  }

  reportedNodes(): Iterable<ReportedNode> {
    return this.nodes.values();
  }

  reportedNodeIds(): Iterable<string> {
    return this.nodes.keys();
  }

  /** The node's last report as JSON, as received (validated) and stored. */
  reportJson(uuid: string): string | undefined {
    return this.nodes.get(uuid)?.json;
  }

  reportedNode(uuid: string): ReportedNode | undefined {
    return this.nodes.get(uuid);
  }

  /**
   * The reported nodes whose latest report names compute instance `instanceId`, alive or not; not those held only from
   * the store's read at this start (heardSinceStart false): a long-retired node's report etcd keeps would otherwise win
   * the claim for T after each start, and the live node reinstalled on that instance, refused, fence itself (review FR
   * M1). Safe: a node alive through another replica is heard within T/4 (its refresh put) and claims again from then;
   * and agents never force-detach an instance a live node reports (calculateChanges).
   */
  *claimingInstance(instanceId: string): Iterable<ReportedNode> {
    for (const uuid of this.byInstance.get(instanceId) ?? []) {
      const node = this.nodes.get(uuid);
      if (node?.heardSinceStart === true) yield node;
    }
    // Nodes alive with their state unknown name their instance truthfully (few: a scan).
    for (const node of this.unknown.values())
      if (node.heardSinceStart && node.report.instance_id === instanceId) yield node;
  }

  /** The nodes alive with their state unknown (liveness-only reports, none of their state held), and recently so. */
  unknownNodes(): Iterable<ReportedNode> {
    return this.unknown.values();
  }

  /** Whether `uuid` is held alive with its state unknown (Unknown) and still within its timeout. */
  unknownAlive(uuid: string): boolean {
    const node = this.unknown.get(uuid);
    return node !== undefined && isAlive(node, this.options.now(), this.options.nodeTimeoutMs);
  }

  /** The nodes held from their identity alone (declared dead without a report since this start). */
  get ghosts(): ReadonlySet<string> {
    return this.ghostSet;
  }

  /** Keeps `held` as the node's latest report, and byInstance with it. */
  private hold(uuid: string, held: Held): void {
    this.unknown.delete(uuid);
    if (this.ghostSet.has(uuid)) {
      // Its own report (or one shared through the store) replaces its identity: an ordinary node again.
      const ghosts = new Set(this.ghostSet);
      ghosts.delete(uuid);
      this.ghostSet = ghosts;
    }
    const before = this.nodes.get(uuid)?.report.instance_id;
    this.nodes.set(uuid, held);
    const after = held.report.instance_id;
    if (before === after) return;
    if (before !== undefined) {
      const uuids = this.byInstance.get(before);
      uuids?.delete(uuid);
      if (uuids?.size === 0) this.byInstance.delete(before);
    }
    let uuids = this.byInstance.get(after);
    if (uuids === undefined) this.byInstance.set(after, (uuids = new Set()));
    uuids.add(uuid);
  }

  /**
   * Forgets a node not reporting (forgetNode.ts): its held report (its own, or a ghost's), its dead entry and its
   * containers go, as if this process had started without hearing of it. A report listing copies, attached volumes,
   * retained data or replicas is emptied first, so the views drop what it held as for any report. False (and nothing
   * done) when it is alive: it reported meanwhile, unless `evenIfAlive` (etcd: another replica forgot it, judging the
   * newest stored report; this one may judge a report read at its start alive). (Past its timeout but not yet declared
   * dead by checkLiveness: dead, as the refusal judged it.)
   */
  forget(uuid: string, evenIfAlive = false): boolean {
    const held = this.nodes.get(uuid);
    const now = this.options.now();
    if (!evenIfAlive && held !== undefined && isAlive(held, now, this.options.nodeTimeoutMs)) return false;
    if (!evenIfAlive && this.unknownAlive(uuid)) return false;
    const wasUnknown = this.unknown.delete(uuid);
    this.aliveSet.delete(uuid);
    if (held !== undefined) this.release(uuid, held);
    const wasDead = this.deadNodes.delete(uuid);
    const hadContainers = this.containers.delete(uuid);
    if (this.ghostSet.has(uuid)) {
      const ghosts = new Set(this.ghostSet);
      ghosts.delete(uuid);
      this.ghostSet = ghosts;
    }
    if (wasDead) this.options.onDeadNodesChanged();
    if (held !== undefined || wasDead || hadContainers || wasUnknown) this.changed([uuid]);
    return true;
  }

  /**
   * Drops `held` (the node's report) from `nodes`: a report listing copies, attached volumes, retained data or replicas
   * is emptied first, so the views drop what it held as for any report.
   */
  private release(uuid: string, held: Held): void {
    const r = held.report;
    if (
      r.manifestations.length > 0 ||
      (r.volumes?.length ?? 0) > 0 ||
      (r.retained?.length ?? 0) > 0 ||
      (r.replicas?.length ?? 0) > 0
    ) {
      const emptied: NodeReport = {
        ...r,
        manifestations: [],
        ...(r.volumes !== undefined ? { volumes: [] } : {}),
        ...(r.retained !== undefined ? { retained: [] } : {}),
        ...(r.replicas !== undefined ? { replicas: [] } : {}),
      };
      this.nodes.set(uuid, { ...held, report: emptied, json: JSON.stringify(emptied) });
      this.changed([uuid]);
    }
    this.nodes.delete(uuid);
    const uuids = this.byInstance.get(r.instance_id);
    uuids?.delete(uuid);
    if (uuids?.size === 0) this.byInstance.delete(r.instance_id);
  }

  /** The configuration version the node's last report carried; undefined when none (an older agent). */
  configurationVersion(uuid: string): number | undefined {
    return this.nodes.get(uuid)?.version;
  }

  /** The dead nodes and since when each is dead, in monotonic ms (NodeReports.clock.now). */
  deadNodeTimes(): Iterable<[string, { deadSince: number; host: string }]> {
    return this.deadNodes.entries();
  }

  /**
   * Wall-clock epoch ms at which the node was declared dead, or undefined while it is alive (or unknown) at wall-clock
   * `now`: when this process last heard from it plus the node timeout, timed on the monotonic clock (liveSeen).
   */
  deadSince(uuid: string, now: number): number | undefined {
    const node = this.nodes.get(uuid);
    if (node !== undefined)
      return isAlive(node, now, this.options.nodeTimeoutMs) ? undefined : liveSeen(node) + this.options.nodeTimeoutMs;
    const dead = this.deadNodes.get(uuid);
    return dead === undefined ? undefined : dead.deadSince + this.clock.wallNow() - this.clock.now();
  }

  /**
   * Records a node's own report, received now; returns the JSON to share with other replicas: as received, or for a
   * version-only report that shows nothing new (versionShows) the JSON shared before (within node timeout / 4 of the
   * last share), so the store writes nothing.
   */
  record(received: NodeReport, now: number): string {
    const { report, version } = withoutVersion(received);
    const json = JSON.stringify(report);
    const previous = this.nodes.get(report.uuid);
    const wasAlive = this.aliveSet.has(report.uuid);
    const lapsed = this.lapsed(previous, now);
    // Its note in the whole snapshot goes (storedStale): a state change.
    const wasStale = this.storedStale(report.uuid);
    const held =
      previous !== undefined && wasAlive && !lapsed ? this.versionOnly(previous, json, version, now) : undefined;
    if (held !== undefined) {
      // Shown (versionShows), or what the store holds was not written by us: shared with its version.
      held.heardSinceStart = true;
      if (wasStale) this.changed([report.uuid]);
      if (held.shared === undefined) {
        held.shared = JSON.stringify(received);
        held.sharedVersion = version;
        held.sharedAt = now;
      }
      return held.shared;
    }
    const shared = version === undefined ? json : JSON.stringify(received);
    this.hold(report.uuid, {
      report: sameReport(previous, wasAlive && !lapsed, json, version) ?? report,
      lastSeen: now,
      heardAt: this.mono(),
      heardSinceStart: true,
      clock: this.clock,
      ...(previous?.storeSeen !== undefined ? { storeSeen: previous.storeSeen } : {}),
      json,
      version,
      shared,
      sharedVersion: version,
      sharedAt: now,
    });
    this.aliveSet.add(report.uuid);
    if (!wasAlive) this.nodeBack(report.uuid, report.host, now);
    // A report repeating what we know changes nothing for the agents: do not wake them. Unless the node was past its
    // timeout, not yet declared dead (checkLiveness): a list built then left it out, and only a new generation
    // rebuilds it (review RC).
    if (
      previous === undefined ||
      previous.json !== json ||
      previous.version !== version ||
      !wasAlive ||
      lapsed ||
      wasStale
    )
      this.changed([report.uuid]);
    return shared;
  }

  /**
   * Whether a liveness-only report of `uuid` is refused at wall-clock `now`: the node is dead here (declared, or past
   * its timeout and about to be). It stays dead until a full report: its leases may be released and its volumes taken
   * by now, and what it holds is unknown, so neither "alive as last reported" nor "nothing there" would be true; its
   * agent, refused, does not count the report as contact (it fences at its bound, as with no control service).
   */
  livenessRefused(uuid: string, now: number): boolean {
    const T = this.options.nodeTimeoutMs;
    const held = this.nodes.get(uuid);
    if (held !== undefined) return !this.aliveSet.has(uuid) || !isAlive(held, now, T);
    if (this.deadNodes.has(uuid)) return true;
    const unknown = this.unknown.get(uuid);
    return unknown !== undefined && !isAlive(unknown, now, T);
  }

  /**
   * Records a liveness-only report (NodeReport.backend_unseen) received now: the node is heard (alive, its leases
   * kept), its state is not. The report held, if any, stays its state (with the BACKEND_UNREACHABLE error), unless the
   * liveness report names another boot, instance or backend (a reboot: its mounts are gone); with none, the node is
   * held with its state unknown. Returns the JSON to share with other replicas (the report held with the condition,
   * or the liveness report), or undefined when refused (livenessRefused: nothing recorded).
   */
  recordLiveness(received: NodeReport, now: number): string | undefined {
    if (received.backend_unseen === undefined) throw new Error('recordLiveness: not a liveness-only report');
    const condition = heldCondition(received.backend_unseen);
    const uuid = received.uuid;
    if (this.livenessRefused(uuid, now)) return undefined;
    const previous = this.nodes.get(uuid);
    if (previous !== undefined && sameBoot(previous.unseen?.base ?? previous.report, received)) {
      const held = this.keepWithCondition(previous, condition, now, true, received, false);
      const base = held.unseen?.base ?? held.report;
      held.shared = JSON.stringify({
        ...base,
        ...(held.version !== undefined ? { configuration_version: held.version } : {}),
        backend_unseen: condition,
      });
      held.sharedVersion = held.version;
      held.sharedAt = now;
      return held.shared;
    }
    if (previous !== undefined) this.dropToUnknown(uuid, previous);
    this.holdUnknown(received, condition, now, true, undefined);
    return JSON.stringify({ ...received, backend_unseen: condition });
  }

  /**
   * `previous` (alive, of the same boot) heard again through a liveness-only report: kept with the condition shown, its
   * report object unchanged (no state change) once the condition is shown. Returns the node as now held.
   */
  private keepWithCondition(
    previous: Held,
    condition: BackendUnseen,
    lastSeen: number,
    heard: boolean,
    received: NodeReport,
    fromStore: boolean,
  ): Held {
    const base = withFencing(previous.unseen?.base ?? previous.report, received, fromStore);
    const shown: NodeReport = { ...base, errors: [...base.errors, backendUnreachableError(condition)] };
    const json = JSON.stringify(shown);
    const news = json !== previous.json;
    const held: Held = {
      ...previous,
      report: news ? shown : previous.report,
      json: news ? json : previous.json,
      lastSeen: Math.max(previous.lastSeen, lastSeen),
      heardAt: this.mono(),
      heardSinceStart: previous.heardSinceStart || heard,
      unseen: { base, condition },
    };
    this.hold(previous.report.uuid, held);
    if (news) this.changed([previous.report.uuid]);
    return held;
  }

  /** The held report of an alive node whose liveness report names another boot: dropped, the node unknown from now. */
  private dropToUnknown(uuid: string, held: Held): void {
    this.aliveSet.delete(uuid);
    this.release(uuid, held);
    if (this.ghostSet.has(uuid)) {
      const ghosts = new Set(this.ghostSet);
      ghosts.delete(uuid);
      this.ghostSet = ghosts;
    }
  }

  /** Holds (or refreshes) the node as alive with its state unknown. */
  private holdUnknown(
    received: NodeReport,
    condition: BackendUnseen,
    lastSeen: number,
    heard: boolean,
    storeSeen: number | undefined,
  ): void {
    const uuid = received.uuid;
    const before = this.unknown.get(uuid);
    this.unknown.set(uuid, {
      report: identityReport(received),
      lastSeen: Math.max(before?.lastSeen ?? lastSeen, lastSeen),
      heardAt: this.mono(),
      clock: this.clock,
      heardSinceStart: (before?.heardSinceStart ?? false) || heard,
      ...(storeSeen !== undefined ? { storeSeen } : {}),
      condition,
    });
    if (before !== undefined) return;
    this.options.logger.warn(
      'node alive, its storage backend not seen by its agent yet: its state is unknown until its first full report',
      { node: uuid, host: received.host, since: condition.since, reason: condition.reason },
    );
    this.changed([uuid]);
  }

  /**
   * A liveness-only report received by another replica (external). That replica took it, so the node was alive there
   * (one dead to it is refused, NODE_DEAD, and not shared): it is heard here too, even when this replica had declared
   * it dead (cut off from the store for a while) — judged dead here alone, its leases could be released by this
   * replica while the one it reports to holds it alive and its agent counts the contact. Never with lists this replica
   * does not hold: its state is the report held (of the same boot, not a ghost's identity), else unknown.
   */
  private externalLiveness(received: NodeReport, condition: BackendUnseen, lastSeen: number, stored: boolean): void {
    const uuid = received.uuid;
    const now = this.options.now();
    const previous = this.nodes.get(uuid);
    // No news: a re-read of what was delivered.
    if ((previous ?? this.unknown.get(uuid))?.storeSeen === lastSeen) return;
    if (
      previous !== undefined &&
      !this.ghostSet.has(uuid) &&
      sameBoot(previous.unseen?.base ?? previous.report, received)
    ) {
      // Older on the wall clocks than a full report held: news of the node, not of its state.
      if (previous.unseen === undefined && previous.lastSeen > lastSeen) {
        this.heardThroughStore(previous, lastSeen, stored);
        return;
      }
      const wasAlive = this.aliveSet.has(uuid);
      const lapsed = this.lapsed(previous, now);
      const held = this.keepWithCondition(previous, condition, lastSeen, !stored, received, true);
      held.storeSeen = lastSeen;
      held.shared = undefined;
      held.sharedVersion = received.configuration_version;
      held.sharedAt = lastSeen;
      if (!wasAlive) {
        this.aliveSet.add(uuid);
        this.nodeBack(uuid, received.host, now);
      }
      // Dead or past its timeout until now: a list built meanwhile left it out (see record).
      if (!wasAlive || lapsed) this.changed([uuid]);
      return;
    }
    if (previous !== undefined) this.dropToUnknown(uuid, previous);
    this.nodeBack(uuid, received.host, now);
    this.holdUnknown(received, condition, lastSeen, !stored, lastSeen);
  }

  /**
   * The node's report with its version when the store holds an older version than `atLeast` and this replica has
   * `atLeast` or later (a version-only report not shared: versionShows said nothing showed it then); marked shared.
   * ControlState shares it when a move onto the node at `atLeast` commits (another replica may hide its "mounted"
   * until it knows that version).
   */
  unsharedVersion(uuid: string, atLeast: number): { report: NodeReport; json: string; lastSeen: number } | undefined {
    const node = this.nodes.get(uuid);
    if (node?.version === undefined || node.version < atLeast) return undefined;
    if (node.sharedVersion !== undefined && node.sharedVersion >= atLeast) return undefined;
    const json = JSON.stringify({
      ...(node.unseen?.base ?? node.report),
      configuration_version: node.version,
      ...(node.unseen !== undefined ? { backend_unseen: node.unseen.condition } : {}),
    });
    node.shared = json;
    node.sharedVersion = node.version;
    node.sharedAt = node.lastSeen;
    return { report: node.report, json, lastSeen: node.lastSeen };
  }

  /**
   * A report of an alive node (`previous` kept) differing only in its version: keeps the version and the time, the
   * report object (views and the state list's per-report bytes key on it) and changes the state only when
   * versionShows says that shows. Returns
   * the node as now held when it was one (its `shared` undefined when what the store holds must change).
   */
  private versionOnly(previous: Held, json: string, version: number | undefined, lastSeen: number): Held | undefined {
    const before = previous.version;
    if (previous.json !== json || version === undefined || before === undefined || before === version) return undefined;
    const uuid = previous.report.uuid;
    const held: Held = { ...previous, lastSeen, heardAt: this.mono(), version };
    this.hold(uuid, held);
    if (this.options.versionShows?.(uuid, previous.report, before, version) === true) {
      held.shared = undefined;
      this.changed([uuid]);
    } else if (lastSeen - previous.sharedAt >= this.options.nodeTimeoutMs / 4) {
      // Shared anyway at the store's refresh pace: under steady configuration changes every report is version-only,
      // and a replica holding the node below its load floor (ControlState.floor) would never see it catch up.
      held.shared = undefined;
    }
    return held;
  }

  /**
   * A node report received by another replica (shared stores). `stored`: from the store's read at this start (no news
   * of the node: heardSinceStart stays as it was, false for a node first held so).
   */
  external(received: NodeReport, lastSeen: number, stored = false): void {
    const previous = this.nodes.get(received.uuid);
    if (this.closed) return;
    if (received.backend_unseen !== undefined) {
      this.externalLiveness(received, heldCondition(received.backend_unseen), lastSeen, stored);
      return;
    }
    if (previous !== undefined && previous.lastSeen > lastSeen) {
      // Not newer than the report held (ours, or a later one) on the wall clocks; yet a new last_seen in the store
      // means a replica heard from the node (one whose wall clock stepped back writes older ones): alive on this
      // replica's monotonic clock for the node timeout from now. The report held stays.
      if (previous.storeSeen !== lastSeen) this.heardThroughStore(previous, lastSeen, stored);
      return;
    }
    // The same last_seen: taken only with a later version (ControlState.noteMove reshares a version-only report, not
    // shared then, with the last_seen its old JSON's refresh put may already have carried here).
    if (previous !== undefined && previous.lastSeen === lastSeen && !laterVersion(received, previous.version)) return;
    const { report, version } = withoutVersion(received);
    const json = JSON.stringify(report);
    const lapsed = this.lapsed(previous, this.options.now());
    const wasStale = !stored && this.storedStale(report.uuid);
    if (previous !== undefined && !lapsed && this.aliveSet.has(report.uuid)) {
      const held = this.versionOnly(previous, json, version, lastSeen);
      if (held !== undefined) {
        // What the store holds now (written by another replica).
        held.storeSeen = lastSeen;
        held.heardSinceStart ||= !stored;
        if (wasStale) this.changed([report.uuid]);
        held.shared = undefined;
        held.sharedVersion = version;
        held.sharedAt = lastSeen;
        return;
      }
    }
    const wasAlive = this.aliveSet.has(report.uuid);
    this.hold(report.uuid, {
      report: sameReport(previous, wasAlive && !lapsed, json, version) ?? report,
      lastSeen,
      // Heard now, on this replica's monotonic clock: a stored report read at start (or a takeover) counts from the
      // start, as a node of the file store that never reports (declareUnreported): dead by start + T. Such a report
      // (`stored`) is no news of the node, though: heardSinceStart stays false until one is (claimingInstance).
      heardAt: this.mono(),
      heardSinceStart: (previous?.heardSinceStart ?? false) || !stored,
      clock: this.clock,
      storeSeen: lastSeen,
      json,
      version,
      shared: undefined,
      sharedVersion: version,
      sharedAt: lastSeen,
    });
    // Just heard from (through the store): alive.
    this.aliveSet.add(report.uuid);
    this.nodeBack(report.uuid, report.host, this.options.now());
    if (
      previous === undefined ||
      previous.json !== json ||
      previous.version !== version ||
      !wasAlive ||
      lapsed ||
      wasStale
    )
      this.changed([report.uuid]);
  }

  /** `held`'s node was heard from through the store (a new last_seen, not newer than held's): alive from now. */
  private heardThroughStore(held: Held, lastSeen: number, stored: boolean): void {
    const uuid = held.report.uuid;
    const wasAlive = this.aliveSet.has(uuid);
    const lapsed = this.lapsed(held, this.options.now());
    const wasStale = !stored && this.storedStale(uuid);
    held.storeSeen = lastSeen;
    held.heardAt = this.mono();
    held.heardSinceStart ||= !stored;
    if (!wasAlive) {
      this.aliveSet.add(uuid);
      this.nodeBack(uuid, held.report.host, this.options.now());
    }
    // Dead or past its timeout until now: a list built meanwhile left it out (see record). Or its note goes.
    if (!wasAlive || lapsed || wasStale) this.changed([uuid]);
  }

  /** Whether the node still counts alive (not declared dead yet) though its held report is past the node timeout. */
  private lapsed(previous: Held | undefined, now: number): boolean {
    return (
      previous !== undefined &&
      this.aliveSet.has(previous.report.uuid) &&
      !isAlive(previous, now, this.options.nodeTimeoutMs)
    );
  }

  /** Marks nodes that stopped reporting as dead (and revived ones alive). */
  checkLiveness(now: number): void {
    const changed: string[] = [];
    for (const [uuid, node] of [...this.unknown]) {
      if (isAlive(node, now, this.options.nodeTimeoutMs)) continue;
      // Silent for T with its state unknown: dead, as a node silent since this start (declareUnreported), from its
      // identity (its agent, with no accepted report for T, fenced at F < T).
      this.unknown.delete(uuid);
      // Not announced when only read from the store at this start, already older than T then (as storedStale).
      const announce = node.heardSinceStart || node.lastSeen >= this.startWall - this.options.nodeTimeoutMs;
      this.nodeDead(uuid, node.report.host, node.lastSeen, node.heardAt, now, announce);
      if (!isLocalBackend(node.report.backend)) this.holdGhost(uuid, node.report, node.lastSeen, node.heardAt);
      changed.push(uuid);
    }
    // forEach, not for-of: run once a second, this is never optimized into no entry array and iterator result per
    // node (~1 MB of garbage a second at 10,000 nodes, issue 23).
    this.nodes.forEach((node, uuid) => {
      const alive = isAlive(node, now, this.options.nodeTimeoutMs);
      if (alive !== this.aliveSet.has(uuid)) {
        changed.push(uuid);
        if (alive) {
          this.aliveSet.add(uuid);
          this.nodeBack(uuid, node.report.host, now);
        } else {
          this.aliveSet.delete(uuid);
          // A retired node's stored report (storedStale): dead before this start, nothing new to announce.
          const announce = !this.storedStale(uuid);
          if (!announce)
            this.options.logger.info(
              'node not heard from since this start, its stored report older than the timeout: dead',
              {
                node: uuid,
                host: node.report.host,
                last_seen: new Date(node.lastSeen).toISOString(),
              },
            );
          this.nodeDead(uuid, node.report.host, node.lastSeen, node.heardAt, now, announce);
        }
      }
    });
    if (
      !this.unreportedChecked &&
      this.mono() + (now - this.clock.wallNow()) - this.unreportedFrom > this.options.nodeTimeoutMs
    ) {
      this.unreportedChecked = true;
      this.declareUnreported(now);
    }
    if (changed.length > 0) this.changed(changed);
  }

  /** A container agent's report of the Flocker containers on its node, received now (`lastSeen`: wall clock). */
  recordContainers(uuid: string, report: ContainerReport, lastSeen: number): void {
    const previous = this.containers.get(uuid);
    this.containers.set(uuid, {
      report,
      lastSeen,
      heardAt: this.mono(),
      ...(previous?.storeSeen !== undefined ? { storeSeen: previous.storeSeen } : {}),
    });
  }

  /**
   * A container report received by another replica (shared stores). Newer on the wall clocks than ours: taken. Older
   * but a last_seen the store did not deliver before: a replica heard from the agent (one whose clock is behind ours),
   * so it is fresh from now; the report held stays (as for node reports: heardThroughStore). The same last_seen as the
   * report held is no news (a re-read of our own put). `stored`, what the store held at this start: not heard now (a
   * day-old report would list long-gone containers): aged by this replica's wall clock, as before F13, once.
   */
  externalContainers(uuid: string, report: ContainerReport, lastSeen: number, stored = false): void {
    const previous = this.containers.get(uuid);
    if (this.closed || previous?.storeSeen === lastSeen) return;
    if (previous !== undefined && previous.lastSeen >= lastSeen) {
      if (previous.lastSeen > lastSeen && !stored) previous.heardAt = this.mono();
      previous.storeSeen = lastSeen;
      return;
    }
    const age = stored ? Math.max(0, this.clock.wallNow() - lastSeen) : 0;
    this.containers.set(uuid, { report, lastSeen, heardAt: this.mono() - age, storeSeen: lastSeen });
  }

  /** The containers fresh container reports show, judged at monotonic `now` (default: now). */
  containerStates(now: number = this.mono()): ContainerState[] {
    return containerStates(this.containers, now);
  }

  close(): void {
    this.closed = true;
  }

  private changed(nodes: readonly string[]): void {
    this.stateGen += 1;
    this.options.onStateChange(nodes);
  }

  /** `lastSeen`: wall-clock (shown); `heardAt`: monotonic, when this process last heard from it (default: its start). */
  private nodeDead(
    uuid: string,
    host: string,
    lastSeen: number | undefined,
    heardAt: number | undefined,
    now: number,
    announce: boolean,
  ): void {
    const { nodeTimeoutMs, logger, events } = this.options;
    // Never heard since this start: dead from the moment the wait for it began (unreportedFrom: the service's listen,
    // later a store outage's end) + T, the moment it is declared; from startedAt, the grace of its leases was already
    // spent when heardAll had moved that wait later.
    const deadSince = (heardAt ?? this.unreportedFrom) + nodeTimeoutMs;
    this.deadNodes.set(uuid, { deadSince, host });
    if (announce) {
      const event = nodeDeadEvent(uuid, host, lastSeen, nodeTimeoutMs, now);
      events.push(event);
      logger.warn(event.message, {
        event: event.kind,
        node: uuid,
        host,
        dead_since: new Date(deadSince + this.clock.wallNow() - this.clock.now()).toISOString(),
      });
    }
    this.options.onDeadNodesChanged();
  }

  private nodeBack(uuid: string, host: string, now: number): void {
    const dead = this.deadNodes.get(uuid);
    if (dead === undefined) return;
    this.deadNodes.delete(uuid);
    const event = nodeBackEvent(uuid, host, dead.deadSince + this.clock.wallNow() - this.clock.now(), now);
    this.options.events.push(event);
    this.options.logger.info(event.message, { event: event.kind, node: uuid, host });
    this.options.onDeadNodesChanged();
  }

  /**
   * After a restart this process knows no report times: a node of the configuration that
   * holds a lease and has not reported within the node timeout of our start is dead
   * (else a host that died while the control service was down would keep its leases). One whose identity is known
   * (NodeIdentity: the file store keeps it) is held from it (ghosts), so the agents see its instance dead. So is any
   * other node with a known identity (a block backend's; not a local one: its data is on it), leased or not: a volume
   * idle on a host that died before the restart is still attached to its instance, and a move to another node
   * force-detaches it only from a node its view shows dead. The same reasoning as for a lease holder makes it safe:
   * no report of it was accepted since this start, so its last confirmed contact was with the previous process and it
   * fenced itself before start + T (F < T). (etcd keeps whole reports: such a node is held from its stored report.)
   */
  private declareUnreported(now: number): void {
    const committed = this.options.configuration();
    const ghosts: string[] = [];
    const declare = (uuid: string, host: string, identity: NodeIdentity | undefined): void => {
      this.nodeDead(uuid, identity?.host ?? host, undefined, undefined, now, true);
      // Shown to the agents as dead (its instance: a volume still attached to it is force-detached by the new
      // primary, as for a node that died while this process ran). Not a local-backend node: its data is on it.
      if (identity === undefined || isLocalBackend(identity.backend)) return;
      const at = this.unreportedFrom;
      // Shown as last seen when the wait for it began (on the wall clock), heard last then (on the monotonic one).
      this.holdGhost(
        uuid,
        { ...identity, manifestations: [], errors: [] },
        at + this.clock.wallNow() - this.clock.now(),
        at,
      );
      ghosts.push(uuid);
    };
    for (const lease of committed.leases.values()) {
      const uuid = lease.node_uuid;
      if (this.nodes.has(uuid) || this.deadNodes.has(uuid) || this.unknown.has(uuid)) continue;
      const known = committed.nodes.get(uuid);
      // A lease naming a node that never reported was never about a live host: left alone.
      if (known === undefined) continue;
      declare(uuid, known.host, this.options.identities?.get(uuid));
    }
    for (const [uuid, identity] of this.options.identities ?? []) {
      if (
        this.nodes.has(uuid) ||
        this.deadNodes.has(uuid) ||
        this.unknown.has(uuid) ||
        isLocalBackend(identity.backend)
      )
        continue;
      declare(uuid, identity.host, identity);
    }
    if (ghosts.length > 0) this.changed(ghosts);
  }

  /**
   * Holds a dead node from its identity (`report`: no lists), a ghost: shown dead in every agent view, so a volume still
   * attached to its instance is force-detached by a new primary, until it reports.
   */
  private holdGhost(uuid: string, report: NodeReport, lastSeen: number, heardAt: number): void {
    this.hold(uuid, {
      report,
      lastSeen,
      heardAt,
      heardSinceStart: false,
      clock: this.clock,
      json: JSON.stringify(report),
      version: undefined,
      shared: undefined,
      sharedVersion: undefined,
      sharedAt: lastSeen,
    });
    this.ghostSet = new Set([...this.ghostSet, uuid]);
  }
}

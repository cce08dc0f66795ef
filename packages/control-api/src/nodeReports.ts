/**
 * What the nodes report and whether they are alive: the dataset agents' node reports
 * (with liveness: alive, dead since when, back) and the container agents' container
 * reports, both state rather than configuration (kept in memory; on a shared store,
 * node reports and container reports reach every replica through it).
 */
import type { Logger } from 'winston';
import type { ContainerReport, ContainerState, NodeReport } from '@flocker/api';
import type { Configuration } from './configuration';
import { isAlive, type ReportedNode } from './clusterState';
import { type EventRing, nodeBackEvent, nodeDeadEvent } from './events';

/** A container agent reports at least this often; a report older than 3 intervals is stale. */
export const CONTAINER_REPORT_INTERVAL_MS = 10_000;
export const CONTAINER_REPORT_STALE_MS = 3 * CONTAINER_REPORT_INTERVAL_MS;

export interface StoredContainerReport {
  report: ContainerReport;
  lastSeen: number;
}

/** Pure: the containers fresh reports show, with their nodes. */
export function containerStates(
  reports: ReadonlyMap<string, StoredContainerReport>,
  now: number,
  staleMs = CONTAINER_REPORT_STALE_MS,
): ContainerState[] {
  const out: ContainerState[] = [];
  for (const [node, { report, lastSeen }] of reports) {
    if (now - lastSeen > staleMs) continue;
    for (const c of report.containers) {
      out.push({
        name: c.name,
        node_uuid: node,
        image: c.image,
        running: c.running,
        ...(c.error !== undefined ? { error: c.error } : {}),
      });
    }
  }
  return out;
}

export interface NodeReportsOptions {
  nodeTimeoutMs: number;
  now: () => number;
  /** When this process started serving: known nodes that never report after it count as dead from startedAt + T. */
  startedAt: number;
  logger: Logger;
  events: EventRing;
  /** The committed configuration (lease holders known from it may be declared dead). */
  configuration: () => Configuration;
  /** Node state changed (a report that says something new, a node dead or back): the generation moved. */
  onStateChange: (nodes: readonly string[]) => void;
  /** The set of dead nodes changed: when their leases are due for release may have moved. */
  onDeadNodesChanged: () => void;
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

export class NodeReports {
  private readonly nodes = new Map<string, ReportedNode & { json: string; version: number | undefined }>();
  private readonly aliveSet = new Set<string>();
  /**
   * Nodes declared dead and not back: reported nodes whose last report is older than
   * the node timeout, and (after startedAt + T) lease holders known from the
   * configuration that have not reported since this process started.
   */
  private readonly deadNodes = new Map<string, { deadSince: number; host: string }>();
  private readonly containers = new Map<string, StoredContainerReport>();
  private unreportedChecked = false;
  private stateGen = 0;
  private closed = false;

  constructor(private readonly options: NodeReportsOptions) {}

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

  /** The configuration version the node's last report carried; undefined when none (an older agent). */
  configurationVersion(uuid: string): number | undefined {
    return this.nodes.get(uuid)?.version;
  }

  /** The dead nodes and since when (epoch ms) each is dead. */
  deadNodeTimes(): Iterable<[string, { deadSince: number; host: string }]> {
    return this.deadNodes.entries();
  }

  /**
   * Epoch ms at which the node was declared dead, or undefined while it is alive (or
   * unknown): its last report plus the node timeout, so every replica agrees on it.
   */
  deadSince(uuid: string, now: number): number | undefined {
    const node = this.nodes.get(uuid);
    if (node !== undefined)
      return isAlive(node, now, this.options.nodeTimeoutMs) ? undefined : node.lastSeen + this.options.nodeTimeoutMs;
    return this.deadNodes.get(uuid)?.deadSince;
  }

  /** Records a node's own report, received now; returns its JSON as received (for sharing with other replicas). */
  record(received: NodeReport, now: number): string {
    const { report, version } = withoutVersion(received);
    const json = JSON.stringify(report);
    const previous = this.nodes.get(report.uuid);
    this.nodes.set(report.uuid, { report, lastSeen: now, json, version });
    const wasAlive = this.aliveSet.has(report.uuid);
    this.aliveSet.add(report.uuid);
    if (!wasAlive) this.nodeBack(report.uuid, report.host, now);
    // A report repeating what we know changes nothing for the agents: do not wake them. A new version alone
    // wakes waiters (it can end a hidden stale "mounted"; the agent sends one only when it can: Reporter).
    if (previous === undefined || previous.json !== json || previous.version !== version || !wasAlive)
      this.changed([report.uuid]);
    return version === undefined ? json : JSON.stringify(received);
  }

  /** A node report received by another replica (shared stores). */
  external(received: NodeReport, lastSeen: number): void {
    const previous = this.nodes.get(received.uuid);
    if (this.closed || (previous !== undefined && previous.lastSeen >= lastSeen)) return;
    const { report, version } = withoutVersion(received);
    const json = JSON.stringify(report);
    this.nodes.set(report.uuid, { report, lastSeen, json, version });
    const now = this.options.now();
    const alive = isAlive({ report, lastSeen }, now, this.options.nodeTimeoutMs);
    const wasAlive = this.aliveSet.has(report.uuid);
    if (alive) {
      this.aliveSet.add(report.uuid);
      this.nodeBack(report.uuid, report.host, now);
    } else {
      this.aliveSet.delete(report.uuid);
      // Already dead when we first hear of it (stored reports at start): dead, but nothing new to announce.
      if (wasAlive || this.deadNodes.has(report.uuid)) this.nodeDead(report.uuid, report.host, lastSeen, now, wasAlive);
      else this.deadNodes.set(report.uuid, { deadSince: lastSeen + this.options.nodeTimeoutMs, host: report.host });
    }
    if (previous === undefined || previous.json !== json || previous.version !== version || alive !== wasAlive)
      this.changed([report.uuid]);
  }

  /** Marks nodes that stopped reporting as dead (and revived ones alive). */
  checkLiveness(now: number): void {
    const changed: string[] = [];
    for (const [uuid, node] of this.nodes) {
      const alive = isAlive(node, now, this.options.nodeTimeoutMs);
      if (alive !== this.aliveSet.has(uuid)) {
        changed.push(uuid);
        if (alive) {
          this.aliveSet.add(uuid);
          this.nodeBack(uuid, node.report.host, now);
        } else {
          this.aliveSet.delete(uuid);
          this.nodeDead(uuid, node.report.host, node.lastSeen, now, true);
        }
      }
    }
    if (!this.unreportedChecked && now - this.options.startedAt > this.options.nodeTimeoutMs) {
      this.unreportedChecked = true;
      this.declareUnreportedHolders(now);
    }
    if (changed.length > 0) this.changed(changed);
  }

  /** A container agent's report of the Flocker containers on its node. */
  recordContainers(uuid: string, report: ContainerReport, lastSeen: number): void {
    this.containers.set(uuid, { report, lastSeen });
  }

  /** A container report received by another replica (shared stores); an older one than ours is ignored. */
  externalContainers(uuid: string, report: ContainerReport, lastSeen: number): void {
    const previous = this.containers.get(uuid);
    if (this.closed || (previous !== undefined && previous.lastSeen >= lastSeen)) return;
    this.containers.set(uuid, { report, lastSeen });
  }

  /** The containers fresh container reports show. */
  containerStates(now: number): ContainerState[] {
    return containerStates(this.containers, now);
  }

  close(): void {
    this.closed = true;
  }

  private changed(nodes: readonly string[]): void {
    this.stateGen += 1;
    this.options.onStateChange(nodes);
  }

  private nodeDead(uuid: string, host: string, lastSeen: number | undefined, now: number, announce: boolean): void {
    const { nodeTimeoutMs, logger, events } = this.options;
    const deadSince = (lastSeen ?? this.options.startedAt) + nodeTimeoutMs;
    this.deadNodes.set(uuid, { deadSince, host });
    if (announce) {
      const event = nodeDeadEvent(uuid, host, lastSeen, nodeTimeoutMs, now);
      events.push(event);
      logger.warn(event.message, {
        event: event.kind,
        node: uuid,
        host,
        dead_since: new Date(deadSince).toISOString(),
      });
    }
    this.options.onDeadNodesChanged();
  }

  private nodeBack(uuid: string, host: string, now: number): void {
    const dead = this.deadNodes.get(uuid);
    if (dead === undefined) return;
    this.deadNodes.delete(uuid);
    const event = nodeBackEvent(uuid, host, dead.deadSince, now);
    this.options.events.push(event);
    this.options.logger.info(event.message, { event: event.kind, node: uuid, host });
    this.options.onDeadNodesChanged();
  }

  /**
   * After a restart this process knows no report times: a node of the configuration that
   * holds a lease and has not reported within the node timeout of our start is dead
   * (else a host that died while the control service was down would keep its leases).
   */
  private declareUnreportedHolders(now: number): void {
    const committed = this.options.configuration();
    for (const lease of committed.leases.values()) {
      const uuid = lease.node_uuid;
      if (this.nodes.has(uuid) || this.deadNodes.has(uuid)) continue;
      const known = committed.nodes.get(uuid);
      // A lease naming a node that never reported was never about a live host: left alone.
      if (known === undefined) continue;
      this.nodeDead(uuid, known.host, undefined, now, true);
    }
  }
}

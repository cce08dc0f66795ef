/**
 * A control service in memory that also streams node views (issue 23: GET /v1/agent/cluster/watch,
 * the control service's agentWatch.ts), on top of a ViewControl: a watch answers the whole view (no
 * `since`, or one the service does not know) or what changed since `since`, then a delta line per
 * change of the node's view — nothing for a change outside it (the configuration tag then goes
 * stale until a report's answer names the new one and the agent reads it: a refetch). drop() cuts
 * every open watch (a connection lost), restart() restarts the service (new generations, watches
 * cut), `refuse` makes it a service from before the watch (404). Lines are read off the
 * ViewControl's own long-poll deltas (its counters count them as delta polls; `lines` counts what
 * the watches sent). Test support, not exported by the package.
 */
import {
  type ClusterAnswer,
  type ClusterDelta,
  type ClusterSnapshot,
  FlockerApiError,
  isClusterDelta,
} from '@flocker/api';
import type { NodeReport } from '@flocker/api';
import type { ControlChannel } from '../DatasetAgent';
import type { ViewControl } from './ViewControl';

/** How long the stream's own poll of the ViewControl waits (it answers sooner, after its hold). */
const INNER_WAIT_MS = 60_000;

export class WatchControl implements ControlChannel {
  /** Lines the watches sent, by kind. */
  readonly lines = { view: 0, delta: 0 };
  /** The watches' own reads of the ViewControl (among its deltaRequests). */
  innerReads = 0;
  /** Every watch asked for: its `since`. */
  readonly watches: Array<{ since: string | undefined }> = [];
  /** A service from before the watch: it answers 404. */
  refuse = false;
  /** The service is away: every call fails (no answer) and open watches are cut when they next look. */
  down = false;
  /**
   * Off: reports are answered without the configuration tag, so the agent never refetches on a
   * report's answer — what it knows comes from the watch alone (and the reads after a cut watch).
   */
  tagReports = true;
  /** Bumped by drop(): a watch opened before sees its connection cut. */
  private epoch = 0;

  constructor(readonly control: ViewControl) {}

  async reportNodeState(report: NodeReport): Promise<unknown> {
    if (this.down) throw unreachable();
    const answer = await this.control.reportNodeState(report);
    return this.tagReports ? answer : { generation: this.control.generation };
  }

  waitForCluster(since?: string, timeoutMs?: number): Promise<ClusterSnapshot> {
    return this.down ? Promise.reject(unreachable()) : this.control.waitForCluster(since, timeoutMs);
  }

  waitForClusterDelta(since: string | undefined, timeoutMs: number, node: string): Promise<ClusterAnswer> {
    return this.down ? Promise.reject(unreachable()) : this.control.waitForClusterDelta(since, timeoutMs, node);
  }

  async *watchCluster(
    node: string,
    since: string | undefined,
    options: { signal?: AbortSignal } = {},
  ): AsyncGenerator<ClusterAnswer, void, undefined> {
    this.watches.push({ since });
    if (this.down) throw unreachable();
    if (this.refuse) throw new FlockerApiError(404, 'NOT_FOUND', 'no route GET /v1/agent/cluster/watch');
    const epoch = this.epoch;
    // A function: the signal aborts while we await.
    const gone = (): boolean => options.signal?.aborted === true;
    let held = since;
    for (;;) {
      if (gone()) return;
      if (this.epoch !== epoch || this.down) throw unreachable();
      this.innerReads++;
      const answer = await this.control.waitForClusterDelta(held, INNER_WAIT_MS, node);
      if (gone()) return;
      if (this.epoch !== epoch || this.down) throw unreachable();
      // The view unchanged (the hold ran out, or a change elsewhere): the watch writes nothing.
      if (isClusterDelta(answer) && isEmpty(answer)) continue;
      held = answer.generation;
      if (isClusterDelta(answer)) this.lines.delta++;
      else this.lines.view++;
      yield answer;
    }
  }

  /** Every open watch is cut (a connection lost; the service keeps its generations). */
  drop(): void {
    this.epoch++;
  }

  /** A restart of the service: its watches cut, then new generations (ViewControl.restart). */
  restart(): void {
    this.drop();
    this.control.restart();
  }
}

function unreachable(): FlockerApiError {
  return new FlockerApiError(0, 'CONTROL_SERVICE_UNREACHABLE', 'other side closed');
}

function isEmpty(d: ClusterDelta): boolean {
  return (
    d.datasets.length === 0 &&
    d.removed_datasets.length === 0 &&
    d.leases.length === 0 &&
    d.removed_leases.length === 0 &&
    d.nodes.length === 0 &&
    d.removed_nodes.length === 0 &&
    d.snapshots === undefined
  );
}

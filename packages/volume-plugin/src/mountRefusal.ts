/**
 * Pure decisions of a Mount that cannot succeed until the user acts (local storage, issue 24): the dataset agent on
 * this node refuses the dataset for a reason no retry of its own clears, so the Mount fails within seconds instead of
 * at its timeout; and whether a move this Mount started may be put back when the Mount gives up.
 */
import { deadSourceOf, isLocalBackend, type ActionError, type ClusterSnapshot, type NodeState } from '@flocker/api';

/** How long a final refusal must stay reported before a Mount fails on it: a refusal from a stale view clears first. */
export const REFUSAL_GRACE_MS = 2_000;

/**
 * A refusal of this node's agent that only the user (an opt-in, a move, a copy taken out of the pool) or another node
 * coming back ends. SOURCE_UNREACHABLE only while the node it names holding the data is dead in the snapshot (as the
 * CLI's movePhase): the data-node marker's node not reported since a restart of the control service, or a pool
 * keeping data while no holder is shown, end once that node reports, so those are waited for. TWO_LIVE_COPIES
 * always: neither copy is retired by anyone but the user (or ordered once the other node answers again). And
 * NOT_ON_LOCAL_STORAGE: a clone or restore the local agent cannot fill (never made empty).
 */
export interface FinalRefusal {
  readonly error: ActionError;
  /** SOURCE_UNREACHABLE: the dead node holding the data. */
  readonly deadSource?: NodeState;
}

export function finalRefusal(s: ClusterSnapshot, me: string, datasetId: string): FinalRefusal | undefined {
  const node = s.nodes.find((n) => n.uuid === me);
  if (node === undefined || !node.alive) return undefined;
  const error = node.errors.find((e) => e.dataset_id === datasetId && e.action === 'refuse');
  if (error === undefined) return undefined;
  // NOT_ON_LOCAL_STORAGE: a clone or restore this node's local storage cannot fill; only deleting it ends that.
  if (error.code === 'TWO_LIVE_COPIES' || error.code === 'NOT_ON_LOCAL_STORAGE') return { error };
  const deadSource = deadSourceOf(s, error);
  return deadSource !== undefined ? { error, deadSource } : undefined;
}

/**
 * Follows a final refusal across snapshots: fails once it has been reported, unchanged in kind and under the same
 * configuration, for `graceMs`. A node's state does not say which configuration its report was built on, so a
 * refusal still shown after a configuration change (the user's opt-in, this Mount's own move) may predate it: the
 * grace starts again at every new configuration tag.
 */
export class RefusalClock {
  private first: { code: string; tag: string; at: number } | undefined;

  constructor(
    private readonly graceMs: number,
    private readonly now: () => number,
  ) {}

  /** The refusal to fail on, once reported for the grace without a snapshot in between clearing it. */
  check(refusal: FinalRefusal | undefined, configurationTag: string): FinalRefusal | undefined {
    if (refusal === undefined) {
      this.first = undefined;
      return undefined;
    }
    const t = this.now();
    if (this.first?.code !== refusal.error.code || this.first.tag !== configurationTag)
      this.first = { code: refusal.error.code, tag: configurationTag, at: t };
    return t - this.first.at >= this.graceMs ? refusal : undefined;
  }
}

/** The standby replica of a dataset the snapshot shows (the dead source's last report first), with a snapshot sent. */
export function standbyReplica(
  s: ClusterSnapshot,
  datasetId: string,
  preferFrom?: string,
): { node: string; host: string; takenAt: string } | undefined {
  const nodes = [...s.nodes].sort((a, b) => Number(b.uuid === preferFrom) - Number(a.uuid === preferFrom));
  for (const n of nodes) {
    const r = n.replicas?.find((x) => x.dataset_id === datasetId && x.taken_at !== null && x.snapshot !== null);
    if (r === undefined || r.taken_at === null) continue;
    const host = s.nodes.find((x) => x.uuid === r.node_uuid)?.host ?? r.node_uuid;
    return { node: r.node_uuid, host, takenAt: r.taken_at };
  }
  return undefined;
}

function age(from: string, now: number): string {
  const s = Math.max(0, Math.round((now - Date.parse(from)) / 1000));
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  return `${Math.round(s / 3600)} h`;
}

/**
 * What Docker's user reads when a Mount fails on a final refusal: what stands in the way, what to do (with the
 * flocker command where one exists: the standby replica's failover), then the agent's own words.
 */
export function refusalMessage(
  s: ClusterSnapshot,
  me: string,
  name: string,
  datasetId: string,
  refusal: FinalRefusal,
  /**
   * takenBack: this Mount's move was taken back (the primary put back where the data is); pending: the primary stays
   * on this host (the move waits for the dead host); none: nothing to say about the primary.
   */
  move: 'takenBack' | 'pending' | 'none',
  now: number,
): string {
  const here = s.nodes.find((n) => n.uuid === me)?.host ?? me;
  const agent = `The dataset agent on this host reports: ${refusal.error.message} (${refusal.error.code}).`;
  const dead = refusal.deadSource;
  if (dead === undefined)
    return `volume ${name} cannot be mounted on this host until you act: its dataset agent refuses it. ${agent}`;
  const lines = [
    `volume ${name} cannot be mounted on this host: its data is on host ${dead.host}, which is dead (local storage cannot be moved off a dead node).` +
      (move === 'takenBack' ? ` The volume stays on ${dead.host} (this Mount's move was taken back).` : ''),
    `Bring ${dead.host} back, then run the container again.`,
  ];
  if (move === 'pending')
    lines.push(
      `The move here stays asked for (it goes on by itself once ${dead.host} is back); to take it back: flocker volumes move ${name} ${dead.host}.`,
    );
  const replica = standbyReplica(s, datasetId, dead.uuid);
  if (replica !== undefined) {
    const where = replica.node === me ? `this host (${here})` : `host ${replica.host}`;
    const then = replica.node === me ? 'then run the container again' : `then run the container on ${replica.host}`;
    lines.push(
      `Or start from the standby replica on ${where}, ${age(replica.takenAt, now)} old, losing every write after it: ` +
        `flocker volumes move ${name} ${replica.host} --accept-replica-loss, ${then}.`,
    );
  }
  lines.push(agent);
  return lines.join(' ');
}

/**
 * Whether a Mount that moved the dataset here (primary `from` → `me`) and gave up on a final refusal (the caller's
 * part: never after a timeout, where the move may be merely slow) may put the primary back: the snapshot (taken
 * after this node's lease was let go) still shows `me` as the primary with no lease on it, no copy here, `from`
 * still reporting its copy on local storage, and no node reporting a move of it under way here (the data never
 * left). Only local storage: there the data is bound to `from` (dead or not, the move cannot go on without it);
 * a block volume is reachable from here (a takeover from a dead node detaches and attaches it), so putting it back
 * would undo a failover and leave it on a node that cannot mount it.
 */
export function mayPutBack(s: ClusterSnapshot, me: string, datasetId: string, from: string): boolean {
  const d = s.datasets.find((x) => x.dataset_id === datasetId);
  if (d === undefined || d.deleted || d.primary !== me) return false;
  if (s.leases.some((l) => l.dataset_id === datasetId)) return false;
  const holds = (n: NodeState | undefined) => n?.manifestations.some((m) => m.dataset_id === datasetId) === true;
  if (holds(s.nodes.find((n) => n.uuid === me))) return false;
  const source = s.nodes.find((n) => n.uuid === from);
  if (source === undefined || !isLocalBackend(source.backend) || !holds(source)) return false;
  return !s.nodes.some((n) => n.alive && (n.moves ?? []).some((m) => m.dataset_id === datasetId));
}

/**
 * Where a dataset is on its way to being usable on a node, read from one
 * cluster snapshot. Pure, so every phase is unit-tested.
 */
import {
  type ClusterSnapshot,
  type DatasetState,
  deadSourceOf,
  type GrowPending,
  isLocalBackend,
  shownMountedPath,
} from '@flocker/api';
import {
  growPendingReason,
  localCloneNotFilled,
  localMoveOf,
  localMoveText,
  replicaOf,
  replicaText,
} from '@flocker/web-ui';
import { visible } from './format';

export type Phase =
  | { phase: 'mounted'; path: string }
  | { phase: 'deleted' }
  | {
      phase: 'waiting';
      step: string;
      error?: string;
      fatal?: boolean;
      code?: string;
      /**
       * The step's kind when its text carries figures that change as it goes (a local move's bytes sent): a log
       * (stderr not a terminal) gets one line per stage, a terminal every change (cli.ts waitUntil).
       */
      stage?: string;
      /** The node's refusal (an error with action 'refuse'): its code and text as the agent reports it. */
      refused?: { readonly code: string; readonly message: string };
    };

/**
 * A move's wait (`flocker volumes move`): movePhase, except for a "mounted" on the target that is not current.
 * After a move away and straight back, the target's report built before its agent had acted on the move back (it
 * was unmounting for the move away: intermediate states are debounced, and the other node's "mounted" can come
 * first) still shows it mounted, even one received after the move: the wait ended at once, on a path that was not
 * mounted. `shown` (GET /v1/state/datasets?dataset_id=, read once movePhase says mounted; checked by
 * shownMountedPath) is the control service's verdict: it shows a "mounted" on the node a dataset last moved onto
 * only from a report whose configuration_version is at least that move's (session 10; from an older agent, one
 * received after the move). Without `shown`, and in any case: a "mounted" `before` (the snapshot taken before the
 * move) already showed while the primary was elsewhere counts only from a report the target sent since (a later
 * last_seen; session 9).
 */
export function moveWaitPhase(
  before: ClusterSnapshot,
  s: ClusterSnapshot,
  datasetId: string,
  nodeUuid: string,
  shown?: readonly DatasetState[],
  /** The move set an opt-in (--accept-replica-loss): a refusal the target reports is the old one until it acts. */
  optedIn = false,
): Phase {
  const p = movePhase(s, datasetId, nodeUuid);
  if (p.phase === 'waiting' && p.fatal === true && p.code === 'SOURCE_UNREACHABLE') {
    // A refusal is this move's only from a report the target sent since the move was asked for (when the move
    // changed the primary) and, with an opt-in, never: its agent decides again once it sees the opt-in.
    const wasPrimary = before.datasets.find((d) => d.dataset_id === datasetId)?.primary === nodeUuid;
    const seenBefore = before.nodes.find((n) => n.uuid === nodeUuid)?.last_seen;
    const seen = s.nodes.find((n) => n.uuid === nodeUuid)?.last_seen;
    const reportedSince =
      wasPrimary || seenBefore === undefined || (seen !== undefined && Date.parse(seen) > Date.parse(seenBefore));
    if (optedIn || !reportedSince)
      return {
        phase: 'waiting',
        step: p.step,
        ...(p.error ? { error: p.error } : {}),
        ...(p.refused ? { refused: p.refused } : {}),
      };
    return p;
  }
  if (p.phase !== 'mounted') return p;
  const host = s.nodes.find((n) => n.uuid === nodeUuid)?.host ?? nodeUuid;
  const current = (q: Phase): Phase => {
    if (shown === undefined) return q;
    if (shownMountedPath(shown, datasetId, nodeUuid) !== undefined) return q;
    return { phase: 'waiting', step: `waiting for ${host} to report having acted on the move (it may be unmounting)` };
  };
  if (before.datasets.find((d) => d.dataset_id === datasetId)?.primary === nodeUuid) return current(p);
  const was = before.nodes.find((n) => n.uuid === nodeUuid);
  if (was === undefined || movePhase(before, datasetId, nodeUuid).phase !== 'mounted') return current(p);
  const seen = s.nodes.find((n) => n.uuid === nodeUuid)?.last_seen;
  if (seen !== undefined && Date.parse(seen) > Date.parse(was.last_seen)) return current(p);
  return { phase: 'waiting', step: `waiting for ${was.host} to report since the move (it unmounts for the move away)` };
}

export function movePhase(snapshot: ClusterSnapshot, datasetId: string, nodeUuid: string): Phase {
  const node = snapshot.nodes.find((n) => n.uuid === nodeUuid);
  if (!node)
    return {
      phase: 'waiting',
      step: 'waiting for the node to report',
      error: `node ${nodeUuid} has never reported`,
      fatal: true,
    };
  if (!node.alive)
    return {
      phase: 'waiting',
      step: 'waiting for the node',
      error: `node ${nodeUuid} (${node.host}) is not alive`,
      fatal: true,
    };
  const error = node.errors.find((e) => e.dataset_id === datasetId);
  const refused = error?.action === 'refuse' ? { refused: { code: error.code, message: error.message } } : {};
  const withError = (step: string): Phase =>
    error
      ? {
          phase: 'waiting',
          step,
          error:
            error.action === 'refuse'
              ? `refused: ${error.message}`
              : `${error.action} failed (${error.attempts} attempts): ${error.message}`,
          ...refused,
        }
      : { phase: 'waiting', step };
  // A clone or restore onto a local node (accepted before it reported its backend): mounted empty, never filled.
  const d = snapshot.datasets.find((x) => x.dataset_id === datasetId);
  const notFilled = d === undefined ? null : localCloneNotFilled(snapshot, d);
  if (notFilled !== null)
    return {
      phase: 'waiting',
      step: 'filling the volume',
      error: notFilled,
      fatal: true,
      code: 'NOT_ON_LOCAL_STORAGE',
    };
  const here = node.manifestations.find((m) => m.dataset_id === datasetId);
  if (here?.status === 'mounted' && here.path) return { phase: 'mounted', path: here.path };
  // Local storage (issue 24): the data is on a dead node, which nothing here will change (the node coming back, a
  // move back or an opt-in will): no wait until the timeout. A node named that is alive (the data-node marker's, not
  // reported since a restart of the control service) is waited for: its report ends the refusal.
  const deadSource = deadSourceOf(snapshot, error);
  if (error?.code === 'SOURCE_UNREACHABLE' && deadSource !== undefined)
    return {
      phase: 'waiting',
      step: `refused: the data is on ${deadSource.host}, which is dead`,
      error: error.message,
      fatal: true,
      code: 'SOURCE_UNREACHABLE',
      ...refused,
    };
  // Local storage (issue 24): the source streams the data here while its users keep the volume; its report says how far.
  const local = localMoveOf(snapshot, datasetId);
  if (local !== null && local.to.uuid === nodeUuid) {
    const p = withError(localMoveText(local));
    // "copying from" (the first send) and "copying what changed" read as two steps; their figures are no stage.
    const stage = `local move: ${local.phase}${local.phase === 'copying' && local.rounds > 0 ? ' again' : ''}`;
    return p.phase === 'waiting' ? { ...p, stage } : p;
  }
  // Nothing is attached across nodes there: until the source starts sending, the copy is still on the source.
  const source = isLocalBackend(node.backend)
    ? snapshot.nodes.find((n) => n.uuid !== nodeUuid && n.manifestations.some((m) => m.dataset_id === datasetId))
    : undefined;
  if (source !== undefined && here === undefined) return withError(`waiting for ${source.host} to start the move`);
  if (here?.status === 'attached') return withError('formatting and mounting');
  const volume = snapshot.nodes.flatMap((n) => n.volumes ?? []).find((v) => v.dataset_id === datasetId);
  if (!volume) return withError('creating');
  if (volume.attached_to === null) return withError('attaching');
  if (volume.attached_to === node.instance_id) return withError('attaching');
  const holder = snapshot.nodes.find((n) => n.instance_id === volume.attached_to);
  if (holder && !holder.alive) return withError(`waiting for dead node ${holder.host} to be fenced`);
  return withError(`detaching from ${holder ? holder.host : volume.attached_to}`);
}

/** Refusals only the user ends (local storage): a move's wait ends on them after REFUSAL_GRACE_MS (EXIT.REFUSED). */
export const USER_ACTION_REFUSALS: ReadonlySet<string> = new Set(['TWO_LIVE_COPIES', 'SOURCE_UNREACHABLE']);
/**
 * How long such a refusal must stay before a move's wait ends on it: a refusal from a report built before the
 * target's agent acted on the move (or on an opt-in set with it) is replaced within a few seconds.
 */
export const REFUSAL_GRACE_MS = 10_000;

/** Since when a move's wait has seen the same refusal (its code), continuously. */
export interface RefusalSeen {
  readonly code: string;
  readonly since: number;
}

/**
 * The refusal a move's wait has seen after this phase: the same one keeps its start, another starts again, none (or
 * one the agent may end by itself) forgets it. `final` once it has lasted REFUSAL_GRACE_MS (`graceMs`).
 */
export function refusalAfter(
  seen: RefusalSeen | undefined,
  p: Phase,
  now: number,
  graceMs = REFUSAL_GRACE_MS,
): { seen: RefusalSeen | undefined; final: boolean } {
  const code = p.phase === 'waiting' ? p.refused?.code : undefined;
  if (code === undefined || !USER_ACTION_REFUSALS.has(code)) return { seen: undefined, final: false };
  const next = seen?.code === code ? seen : { code, since: now };
  return { seen: next, final: now - next.since >= graceMs };
}

/**
 * What `flocker volumes move` says when the target refuses because the data is on a dead node: the refusal, that the
 * move stays asked for, and the ways out with their commands (the standby replica's only when there is one on the
 * target, with its age: the writes a promote would lose).
 */
export function deadSourceAdvice(
  snapshot: ClusterSnapshot,
  volume: string,
  datasetId: string,
  targetUuid: string,
  refusal: string,
  now: number,
): string {
  const target = snapshot.nodes.find((n) => n.uuid === targetUuid);
  const dead = deadSourceOf(snapshot, { code: 'SOURCE_UNREACHABLE', message: refusal });
  // The dead node's last report names the replica (replicaOf reads the primary's: now the target, which has none).
  const r = dead?.replicas?.find((x) => x.dataset_id === datasetId) ?? null;
  const replica =
    r === null ? replicaOf(snapshot, datasetId) : { node_uuid: r.node_uuid, host: '', taken_at: r.taken_at };
  const lines = [refusal];
  if (dead !== undefined)
    lines.push(
      `The move stays asked for: it goes on by itself if ${dead.host} comes back. To take the move back: flocker volumes move ${volume} ${dead.host}.`,
    );
  if (replica !== null && replica.node_uuid === targetUuid)
    lines.push(
      `There is a standby ${replicaText({ ...replica, host: target?.host ?? targetUuid }, now)}: to start from it, losing every write after it, run flocker volumes move ${volume} ${target?.host ?? targetUuid} --accept-replica-loss.`,
    );
  // One line each: a line feed in a host cannot start another.
  return lines.map(visible).join('\n');
}

/** True once no node has the dataset and the backend holds no volume for it. */
export function isGone(snapshot: ClusterSnapshot, datasetId: string): boolean {
  return !snapshot.nodes.some(
    (n) =>
      n.manifestations.some((m) => m.dataset_id === datasetId) ||
      (n.volumes ?? []).some((v) => v.dataset_id === datasetId),
  );
}

/**
 * How far a grow of a dataset to `size` bytes has got: done when its primary reports the volume
 * at least that big (mounted or not: the file system follows online, or at its next mount where
 * the host withholds online growth). A dead primary or a deleted volume is fatal.
 */
export function resizePhase(
  snapshot: ClusterSnapshot,
  datasetId: string,
  size: number,
): { done: { host: string; size: number; pending?: GrowPending } } | { step: string; error?: string; fatal?: boolean } {
  const d = snapshot.datasets.find((x) => x.dataset_id === datasetId);
  if (!d || d.deleted) return { step: 'deleted', error: 'the volume was deleted', fatal: true };
  const node = snapshot.nodes.find((n) => n.uuid === d.primary);
  if (!node || !node.alive)
    return { step: 'waiting for its node', error: `node ${node?.host ?? d.primary} is not alive`, fatal: true };
  const m = node.manifestations.find((x) => x.dataset_id === datasetId);
  // A grow that waits until the volume is unused (TN F3): the wait ends here, saying so, not "is N".
  if (m?.grow_pending !== undefined && (m.size >= size || m.grow_pending.reason === 'detach_required'))
    return { done: { host: node.host, size: m.size, pending: m.grow_pending } };
  if (m && m.size >= size) return { done: { host: node.host, size: m.size } };
  const error = node.errors.find((e) => e.dataset_id === datasetId);
  const step = m ? `growing the volume on ${node.host}` : `waiting for ${node.host} to attach it`;
  return error ? { step, error: `${error.action} failed: ${error.message} (${error.code})` } : { step };
}

/** What a pending grow waits for (TN F3), naming the volume's users: the web UI's words (growPendingReason). */
export function growPendingText(snapshot: ClusterSnapshot, datasetId: string): string {
  return visible(`pending: ${growPendingReason(snapshot, datasetId)}`);
}

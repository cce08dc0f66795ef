/**
 * When the agent takes a deleted dataset's volume down (issue 23), pure. The unmount, detach and destroy of
 * a deleted dataset wait on nobody (the API already says deleted; a re-create of the name is a new dataset
 * with a new id), but right after a `docker volume rm` they compete with dockerd's own bookkeeping for the
 * disk and the CPUs (an umount + loop detach 1 ms after the plugin's Remove answered added ~6 ms to the rm).
 * So they wait for the node to be quiet for a short settle, bounded so that activity cannot put them off for
 * ever. Safety does not depend on the delay: until destroyed the volume stays the deleted dataset's (its
 * record), which nothing hands to anyone else; a crash meanwhile loses only the delay (the look after a
 * restart finds the volume and decides again).
 */
import type { ClusterSnapshot } from '@flocker/api';

/** Quiet (no configuration change, no worker ending, no work queued) a deleted dataset's teardown waits for. */
export const DESTROY_SETTLE_MS = 400;
/** At most how long after it was first decided a deleted dataset's teardown waits, however busy the node. */
export const DESTROY_MAX_DEFER_MS = 3_000;

/**
 * How long from `now` until the teardown of a deleted dataset first decided at `wantedSince` may start:
 * `settleMs` after the node's last activity (`lastActivity`: a configuration change, a worker's end; the decision
 * itself is none: a look put off until the quiet decides at once), only
 * while the work queue is idle (the teardown yields to real work: a create or move right after the delete
 * is not made to share the disk with it), and in any case at `wantedSince + maxDeferMs`. Zero at once when
 * `spaceWanted` (a step of a dataset here failed, maybe for the space the teardown frees). Never negative.
 */
export function destroyDelay(s: {
  readonly now: number;
  readonly wantedSince: number;
  readonly lastActivity: number;
  readonly queueIdle: boolean;
  readonly spaceWanted: boolean;
  readonly settleMs: number;
  readonly maxDeferMs: number;
}): number {
  if (s.spaceWanted) return 0;
  const bound = s.wantedSince + s.maxDeferMs;
  const due = s.queueIdle ? Math.min(s.lastActivity + s.settleMs, bound) : bound;
  return Math.max(0, due - s.now);
}

/** The parts of a snapshot a configuration change is made of (ClusterFollower's configKey). */
type ConfigParts = Pick<ClusterSnapshot, 'datasets' | 'snapshots' | 'nodes'>;

/**
 * Whether all a configuration change did is mark datasets deleted (a `docker volume rm`): every other dataset,
 * the snapshots and the nodes as before. Such a change needs no full look now: it asks only for teardowns, which
 * wait for quiet anyway, so the look waits with them (DESTROY_SETTLE_MS) instead of running beside dockerd's
 * bookkeeping after the Remove. A dataset dropped from the configuration, or anything else changed: false.
 */
export function deletesOnly(before: ConfigParts, after: ConfigParts): boolean {
  const nodes = (s: ConfigParts) => JSON.stringify(s.nodes.map((n) => [n.uuid, n.instance_id, n.alive]));
  if (
    nodes(before) !== nodes(after) ||
    JSON.stringify(before.snapshots ?? []) !== JSON.stringify(after.snapshots ?? [])
  )
    return false;
  if (before.datasets.length !== after.datasets.length) return false;
  let deleted = 0;
  for (let i = 0; i < after.datasets.length; i++) {
    const b = before.datasets[i]!;
    const a = after.datasets[i]!;
    if (JSON.stringify(a) === JSON.stringify(b)) continue;
    if (b.deleted || !a.deleted || JSON.stringify({ ...a, deleted: false }) !== JSON.stringify(b)) return false;
    deleted++;
  }
  return deleted > 0;
}

/**
 * The spare-volume pool's decisions (issue 23), pure: whether a new dataset may take a spare,
 * which sizes the pool keeps spares of, and what to make next. The I/O is SparePool.ts; the
 * spares themselves and their never-written proof are the driver's (loopbackSpares.ts).
 */
import type { ClusterSnapshot } from '@flocker/api';
import type { DesiredDataset } from './LocalState';

/**
 * A spare is a blank ext4 file system of the agent's own mkfs arguments: it may stand in for a
 * create + format only where the agent would format a blank volume as ext4. Not for a clone (its
 * snapshot's file system), a restore (written over from a backup, which assumes zeros where it
 * writes nothing), nor another file system.
 */
export function mayClaimSpare(
  dataset: Pick<DesiredDataset, 'sourceSnapshotId' | 'restoreFrom' | 'filesystem'>,
): boolean {
  return (
    dataset.sourceSnapshotId === undefined && dataset.restoreFrom === undefined && dataset.filesystem === undefined
  );
}

/**
 * The size classes after a new dataset of `size` bytes: the pinned ones always first (the agent's
 * default size, agent.yml dataset.spare_sizes), then the sizes asked for most recently, at most
 * `learned` of those (an old class is dropped; its spares stay claimable).
 */
export function noteSize(
  classes: readonly number[],
  pinned: readonly number[],
  size: number,
  learned: number,
): number[] {
  const fixed = pinned.filter((s, i) => pinned.indexOf(s) === i);
  const others = [size, ...classes].filter((s, i, all) => !fixed.includes(s) && all.indexOf(s) === i);
  return [...fixed, ...others.slice(0, Math.max(0, learned))];
}

/**
 * The classes an agent starts with: the pinned ones, then the sizes of the spares already in the
 * pool (what an earlier run learned), most common first, at most `learned` of those.
 */
export function startingClasses(
  pinned: readonly number[],
  spares: readonly { readonly size: number }[],
  learned: number,
): number[] {
  const count = new Map<number, number>();
  for (const s of spares) count.set(s.size, (count.get(s.size) ?? 0) + 1);
  const found = [...count.entries()].sort((a, b) => b[1] - a[1] || a[0] - b[0]).map(([size]) => size);
  const fixed = pinned.filter((s, i) => pinned.indexOf(s) === i);
  return [...fixed, ...found.filter((s) => !fixed.includes(s)).slice(0, Math.max(0, learned))];
}

/**
 * The next spare to make: the first class (in order: the default first) with fewer than
 * `perClass` spares, counting the ones being made; undefined when every class is full.
 * Spares above the target (another host of a shared pool made some too) are left: they
 * are claimed like any other.
 */
export function nextSpareSize(
  spares: readonly { readonly size: number }[],
  classes: readonly number[],
  perClass: number,
): number | undefined {
  if (perClass <= 0) return undefined;
  return classes.find((size) => spares.filter((s) => s.size === size).length < perClass);
}

/** Whether a refill may run now: never while the agent has real work queued or running. */
export function mayRefill(state: { readonly queueIdle: boolean; readonly stopping: boolean }): boolean {
  return state.queueIdle && !state.stopping;
}

/**
 * How long from `now` until a refill may start: once the work queue has stayed idle for `settleMs`
 * (each new idle moment, `now`, pushes it back: a make's mkfs and fsyncs then stay off a command's
 * immediate follow-up, say a `docker volume rm` right after a create, whose commit on the same disk
 * would queue behind them), but no later than `maxDeferMs` after the refill was first wanted
 * (`wantedSince`), so commands that keep coming do not starve the pool; and not before `notBefore`
 * (a failed make). All in the agent's clock ms; never negative. Whether the queue is idle when it
 * is due is mayRefill's question.
 */
export function refillDelay(s: {
  readonly now: number;
  readonly wantedSince: number;
  readonly settleMs: number;
  readonly maxDeferMs: number;
  readonly notBefore: number;
}): number {
  const due = Math.min(s.now + s.settleMs, s.wantedSince + s.maxDeferMs);
  return Math.max(0, due - s.now, s.notBefore - s.now);
}

/**
 * Whether the leases held by `node` changed from `before` to `after`: a container started or stopped here (the Docker
 * plugin takes a volume's lease at its Mount and lets it go after its last Unmount), and Docker's own disk work (the
 * container's start, its teardown, a `docker volume rm` that usually follows) goes with it. The agent's queue is idle
 * through all of that (nothing to do for the agent), so this is the node's other sign of activity that puts a refill
 * off (SparePool.kick). A first snapshot (no `before`) is no change.
 */
export function leasesHereChanged(
  before: Pick<ClusterSnapshot, 'leases'> | null,
  after: Pick<ClusterSnapshot, 'leases'>,
  node: string,
): boolean {
  if (before === null) return false;
  const here = (s: Pick<ClusterSnapshot, 'leases'>) =>
    s.leases
      .filter((l) => l.node_uuid === node)
      .map((l) => l.dataset_id)
      .sort()
      .join(' ');
  return here(before) !== here(after);
}

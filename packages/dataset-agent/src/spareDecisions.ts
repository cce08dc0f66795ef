/**
 * The spare-volume pool's decisions (issue 23), pure: whether a new dataset may take a spare,
 * which sizes the pool keeps spares of, and what to make next. The I/O is SparePool.ts; the
 * spares themselves and their never-written proof are the driver's (loopbackSpares.ts).
 */
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
 * The size classes after a new dataset of `size` bytes: the default size always first, then the
 * sizes asked for most recently, at most `max` classes in all (an old class is dropped, its
 * spares stay claimable).
 */
export function noteSize(classes: readonly number[], defaultSize: number, size: number, max: number): number[] {
  const others = [size, ...classes].filter((s, i, all) => s !== defaultSize && all.indexOf(s) === i);
  return [defaultSize, ...others].slice(0, Math.max(1, max));
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

/**
 * The latest observation of each dataset's volumes and its sequence number (taken
 * when the look began): what the node reports, and what the fast start and the
 * pool-change hint read. Never what a decision is made on (those use a look just made).
 * Sequence numbers order looks and action ends: a look that began before an action
 * ended may not show that action's effect.
 */
import type { DiscoveredVolume, LocalState } from './LocalState';

/** One observation and its sequence number. */
export interface Observation {
  readonly seq: number;
  readonly local: LocalState;
}

export class ObservationView {
  private readonly entries = new Map<string, { seq: number; volumes: DiscoveredVolume[] }>();
  private seq = 0;
  /** The sequence number taken when the latest action ended. */
  private lastActionEnd = 0;

  /** A new sequence number, taken when a look begins. */
  nextSeq(): number {
    return ++this.seq;
  }

  /** An action ended (successfully or not). */
  actionEnded(): void {
    this.lastActionEnd = ++this.seq;
  }

  /** Whether an action ended after the look numbered `seq` began (it may not show in that look). */
  actionEndedSince(seq: number): boolean {
    return this.lastActionEnd > seq;
  }

  /**
   * Records an observation, unless a fresher one of the same dataset is already there.
   * `onlyDataset`: a look at that dataset alone. `notLooked`: datasets whose devices
   * this observation did not probe; their entries stay.
   */
  update(local: LocalState, seq: number, onlyDataset?: string, notLooked: ReadonlySet<string> = new Set()): void {
    const byDataset = new Map<string, DiscoveredVolume[]>();
    for (const v of local.volumes) byDataset.set(v.datasetId, [...(byDataset.get(v.datasetId) ?? []), v]);
    if (onlyDataset !== undefined) {
      this.entries.set(onlyDataset, { seq, volumes: byDataset.get(onlyDataset) ?? [] });
      return;
    }
    for (const [id, entry] of this.entries)
      if (entry.seq < seq && !byDataset.has(id) && !notLooked.has(id)) this.entries.delete(id);
    for (const [id, volumes] of byDataset) {
      if (notLooked.has(id)) continue;
      const entry = this.entries.get(id);
      if (entry === undefined || entry.seq < seq) this.entries.set(id, { seq, volumes });
    }
  }

  volumesOf(datasetId: string): readonly DiscoveredVolume[] {
    return this.entries.get(datasetId)?.volumes ?? [];
  }

  /** Every volume seen, by block device id. */
  all(): DiscoveredVolume[] {
    return [...this.entries.values()]
      .flatMap((e) => e.volumes)
      .sort((a, b) => (a.blockdeviceId < b.blockdeviceId ? -1 : 1));
  }

  /** Whether any volume seen satisfies `test`: a walk that stops at the first, without all()'s copy and sort. */
  some(test: (v: DiscoveredVolume) => boolean): boolean {
    for (const e of this.entries.values()) if (e.volumes.some(test)) return true;
    return false;
  }

  /**
   * Records that `mountPath` is now mounted from the volume (attached to `instanceId`), as
   * the mount just done says (with the file system it mounted, when known), keeping the entry's sequence number;
   * false if it changed nothing.
   */
  recordMount(
    datasetId: string,
    blockdeviceId: string,
    instanceId: string,
    mountPath: string,
    filesystem?: 'ext4' | 'xfs',
  ): boolean {
    const entry = this.entries.get(datasetId);
    if (entry === undefined) return false;
    let changed = false;
    const volumes = entry.volumes.map((v) => {
      if (v.blockdeviceId !== blockdeviceId || v.attachedTo !== instanceId || (v.mountPoints ?? []).includes(mountPath))
        return v;
      changed = true;
      return {
        ...v,
        hasFilesystem: true,
        mountPoints: [...(v.mountPoints ?? []), mountPath].sort(),
        ...(filesystem !== undefined ? { filesystem } : {}),
      };
    });
    if (changed) this.entries.set(datasetId, { seq: entry.seq, volumes });
    return changed;
  }

  /**
   * Records that `mountPath` was unmounted outside the workers (the self-fence, a stale mount's
   * removal), so that reports stop saying it is mounted; false if no volume showed it. The entry
   * takes a new sequence number: a full look begun before the unmount may still show the mount.
   */
  recordUnmount(mountPath: string): boolean {
    let found = false;
    for (const [datasetId, entry] of this.entries) {
      if (!entry.volumes.some((v) => (v.mountPoints ?? []).includes(mountPath))) continue;
      found = true;
      const volumes = entry.volumes.map((v) =>
        (v.mountPoints ?? []).includes(mountPath)
          ? { ...v, mountPoints: (v.mountPoints ?? []).filter((p) => p !== mountPath) }
          : v,
      );
      this.entries.set(datasetId, { seq: this.nextSeq(), volumes });
    }
    return found;
  }
}

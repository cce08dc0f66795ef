/**
 * What the agent knows of the shared pool beyond one look: the latest listing's
 * unreadable records (reported as errors; their datasets are left alone), and which
 * dataset each volume holds, kept while its record cannot be read.
 */
import { Uuid, type ActionError, type ClusterSnapshot } from '@flocker/api';
import type { BlockDeviceApi, BlockDeviceVolume, PoolListing, VolumeProblem } from '@flocker/storage-drivers';
import type { Clock } from './clock';
import { FreshRead } from '@flocker/runtime';
import type { LocalState } from './LocalState';
import { attributeProblems, listPoolOf, reportedVolumes, type ReportedVolume } from './poolSafety';

/** A record's dataset id as the API's Uuid takes it (lower-cased), or undefined: the report must parse as a whole. */
function reportedDatasetId(id: string | undefined): string | undefined {
  const parsed = id === undefined ? undefined : Uuid.safeParse(id);
  return parsed?.success === true ? parsed.data : undefined;
}

export class PoolKnowledge {
  private readonly listing: FreshRead<PoolListing>;
  /** Unreadable records of the latest listing. */
  private problems: readonly VolumeProblem[] = [];
  /** When each unreadable record was first seen. */
  private readonly problemSince = new Map<string, string>();
  /**
   * Every volume as last listed, kept while its record is unreadable (else taken from a
   * node's report): attributes a record that goes bad to its dataset, and keeps the volume
   * in this node's reports, so that every other node knows whose it is too.
   */
  private readonly lastKnown = new Map<string, BlockDeviceVolume>();

  constructor(
    private readonly driver: BlockDeviceApi,
    private readonly clock: Clock,
    /** The cluster snapshot held (other nodes' reports attribute volumes too). */
    private readonly snapshot: () => ClusterSnapshot | null,
  ) {
    this.listing = new FreshRead(() => listPoolOf(driver));
  }

  /**
   * Lists the pool, sharing the listing among concurrent observations (FreshRead).
   * Invariant: a caller never gets a listing that began before it asked, so sharing
   * never hands a worker a pool older than its own step's effect.
   */
  readonly listPool = async (): Promise<BlockDeviceVolume[]> => {
    const listing = await this.listing.get();
    this.notePool(listing);
    return listing.volumes;
  };

  /** Keeps what a listing says about unreadable records and about which dataset each volume holds. */
  private notePool(listing: PoolListing): void {
    const bad = new Set(listing.problems.map((p) => p.blockdeviceId));
    for (const v of listing.volumes) this.lastKnown.set(v.blockdeviceId, v);
    const listed = new Set(listing.volumes.map((v) => v.blockdeviceId));
    for (const id of [...this.lastKnown.keys()]) if (!listed.has(id) && !bad.has(id)) this.lastKnown.delete(id);
    for (const id of bad) {
      if (this.lastKnown.has(id)) continue;
      const reported = this.snapshot()
        ?.nodes.flatMap((n) => (n.backend === this.driver.backend ? (n.volumes ?? []) : []))
        .find((v) => v.blockdevice_id === id);
      if (reported !== undefined) {
        this.lastKnown.set(id, {
          blockdeviceId: id,
          datasetId: reported.dataset_id,
          size: reported.size,
          attachedTo: reported.attached_to,
        });
      }
    }
    for (const id of [...this.problemSince.keys()]) if (!bad.has(id)) this.problemSince.delete(id);
    for (const id of bad) if (!this.problemSince.has(id)) this.problemSince.set(id, this.isoNow());
    this.problems = listing.problems;
  }

  private isoNow(): string {
    return new Date(this.clock.wallNow()).toISOString();
  }

  /** Volumes the nodes of this backend report for existing datasets (empty without a snapshot). */
  reportedVolumes(): ReportedVolume[] {
    const snap = this.snapshot();
    return snap === null ? [] : reportedVolumes(snap, this.driver.backend);
  }

  /** The dataset of every volume last listed (or last known while unreadable). */
  rememberedDatasets(): Map<string, string> {
    return new Map([...this.lastKnown].map(([id, v]) => [id, v.datasetId]));
  }

  /** The unreadable records, each with its dataset when anything tells. */
  private unreadableVolumes(): VolumeProblem[] {
    return attributeProblems(this.problems, this.rememberedDatasets(), this.reportedVolumes());
  }

  /**
   * An observation with the pool's unreadable records added (calculateChanges leaves
   * their datasets alone), and without "stray" mounts that may be theirs: a mount of a
   * volume whose record cannot be read is not stale, and must not be taken away.
   */
  withUnreadable(local: LocalState): LocalState {
    const unreadable = this.unreadableVolumes();
    if (unreadable.length === 0) return local;
    const held = new Set(unreadable.flatMap((u) => (u.datasetId !== undefined ? [u.datasetId] : [])));
    const devices = new Set(unreadable.flatMap((u) => u.devices ?? []));
    const strays = (local.strayMounts ?? []).filter((s) => !held.has(s.datasetId) && !devices.has(s.device));
    const { strayMounts: _ignored, ...rest } = local;
    return {
      ...rest,
      ...(strays.length > 0 ? { strayMounts: strays } : {}),
      unreadable: unreadable.map((u) => ({
        blockdeviceId: u.blockdeviceId,
        ...(u.datasetId !== undefined ? { datasetId: u.datasetId } : {}),
      })),
    };
  }

  /** An unreadable record: an error on its dataset (on the node when nothing tells which). */
  reportErrors(): ActionError[] {
    return this.unreadableVolumes().map((p): ActionError => {
      const datasetId = reportedDatasetId(p.datasetId);
      return {
        ...(datasetId !== undefined ? { dataset_id: datasetId } : {}),
        action: 'observe',
        code: p.code,
        message: p.message,
        attempts: 1,
        since: this.problemSince.get(p.blockdeviceId) ?? this.isoNow(),
      };
    });
  }

  /** Volumes whose record went bad, as last known, that `seen` lacks: still there, not gone. */
  stillThere(seen: ReadonlySet<string>): BlockDeviceVolume[] {
    return this.problems.flatMap((p) => {
      const known = this.lastKnown.get(p.blockdeviceId);
      return known !== undefined && !seen.has(p.blockdeviceId) ? [known] : [];
    });
  }
}

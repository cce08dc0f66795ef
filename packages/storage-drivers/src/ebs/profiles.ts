/** Storage profiles → EBS volume types (pure). */

export const GiB = 1024 * 1024 * 1024;

export interface VolumeTypeChoice {
  readonly VolumeType: 'gp3' | 'io2' | 'sc1';
  /** Provisioned IOPS where the type takes them. */
  readonly Iops?: number;
}

/** io2 needs at least 4 GiB, st1/sc1 at least 125 GiB (AWS limits). */
export const IO2_MIN_GIB = 4;
export const HDD_MIN_GIB = 125;
/** io2 allows 500 IOPS per GiB up to 64000 (Nitro); gp3's baseline is 3000 at any size. */
const IO2_IOPS_PER_GIB = 500;
const IO2_MAX_IOPS = 64_000;
const GP3_BASELINE_IOPS = 3000;

/**
 * gold: io2 with as many IOPS as the size allows (gp3 at its 3000 IOPS
 * baseline below io2's minimum size); silver: gp3; bronze: sc1 (cold HDD,
 * cheapest) where the size allows, else gp3. No or unknown profile: gp3.
 */
export function volumeTypeForProfile(profile: string | undefined, sizeGiB: number): VolumeTypeChoice {
  switch (profile?.toLowerCase()) {
    case 'gold':
      return sizeGiB >= IO2_MIN_GIB
        ? { VolumeType: 'io2', Iops: Math.min(IO2_MAX_IOPS, sizeGiB * IO2_IOPS_PER_GIB) }
        : { VolumeType: 'gp3', Iops: GP3_BASELINE_IOPS };
    case 'bronze':
      return sizeGiB >= HDD_MIN_GIB ? { VolumeType: 'sc1' } : { VolumeType: 'gp3' };
    case undefined: // no profile
    default:
      return { VolumeType: 'gp3' };
  }
}

/** Pure parsing of what `docker volume create` hands us: the name and `-o key=value` options. */
import { errorMessage } from '@flocker/runtime';
import { z } from 'zod';
import {
  DATASET_FILESYSTEMS,
  METADATA_REPLICAS_KEY,
  METADATA_SNAPSHOT_KEEP_KEY,
  METADATA_SNAPSHOT_SCHEDULE_KEY,
  MINIMUM_DATASET_SIZE,
  snapshotScheduleIssues,
  storageProfileFor,
  parseSize as parseSizeText,
  newVolumeNameProblem,
  volumeNameProblem,
  XFS_MINIMUM_SIZE,
  type DatasetFilesystem,
} from '@flocker/api';
import { VolumePluginError } from './protocol';

const GiB = 1024 ** 3;
export const DEFAULT_VOLUME_SIZE = 10 * GiB;

/** The one volume-name rule of @flocker/api (Docker's own, daemon/names.go RestrictedNamePattern), shared with the CLI and UI. */
export function validateVolumeName(name: string): void {
  const problem = volumeNameProblem(name);
  if (problem !== undefined) throw new VolumePluginError('INVALID_NAME', problem);
}

/**
 * A new volume's name: the rule above and no UUID-shaped name (review TN F1: a name equal to another volume's id
 * makes `flocker volumes destroy <id>` ambiguous). Create only, for a name no live volume has; lookups (an existing
 * volume of such a name, clone-of) keep validateVolumeName.
 */
export function validateNewVolumeName(name: string): void {
  const problem = newVolumeNameProblem(name);
  if (problem !== undefined) throw new VolumePluginError('INVALID_NAME', problem);
}

/** Parse "10G", "512MiB", "100KiB", "1.5GiB" or a byte count (binary units, as Flocker); at least 64 MiB. */
export function parseSize(text: string): number {
  try {
    return parseSizeText(text, MINIMUM_DATASET_SIZE);
  } catch (err) {
    throw new VolumePluginError('INVALID_SIZE', errorMessage(err));
  }
}

const PROFILE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}$/;
export const KNOWN_OPTIONS = [
  'size',
  'profile',
  'fs',
  'from-snapshot',
  'clone-of',
  'snapshot-schedule',
  'snapshot-keep',
  'replicas',
] as const;

/**
 * `-o replicas=N`: standby replicas of a volume on local storage (issue 24), kept on other nodes. The agent keeps at
 * most one (metadata "1"; any other value is none), so a larger count is refused rather than silently dropped.
 */
export const MAX_REPLICAS = 1;
const Replicas = z
  .string()
  .trim()
  .regex(/^\d+$/, { message: 'must be a whole number, 0 or more' })
  .transform(Number)
  .pipe(
    z
      .number()
      .int()
      .max(MAX_REPLICAS, {
        message: `local storage keeps at most ${MAX_REPLICAS} standby replica per volume (on another node)`,
      }),
  );

/** The metadata of `-o replicas=N` (clusterhq:flocker:replicas), or an error saying what is wrong with N. */
export function parseReplicas(text: string): Record<string, string> {
  const r = Replicas.safeParse(text);
  if (!r.success) {
    throw new VolumePluginError(
      'INVALID_OPTION',
      `replicas "${text}": ${r.error.issues[0]?.message ?? 'not valid'}; use replicas=1 for a standby replica on another node (local storage only), replicas=0 for none.`,
    );
  }
  return { [METADATA_REPLICAS_KEY]: String(r.data) };
}

export interface CreateOptions {
  size: number;
  /** Whether `size` was asked for (a repeated create then grows an existing volume to it). */
  sizeGiven: boolean;
  profile?: string;
  /** `-o fs=xfs`; absent: ext4. */
  filesystem?: DatasetFilesystem;
  /** `-o from-snapshot=NAME|ID`: the new volume holds that snapshot's data. */
  fromSnapshot?: string;
  /** `-o clone-of=VOLUME`: the new volume holds that volume's data as it is now (through a snapshot). */
  cloneOf?: string;
  /**
   * `-o snapshot-schedule=hourly [-o snapshot-keep=24]`: the metadata keys of the volume's snapshot
   * schedule (the control service takes and prunes the snapshots); absent without the options.
   */
  schedule?: Record<string, string>;
  /** `-o replicas=N`: the metadata key clusterhq:flocker:replicas (local storage, issue 24); absent without it. */
  replicas?: Record<string, string>;
}

/** Turn Docker's `Opts` into validated options; unknown keys are an error, not silently dropped. */
export function parseCreateOptions(
  opts: Record<string, string> | null | undefined,
  defaultSize: number,
): CreateOptions {
  const given = opts ?? {};
  const unknown = Object.keys(given).filter((k) => !(KNOWN_OPTIONS as readonly string[]).includes(k));
  if (unknown.length > 0) {
    throw new VolumePluginError(
      'UNKNOWN_OPTION',
      `unknown volume option${unknown.length > 1 ? 's' : ''} ${unknown.map((k) => `"${k}"`).join(', ')}: the Flocker driver accepts only ${KNOWN_OPTIONS.join(', ')}.`,
    );
  }
  const result: CreateOptions = {
    size: given.size === undefined ? defaultSize : parseSize(given.size),
    sizeGiven: given.size !== undefined,
  };
  if (given.fs !== undefined) {
    const fs = DATASET_FILESYSTEMS.find((f) => f === given.fs);
    if (fs === undefined) {
      throw new VolumePluginError(
        'INVALID_OPTION',
        `fs "${given.fs}" is not supported: use ${DATASET_FILESYSTEMS.join(' or ')}.`,
      );
    }
    if (fs === 'xfs' && result.size < XFS_MINIMUM_SIZE) {
      throw new VolumePluginError('INVALID_SIZE', `an xfs volume needs a size of at least 300MiB.`);
    }
    result.filesystem = fs;
  }
  const from = given['from-snapshot'];
  const cloneOf = given['clone-of'];
  if (from !== undefined && cloneOf !== undefined) {
    throw new VolumePluginError('INVALID_OPTION', 'give from-snapshot or clone-of, not both.');
  }
  if ((from !== undefined || cloneOf !== undefined) && given.fs !== undefined) {
    throw new VolumePluginError('INVALID_OPTION', 'a clone keeps the file system of its source: leave out fs.');
  }
  if (from !== undefined) {
    if (from.trim() === '') throw new VolumePluginError('INVALID_OPTION', 'from-snapshot needs a snapshot name or id.');
    result.fromSnapshot = from;
  }
  if (cloneOf !== undefined) {
    validateVolumeName(cloneOf);
    result.cloneOf = cloneOf;
  }
  const schedule = given['snapshot-schedule'];
  const keep = given['snapshot-keep'];
  if (keep !== undefined && schedule === undefined) {
    throw new VolumePluginError('INVALID_OPTION', 'snapshot-keep needs snapshot-schedule.');
  }
  if (schedule !== undefined) {
    const metadata = {
      [METADATA_SNAPSHOT_SCHEDULE_KEY]: schedule,
      ...(keep !== undefined ? { [METADATA_SNAPSHOT_KEEP_KEY]: keep } : {}),
    };
    // The grammar here; the control service refuses an interval below its minimum (its 400 says so).
    const issue = snapshotScheduleIssues(metadata, 0)[0];
    if (issue !== undefined) throw new VolumePluginError('INVALID_OPTION', `${issue.message}.`);
    result.schedule = metadata;
  }
  if (given.replicas !== undefined) result.replicas = parseReplicas(given.replicas);
  if (given.profile !== undefined) {
    if (!PROFILE.test(given.profile)) {
      throw new VolumePluginError(
        'INVALID_PROFILE',
        `profile "${given.profile}" is not valid: use a name such as gold, silver or bronze.`,
      );
    }
    result.profile = given.profile;
  }
  return result;
}

/** The dataset id a plugin gives a volume it creates: @flocker/api's name-based rule (shared with the CSI driver). */
export { volumeDatasetId } from '@flocker/api';

/**
 * The profile to store for a new volume on a node with this backend: @flocker/api's rule, the CLI's
 * (unknown names refused with its sentence; Cinder and ScaleIO take any). While the node's backend is
 * not known yet (no report seen) the profile is kept as given, as before: the grammar is checked already.
 */
export function profileForBackend(profile: string, backend: string | undefined): string {
  if (backend === undefined) return profile;
  const r = storageProfileFor(profile, backend);
  if ('problem' in r) throw new VolumePluginError('INVALID_PROFILE', r.problem);
  return r.profile;
}

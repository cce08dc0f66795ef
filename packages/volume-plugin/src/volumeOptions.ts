import { createHash } from 'node:crypto';
/** Pure parsing of what `docker volume create` hands us: the name and `-o key=value` options. */
import { MINIMUM_DATASET_SIZE, parseSize as parseSizeText, volumeNameProblem } from '@flocker/api';
import { VolumePluginError } from './protocol';

const GiB = 1024 ** 3;
export const DEFAULT_VOLUME_SIZE = 10 * GiB;

/** The one volume-name rule of @flocker/api (Docker's own, daemon/names.go RestrictedNamePattern), shared with the CLI and UI. */
export function validateVolumeName(name: string): void {
  const problem = volumeNameProblem(name);
  if (problem !== undefined) throw new VolumePluginError('INVALID_NAME', problem);
}

/** Parse "10G", "512MiB", "100KiB", "1.5GiB" or a byte count (binary units, as Flocker); at least 64 MiB. */
export function parseSize(text: string): number {
  try {
    return parseSizeText(text, MINIMUM_DATASET_SIZE);
  } catch (err) {
    throw new VolumePluginError('INVALID_SIZE', err instanceof Error ? err.message : String(err));
  }
}

const PROFILE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}$/;
export const KNOWN_OPTIONS = ['size', 'profile'] as const;

export interface CreateOptions {
  size: number;
  profile?: string;
}

/** Turn Docker's `Opts` into validated options; unknown keys are an error, not silently dropped. */
export function parseCreateOptions(opts: Record<string, string> | null | undefined, defaultSize: number): CreateOptions {
  const given = opts ?? {};
  const unknown = Object.keys(given).filter((k) => !(KNOWN_OPTIONS as readonly string[]).includes(k));
  if (unknown.length > 0) {
    throw new VolumePluginError(
      'UNKNOWN_OPTION',
      `unknown volume option${unknown.length > 1 ? 's' : ''} ${unknown.map((k) => `"${k}"`).join(', ')}: the Flocker driver accepts only ${KNOWN_OPTIONS.join(' and ')}.`,
    );
  }
  const result: CreateOptions = { size: given.size === undefined ? defaultSize : parseSize(given.size) };
  if (given.profile !== undefined) {
    if (!PROFILE.test(given.profile)) {
      throw new VolumePluginError('INVALID_PROFILE', `profile "${given.profile}" is not valid: use a name such as gold, silver or bronze.`);
    }
    result.profile = given.profile;
  }
  return result;
}


/** The namespace of volumeDatasetId's name-based UUIDs (fixed: changing it would change every id). */
const VOLUME_ID_NAMESPACE = 'bd85c98e-bade-4abc-8617-d11353f57b90';

/**
 * The dataset id a plugin gives a volume it creates: a name-based UUID (version 5,
 * RFC 9562) of the volume name. Two plugins (on two hosts) creating the same new
 * volume at once then ask for the same id, and the control service's refusal of a
 * second dataset with one id (409) makes exactly one of them win.
 */
export function volumeDatasetId(name: string): string {
  const ns = Buffer.from(VOLUME_ID_NAMESPACE.replace(/-/g, ''), 'hex');
  const b = createHash('sha1').update(ns).update(name, 'utf8').digest().subarray(0, 16);
  b[6] = (b[6]! & 0x0f) | 0x50; // version 5
  b[8] = (b[8]! & 0x3f) | 0x80; // RFC 9562 variant
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

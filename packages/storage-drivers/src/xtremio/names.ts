/**
 * Pure parts of the XtremIO driver: how a Flocker volume is named on the array (XtremIO volumes have
 * no free-form metadata, but unique names), which lun-map holds a volume, and NAA ids as Linux
 * names them. XtremIO has no storage tiers: a profile is only recorded in the name.
 */
import { randomBytes } from 'node:crypto';
import type { LunMap } from './schemas';

/** The assumed limit of XMS object names (not verified on an array: see the README's acceptance list). */
export const MAX_NAME_LENGTH = 128;

const PART = '[A-Za-z0-9-]+';
const NAME = new RegExp(`^flocker_(${PART})_(${PART})_([0-9a-f]{12})(?:_(${PART}))?$`);
const PROFILE = /^[A-Za-z0-9-]{1,32}$/;

export interface ParsedName {
  readonly clusterId: string;
  readonly datasetId: string;
  /** Random per create call: a create whose answer was lost is found again by its name. */
  readonly nonce: string;
  readonly profile?: string;
}

export function newNonce(): string {
  return randomBytes(6).toString('hex');
}

/** The problem with naming a volume so, or undefined when it can be named. */
export function nameProblem(datasetId: string, profile: string | undefined, clusterId: string): string | undefined {
  if (!new RegExp(`^${PART}$`).test(datasetId))
    return `dataset id ${JSON.stringify(datasetId)} cannot be part of an XtremIO volume name (letters, digits, dashes)`;
  if (profile !== undefined && !PROFILE.test(profile))
    return `profile ${JSON.stringify(profile)} cannot be recorded on XtremIO (1-32 letters, digits, dashes)`;
  const length = volumeName({ clusterId, datasetId, nonce: newNonce(), profile }).length;
  if (length > MAX_NAME_LENGTH)
    return `the volume name would be ${length} characters, more than XtremIO's ${MAX_NAME_LENGTH}: use a shorter cluster_id`;
  return undefined;
}

export function volumeName(p: ParsedName): string {
  return `flocker_${p.clusterId}_${p.datasetId}_${p.nonce}${p.profile !== undefined ? `_${p.profile}` : ''}`;
}

const SNAPSHOT_NAME = new RegExp(`^flockersnap_(${PART})_(${PART})_([0-9a-f-]{36})$`);
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** A snapshot's name: flockersnap_<cluster>_<dataset>_<snapshot id> (the Flocker snapshot id, a UUID). */
export function snapshotName(clusterId: string, datasetId: string, snapshotId: string): string {
  return `flockersnap_${clusterId}_${datasetId}_${snapshotId}`;
}

export function isSnapshotId(s: string): boolean {
  return UUID.test(s);
}

/** The parts of a snapshot's name; null for any other name. */
export function parseSnapshotName(name: string): { clusterId: string; datasetId: string; snapshotId: string } | null {
  const m = SNAPSHOT_NAME.exec(name);
  return m === null ? null : { clusterId: m[1], datasetId: m[2], snapshotId: m[3] };
}

/** The parts of a Flocker volume's name; null for any other name. */
export function parseVolumeName(name: string): ParsedName | null {
  const m = NAME.exec(name);
  if (m === null) return null;
  return { clusterId: m[1], datasetId: m[2], nonce: m[3], ...(m[4] !== undefined ? { profile: m[4] } : {}) };
}

/**
 * Who holds a volume, from its lun-maps: XtremIO maps a volume to any number of initiator groups,
 * so two hosts attaching at once may both map it. The first mapping made (the lowest lun-map index)
 * holds it; a later one is a loser that removes its own mapping. Null without mappings.
 */
export function holderMap(maps: readonly LunMap[]): LunMap | null {
  let first: LunMap | null = null;
  for (const m of maps) if (first === null || m.index < first.index) first = m;
  return first;
}

/**
 * The NAA id as udev's wwn-0x… link spells it: lower-case hex without separators or 0x
 * (XMS shows naa-name as hex; colons or a 0x prefix are dropped so either form works).
 */
export function normaliseNaa(naa: string): string | null {
  const hex = naa
    .trim()
    .toLowerCase()
    .replace(/^0x/, '')
    .replace(/[:\s-]/g, '');
  return /^[0-9a-f]{16}([0-9a-f]{16})?$/.test(hex) ? hex : null;
}

/** The udev by-id name of a SCSI disk with this NAA id. */
export function wwnLinkName(naa: string): string {
  return `wwn-0x${naa}`;
}

/** InitiatorName= from open-iscsi's initiatorname.iscsi (comments and blank lines ignored). */
export function parseInitiatorName(text: string): string | null {
  for (const line of text.split('\n')) {
    const m = /^\s*InitiatorName\s*=\s*(\S+)\s*$/.exec(line);
    if (m) return m[1];
  }
  return null;
}

/** Sizes as XMS takes them on create/extend: whole GiB with a "g" suffix (Cinder: str(size) + 'g'). */
export function xmsSize(bytes: number): string {
  return `${bytes / (1024 * 1024 * 1024)}g`;
}

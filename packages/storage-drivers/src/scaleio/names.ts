/**
 * Pure parts of the ScaleIO driver: volume names and sizes.
 *
 * ScaleIO volumes carry no tags or metadata and their names are at most 31 characters, so
 * a volume's name is what says whose it is: 6 characters of the cluster's tag, the dataset
 * UUID in 22 base64url characters, and 3 random characters that make every create's name
 * its own (a second volume of a dataset, and a create whose answer was lost: it is found
 * again by exactly that name).
 */
import { createHash, randomBytes } from 'node:crypto';

export const GIB = 1024 * 1024 * 1024;
/** ScaleIO allocates in 8 GiB units ("Volume size must be in 8 GB blocks"). */
export const SCALEIO_UNIT = 8 * GIB;
export const MAX_NAME_LENGTH = 31;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** Volume ids are hex (e.g. 3bd1f78800000019 in Cinder's fixtures). */
export const VOLUME_ID = /^[0-9a-f]{1,32}$/i;

export function clusterTag(clusterId: string): string {
  return createHash('sha256').update(clusterId).digest('base64url').slice(0, 6);
}

export function volumeName(
  clusterId: string,
  datasetId: string,
  nonce: string = randomBytes(3).toString('base64url').slice(0, 3),
): string {
  if (!UUID.test(datasetId)) throw new Error(`dataset id ${datasetId} is not a UUID`);
  const dataset = Buffer.from(datasetId.replace(/-/g, ''), 'hex').toString('base64url');
  return `${clusterTag(clusterId)}${dataset}${nonce}`;
}

/** The dataset of one of this cluster's volume names; undefined for any other name. */
export function datasetOfName(clusterId: string, name: string | null | undefined): string | undefined {
  if (name?.length !== MAX_NAME_LENGTH || !name.startsWith(clusterTag(clusterId))) return undefined;
  const hex = Buffer.from(name.slice(6, 28), 'base64url').toString('hex');
  if (hex.length !== 32) return undefined;
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** Bytes → the 8-GiB-rounded size in KiB that volumeSizeInKb takes. */
export function sizeInKb(bytes: number): number {
  return (Math.ceil(bytes / SCALEIO_UNIT) * SCALEIO_UNIT) / 1024;
}

export function deviceLinkName(systemId: string, volumeId: string): string {
  return `emc-vol-${systemId}-${volumeId}`;
}

/** Snapshot names are 29 characters (the tag, "S", the snapshot UUID in base64url), so never read as a volume's. */
export const SNAPSHOT_NAME_LENGTH = 29;

export function isSnapshotId(snapshotId: string): boolean {
  return UUID.test(snapshotId);
}

/**
 * The name of a snapshot: no room is left for its dataset as well (31 characters), so that is read from
 * its source volume (ancestorVolumeId), which the driver keeps while the snapshot exists.
 */
export function snapshotName(clusterId: string, snapshotId: string): string {
  if (!UUID.test(snapshotId)) throw new Error(`snapshot id ${snapshotId} is not a UUID`);
  return `${clusterTag(clusterId)}S${Buffer.from(snapshotId.replace(/-/g, ''), 'hex').toString('base64url')}`;
}

/** The snapshot id of one of this cluster's snapshot names; undefined for any other name. */
export function snapshotIdOfName(clusterId: string, name: string | null | undefined): string | undefined {
  if (name?.length !== SNAPSHOT_NAME_LENGTH || !name.startsWith(`${clusterTag(clusterId)}S`)) return undefined;
  const hex = Buffer.from(name.slice(7), 'base64url').toString('hex');
  if (hex.length !== 32) return undefined;
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

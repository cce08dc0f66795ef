/**
 * The CSI messages this driver reads, as decoded by @grpc/proto-loader from the spec's
 * csi.proto (options in proto.ts: field names as in the proto, int64 as strings, enums as
 * their names, absent fields absent). Narrow hand-written schemas, validated with zod at
 * the boundary (every request goes through one before the driver sees it); unknown fields
 * pass through untouched. `wire.test.ts` checks every field named here against the proto.
 */
import { z } from 'zod';
import { CsiError, int64, type CapacityRange, type VolumeCapability } from './mapping';
import { status } from '@grpc/grpc-js';
import type { Segments, TopologyRequirement } from './topology';
import { timestampOf, type ContentSource, type CsiSnapshot } from './snapshots';

const Str = z.string().optional().nullable();
const StrMap = z.record(z.string(), z.string()).optional().nullable();
const Int64 = z.union([z.string(), z.number()]).optional().nullable();

export const VolumeCapabilityWire = z
  .object({
    block: z.object({}).loose().optional().nullable(),
    mount: z
      .object({ fs_type: Str, mount_flags: z.array(z.string()).optional().nullable() })
      .loose()
      .optional()
      .nullable(),
    access_mode: z.object({ mode: Str }).loose().optional().nullable(),
    access_type: Str,
  })
  .loose();

export const CapacityRangeWire = z.object({ required_bytes: Int64, limit_bytes: Int64 }).loose();

export const TopologyWire = z.object({ segments: StrMap }).loose();

export const TopologyRequirementWire = z
  .object({
    requisite: z.array(TopologyWire).optional().nullable(),
    preferred: z.array(TopologyWire).optional().nullable(),
  })
  .loose();

export const SnapshotSourceWire = z.object({ snapshot_id: Str }).loose();
export const VolumeSourceWire = z.object({ volume_id: Str }).loose();
export const VolumeContentSourceWire = z
  .object({
    snapshot: SnapshotSourceWire.optional().nullable(),
    volume: VolumeSourceWire.optional().nullable(),
    type: Str,
  })
  .loose();

export const CreateVolumeRequest = z
  .object({
    name: Str,
    capacity_range: CapacityRangeWire.optional().nullable(),
    volume_capabilities: z.array(VolumeCapabilityWire).optional().nullable(),
    parameters: StrMap,
    volume_content_source: VolumeContentSourceWire.optional().nullable(),
    accessibility_requirements: TopologyRequirementWire.optional().nullable(),
  })
  .loose();

export const GetCapacityRequest = z
  .object({
    volume_capabilities: z.array(VolumeCapabilityWire).optional().nullable(),
    parameters: StrMap,
    accessible_topology: TopologyWire.optional().nullable(),
  })
  .loose();

export const DeleteVolumeRequest = z.object({ volume_id: Str }).loose();

export const ValidateVolumeCapabilitiesRequest = z
  .object({
    volume_id: Str,
    volume_context: StrMap,
    volume_capabilities: z.array(VolumeCapabilityWire).optional().nullable(),
    parameters: StrMap,
  })
  .loose();

export const ListVolumesRequest = z
  .object({ max_entries: z.number().int().optional().nullable(), starting_token: Str })
  .loose();

export const NodeStageVolumeRequest = z
  .object({
    volume_id: Str,
    staging_target_path: Str,
    volume_capability: VolumeCapabilityWire.optional().nullable(),
    volume_context: StrMap,
  })
  .loose();

export const NodeUnstageVolumeRequest = z.object({ volume_id: Str, staging_target_path: Str }).loose();

export const NodePublishVolumeRequest = z
  .object({
    volume_id: Str,
    staging_target_path: Str,
    target_path: Str,
    volume_capability: VolumeCapabilityWire.optional().nullable(),
    readonly: z.boolean().optional().nullable(),
    volume_context: StrMap,
  })
  .loose();

export const NodeUnpublishVolumeRequest = z.object({ volume_id: Str, target_path: Str }).loose();

export const NodeGetVolumeStatsRequest = z
  .object({ volume_id: Str, volume_path: Str, staging_target_path: Str })
  .loose();

export const ControllerExpandVolumeRequest = z
  .object({
    volume_id: Str,
    capacity_range: CapacityRangeWire.optional().nullable(),
    volume_capability: VolumeCapabilityWire.optional().nullable(),
  })
  .loose();

export const NodeGetVolumeHealthRequest = z
  .object({ volume_id: Str, volume_publish_path: Str, staging_target_path: Str })
  .loose();

export const CreateSnapshotRequest = z.object({ source_volume_id: Str, name: Str, parameters: StrMap }).loose();

export const DeleteSnapshotRequest = z.object({ snapshot_id: Str }).loose();

export const GetSnapshotRequest = z.object({ snapshot_id: Str }).loose();

export const ListSnapshotsRequest = z
  .object({
    max_entries: z.number().int().optional().nullable(),
    starting_token: Str,
    source_volume_id: Str,
    snapshot_id: Str,
  })
  .loose();

export type VolumeCapabilityWire = z.infer<typeof VolumeCapabilityWire>;
export type CreateVolumeRequest = z.infer<typeof CreateVolumeRequest>;
export type DeleteVolumeRequest = z.infer<typeof DeleteVolumeRequest>;
export type ValidateVolumeCapabilitiesRequest = z.infer<typeof ValidateVolumeCapabilitiesRequest>;
export type ListVolumesRequest = z.infer<typeof ListVolumesRequest>;
export type NodeStageVolumeRequest = z.infer<typeof NodeStageVolumeRequest>;
export type NodeUnstageVolumeRequest = z.infer<typeof NodeUnstageVolumeRequest>;
export type NodePublishVolumeRequest = z.infer<typeof NodePublishVolumeRequest>;
export type NodeUnpublishVolumeRequest = z.infer<typeof NodeUnpublishVolumeRequest>;
export type NodeGetVolumeStatsRequest = z.infer<typeof NodeGetVolumeStatsRequest>;

/** Parses a request at the boundary; a request of the wrong shape is INVALID_ARGUMENT. */
export function parseRequest<S extends z.ZodType>(schema: S, value: unknown, method: string): z.infer<S> {
  const parsed = schema.safeParse(value ?? {});
  if (!parsed.success) throw new CsiError(status.INVALID_ARGUMENT, `${method}: ${z.prettifyError(parsed.error)}`);
  return parsed.data;
}

/** A required string field: absent or empty is INVALID_ARGUMENT, as the spec lists for every required field. */
export function required(value: string | null | undefined, field: string): string {
  if (value === undefined || value === null || value === '')
    throw new CsiError(status.INVALID_ARGUMENT, `${field} is required`);
  return value;
}

export function toCapability(w: VolumeCapabilityWire): VolumeCapability {
  const accessType = w.mount ? 'mount' : w.block ? 'block' : undefined;
  return {
    accessType,
    fsType: w.mount?.fs_type ?? '',
    mountFlags: w.mount?.mount_flags ?? [],
    accessMode: w.access_mode?.mode ?? undefined,
  };
}

/** A Topology's segments ({} when it has none). */
export function toSegments(w: z.infer<typeof TopologyWire> | null | undefined): Segments {
  return w?.segments ?? {};
}

/** accessibility_requirements as the decision takes it; undefined when absent. */
export function toRequirement(
  w: z.infer<typeof TopologyRequirementWire> | null | undefined,
): TopologyRequirement | undefined {
  if (!w) return undefined;
  return { requisite: (w.requisite ?? []).map(toSegments), preferred: (w.preferred ?? []).map(toSegments) };
}

/**
 * volume_content_source as the decision takes it; undefined when absent. A source of neither
 * kind, or one without its id, is INVALID_ARGUMENT (the spec's "source incompatible or not supported").
 */
export function toContentSource(
  w: z.infer<typeof VolumeContentSourceWire> | null | undefined,
): ContentSource | undefined {
  if (!w) return undefined;
  if (w.snapshot)
    return {
      kind: 'snapshot',
      snapshotId: required(w.snapshot.snapshot_id, 'volume_content_source.snapshot.snapshot_id'),
    };
  if (w.volume)
    return { kind: 'volume', volumeId: required(w.volume.volume_id, 'volume_content_source.volume.volume_id') };
  throw new CsiError(status.INVALID_ARGUMENT, 'volume_content_source names neither a snapshot nor a volume');
}

export function toRange(w: z.infer<typeof CapacityRangeWire> | null | undefined): CapacityRange | undefined {
  if (!w) return undefined;
  return {
    requiredBytes: int64(w.required_bytes, 'capacity_range.required_bytes'),
    limitBytes: int64(w.limit_bytes, 'capacity_range.limit_bytes'),
  };
}

// ---- responses (plain objects proto-loader serialises) ----------------------------

export interface VolumeWire {
  volume_id: string;
  capacity_bytes: number;
  volume_context: Record<string, string>;
  accessible_topology: { segments: Segments }[];
  content_source?: { snapshot: { snapshot_id: string } } | { volume: { volume_id: string } };
}

export interface SnapshotWire {
  size_bytes: number;
  snapshot_id: string;
  source_volume_id: string;
  creation_time: { seconds: number; nanos: number };
  ready_to_use: boolean;
}

export function snapshotWire(x: CsiSnapshot): SnapshotWire {
  return {
    size_bytes: x.sizeBytes,
    snapshot_id: x.snapshotId,
    source_volume_id: x.sourceVolumeId,
    creation_time: timestampOf(x.creationTime),
    ready_to_use: x.readyToUse,
  };
}

export interface VolumeUsageWire {
  unit: 'BYTES' | 'INODES';
  available: number;
  total: number;
  used: number;
}

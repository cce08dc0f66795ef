/**
 * What the web UI shows, derived from one cluster snapshot. Pure: the `flocker ui`
 * server computes it, the browser validates and renders it; both share these schemas.
 */
import { z } from 'zod';
import type { ClusterSnapshot, DatasetConfiguration, NodeState, SnapshotConfiguration } from '@flocker/api/schemas';
import { formatSize, METADATA_FILESYSTEM_KEY, METADATA_NAME_KEY, deviceSize, realSize } from './sizes';
import { SnapshotView, snapshotName, snapshotViews } from './snapshots';
import {
  KeptAsideView,
  LocalMoveView,
  ReplicaView,
  keptAsideOf,
  localMoveOf,
  localMoveText,
  localCloneNotFilled,
  localScheduleNotRun,
  refusalWithCommands,
  replicaOf,
} from './local';
// The schedule's grammar and slot arithmetic, shared with the control service that runs it (zod-free, no Node code).
import { datasetSnapshotSchedule, METADATA_SCHEDULED_KEY, nextScheduledSnapshot } from '@flocker/api/snapshotSchedule';

// One rule for the size a volume really has, shared with the Docker plugin (@flocker/api/sizes).
export { deviceSize, realSize };

export const VolumeStateKind = z.enum(['creating', 'attaching', 'mounted', 'moving', 'deleting', 'error']);
export type VolumeStateKind = z.infer<typeof VolumeStateKind>;

export const VolumeError = z.object({
  host: z.string(),
  action: z.string(),
  code: z.string(),
  message: z.string(),
  attempts: z.number(),
  since: z.string(),
});
export type VolumeError = z.infer<typeof VolumeError>;

/** A volume's snapshot schedule (metadata clusterhq:flocker:snapshot-schedule / -keep), run by the control service. */
export const ScheduleView = z.object({
  /** As the metadata says it, e.g. "hourly", "every 15m". */
  text: z.string(),
  interval_ms: z.number(),
  /** How many scheduled snapshots are kept (the oldest beyond are deleted; manual ones never). */
  keep: z.number(),
  /** How many live scheduled snapshots the volume has. */
  kept: z.number(),
  /** When the newest live scheduled snapshot was asked for (ISO); null before the first. */
  last_at: z.string().nullable(),
  /** Why the control service does not run it (the volume is on local storage, issue 24); null when it does. */
  not_run: z.string().nullable(),
});
export type ScheduleView = z.infer<typeof ScheduleView>;

export const VolumeView = z.object({
  dataset_id: z.string(),
  name: z.string(),
  /** Bytes: its primary's block device when larger than asked for (a node rounds up to its backend's unit), else the size asked for (realSize). */
  size: z.number().nullable(),
  /** Bytes used on its file system, as the node where it is mounted measured them; null when not mounted (or not measured). */
  used: z.number().nullable(),
  /** The file system it is formatted with (metadata clusterhq:flocker:filesystem; ext4 when absent). */
  filesystem: z.string(),
  /** A clone: the name (or short id) of the snapshot it was made from. */
  cloned_from: z.string().nullable(),
  snapshot_schedule: ScheduleView.nullable(),
  /** Growing: its primary holds it smaller than its configured size (from: bytes there now; to: the size). */
  resizing: z.object({ from: z.number(), to: z.number() }).nullable(),
  /** A grow that waits until nothing uses the volume (TN F3: its node's grow_pending), as a sentence; absent: none. */
  grow_pending: z.string().optional(),
  primary: z.object({ uuid: z.string(), host: z.string().nullable() }),
  state: VolumeStateKind,
  /** A sentence on what is happening (or why it is stuck), for people. */
  detail: z.string(),
  /** Host where the volume currently is (attached or mounted), if anywhere. */
  location: z.string().nullable(),
  path: z.string().nullable(),
  lease: z
    .object({
      node_uuid: z.string(),
      host: z.string().nullable(),
      expires: z.number().nullable(),
      /**
       * Session 21: a lease its holder lets go of when asked while no container there uses it (the Docker plugin keeps
       * an idle volume's lease so): 'released on request'; 'release requested' while a request for it waits. Absent
       * for any other lease. A move or delete of such a volume is the control service's to judge (it asks the holder).
       */
      on_request: z.enum(['released on request', 'release requested']).optional(),
      /** Its named holders (e.g. docker, csi), as the API's; absent when it names none (leaseNamesNoHolder). */
      holders: z.array(z.string()).optional(),
    })
    .nullable(),
  errors: z.array(VolumeError),
  /** When the UI server first saw the volume; null if it existed before the server started. */
  first_seen: z.string().nullable(),
  /** Local storage (issue 24): a move running now, its phase and bytes sent. */
  local_move: LocalMoveView.nullable(),
  /** Local storage: the standby replica its primary keeps (metadata clusterhq:flocker:replicas), with its age. */
  replica: ReplicaView.nullable(),
  /** Local storage: copies nodes kept aside (acknowledged writes the live copy lacks); empty when none. */
  kept_aside: z.array(KeptAsideView),
});
export type VolumeView = z.infer<typeof VolumeView>;

export const NodeView = z.object({
  uuid: z.string(),
  host: z.string(),
  alive: z.boolean(),
  era: z.string(),
  backend: z.string(),
  last_seen: z.string(),
  volumes: z.array(z.object({ dataset_id: z.string(), name: z.string(), status: z.enum(['attached', 'mounted']) })),
  errors: z.number(),
});
export type NodeView = z.infer<typeof NodeView>;

export const ClusterView = z.object({
  generation: z.string(),
  nodes: z.array(NodeView),
  volumes: z.array(VolumeView),
  /** Every configured snapshot, newest first (issue 20); the page groups them by volume. */
  snapshots: z.array(SnapshotView),
});
export type ClusterView = z.infer<typeof ClusterView>;

export function volumeName(d: Pick<DatasetConfiguration, 'metadata' | 'dataset_id'>): string {
  return d.metadata[METADATA_NAME_KEY] ?? d.dataset_id.slice(0, 8);
}

/** The file system a volume is (to be) formatted with, as its metadata says; ext4 when it says nothing. */
export function volumeFilesystem(d: Pick<DatasetConfiguration, 'metadata'>): string {
  return d.metadata[METADATA_FILESYSTEM_KEY] ?? 'ext4';
}

/** A clone's source snapshot for people: its name, else its short id (also once the snapshot is gone). */
export function clonedFrom(s: ClusterSnapshot, d: Pick<DatasetConfiguration, 'source_snapshot_id'>): string | null {
  const id = d.source_snapshot_id;
  if (id === undefined) return null;
  const snap = s.snapshots?.find((x) => x.snapshot_id === id);
  return (snap && snapshotName(snap)) || id.slice(0, 8);
}

/**
 * The volume's snapshot schedule, or null without one (or with one the control service would
 * not run, or for a deleted volume). `snapshots`: the configured snapshots (the CLI's and the
 * page's source of the kept count and the newest scheduled snapshot).
 */
export function scheduleOf(
  d: Pick<DatasetConfiguration, 'dataset_id' | 'metadata' | 'deleted'>,
  snapshots: readonly SnapshotConfiguration[],
  cluster?: ClusterSnapshot,
): ScheduleView | null {
  // Interval as written: the API refuses one below the control service's minimum, except under its test override.
  const schedule = datasetSnapshotSchedule(d.metadata, 0);
  if (schedule === undefined || d.deleted) return null;
  let kept = 0;
  let last: number | undefined;
  for (const x of snapshots) {
    if (x.dataset_id !== d.dataset_id || x.deleted === true || x.metadata[METADATA_SCHEDULED_KEY] === undefined)
      continue;
    kept++;
    const t = Date.parse(x.created_at);
    if (!Number.isNaN(t) && (last === undefined || t > last)) last = t;
  }
  return {
    text: schedule.text,
    interval_ms: schedule.intervalMs,
    keep: schedule.keep,
    kept,
    last_at: last === undefined ? null : new Date(last).toISOString(),
    not_run: cluster === undefined ? null : localScheduleNotRun(cluster, d.dataset_id),
  };
}

/** When the next scheduled snapshot is due (epoch ms), as the control service reckons it: slots aligned to UTC. */
export function nextScheduledAt(schedule: Pick<ScheduleView, 'interval_ms' | 'last_at'>, now: number): number {
  return nextScheduledSnapshot(
    now,
    schedule.interval_ms,
    schedule.last_at === null ? undefined : Date.parse(schedule.last_at),
  );
}

/**
 * A grow in progress: the primary's manifestation is smaller than the configured size (the
 * block device grows first; the file system follows online, or at its next mount). Null when
 * it is not there yet (creating, moving: those states say so) or already that big.
 */
export function resizeProgress(s: ClusterSnapshot, d: DatasetConfiguration): { from: number; to: number } | null {
  const to = d.maximum_size;
  if (d.deleted || to == null) return null;
  const m = s.nodes.find((n) => n.uuid === d.primary)?.manifestations.find((x) => x.dataset_id === d.dataset_id);
  return m !== undefined && m.size < to ? { from: m.size, to } : null;
}

/**
 * The size of a volume for people (`flocker volumes show`, the web UI): the real size (realSize), and what was asked
 * for when its node rounded it up; '-' when nothing is known.
 */
export function sizeText(asked: number | null | undefined, device: number | null | undefined): string {
  const real = realSize(asked, device);
  if (real === null) return '-';
  if (asked == null || real === asked) return formatSize(real);
  return `${formatSize(real)} (${asked} bytes asked for, rounded up to its backend's allocation unit)`;
}

/**
 * The grow of `d` its primary says waits until the volume is unused (TN F3), naming who uses it (its leases); null:
 * none waits. `flocker volumes show/status` say the same words (growPendingReason).
 */
export function growPendingText(s: ClusterSnapshot, d: DatasetConfiguration): string | null {
  const m = s.nodes.find((n) => n.uuid === d.primary)?.manifestations.find((x) => x.dataset_id === d.dataset_id);
  if (d.deleted || m?.grow_pending === undefined) return null;
  const to = d.maximum_size != null ? ` to ${formatSize(d.maximum_size)}` : '';
  return `grow${to} pending: ${growPendingReason(s, d.dataset_id)}`;
}

/**
 * What a pending grow of `datasetId` waits for (TN F3), naming who uses the volume: its leases' holders and nodes.
 * The one wording for the web UI and the CLI (`flocker volumes resize/show/status`).
 */
export function growPendingReason(s: ClusterSnapshot, datasetId: string): string {
  const users = s.leases
    .filter((l) => l.dataset_id === datasetId)
    .map((l) => {
      const host = hostOf(s.nodes, l.node_uuid) ?? l.node_uuid.slice(0, 8);
      const holders = l.holders ?? [];
      return holders.length > 0 ? `by ${holders.join(', ')} on ${host}` : `on ${host}`;
    });
  const why = users.length > 0 ? `in use ${users.join('; ')}` : 'no lease on it now: shortly';
  return `grows when the volume is unmounted (${why})`;
}

/** used_bytes of the mounted manifestation (its node measures it at most every few seconds). */
export function usedBytesOf(s: ClusterSnapshot, datasetId: string): number | null {
  for (const n of s.nodes)
    for (const m of n.manifestations)
      if (m.dataset_id === datasetId && m.status === 'mounted' && m.used_bytes !== undefined) return m.used_bytes;
  return null;
}

function growPendingMember(text: string | null): { grow_pending?: string } {
  return text !== null ? { grow_pending: text } : {};
}

function hostOf(nodes: NodeState[], uuid: string): string | null {
  return nodes.find((n) => n.uuid === uuid)?.host ?? null;
}

type Derived = Pick<VolumeView, 'state' | 'detail' | 'location' | 'path' | 'errors'>;

/** A failing action in words: "destroy failed on a (4 attempts): target is busy (DEVICE_BUSY)". */
export function errorReason(e: VolumeError): string {
  // A local agent's refusal to act (issue 24: the data on a dead node, two live copies) is no failed attempt.
  if (e.action === 'refuse') return `refused on ${e.host}: ${e.message} (${e.code})`;
  return `${e.action} failed on ${e.host} (${e.attempts} attempt${e.attempts === 1 ? '' : 's'}): ${e.message} (${e.code})`;
}

/**
 * The state cell of a volume row in words: "error: <reason>", "deleting: <reason or step>",
 * "<state>; error: <reason>" while an action on an otherwise fine volume fails, else the state.
 */
export function stateText(v: Pick<VolumeView, 'state' | 'detail' | 'errors'>): string {
  if (v.state === 'error' || v.state === 'deleting') return `${v.state}: ${v.detail}`;
  const first = v.errors[0];
  return first ? `${v.state}; error: ${errorReason(first)}` : v.state;
}

/** The state machine of one volume as a person sees it, first matching rule wins. */
export function volumeState(s: ClusterSnapshot, d: DatasetConfiguration): Derived {
  const id = d.dataset_id;
  const errors: VolumeError[] = s.nodes.flatMap((n) =>
    n.errors
      .filter((e) => e.dataset_id === id)
      .map((e) => ({
        host: n.host,
        action: e.action,
        code: e.code,
        // A local agent's refusal names its way out as metadata: the command that sets it too.
        message: e.action === 'refuse' ? refusalWithCommands(s, id, e.message) : e.message,
        attempts: e.attempts,
        since: e.since,
      })),
  );
  const manifest = s.nodes.flatMap((n) =>
    n.manifestations.filter((m) => m.dataset_id === id).map((m) => ({ node: n, m })),
  );
  const volume = s.nodes.flatMap((n) => n.volumes ?? []).find((v) => v.dataset_id === id);
  const holder = volume?.attached_to ? s.nodes.find((n) => n.instance_id === volume.attached_to) : undefined;
  const here = manifest.find((x) => x.node.uuid === d.primary);
  const elsewhere = manifest.find((x) => x.node.uuid !== d.primary);
  const location = here?.node.host ?? elsewhere?.node.host ?? holder?.host ?? null;
  const path = here?.m.path ?? elsewhere?.m.path ?? null;
  const primary = s.nodes.find((n) => n.uuid === d.primary);
  const base = { location, path, errors };
  const first = errors[0];
  // A delete that is stuck says why (issue 17: DEVICE_BUSY was only in agent.log).
  if (d.deleted)
    return { ...base, state: 'deleting', detail: first ? errorReason(first) : 'unmounting, detaching and destroying' };
  // Before "mounted": local storage mounts such a clone or restore empty (issue 24), which must not look done.
  const notFilled = localCloneNotFilled(s, d);
  if (notFilled !== null) return { ...base, state: 'error', detail: notFilled };
  // Before "mounted" and its errors: a dead node's last report is no longer true (review T2 F6: "mounted on" a
  // powered-off host), and after a control-service restart the same volume says "not alive" too.
  if (primary && !primary.alive) {
    const last =
      here?.m.status === 'mounted' && here.m.path ? ` (its last report had it mounted at ${here.m.path})` : '';
    return { ...base, state: 'error', detail: `node ${primary.host} is not alive${last}` };
  }
  if (here?.m.status === 'mounted' && here.m.path)
    return { ...base, state: 'mounted', detail: `mounted on ${here.node.host} at ${here.m.path}` };
  if (first) return { ...base, state: 'error', detail: errorReason(first) };
  if (!primary) return { ...base, state: 'error', detail: `node ${d.primary} has never reported` };
  const holderElsewhere = volume?.attached_to && volume.attached_to !== primary.instance_id;
  // Local storage: the source streams the data to the new primary while its users keep it (issue 24).
  const localMove = localMoveOf(s, id);
  if (localMove) return { ...base, state: 'moving', detail: localMoveText(localMove) };
  if (elsewhere || holderElsewhere) {
    const from = elsewhere?.node ?? holder;
    if (from && !from.alive)
      return { ...base, state: 'moving', detail: `waiting for dead node ${from.host} to be fenced` };
    return {
      ...base,
      state: 'moving',
      detail: `moving to ${primary.host}: detaching from ${from?.host ?? volume?.attached_to ?? 'another node'}`,
    };
  }
  if (!volume && !here) return { ...base, state: 'creating', detail: `creating the volume for ${primary.host}` };
  if (here?.m.status === 'attached')
    return { ...base, state: 'attaching', detail: `formatting and mounting on ${primary.host}` };
  return { ...base, state: 'attaching', detail: `attaching to ${primary.host}` };
}

/**
 * The whole cluster for display. `firstSeen` maps dataset ids to when the UI server
 * first saw them (missing: seen in its first snapshot).
 */
export function clusterView(s: ClusterSnapshot, firstSeen: ReadonlyMap<string, string> = new Map()): ClusterView {
  const names = new Map(s.datasets.map((d) => [d.dataset_id, volumeName(d)]));
  const volumes = s.datasets
    .filter(
      (d) =>
        !d.deleted ||
        s.nodes.some(
          (n) =>
            n.manifestations.some((m) => m.dataset_id === d.dataset_id) ||
            (n.volumes ?? []).some((v) => v.dataset_id === d.dataset_id),
        ),
    )
    .map((d): VolumeView => {
      const lease = s.leases.find((l) => l.dataset_id === d.dataset_id);
      return {
        dataset_id: d.dataset_id,
        name: volumeName(d),
        // What it really is once a node has it (a node rounds the size asked for up to its backend's unit).
        size: realSize(d.maximum_size, deviceSize(s, d)),
        used: usedBytesOf(s, d.dataset_id),
        filesystem: volumeFilesystem(d),
        cloned_from: clonedFrom(s, d),
        snapshot_schedule: scheduleOf(d, s.snapshots ?? [], s),
        resizing: resizeProgress(s, d),
        ...growPendingMember(growPendingText(s, d)),
        primary: { uuid: d.primary, host: hostOf(s.nodes, d.primary) },
        ...volumeState(s, d),
        lease: lease
          ? {
              node_uuid: lease.node_uuid,
              host: hostOf(s.nodes, lease.node_uuid),
              expires: lease.expires,
              ...(lease.holders !== undefined ? { holders: [...lease.holders] } : {}),
              ...(lease.release_requested !== undefined
                ? { on_request: 'release requested' as const }
                : lease.release_on_request === true
                  ? { on_request: 'released on request' as const }
                  : {}),
            }
          : null,
        first_seen: firstSeen.get(d.dataset_id) ?? null,
        local_move: localMoveOf(s, d.dataset_id),
        replica: replicaOf(s, d.dataset_id),
        kept_aside: keptAsideOf(s, d.dataset_id),
      };
    })
    .sort((a, b) => a.name.localeCompare(b.name) || a.dataset_id.localeCompare(b.dataset_id));
  const nodes = s.nodes
    .map((n): NodeView => ({
      uuid: n.uuid,
      host: n.host,
      alive: n.alive,
      era: n.era,
      backend: n.backend,
      last_seen: n.last_seen,
      volumes: n.manifestations.map((m) => ({
        dataset_id: m.dataset_id,
        name: names.get(m.dataset_id) ?? m.dataset_id.slice(0, 8),
        status: m.status,
      })),
      errors: n.errors.length,
    }))
    .sort((a, b) => a.host.localeCompare(b.host) || a.uuid.localeCompare(b.uuid));
  return { generation: s.generation, nodes, volumes, snapshots: snapshotViews(s) };
}

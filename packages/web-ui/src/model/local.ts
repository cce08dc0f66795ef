/**
 * Local storage (issue 24) as people see it: a running move's progress and a standby replica's age, read
 * from the node reports (NodeReport.moves of the source, NodeReport.replicas of the primary). Pure; the
 * `flocker` CLI (volumes move, describe volume) and the page share these words.
 */
import { z } from 'zod';
import {
  METADATA_ACCEPT_DATA_LOSS_KEY,
  METADATA_ACCEPT_REPLICA_LOSS_KEY,
  type ClusterSnapshot,
  type DatasetConfiguration,
} from '@flocker/api/schemas';
import { formatSize, METADATA_NAME_KEY } from './sizes';
import { humanAge } from './list';

export const LocalMoveView = z.object({
  from: z.object({ uuid: z.string(), host: z.string() }),
  to: z.object({ uuid: z.string(), host: z.string() }),
  phase: z.enum(['copying', 'waitingForRelease', 'final', 'promoting', 'done']),
  rounds: z.number(),
  bytes_sent: z.number(),
  bytes_total: z.number(),
  /**
   * How much of the data the target holds, 0-100: bytes_sent of bytes_total during the first send (capped), 100 once
   * a round is done (the target then holds a whole snapshot: a move from a base it kept sends only the changes, and
   * its bytes sent were no share of the total); null when empty.
   */
  percent: z.number().nullable(),
});
export type LocalMoveView = z.infer<typeof LocalMoveView>;

export const ReplicaView = z.object({
  node_uuid: z.string(),
  host: z.string(),
  /** When the replica's newest snapshot was taken (ISO); null until the first is sent. */
  taken_at: z.string().nullable(),
});
export type ReplicaView = z.infer<typeof ReplicaView>;

const hostOf = (s: ClusterSnapshot, uuid: string): string =>
  s.nodes.find((n) => n.uuid === uuid)?.host ?? uuid.slice(0, 8);

/** The move of a local dataset running now, as its source node reports it; null when none. */
export function localMoveOf(s: ClusterSnapshot, datasetId: string): LocalMoveView | null {
  for (const n of s.nodes)
    for (const m of n.moves ?? [])
      if (m.dataset_id === datasetId)
        return {
          from: { uuid: n.uuid, host: n.host },
          to: { uuid: m.to, host: hostOf(s, m.to) },
          phase: m.phase,
          rounds: m.rounds,
          bytes_sent: m.bytes_sent,
          bytes_total: m.bytes_total,
          percent:
            m.bytes_total <= 0
              ? null
              : m.rounds > 0
                ? 100
                : Math.min(100, Math.floor((100 * m.bytes_sent) / m.bytes_total)),
        };
  return null;
}

const PHASE_TEXT: Record<LocalMoveView['phase'], (m: LocalMoveView) => string> = {
  copying: (m) =>
    m.rounds > 0
      ? `copying what changed on ${m.from.host} to ${m.to.host}`
      : `copying from ${m.from.host} to ${m.to.host}`,
  // What the user has to do: phase 2 starts only once no mount namespace on the source holds the volume.
  waitingForRelease: (m) =>
    `caught up with ${m.from.host}; waiting for its users to release the volume (stop what uses it on ${m.from.host}, e.g. its containers, to finish the move)`,
  final: (m) => `sending the last changes to ${m.to.host}`,
  promoting: (m) => `${m.to.host} is taking over`,
  done: (m) => `moved to ${m.to.host}`,
};

/**
 * "copying from a to b: 12 MiB of 1 GiB sent (1%), 0 rounds done" (rounds: snapshots sent in full); once a round is
 * done, "…: all 1 GiB copied, 1.5 KiB sent, 4 rounds done" (the target holds a whole snapshot; what is sent after,
 * or all of it from a base the target kept, is only what changed: no share of the total).
 */
export function localMoveText(m: LocalMoveView): string {
  const rounds = `${m.rounds} round${m.rounds === 1 ? '' : 's'} done`;
  const bytes =
    m.bytes_total <= 0
      ? `${formatSize(m.bytes_sent)} sent`
      : m.rounds > 0
        ? `all ${formatSize(m.bytes_total)} copied, ${formatSize(m.bytes_sent)} sent`
        : `${formatSize(m.bytes_sent)} of ${formatSize(m.bytes_total)} sent (${m.percent}%)`;
  return `${PHASE_TEXT[m.phase](m)}: ${bytes}, ${rounds}`;
}

/**
 * The standby replica of a local dataset, as its primary reports it (a dead primary: its last report, the
 * replica's age growing — the loss window of a failover); null when it keeps none. Only the primary's report
 * counts: a former primary's says nothing once the dataset moved (possibly to that very replica).
 */
export function replicaOf(s: ClusterSnapshot, datasetId: string): ReplicaView | null {
  const primary = s.datasets.find((d) => d.dataset_id === datasetId)?.primary;
  const p = s.nodes.find((n) => n.uuid === primary);
  const r = p?.replicas?.find((x) => x.dataset_id === datasetId) ?? (p && replicaForRefusedMove(s, p, datasetId));
  return r === undefined ? null : { node_uuid: r.node_uuid, host: hostOf(s, r.node_uuid), taken_at: r.taken_at };
}

/**
 * While the primary refuses a move off a dead node (SOURCE_UNREACHABLE: the move is not done), the replica the dead
 * node's last report keeps on the primary: its age is what a start from it (accept-replica-loss) loses, the one
 * figure the user needs to choose. Undefined otherwise.
 */
function replicaForRefusedMove(
  s: ClusterSnapshot,
  primary: ClusterSnapshot['nodes'][number],
  datasetId: string,
): { node_uuid: string; taken_at: string | null } | undefined {
  const refused = primary.errors.some(
    (e) => e.dataset_id === datasetId && e.action === 'refuse' && e.code === 'SOURCE_UNREACHABLE',
  );
  if (!refused) return undefined;
  for (const n of s.nodes)
    if (!n.alive && n.manifestations.some((m) => m.dataset_id === datasetId)) {
      const r = n.replicas?.find((x) => x.dataset_id === datasetId && x.node_uuid === primary.uuid);
      if (r !== undefined) return r;
    }
  return undefined;
}

/** "replica on b, 12 s old" (its age is the writes a failover to it would lose), or "…, none sent yet". */
export function replicaText(r: ReplicaView, now: number): string {
  return r.taken_at === null
    ? `replica on ${r.host}, none sent yet`
    : `replica on ${r.host}, ${humanAge(Date.parse(r.taken_at), now)} old`;
}

/** A copy of a volume a node kept aside, read-only, before letting go of its own (local storage). */
export const KeptAsideView = z.object({
  node_uuid: z.string(),
  host: z.string(),
  alive: z.boolean(),
  /** btrfs: a read-only subvolume (a directory); ZFS: a read-only file system's name. */
  path: z.string(),
  engine: z.enum(['btrfs', 'zfs']),
});
export type KeptAsideView = z.infer<typeof KeptAsideView>;

/**
 * The copies of the dataset nodes report kept aside (NodeReport.kept_aside, in the whole cluster's snapshot): they
 * hold acknowledged writes the live copy lacks (review U2: they were only in a log line). Empty when none.
 */
export function keptAsideOf(s: ClusterSnapshot, datasetId: string): KeptAsideView[] {
  const out: KeptAsideView[] = [];
  for (const n of s.nodes)
    for (const k of n.kept_aside ?? [])
      if (k.dataset_id === datasetId)
        out.push({
          node_uuid: n.uuid,
          host: n.host,
          alive: n.alive,
          path: k.path,
          engine: n.backend === 'local-zfs' ? 'zfs' : 'btrfs',
        });
  return out;
}

/** "Kept aside on a: <path> (…)": what it is and what the user can do with it (the CLI and the page say the same). */
export function keptAsideText(k: KeptAsideView): string {
  const how =
    k.engine === 'zfs'
      ? `copy them back by hand (zfs set mountpoint=/mnt/kept ${k.path} shows it there) or delete it with zfs destroy -r ${k.path}`
      : `copy them back by hand from that read-only directory or delete it with btrfs subvolume delete ${k.path}`;
  return `Kept aside on ${k.host}${k.alive ? '' : ' (dead)'}: ${k.path} (writes the live copy lacks; ${how}; deleting the volume deletes it too)`;
}

/** The node's host and backend when it reports local storage (issue 24); null for any other node (or one not known). */
export function localStorageNode(s: ClusterSnapshot, nodeUuid: string): { host: string; backend: string } | null {
  const n = s.nodes.find((x) => x.uuid === nodeUuid);
  // isLocalBackend's rule (@flocker/api's localView, which the browser bundle does not import): local-btrfs, local-zfs.
  return n === undefined || !n.backend.startsWith('local-') ? null : { host: n.host, backend: n.backend };
}

/**
 * Whether the page offers "when released" on a volume's move: its primary reports local storage (issue 24), where
 * the API's when_released copies the data while it stays in use and finishes the move once it is released.
 */
export function movesWhenReleased(
  v: { readonly primary: { readonly uuid: string } },
  nodes: readonly { readonly uuid: string; readonly backend: string }[],
): boolean {
  return nodes.find((n) => n.uuid === v.primary.uuid)?.backend.startsWith('local-') ?? false;
}

/**
 * Why a snapshot (taken now, on a schedule, or for a clone) of a volume on node `nodeUuid` would never be taken:
 * local storage's agent takes no snapshots asked through the API yet (issue 24), and the request would sit
 * "requested" forever. Null for any other node (or one not known).
 */
export function localSnapshotsRefusal(s: ClusterSnapshot, nodeUuid: string, what: string): string | null {
  const n = localStorageNode(s, nodeUuid);
  if (n === null) return null;
  return `${what}: ${n.host} keeps its volumes on local storage (${n.backend}), which takes no snapshots, clones or restores through the API yet (nothing was asked)`;
}

/** The live volume's local node, when it has one (its primary reports local storage). */
function localPrimaryOf(s: ClusterSnapshot, datasetId: string): { host: string; backend: string } | null {
  const d = s.datasets.find((x) => x.dataset_id === datasetId && !x.deleted);
  return d === undefined ? null : localStorageNode(s, d.primary);
}

/**
 * Why a snapshot of a live volume, not taken, never will be: its primary keeps it on local storage. The API refuses
 * such a snapshot once the node has reported its backend; one asked for before (right after a control-service
 * start) is shown failed with this instead of "requested" forever. Null otherwise.
 */
export function localSnapshotNotTaken(s: ClusterSnapshot, datasetId: string): string | null {
  const n = localPrimaryOf(s, datasetId);
  if (n === null) return null;
  return `never taken: ${n.host} keeps this volume on local storage (${n.backend}), which takes no snapshots through the API yet (it was asked for before ${n.host} reported its backend); delete this snapshot`;
}

/** Why the control service does not run a volume's snapshot schedule (its primary is local: no snapshots); null when it does. */
export function localScheduleNotRun(s: ClusterSnapshot, datasetId: string): string | null {
  const n = localPrimaryOf(s, datasetId);
  if (n === null) return null;
  return `not run: ${n.host} keeps this volume on local storage (${n.backend}), which takes no snapshots through the API yet; remove the schedule`;
}

/**
 * A clone (onto any node) of a snapshot no backend holds, of a volume on local storage: that snapshot is never taken
 * (asked for before the local node reported its backend), so the clone waits for ever. Null otherwise.
 */
function neverTakenSource(s: ClusterSnapshot, snapshotId: string | undefined): string | null {
  const snap = s.snapshots?.find((x) => x.snapshot_id === snapshotId && x.deleted !== true);
  if (snap === undefined || s.nodes.some((n) => n.snapshots?.some((x) => x.snapshot_id === snap.snapshot_id)))
    return null;
  const d = s.datasets.find((x) => x.dataset_id === snap.dataset_id && !x.deleted);
  const n = d === undefined ? null : localStorageNode(s, d.primary);
  if (n === null) return null;
  return `not cloned: the snapshot it is made from is never taken: ${n.host} keeps its source volume on local storage (${n.backend}), which takes no snapshots through the API yet; delete this volume`;
}

/**
 * Why a clone (source_snapshot_id) or restore (source_backup) whose primary keeps it on local storage holds none of
 * its source's data: local storage's agent fills no volume from a snapshot or a backup (issue 24). The API refuses
 * one onto a node that has reported a local backend; one asked for before (right after a control-service start)
 * reaches the node all the same. Also a clone elsewhere of a local volume's snapshot never taken (neverTakenSource).
 * Null for any other volume.
 */
export function localCloneNotFilled(
  s: ClusterSnapshot,
  d: Pick<DatasetConfiguration, 'primary' | 'source_snapshot_id' | 'source_backup' | 'deleted'>,
): string | null {
  const what = d.source_backup !== undefined ? 'restore' : d.source_snapshot_id !== undefined ? 'clone' : undefined;
  if (what === undefined || d.deleted) return null;
  const n = localStorageNode(s, d.primary);
  if (n === null) return neverTakenSource(s, d.source_snapshot_id);
  return `not ${what === 'restore' ? 'restored' : 'cloned'}: ${n.host} keeps this volume on local storage (${n.backend}), which fills no volume from a snapshot or a backup yet: it holds none of that data; delete it and ${what} onto a node with block storage`;
}

/** The `flocker volumes move` flag of each opt-in a local agent's refusal can name. */
const OPT_IN_FLAGS: Readonly<Record<string, string>> = {
  [METADATA_ACCEPT_REPLICA_LOSS_KEY]: '--accept-replica-loss',
  [METADATA_ACCEPT_DATA_LOSS_KEY]: '--accept-data-loss',
};
const OPT_IN = `(?:${METADATA_ACCEPT_REPLICA_LOSS_KEY}|${METADATA_ACCEPT_DATA_LOSS_KEY})=true`;
const SET_OPT_INS = new RegExp(`set metadata (${OPT_IN}(?: and ${OPT_IN})*)`, 'g');

/**
 * A local agent's refusal (issue 24) with the command of each way out it names in the API's words: after "set
 * metadata clusterhq:flocker:accept-replica-loss=true" (or accept-data-loss, or both) comes "(flocker volumes move
 * <volume> <primary> --accept-replica-loss)", which sets it. The message as it is for anything else (or a dataset
 * not known).
 */
export function refusalWithCommands(s: ClusterSnapshot, datasetId: string, message: string): string {
  const d = s.datasets.find((x) => x.dataset_id === datasetId && !x.deleted);
  if (d === undefined) return message;
  const host = s.nodes.find((n) => n.uuid === d.primary)?.host ?? d.primary;
  const name = d.metadata[METADATA_NAME_KEY] ?? d.dataset_id;
  return message.replace(SET_OPT_INS, (all: string, keys: string) => {
    const flags = keys.split(' and ').map((k) => OPT_IN_FLAGS[k.slice(0, -'=true'.length)] ?? k);
    return `${all} (flocker volumes move ${name} ${host} ${flags.join(' ')})`;
  });
}

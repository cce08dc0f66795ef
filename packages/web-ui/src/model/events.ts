/**
 * The live event feed: what changed between two consecutive cluster snapshots,
 * in words. Pure; the `flocker ui` server stamps each event with an id and a time.
 */
import { z } from 'zod';
import type { ClusterSnapshot, DatasetConfiguration, NodeState } from '@flocker/api/schemas';
import { formatSize } from './sizes';
import { snapshotName, snapshotState } from './snapshots';
import { volumeName } from './view';

export const EventKind = z.enum([
  'created',
  'moving',
  // A when_released move its source used again (the control service's stored move_cancelled event).
  'move-cancelled',
  'mounted',
  'failed',
  'deleted',
  'node-joined',
  'node-lost',
  'node-back',
  'node-rebooted',
  'lease-acquired',
  'lease-released',
  'resizing',
  'resized',
  'snapshot-requested',
  'snapshot-taken',
  'snapshot-failed',
  'snapshot-deleted',
]);
export type EventKind = z.infer<typeof EventKind>;

export const Severity = z.enum(['info', 'success', 'warning', 'error']);

export const EventDraft = z.object({
  kind: EventKind,
  severity: Severity,
  message: z.string(),
  dataset_id: z.string().optional(),
  node_uuid: z.string().optional(),
  snapshot_id: z.string().optional(),
});
export type EventDraft = z.infer<typeof EventDraft>;

export const UiEvent = EventDraft.extend({ id: z.number().int(), time: z.string() });
export type UiEvent = z.infer<typeof UiEvent>;

function hostIn(nodes: NodeState[], uuid: string): string {
  return nodes.find((n) => n.uuid === uuid)?.host ?? uuid.slice(0, 8);
}

/** Events that turn `prev` into `next`; none for the first snapshot (nothing happened yet). */
export function diffSnapshots(prev: ClusterSnapshot | undefined, next: ClusterSnapshot): EventDraft[] {
  if (!prev) return [];
  const out: EventDraft[] = [];
  const before = new Map(prev.datasets.map((d) => [d.dataset_id, d]));
  const after = new Map(next.datasets.map((d) => [d.dataset_id, d]));
  const nameOf = (id: string): string => {
    const d = after.get(id) ?? before.get(id);
    return d ? volumeName(d) : id.slice(0, 8);
  };

  // Nodes first: a lost node explains the failures that follow it.
  const oldNodes = new Map(prev.nodes.map((n) => [n.uuid, n]));
  for (const n of next.nodes) {
    const o = oldNodes.get(n.uuid);
    const ev = { node_uuid: n.uuid };
    if (!o) out.push({ kind: 'node-joined', severity: 'info', message: `Node ${n.host} joined`, ...ev });
    else if (o.alive && !n.alive)
      out.push({
        kind: 'node-lost',
        severity: 'error',
        message: `Node ${n.host} lost (no report since ${n.last_seen})`,
        ...ev,
      });
    else if (!o.alive && n.alive)
      out.push({ kind: 'node-back', severity: 'success', message: `Node ${n.host} is back`, ...ev });
    else if (o.era !== n.era)
      out.push({ kind: 'node-rebooted', severity: 'warning', message: `Node ${n.host} rebooted`, ...ev });
  }

  for (const d of next.datasets) {
    const o = before.get(d.dataset_id);
    const ev = { dataset_id: d.dataset_id };
    if (d.deleted) {
      if (o && !o.deleted)
        out.push({ kind: 'deleted', severity: 'info', message: `Volume ${nameOf(d.dataset_id)} deleted`, ...ev });
      continue;
    }
    if (!o || o.deleted) {
      const from = d.source_snapshot_id;
      const fromSnap = from === undefined ? undefined : next.snapshots?.find((x) => x.snapshot_id === from);
      const clone =
        from === undefined ? '' : ` from snapshot ${(fromSnap && snapshotName(fromSnap)) || from.slice(0, 8)}`;
      out.push({
        kind: 'created',
        severity: 'info',
        message: `Volume ${nameOf(d.dataset_id)} created on ${hostIn(next.nodes, d.primary)}${sizeText(d)}${clone}`,
        ...ev,
      });
    } else if (o.maximum_size != null && d.maximum_size != null && d.maximum_size > o.maximum_size) {
      out.push({
        kind: 'resizing',
        severity: 'info',
        message: `Volume ${nameOf(d.dataset_id)} resizing from ${formatSize(o.maximum_size)} to ${formatSize(d.maximum_size)}`,
        ...ev,
      });
    }
    if (o && !o.deleted && o.primary !== d.primary) {
      out.push({
        kind: 'moving',
        severity: 'info',
        message: `Volume ${nameOf(d.dataset_id)} moving from ${hostIn(prev.nodes, o.primary)} to ${hostIn(next.nodes, d.primary)}`,
        ...ev,
      });
    }
  }
  for (const o of prev.datasets) {
    if (!o.deleted && !after.has(o.dataset_id))
      out.push({
        kind: 'deleted',
        severity: 'info',
        message: `Volume ${nameOf(o.dataset_id)} deleted`,
        dataset_id: o.dataset_id,
      });
  }

  for (const n of next.nodes) {
    const o = oldNodes.get(n.uuid);
    for (const m of n.manifestations) {
      const was = o?.manifestations.find((x) => x.dataset_id === m.dataset_id);
      // Grown: the primary's block device reached the configured size it was short of.
      const size = after.get(m.dataset_id)?.maximum_size;
      if (was !== undefined && size != null && was.size < size && m.size >= size)
        out.push({
          kind: 'resized',
          severity: 'success',
          message: `Volume ${nameOf(m.dataset_id)} grown to ${formatSize(m.size)} on ${n.host}`,
          dataset_id: m.dataset_id,
          node_uuid: n.uuid,
        });
      if (m.status !== 'mounted') continue;
      if (was?.status === 'mounted') continue;
      out.push({
        kind: 'mounted',
        severity: 'success',
        message: `Volume ${nameOf(m.dataset_id)} mounted on ${n.host}${m.path ? ` at ${m.path}` : ''}`,
        dataset_id: m.dataset_id,
        node_uuid: n.uuid,
      });
    }
    // A failure is new when no same action failed the same way before; retries only raise attempts.
    const key = (e: { dataset_id?: string | undefined; action: string; code: string; message: string }) =>
      `${e.dataset_id ?? ''}|${e.action}|${e.code}|${e.message}`;
    const known = new Set((o?.errors ?? []).map(key));
    for (const e of n.errors) {
      if (known.has(key(e))) continue;
      const subject = e.dataset_id ? `Volume ${nameOf(e.dataset_id)}: ` : '';
      out.push({
        kind: 'failed',
        severity: 'error',
        // A local agent's refusal to act (issue 24) is no failed attempt, nor is what a node observes (a file system
        // gone read-only; its storage backend not answering since its agent started: BACKEND_UNREACHABLE).
        message: `${subject}${failedWords(e.action)}on ${n.host}: ${e.message}`,
        ...(e.dataset_id ? { dataset_id: e.dataset_id } : {}),
        node_uuid: n.uuid,
      });
    }
  }

  out.push(...snapshotEvents(prev, next, nameOf));

  const oldLeases = new Map(prev.leases.map((l) => [l.dataset_id, l]));
  const newLeases = new Map(next.leases.map((l) => [l.dataset_id, l]));
  for (const l of next.leases) {
    const o = oldLeases.get(l.dataset_id);
    if (!o || o.node_uuid !== l.node_uuid) {
      out.push({
        kind: 'lease-acquired',
        severity: 'info',
        message: `Lease on ${nameOf(l.dataset_id)} held by ${hostIn(next.nodes, l.node_uuid)}`,
        dataset_id: l.dataset_id,
        node_uuid: l.node_uuid,
      });
    }
  }
  for (const o of prev.leases) {
    if (newLeases.has(o.dataset_id)) continue;
    // Released while its node is dead: the control service gave it back after the lease grace (failover).
    const holder = next.nodes.find((n) => n.uuid === o.node_uuid);
    if (holder !== undefined && !holder.alive) {
      out.push({
        kind: 'lease-released',
        severity: 'warning',
        message: `Lease on ${nameOf(o.dataset_id)} released: host ${holder.host} dead`,
        dataset_id: o.dataset_id,
        node_uuid: o.node_uuid,
      });
    } else {
      out.push({
        kind: 'lease-released',
        severity: 'info',
        message: `Lease on ${nameOf(o.dataset_id)} released`,
        dataset_id: o.dataset_id,
      });
    }
  }
  return out;
}

/**
 * Snapshots asked for, taken (a backend holds it ready), failed (the backend's error status)
 * and deleted. Taken and failed are told once, when the status first reaches them.
 */
function snapshotEvents(prev: ClusterSnapshot, next: ClusterSnapshot, nameOf: (id: string) => string): EventDraft[] {
  const out: EventDraft[] = [];
  const before = new Map((prev.snapshots ?? []).map((s) => [s.snapshot_id, s]));
  for (const s of next.snapshots ?? []) {
    const o = before.get(s.snapshot_id);
    const label = `Snapshot ${snapshotName(s) || s.snapshot_id.slice(0, 8)} of ${nameOf(s.dataset_id)}`;
    const ev = { dataset_id: s.dataset_id, snapshot_id: s.snapshot_id };
    if (s.deleted === true) {
      if (o !== undefined && o.deleted !== true)
        out.push({ kind: 'snapshot-deleted', severity: 'info', message: `${label} deleted`, ...ev });
      continue;
    }
    if (o === undefined)
      out.push({ kind: 'snapshot-requested', severity: 'info', message: `${label} requested`, ...ev });
    const held = snapshotState(next, s.snapshot_id);
    const was = snapshotState(prev, s.snapshot_id)?.status;
    if (held?.status === 'ready' && was !== 'ready')
      out.push({
        kind: 'snapshot-taken',
        severity: 'success',
        message: `${label} taken (${formatSize(held.size)})`,
        ...ev,
      });
    if (held?.status === 'error' && was !== 'error')
      out.push({
        kind: 'snapshot-failed',
        severity: 'error',
        message: `${label} failed: the storage backend reports an error`,
        ...ev,
      });
  }
  return out;
}

function sizeText(d: DatasetConfiguration): string {
  return d.maximum_size ? ` (${formatSize(d.maximum_size)})` : '';
}

/** How a node error's action reads before "on <host>": "refused ", "" (observed), "<action> failed ". */
function failedWords(action: string): string {
  if (action === 'refuse') return 'refused ';
  return action === 'observe' ? '' : `${action} failed `;
}

/**
 * `flocker events` and `volumes list --watch` (issue 21): the live feed the web UI shows (the
 * web UI model's diffSnapshots between consecutive snapshots of the long-poll), and the control
 * service's stored events for `--since`. Pure.
 */
import type { ClusterEvent } from '@flocker/api';
import type { EventDraft, EventKind } from '@flocker/web-ui';
import { CliError, EXIT } from './errors';
import { visible } from './format';

/** One line of the feed: the web UI's event, with its time. */
export interface FeedEvent extends EventDraft {
  time: string;
}

const UNITS: Record<string, number> = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `--since 10m` (a duration back from now) or an ISO 8601 time; the instant it means. */
export function parseSince(text: string, now: Date): Date {
  const m = /^(\d+)([smhd])$/.exec(text.trim());
  if (m) return new Date(now.getTime() - Number(m[1]) * (UNITS[m[2] ?? 's'] ?? 1_000));
  const t = new Date(text);
  if (/^\d{4}-\d{2}-\d{2}/.test(text) && !Number.isNaN(t.getTime())) return t;
  throw new CliError(EXIT.USAGE, `--since ${text}: give a duration (30s, 10m, 2h, 1d) or an ISO 8601 time`);
}

const KINDS: Record<ClusterEvent['kind'], { kind: EventKind; severity: EventDraft['severity'] }> = {
  node_dead: { kind: 'node-lost', severity: 'error' },
  node_back: { kind: 'node-back', severity: 'success' },
  lease_released_dead_node: { kind: 'lease-released', severity: 'warning' },
  move_cancelled: { kind: 'move-cancelled', severity: 'warning' },
};

/** The control service's stored events at or after `since`, oldest first, in the feed's shape. */
export function storedEventsSince(events: readonly ClusterEvent[], since: Date): FeedEvent[] {
  return events
    .filter((e) => new Date(e.time).getTime() >= since.getTime())
    .sort((a, b) => a.time.localeCompare(b.time))
    .map((e) => ({
      ...KINDS[e.kind],
      message: e.message,
      time: e.time,
      ...(e.dataset_id !== undefined ? { dataset_id: e.dataset_id } : {}),
      ...(e.node_uuid !== undefined ? { node_uuid: e.node_uuid } : {}),
    }));
}

/** "2026-01-01T00:00:00.000Z  mounted    Volume pgdata mounted on 10.0.0.1 at /flocker/…". */
export function feedLine(e: FeedEvent): string {
  // One line an event: the message holds names and addresses other parties chose (review T6 F3).
  return `${e.time}  ${e.kind.padEnd(18)} ${visible(e.message)}`;
}

/** Feed events with one time stamp (when the snapshot arrived). */
export function stamped(drafts: readonly EventDraft[], time: string): FeedEvent[] {
  return drafts.map((d) => ({ ...d, time }));
}

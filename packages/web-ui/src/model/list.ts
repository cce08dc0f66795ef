/**
 * The volume list of the page (issue 21): search, ages, what to say when there is nothing to
 * show, which Move targets a row offers, and the window of rows a long list renders. Pure.
 */
import { formatSize } from './sizes';
import type { ControlStatus } from './wire';
import type { NodeView, VolumeView } from './view';

/** "12 s", "5 min", "3 h", "2 d": a short age that changes as time passes. */
export function humanAge(fromMs: number, now: number): string {
  const s = Math.max(0, Math.floor((now - fromMs) / 1000));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  if (s < 86400) return `${Math.floor(s / 3600)} h`;
  return `${Math.floor(s / 86400)} d`;
}

/**
 * A volume's used space: "1.2 GiB of 10 GiB" and the fraction for its bar (0-1, capped: a file system's
 * own metadata can exceed the configured size); null until the node where it is mounted measures it.
 */
export function usedSpace(v: Pick<VolumeView, 'used' | 'size'>): { text: string; fraction: number | null } | null {
  if (v.used === null) return null;
  if (v.size === null || v.size <= 0) return { text: `${formatSize(v.used)} used`, fraction: null };
  return { text: `${formatSize(v.used)} of ${formatSize(v.size)}`, fraction: Math.min(1, v.used / v.size) };
}

/**
 * A volume's age cell. The API records no creation time, so a volume the UI server saw appear
 * is aged from then; one that was there when it started is at least as old as the server
 * ("≥ 3 h", growing), and says so in its title.
 */
export function volumeAge(
  v: Pick<VolumeView, 'first_seen'>,
  started: string | null,
  now: number,
): { text: string; title: string } {
  if (v.first_seen !== null)
    return { text: humanAge(Date.parse(v.first_seen), now), title: `created at ${v.first_seen}` };
  if (started === null) return { text: '—', title: 'not known yet' };
  return {
    text: `≥ ${humanAge(Date.parse(started), now)}`,
    title: `existed when the flocker ui server started (${started}); the API keeps no creation time`,
  };
}

/**
 * Whether a volume matches what was typed in the search box: every word must match; a word
 * matches a name, node (primary or where it is now), state or lease holder containing it
 * (case-insensitive), or only that field when written `name:`, `node:`, `state:`.
 */
export function matchesSearch(v: VolumeView, query: string): boolean {
  const words = query.toLowerCase().split(/\s+/).filter(Boolean);
  const fields = {
    name: [v.name, v.dataset_id],
    node: [v.primary.host ?? v.primary.uuid, v.location ?? '', v.lease?.host ?? ''],
    state: [v.state, v.errors.length > 0 ? 'error failing' : ''],
  };
  return words.every((w) => {
    const m = /^(name|node|state):(.*)$/.exec(w);
    const [candidates, needle] = m
      ? [fields[m[1] as keyof typeof fields], m[2]!]
      : [[...fields.name, ...fields.node, ...fields.state], w];
    return candidates.some((c) => c.toLowerCase().includes(needle));
  });
}

export function filterVolumes(volumes: readonly VolumeView[], query: string): VolumeView[] {
  return query.trim() === '' ? [...volumes] : volumes.filter((v) => matchesSearch(v, query));
}

/** The live nodes a volume can move to; none (no Move control) when its primary is the only one. */
export function moveTargets(v: Pick<VolumeView, 'primary'>, nodes: readonly NodeView[]): NodeView[] {
  return nodes.filter((n) => n.alive && n.uuid !== v.primary.uuid);
}

/**
 * What the volume list says instead of (or above) its rows: the control service being
 * unreachable is never "no volumes"; with data from before, that data is marked stale.
 */
export type ListNotice =
  | { kind: 'connecting' }
  | { kind: 'unreachable'; message: string }
  | { kind: 'stale'; message: string }
  | { kind: 'empty' }
  | { kind: 'no-match'; query: string }
  | null;

export function listNotice(
  hasView: boolean,
  volumeCount: number,
  shownCount: number,
  control: ControlStatus | null,
  query: string,
): ListNotice {
  const down = control !== null && !control.connected;
  const why = `The control service ${control?.url ?? ''} is unreachable${control?.error ? `: ${control.error}` : ''}.`;
  if (!hasView) return down ? { kind: 'unreachable', message: why } : { kind: 'connecting' };
  if (down) return { kind: 'stale', message: `${why} Showing the last known state; it may be out of date.` };
  if (volumeCount === 0) return { kind: 'empty' };
  if (shownCount === 0) return { kind: 'no-match', query };
  return null;
}

/** Rows a windowed list renders, and the blank space standing in for the rest above and below. */
export interface RowWindow {
  start: number;
  end: number;
  padTop: number;
  padBottom: number;
}

/**
 * The rows of a list that meet the viewport, plus `overscan` either side. `heights`: each
 * row's height as measured, or the estimate where it has not been rendered; `top`: how far
 * the viewport's top is below the list's first row (negative: the list starts lower).
 */
export function rowWindow(heights: readonly number[], top: number, viewport: number, overscan: number): RowWindow {
  let y = 0;
  let first = heights.length;
  for (let i = 0; i < heights.length; i++) {
    if (y + heights[i]! > top) {
      first = i;
      break;
    }
    y += heights[i]!;
  }
  let last = first;
  let bottom = y;
  while (last < heights.length && bottom < top + viewport) bottom += heights[last++]!;
  const start = Math.max(0, first - overscan);
  const end = Math.min(heights.length, last + overscan);
  let padTop = 0;
  for (let i = 0; i < start; i++) padTop += heights[i]!;
  let padBottom = 0;
  for (let i = end; i < heights.length; i++) padBottom += heights[i]!;
  return { start, end, padTop, padBottom };
}

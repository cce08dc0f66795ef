/** Human output: aligned tables and relative times. Pure. */

export function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(headers), ...rows.map(line)].join('\n');
}

/** "3s ago", "5m ago", "2h ago", "4d ago" (or "in 3s" for the future). */
export function relativeTime(then: Date, now: Date = new Date()): string {
  const diff = Math.round((now.getTime() - then.getTime()) / 1000);
  const abs = Math.abs(diff);
  const text =
    abs < 60
      ? `${abs}s`
      : abs < 3600
        ? `${Math.floor(abs / 60)}m`
        : abs < 86400
          ? `${Math.floor(abs / 3600)}h`
          : `${Math.floor(abs / 86400)}d`;
  return diff >= 0 ? `${text} ago` : `in ${text}`;
}

/** Seconds remaining as "never", "45s", "12m", "3h". */
export function duration(seconds: number | null): string {
  if (seconds === null) return 'never';
  const s = Math.max(0, Math.round(seconds));
  return s < 60 ? `${s}s` : s < 3600 ? `${Math.floor(s / 60)}m` : `${Math.floor(s / 3600)}h`;
}

export function shortId(id: string): string {
  return id.slice(0, 8);
}

/** Who holds a lease on its node: "docker, csi"; "(unnamed)" for an acquire that named no holder (Flocker v1 clients, this CLI). */
export function leaseHolders(lease: {
  holders?: readonly string[] | undefined;
  unnamed_holder?: boolean | undefined;
}): string {
  if (lease.holders === undefined) return '(unnamed)';
  return [...lease.holders, ...(lease.unnamed_holder === true ? ['(unnamed)'] : [])].join(', ');
}

/** Human output: aligned tables and relative times. Pure. */

/*
 * Characters a terminal acts on or reorders text by: C0 (but the line feed: our own lines; a value's own line feeds
 * are escaped by `visible`), DEL, C1 (U+009B is a CSI on its own), U+2028/9, the bidi embeddings/overrides
 * U+202A–202E and isolates U+2066–2069. Hosts, metadata, names and error messages are chosen by other parties (any
 * node's report, any client): printed raw they could retitle the window, clear the screen, hide or fake a row, or
 * write the clipboard (OSC 52).
 */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const UNSAFE_IN_TEXT = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/gu;
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const UNSAFE_IN_VALUE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/gu;
/** Also a valid escape inside a JSON string and a YAML double-quoted one: structured output keeps its values. */
const escapeChar = (c: string): string => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;

/** Whether a string holds a character `visible` escapes. */
export function hasUnsafe(s: string): boolean {
  UNSAFE_IN_VALUE.lastIndex = 0;
  return UNSAFE_IN_VALUE.test(s);
}

/** One value (a cell, a host, a name) with every unsafe character, line feeds included, as a visible \uXXXX. */
export function visible(s: string): string {
  return s.replace(UNSAFE_IN_VALUE, escapeChar);
}

/**
 * Text about to be printed, line feeds kept: the CLI's every output passes through it (cli.ts wraps its io), the
 * last guard whatever a printer forgot; printers of values also use `visible` so a value cannot start a line.
 */
export function visibleText(s: string): string {
  return s.replace(UNSAFE_IN_TEXT, escapeChar);
}

export function table(headers: string[], rows: string[][]): string {
  headers = headers.map(visible);
  rows = rows.map((r) => r.map(visible));
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

/**
 * What a lease let go of on request (session 21: the Docker plugin keeps an idle volume's lease) says beyond its
 * holders: "released on request" (a move or destroy asks its holder, who lets go of it if no container there uses
 * it), "release requested" while someone's request waits; '' for any other lease.
 */
export function leaseOnRequest(lease: {
  release_on_request?: true | undefined;
  release_requested?: { by: string; at: string } | undefined;
}): string {
  if (lease.release_requested !== undefined) return 'release requested';
  return lease.release_on_request === true ? 'released on request' : '';
}

/** leaseHolders with leaseOnRequest after them: "docker; released on request". */
export function leaseHoldersText(
  lease: Parameters<typeof leaseHolders>[0] & Parameters<typeof leaseOnRequest>[0],
): string {
  const more = leaseOnRequest(lease);
  return more === '' ? leaseHolders(lease) : `${leaseHolders(lease)}; ${more}`;
}

/**
 * Whether a restarted dataset agent has reported (pure; Host.startAgent does the I/O). A same-era restart is known to
 * the control service before the new process even runs, so "the era is known" says nothing; a report newer than the
 * new process's first log line does: the old process was dead before the new one started, and the new one logs
 * ("dataset agent starting") before its first report.
 */

/** The time (epoch ms) of the first JSON log line with a timestamp in `logSinceSpawn`; undefined before there is one. */
export function firstLogTime(logSinceSpawn: string): number | undefined {
  for (const line of logSinceSpawn.split('\n')) {
    if (!line.startsWith('{')) continue;
    let doc: unknown;
    try {
      doc = JSON.parse(line);
    } catch {
      continue; // a line still being written, or not ours
    }
    if (typeof doc !== 'object' || doc === null || !('timestamp' in doc) || typeof doc.timestamp !== 'string') continue;
    const t = Date.parse(doc.timestamp);
    if (!Number.isNaN(t)) return t;
  }
  return undefined;
}

/**
 * Whether the node's `last_seen` (ISO, from the control service's whole snapshot) shows a report of the process that
 * first logged at `startedAt`. Undefined inputs (not started yet, node not shown) are "not yet".
 */
export function reportedSince(lastSeen: string | undefined, startedAt: number | undefined): boolean {
  if (lastSeen === undefined || startedAt === undefined) return false;
  const seen = Date.parse(lastSeen);
  return !Number.isNaN(seen) && seen >= startedAt;
}

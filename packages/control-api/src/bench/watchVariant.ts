/**
 * A preload for flocker-control under the scale bench's --ab (`node --require …/watchVariant.js`):
 * lets the bench switch the agent watch's heartbeat slice while the service runs, so two variants
 * are timed in alternating rounds on the same service, agents and load (issue 23). The bench writes
 * `{"slice": N}` to the file named by FLOCKER_BENCH_WATCH_VARIANT; this reads it every 50 ms and
 * sets agentWatch's HEARTBEAT_SLICE (read at each slice, through the module's exports); with
 * `"beat": false` the heartbeat ticks are skipped (what the creates cost without any heartbeat: the
 * most a cheaper heartbeat could give; a round must stay under the agents' idle timeout, 3 periods).
 * Bench-only; never loaded by the service itself.
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import * as agentWatch from '../agentWatch';
import { WATCH_HEARTBEAT_MS } from '../agentWatch';

const Variant = z.object({ slice: z.number().int().positive().optional(), beat: z.boolean().optional() });
const file = process.env['FLOCKER_BENCH_WATCH_VARIANT'];
/** The module's exports object, written through: its own code reads `exports.HEARTBEAT_SLICE`. */
const exported = agentWatch as { HEARTBEAT_SLICE: number };

let beat = true;

if (file !== undefined) {
  // The heartbeat ticker is the service's one interval of WATCH_HEARTBEAT_MS: its ticks skipped while beat is off.
  const setIntervalBefore = globalThis.setInterval;
  globalThis.setInterval = ((fn: (...a: unknown[]) => void, ms?: number, ...rest: unknown[]) =>
    setIntervalBefore(
      ms === WATCH_HEARTBEAT_MS
        ? (...a: unknown[]) => {
            if (beat) fn(...a);
          }
        : fn,
      ms,
      ...rest,
    )) as typeof setInterval;
  let last = '';
  setInterval(() => {
    let text: string;
    let json: unknown;
    try {
      text = readFileSync(file, 'utf8');
      if (text === last) return;
      json = JSON.parse(text);
    } catch {
      // Not there yet, or being written: the next read.
      return;
    }
    last = text;
    const v = Variant.safeParse(json);
    if (!v.success) return;
    if (v.data.slice !== undefined) exported.HEARTBEAT_SLICE = v.data.slice;
    beat = v.data.beat ?? true;
  }, 50).unref();
}

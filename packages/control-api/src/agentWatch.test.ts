/** The streaming watch's loop without HTTP (issue 23): heartbeats, backpressure, and its end. */
import winston from 'winston';
import { ClusterSnapshot } from '@flocker/api';
import { createDataset } from './configuration';
import { MemoryConfigurationStore } from './ConfigurationStore';
import { ControlState } from './ControlState';
import type { StreamSink } from './routeSpec';
import { Views } from './Views';
import {
  HEARTBEAT_SLICE,
  HEARTBEAT_TICKS_PER_PERIOD,
  smallestGroup,
  WATCH_HEARTBEAT_MS,
  watchContentType,
  watchNode,
} from './agentWatch';
import { A, B, letterReport as report } from './testing/fixtures';

const silent = winston.createLogger({ silent: true });

/** A sink that records its lines and says "full" while `blocked`, until drain() is called. */
function fakeSink(): StreamSink & {
  lines: string[];
  chunks: (Buffer | string)[];
  blocked: boolean;
  drain: () => void;
  ended: boolean;
  abort: () => void;
} {
  const abort = new AbortController();
  let release: (() => void) | undefined;
  const sink = {
    lines: [] as string[],
    chunks: [] as (Buffer | string)[],
    blocked: false,
    ended: false,
    signal: abort.signal,
    abort: () => abort.abort(),
    write(chunk: Buffer | string): boolean {
      sink.lines.push(chunk.toString());
      sink.chunks.push(chunk);
      return !sink.blocked;
    },
    drained: () => new Promise<void>((r) => (release = r)),
    drain: () => {
      sink.blocked = false;
      release?.();
    },
    end: () => void (sink.ended = true),
  };
  return sink;
}

const tick = (ms = 20): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('watchNode', () => {
  let state: ControlState;
  beforeEach(async () => {
    state = await ControlState.open({
      store: new MemoryConfigurationStore(),
      nodeTimeoutMs: 10_000,
      logger: silent,
      livenessCheckMs: 60_000,
    });
    await state.report(report(A));
    await state.report(report(B));
  });
  afterEach(() => state.close());

  it('writes an empty line after a heartbeat without change, and nothing for changes to other views', async () => {
    const sink = fakeSink();
    watchNode(state, new Views(state), A, state.generation, sink, 100);
    await state.mutate((c, now) => createDataset(c, { primary: B }, undefined, undefined, now));
    await tick(60);
    expect(sink.lines).toEqual([]);
    // Within two periods of its start (its group's ticks are spread over the period; slack for a loaded host).
    for (let waited = 0; sink.lines.length === 0 && waited < 1000; waited += 20) await tick(20);
    expect(sink.lines[0]).toBe('\n');
    sink.abort();
  });

  it('beats every few seconds and says so in its Content-Type (the client waits 3 periods before it reconnects)', () => {
    // 20 s left a half-open watch unnoticed for a minute (the client's idle timeout).
    expect(WATCH_HEARTBEAT_MS).toBeLessThanOrEqual(5_000);
    expect(watchContentType()).toBe(`application/x-ndjson; heartbeat-ms=${WATCH_HEARTBEAT_MS}`);
  });

  it('one tick writes the same heartbeat Buffer to every idle watcher; none to one that wrote a line', async () => {
    const sinks = [fakeSink(), fakeSink(), fakeSink()];
    for (const sink of sinks) watchNode(state, new Views(state), A, state.generation, sink, 100);
    const busy = fakeSink();
    watchNode(state, new Views(state), B, state.generation, busy, 100);
    // B's view changes more often than the period: its watcher is never idle at its group's tick.
    for (let i = 0; i < 10; i++) {
      await state.mutate((c, now) => createDataset(c, { primary: B }, undefined, undefined, now));
      await tick(30);
    }
    const beats = sinks.map((s) => s.chunks[0]);
    expect(beats[0]).toBeInstanceOf(Buffer);
    expect(beats[0]?.toString()).toBe('\n');
    for (const b of beats) expect(b).toBe(beats[0]);
    expect(busy.lines.length).toBeGreaterThan(1);
    expect(busy.lines).not.toContain('\n');
    for (const sink of [...sinks, busy]) sink.abort();
  });

  it('a tick beats its group in slices, letting the event loop run between them (no stall of every request at 10,000)', async () => {
    // Groups larger than a slice: HEARTBEAT_TICKS_PER_PERIOD groups of HEARTBEAT_SLICE + 1 (the last one a little smaller).
    const total = HEARTBEAT_TICKS_PER_PERIOD * (HEARTBEAT_SLICE + 1);
    let beats = 0;
    const beaten = new Set<number>();
    let seenBetween: number | undefined;
    const sinks = Array.from({ length: total }, (_, i) => {
      const sink = fakeSink();
      const write = sink.write.bind(sink);
      sink.write = (chunk) => {
        beats += 1;
        beaten.add(i);
        // Runs at the next turn of the loop: before the tick's last slice if the tick is sliced.
        if (beats === 1) setImmediate(() => (seenBetween = beats));
        return write(chunk);
      };
      return sink;
    });
    for (const sink of sinks) watchNode(state, new Views(state), A, state.generation, sink, 200);
    // A first visit of each group (the stream's start counts as written), then the beating one.
    for (let waited = 0; beaten.size < total && waited < 3000; waited += 50) await tick(50);
    expect(beaten.size).toBe(total);
    expect(seenBetween).toBe(HEARTBEAT_SLICE);
    for (const sink of sinks) sink.abort();
  });

  it("spreads a period's heartbeats over it: a group per tick, not every watcher at one instant", async () => {
    const periodMs = 400;
    const firstBeat: number[] = [];
    const sinks = Array.from({ length: 200 }, (_, i) => {
      const sink = fakeSink();
      const write = sink.write.bind(sink);
      sink.write = (chunk) => {
        firstBeat[i] ??= performance.now();
        return write(chunk);
      };
      return sink;
    });
    for (const sink of sinks) watchNode(state, new Views(state), A, state.generation, sink, periodMs);
    await tick(periodMs * 2.5);
    for (const sink of sinks) sink.abort();
    // Every watcher beaten within two periods of its start…
    expect(firstBeat.filter((t) => t !== undefined)).toHaveLength(sinks.length);
    // …at times spread over a period (before: all 200 within one tick's few ms).
    const span = Math.max(...firstBeat) - Math.min(...firstBeat);
    expect(span).toBeGreaterThan(periodMs / 2);
    // No tick beat more than its group (ticks are periodMs / HEARTBEAT_TICKS_PER_PERIOD apart).
    const sorted = [...firstBeat].sort((a, b) => a - b);
    const window = periodMs / HEARTBEAT_TICKS_PER_PERIOD / 2;
    let most = 0;
    for (let i = 0, j = 0; i < sorted.length; i++) {
      while ((sorted[i] as number) - (sorted[j] as number) > window) j++;
      most = Math.max(most, i - j + 1);
    }
    expect(most).toBeLessThanOrEqual(Math.ceil(sinks.length / HEARTBEAT_TICKS_PER_PERIOD) * 2);
  });

  it('a new watcher joins the smallest group', () => {
    expect(smallestGroup([3, 1, 2])).toBe(1);
    expect(smallestGroup([2, 2, 2])).toBe(0);
    expect(smallestGroup([5])).toBe(0);
  });

  it('queues nothing while the client is not reading; once drained, one delta covers every change it missed', async () => {
    const sink = fakeSink();
    watchNode(state, new Views(state), A, undefined, sink, 60_000);
    await tick();
    const first = ClusterSnapshot.parse(JSON.parse(sink.lines[0] as string));
    sink.blocked = true;
    await state.mutate((c, now) => createDataset(c, { primary: A }, undefined, undefined, now));
    await tick();
    expect(sink.lines).toHaveLength(2);
    for (let i = 0; i < 3; i++)
      await state.mutate((c, now) => createDataset(c, { primary: A }, undefined, undefined, now));
    await tick();
    // Blocked: nothing more written (bounded memory per watcher).
    expect(sink.lines).toHaveLength(2);
    sink.drain();
    await tick();
    expect(sink.lines).toHaveLength(3);
    const second = JSON.parse(sink.lines[1] as string) as { since: string; generation: string };
    const third = JSON.parse(sink.lines[2] as string) as { since: string; datasets: unknown[] };
    expect(second.since).toBe(first.generation);
    expect(third.since).toBe(second.generation);
    expect(third.datasets).toHaveLength(3);
    sink.abort();
  });

  it('ends the stream when the service closes (the agent reconnects)', async () => {
    const sink = fakeSink();
    watchNode(state, new Views(state), A, state.generation, sink, 60_000);
    await tick();
    await state.close();
    await tick();
    expect(sink.ended).toBe(true);
  });
});

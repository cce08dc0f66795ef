/**
 * The agent channel's streaming watch (issue 23): one long-lived answer per agent carrying its
 * node's view, then one line per change of that view (a ClusterDelta since the line before).
 *
 * With long-polls, every change reached each of 10,000 agents as an HTTP answer followed by a new
 * request (parsing, routing, validation, a request's objects kept alive for its wait): at 10,000
 * agents a third of the service's time was garbage collection of those. On a watch a change costs
 * one write per agent. A change that is the same for every view (a configured snapshot) is the
 * same bytes for every watcher holding the same generation: built once, the one Buffer written to all.
 *
 * Wake-ups are the long-polls' (ChangeNotifier, per node: a change for one node wakes one watch).
 * Memory per watcher is bounded: it holds its node, the generation it last wrote, and at most one
 * answer in the socket's buffer — while the client is not reading, nothing more is queued, and once
 * it drains the next line is one delta covering everything it missed.
 */
import type { ControlState } from './ControlState';
import { WHOLE_CLUSTER } from './nodeViews';
import type { ViewSubscription } from './notifier';
import type { StreamSink } from './routeSpec';
import type { Viewer, Views } from './Views';

/**
 * An empty line after this long without a line, so agents (and proxies) see the connection alive: the
 * agent takes a watch silent for 3 periods as dead (a half-open connection, a silent partition) and
 * watches again from the generation it held. Short, so a dataset agent sees a change within seconds
 * even over a connection that died unnoticed. Cost: one 6-byte chunk per idle watcher per period, the
 * same Buffer for all from one timer per service (10,000 agents: 5,000 writes/s; see heartbeatsTo).
 */
export const WATCH_HEARTBEAT_MS = 2_000;
/**
 * The watch's Content-Type: ndjson announcing its heartbeat period, so the client's idle timeout
 * follows the server's period (a client seeing no `heartbeat-ms` assumes the first watch's 20 s).
 */
export function watchContentType(heartbeatMs = WATCH_HEARTBEAT_MS): string {
  return `application/x-ndjson; heartbeat-ms=${heartbeatMs}`;
}
const HEARTBEAT = Buffer.from('\n');
/**
 * Watchers beaten per turn of the event loop within one tick (exported for tests). Each write's cost
 * is mostly paid after the slice, when its response uncorks (a writev per socket, in the same turn):
 * ~12-20 µs per watcher on the loaded 2-core host. A request waits for the turn in progress at each of
 * its steps (read, commit, answer): 500 per turn held each step 10-13 ms (median turn of a tick at
 * 3,000-9,000 real connections), a create met 2-3 of them in a burst (the scale bench's 21-32 ms
 * create p99 at 10,000 agents); 64 per turn, ~1 ms. The whole tick takes ~10-40% longer (more turns).
 */
export const HEARTBEAT_SLICE = 64;

/** A watcher's part in the heartbeat: written since the last tick (no heartbeat then), or busy. */
interface Beating {
  idle(): boolean;
  beat(): void;
}
/** One timer per heartbeat period for every watcher of the process: a tick writes the one Buffer to the idle ones. */
const beaters = new Map<number, { watchers: Set<Beating>; timer: NodeJS.Timeout }>();

/** Registers a watcher on its period's ticker; the returned function unregisters it (the last one stops the timer). */
function heartbeatsTo(periodMs: number, w: Beating): () => void {
  let b = beaters.get(periodMs);
  if (b === undefined) {
    const watchers = new Set<Beating>();
    const timer = setInterval(() => {
      // In slices with the event loop let run between: 10,000 writes in one go held every request
      // behind them for 15-36 ms (60-180 at worst) per tick on the loaded 2-core host; see HEARTBEAT_SLICE.
      const due = [...watchers];
      let i = 0;
      const slice = (): void => {
        const end = Math.min(i + HEARTBEAT_SLICE, due.length);
        for (; i < end; i++) {
          const x = due[i];
          if (x !== undefined && watchers.has(x) && x.idle()) x.beat();
        }
        if (i < due.length) setImmediate(slice);
      };
      slice();
    }, periodMs);
    timer.unref();
    b = { watchers, timer };
    beaters.set(periodMs, b);
  }
  const mine = b;
  mine.watchers.add(w);
  return () => {
    mine.watchers.delete(w);
    if (mine.watchers.size === 0 && beaters.get(periodMs) === mine) {
      clearInterval(mine.timer);
      beaters.delete(periodMs);
    }
  };
}

/** Shared answers kept per generation (one per `since` watchers hold; almost always one). */
const MAX_SHARED = 16;

interface Shared {
  generation: string;
  bySince: Map<string, Buffer>;
}
/** Per service: the current generation's shared answers (older generations' are dropped). */
const sharedAnswers = new WeakMap<ControlState, Shared>();

/** How many shared answers the service keeps now (a test's view of the cache). */
export function sharedDeltaCacheSize(state: ControlState): number {
  return sharedAnswers.get(state)?.bySince.size ?? 0;
}

/** `state`'s shared answers in `cache` for `generation`, started afresh when they were of an older one. */
function sharedOf(cache: WeakMap<ControlState, Shared>, state: ControlState, generation: string): Shared {
  let shared = cache.get(state);
  if (shared?.generation !== generation) {
    shared = { generation, bySince: new Map() };
    cache.set(state, shared);
  }
  return shared;
}

/** Per service: the whole cluster's lines of the current generation, by the `since` they answer ('' : none). */
const clusterAnswers = new WeakMap<ControlState, Shared>();
/** The same, without the members new in this release (Views.newMembersHidden): only while a node behind watches. */
const legacyClusterAnswers = new WeakMap<ControlState, Shared>();
/** The whole snapshot's body (Views.snapshot, cached per generation) → that body as a line: one copy, not one per watcher. */
const snapshotLines = new WeakMap<Buffer, Buffer>();

/**
 * The whole cluster's line for a watcher holding `since` (the plugins, issue 23): every watcher of the
 * same `since` — all of them, almost always — gets the same Buffer, built once per generation: a delta
 * when the index knows what changed, else the whole snapshot (itself cached per generation).
 */
function clusterAnswer(
  state: ControlState,
  views: Views,
  since: string | undefined,
  viewer: Viewer,
): { line: Buffer; generation: string } {
  const generation = state.generation;
  const legacy = views.newMembersHidden(viewer);
  const shared = sharedOf(legacy ? legacyClusterAnswers : clusterAnswers, state, generation);
  const key = since ?? '';
  let line = shared.bySince.get(key);
  if (line === undefined) {
    const delta = since !== undefined ? views.deltaFor(WHOLE_CLUSTER, since, viewer) : undefined;
    if (delta !== undefined) line = Buffer.from(`${delta}\n`);
    else {
      const body = views.snapshot(legacy);
      line = snapshotLines.get(body);
      if (line === undefined) {
        line = Buffer.concat([body, HEARTBEAT]);
        snapshotLines.set(body, line);
      }
    }
    if (shared.bySince.size < MAX_SHARED) shared.bySince.set(key, line);
  }
  return { line, generation };
}

/**
 * The line for `node` holding `since`: a delta when the index knows what changed, else the whole
 * view (WHOLE_CLUSTER: the whole cluster's, clusterAnswer). A delta touching no entry of the view (the snapshots' change, or a container wake-up) does
 * not depend on the node, so it is built once per `since` and generation. `viewer`: who asked for a whole view (its
 * certificate's node, API_VIEWER, or undefined): what its lines may carry (Views.newMembersHidden); a node's own
 * view is its node's. Decided per line: an upgraded node's agent reports its new release, and its next line follows.
 */
export function answerFor(
  state: ControlState,
  views: Views,
  node: string,
  since: string | undefined,
  viewer?: Viewer,
): { line: Buffer | string; generation: string } {
  if (node === WHOLE_CLUSTER) return clusterAnswer(state, views, since, viewer);
  const generation = state.generation;
  if (since !== undefined) {
    const changes = state.nodeViews.changesSince(node, since);
    if (changes !== undefined && changes.keys.every((k) => k.startsWith('w:'))) {
      const shared = sharedOf(sharedAnswers, state, generation);
      let line = shared.bySince.get(since);
      if (line === undefined) {
        const json = views.deltaFor(node, since);
        if (json !== undefined) {
          line = Buffer.from(`${json}\n`);
          if (shared.bySince.size < MAX_SHARED) shared.bySince.set(since, line);
        }
      }
      if (line !== undefined) return { line, generation };
    }
    const delta = views.deltaFor(node, since);
    if (delta !== undefined) return { line: `${delta}\n`, generation };
  }
  return { line: `${views.snapshotFor(node)}\n`, generation };
}

/**
 * Streams node's view (WHOLE_CLUSTER: the whole cluster's, Views.snapshot) to `sink` until the client goes away: the whole view first (or, from a
 * `since` still current, nothing until the view changes), then a line per change. A standing
 * subscription wakes it (no promise, timer or listener per change); an empty line goes out after a
 * heartbeat period without one (so at most 2 periods between two writes; the route announces the
 * period in its Content-Type, watchContentType).
 */
export function watchNode(
  state: ControlState,
  views: Views,
  node: string,
  since: string | undefined,
  sink: StreamSink,
  heartbeatMs = WATCH_HEARTBEAT_MS,
  /** Who watches the whole cluster (answerFor); ignored for a node's view. */
  viewer?: Viewer,
): void {
  if (sink.signal.aborted) return;
  let held = since;
  let busy = false;
  let wrote = false;
  /** Set once subscribed (after the first line is built). */
  const sub: { current?: ViewSubscription } = {};
  // Between two ticks at most one write: a line, or else the heartbeat (none while a line waits to drain).
  const stopBeating = heartbeatsTo(heartbeatMs, {
    idle: () => {
      const idle = !wrote && !busy;
      wrote = false;
      return idle;
    },
    beat: () => void sink.write(HEARTBEAT),
  });
  const stop = (): void => {
    stopBeating();
    sub.current?.cancel();
  };
  let ended = false;
  const fail = (): void => {
    ended = true;
    stop();
    sink.end();
  };
  /**
   * Writes what changed since `held` until nothing has; while the client is not reading, waits (one line buffered at
   * most). Synchronous while the socket takes the lines: a fan-out calls this for each of 10,000 watchers, and a
   * promise (with its async context) per call was a share of the service's time; only a full socket waits.
   */
  const flush = (): void => {
    if (busy) return;
    busy = true;
    let draining = false;
    try {
      while (!sink.signal.aborted && (held === undefined || state.nodeViews.changedSince(node, held))) {
        const next = answerFor(state, views, node, held, viewer);
        held = next.generation;
        if (sub.current !== undefined) sub.current.since = held;
        wrote = true;
        if (!sink.write(next.line)) {
          // Busy until drained (a wake-up meanwhile writes nothing): the flush after the drain covers what it missed.
          draining = true;
          sink.drained().then(() => {
            busy = false;
            guarded();
          }, fail);
          return;
        }
      }
    } finally {
      if (!draining) busy = false;
    }
  };
  /** flush, a failure ending the stream (the agent reconnects). */
  const guarded = (): void => {
    try {
      flush();
    } catch {
      fail();
    }
  };
  sink.signal.addEventListener('abort', stop, { once: true });
  // The first line (if any) is built before subscribing: `held` is then the generation it carries.
  guarded();
  // Failed at the first line: ended, nothing to subscribe.
  if (ended) return;
  sub.current = state.subscribeView(node, held ?? state.generation, (closing) => {
    // The service is closing: end the stream, the agent reconnects (to another replica if need be).
    if (closing) fail();
    else guarded();
  });
}

/** ClusterFollower over a watch (issue 23): the node's view streamed, the stream injected (no server). */
import {
  type ClusterAnswer,
  type ClusterDelta,
  type ClusterSnapshot,
  FlockerApiError,
  type NodeState,
} from '@flocker/api';
import { ManualClock, settle } from '@flocker/runtime/testing';
import winston from 'winston';
import { ClusterFollower, type SnapshotChange } from './ClusterFollower';
import { nodeState } from './testing/fakes';

const ME = '11111111-1111-4111-8111-111111111111';
const OTHER = '22222222-2222-4222-8222-222222222222';
const DEAD = '33333333-3333-4333-8333-333333333333';

const dataset = (id: string): ClusterSnapshot['datasets'][number] => ({
  dataset_id: id,
  primary: ME,
  metadata: {},
  deleted: false,
});
const view = (generation: string, over: Partial<ClusterSnapshot> = {}): ClusterSnapshot => ({
  generation,
  configuration_tag: 't',
  datasets: [],
  leases: [],
  nodes: [nodeState(ME), nodeState(OTHER)],
  ...over,
});
const delta = (since: string, generation: string, over: Partial<ClusterDelta> = {}): ClusterDelta => ({
  delta: true,
  since,
  generation,
  configuration_tag: 't',
  datasets: [],
  removed_datasets: [],
  leases: [],
  removed_leases: [],
  nodes: [],
  removed_nodes: [],
  ...over,
});
const ids = (s: ClusterSnapshot | null): string[] => (s?.datasets ?? []).map((d) => d.dataset_id);

/** One watch the test writes to: lines, a failure (the connection), or its end (the service closing). */
class Stream {
  private readonly queue: Array<{ line: ClusterAnswer } | { error: Error } | { end: true }> = [];
  private wake: (() => void) | null = null;
  closed = false;

  constructor(
    readonly since: string | undefined,
    private readonly signal: AbortSignal,
  ) {
    signal.addEventListener('abort', () => this.wake?.(), { once: true });
  }

  line(l: ClusterAnswer): void {
    this.queue.push({ line: l });
    this.wake?.();
  }
  fail(error: Error): void {
    this.queue.push({ error });
    this.wake?.();
  }
  end(): void {
    this.queue.push({ end: true });
    this.wake?.();
  }

  async *lines(): AsyncGenerator<ClusterAnswer> {
    try {
      for (;;) {
        if (this.signal.aborted) return;
        const next = this.queue.shift();
        if (next === undefined) {
          await new Promise<void>((resolve) => (this.wake = resolve));
          this.wake = null;
          continue;
        }
        if ('error' in next) throw next.error;
        if ('end' in next) return;
        yield next.line;
      }
    } finally {
      this.closed = true;
    }
  }
}

interface Call<A> {
  since: string | undefined;
  timeoutMs: number | undefined;
  at: number;
  answer: (a: A) => void;
  fail: (e: Error) => void;
}

function setup() {
  const clock = new ManualClock();
  const watches: Array<Stream & { at: number }> = [];
  const deltaCalls: Array<Call<ClusterAnswer>> = [];
  const wholeCalls: Array<Call<ClusterSnapshot>> = [];
  const adopted: Array<{ generation: string; change: SnapshotChange; askedAt: number }> = [];
  const follower = new ClusterFollower({
    waitForCluster: (since, timeoutMs) =>
      new Promise((answer, fail) => wholeCalls.push({ since, timeoutMs, at: clock.now(), answer, fail })),
    waitForClusterDelta: (since, timeoutMs) =>
      new Promise((answer, fail) => deltaCalls.push({ since, timeoutMs, at: clock.now(), answer, fail })),
    watchCluster: (since, signal) => {
      const s = Object.assign(new Stream(since, signal), { at: clock.now() });
      watches.push(s);
      return s.lines();
    },
    nodeUuid: ME,
    clock,
    logger: winston.createLogger({ silent: true }),
    pollWaitMs: 25_000,
    backoffInitialMs: 100,
    backoffMaxMs: 400,
    adopted: (s, askedAt, change) => adopted.push({ generation: s.generation, change, askedAt }),
  });
  return { clock, watches, deltaCalls, wholeCalls, adopted, follower };
}

describe('ClusterFollower over a watch of its node view', () => {
  it('takes the whole view, then merges each delta as it arrives, with no request of its own', async () => {
    const { clock, watches, deltaCalls, wholeCalls, adopted, follower } = setup();
    follower.start();
    await settle();
    expect(watches).toHaveLength(1);
    expect(watches[0]!.since).toBeUndefined();
    const t0 = clock.now();
    watches[0]!.line(view('1', { datasets: [dataset('d1')] }));
    await settle();
    await clock.advance(5);
    watches[0]!.line(delta('1', '2', { datasets: [dataset('d2')] }));
    await settle();
    watches[0]!.line(delta('2', '3', { removed_datasets: ['d1'] }));
    await settle();
    // Only OTHER's state: 'others'.
    watches[0]!.line(
      delta('3', '4', {
        nodes: [nodeState(OTHER, { volumes: [{ blockdevice_id: 'b', dataset_id: 'd2', size: 1, attached_to: null }] })],
      }),
    );
    await settle();
    expect(adopted.map((a) => [a.generation, a.change])).toEqual([
      ['1', 'config'],
      ['2', 'config'],
      ['3', 'config'],
      ['4', 'others'],
    ]);
    // A line proves contact as of the watch's request, not its arrival (written before, by up to an
    // idle timeout after a stall, or more behind a proxy): what self-fencing is told.
    expect(adopted[1]!.askedAt).toBe(watches[0]!.at);
    expect(adopted[1]!.askedAt).toBeLessThan(t0 + 5);
    expect(ids(follower.snapshot)).toEqual(['d2']);
    expect(follower.followMode).toBe('watch');
    expect(follower.answers).toMatchObject({ streamed: 4, view: 1, delta: 3, whole: 0 });
    expect(watches).toHaveLength(1);
    expect(deltaCalls).toHaveLength(0);
    expect(wholeCalls).toHaveLength(0);
    follower.stop();
  });

  it('a stream cut mid-way (its replica killed) is watched again at once from the generation held; a change made meanwhile is not lost', async () => {
    const { clock, watches, deltaCalls, follower } = setup();
    follower.start();
    await settle();
    watches[0]!.line(view('1', { datasets: [dataset('d1')] }));
    watches[0]!.line(delta('1', '2', { datasets: [dataset('d2')] }));
    await settle();
    const cutAt = clock.now();
    watches[0]!.fail(new FlockerApiError(0, 'CONTROL_SERVICE_UNREACHABLE', 'other side closed'));
    await settle();
    expect(watches[0]!.closed).toBe(true);
    // It had answered: watched again at once (through the next replica, in the client), no backoff.
    expect(watches).toHaveLength(2);
    expect(watches[1]).toMatchObject({ since: '2', at: cutAt });
    // And what changed since, read at once: proof of contact even if nothing did.
    expect(deltaCalls).toHaveLength(1);
    expect(deltaCalls[0]).toMatchObject({ since: '2', timeoutMs: 0 });
    deltaCalls[0]!.answer({ ...delta('2', '3', { datasets: [dataset('d3')] }), configuration_tag: 't2' });
    await settle();
    expect(follower.snapshot).toMatchObject({ generation: '3', configuration_tag: 't2' });
    // The change made while no watch was open is the new watch's first line.
    watches[1]!.line({ ...delta('2', '3', { datasets: [dataset('d3')] }), configuration_tag: 't2' });
    await settle();
    watches[1]!.line(delta('3', '4', { removed_datasets: ['d1'] }));
    await settle();
    expect(follower.snapshot?.generation).toBe('4');
    expect(ids(follower.snapshot)).toEqual(['d2', 'd3']);
    follower.stop();
  });

  it('backs off between failed watches exactly as the long-polls (no jitter); a watch cut after a line is asked again at once, then backs off from the start', async () => {
    const { clock, watches, follower } = setup();
    follower.start();
    await settle();
    for (let i = 0; i < 4; i++) {
      watches[i]!.fail(new FlockerApiError(0, 'CONTROL_SERVICE_UNREACHABLE', 'ECONNREFUSED'));
      await settle();
      await clock.advanceUntil(() => watches.length > i + 1, 1000, 10);
    }
    expect(watches.slice(1).map((w, i) => w.at - watches[i]!.at)).toEqual([100, 200, 400, 400]);
    watches[4]!.line(view('1'));
    await settle();
    watches[4]!.fail(new FlockerApiError(0, 'CONTROL_SERVICE_UNREACHABLE', 'ECONNRESET'));
    await settle();
    await clock.advanceUntil(() => watches.length > 5, 1000, 10);
    expect(watches[5]!.at - watches[4]!.at).toBe(0);
    expect(watches[5]!.since).toBe('1');
    // That one fails before any line (the service is gone): the backoff, from its start.
    watches[5]!.fail(new FlockerApiError(0, 'CONTROL_SERVICE_UNREACHABLE', 'ECONNREFUSED'));
    await settle();
    await clock.advanceUntil(() => watches.length > 6, 1000, 10);
    expect(watches[6]!.at - watches[5]!.at).toBe(100);
    follower.stop();
  });

  it('a stream the service ends (it is closing) is watched again at once from the generation held', async () => {
    const { watches, deltaCalls, follower } = setup();
    follower.start();
    await settle();
    watches[0]!.line(view('1'));
    watches[0]!.end();
    await settle();
    expect(watches).toHaveLength(2);
    expect(watches[1]!.since).toBe('1');
    expect(deltaCalls).toHaveLength(0);
    follower.stop();
  });

  it('a restarted service (the generation held unknown to it) streams the whole view again', async () => {
    const { clock, watches, adopted, follower } = setup();
    follower.start();
    await settle();
    watches[0]!.line(view('a.1', { datasets: [dataset('d1')] }));
    await settle();
    watches[0]!.fail(new FlockerApiError(0, 'CONTROL_SERVICE_UNREACHABLE', 'ECONNRESET'));
    await settle();
    await clock.advance(100);
    expect(watches[1]!.since).toBe('a.1');
    watches[1]!.line(view('b.1', { datasets: [dataset('d1'), dataset('d2')] }));
    watches[1]!.line(delta('b.1', 'b.2', { removed_datasets: ['d1'] }));
    await settle();
    expect(ids(follower.snapshot)).toEqual(['d2']);
    expect(adopted.map((a) => a.generation)).toEqual(['a.1', 'b.1', 'b.2']);
    follower.stop();
  });

  it('a delta it cannot apply (for another view) is followed by a watch without since: the whole view', async () => {
    const { watches, follower } = setup();
    follower.start();
    await settle();
    watches[0]!.line(view('1', { datasets: [dataset('d1')] }));
    watches[0]!.line(delta('7', '8', { datasets: [dataset('d9')] }));
    await settle();
    expect(watches[0]!.closed).toBe(true);
    expect(watches).toHaveLength(2);
    expect(watches[1]!.since).toBeUndefined();
    // The unmergeable delta was not adopted.
    expect(follower.snapshot?.generation).toBe('1');
    watches[1]!.line(view('8', { datasets: [dataset('d9'), dataset('d10')] }));
    await settle();
    expect(ids(follower.snapshot)).toEqual(['d9', 'd10']);
    expect(follower.answers).toMatchObject({ view: 2, delta: 0 });
    follower.stop();
  });

  it('a control service without the watch (404) is followed by long-poll deltas; after a poll fails the watch is asked again', async () => {
    const { clock, watches, deltaCalls, wholeCalls, follower } = setup();
    follower.start();
    await settle();
    watches[0]!.fail(new FlockerApiError(404, 'NOT_FOUND', 'no route GET /v1/agent/cluster/watch'));
    await settle();
    expect(follower.followMode).toBe('deltas');
    expect(deltaCalls[0]).toMatchObject({ since: undefined, timeoutMs: 0 });
    deltaCalls[0]!.answer(view('1', { datasets: [dataset('d1')] }));
    await settle();
    expect(deltaCalls[1]).toMatchObject({ since: '1', timeoutMs: 25_000 });
    deltaCalls[1]!.answer(delta('1', '2', { datasets: [dataset('d2')] }));
    await settle();
    expect(ids(follower.snapshot)).toEqual(['d1', 'd2']);
    expect(watches).toHaveLength(1);
    // The service goes away (perhaps to come back upgraded): the watch is tried again, after the backoff.
    deltaCalls[2]!.fail(new FlockerApiError(0, 'CONTROL_SERVICE_UNREACHABLE', 'ECONNRESET'));
    await settle();
    expect(follower.followMode).toBe('watch');
    expect(watches).toHaveLength(1);
    await clock.advance(100);
    expect(watches).toHaveLength(2);
    // From the whole view: the long-poll's view is not the stream's.
    expect(watches[1]!.since).toBeUndefined();
    watches[1]!.line(view('3', { datasets: [dataset('d2')] }));
    await settle();
    expect(ids(follower.snapshot)).toEqual(['d2']);
    expect(deltaCalls).toHaveLength(3);
    expect(wholeCalls).toHaveLength(0);
    follower.stop();
  });

  it('a service refusing the watch and deltas (400: older still) is followed by whole snapshots', async () => {
    const { watches, deltaCalls, wholeCalls, follower } = setup();
    follower.start();
    await settle();
    watches[0]!.fail(new FlockerApiError(400, 'INVALID_INPUT', 'unknown query parameter node'));
    await settle();
    deltaCalls[0]!.fail(new FlockerApiError(400, 'INVALID_INPUT', 'unknown query parameter delta'));
    await settle();
    expect(follower.followMode).toBe('whole');
    expect(wholeCalls[0]).toMatchObject({ since: undefined, timeoutMs: 0 });
    wholeCalls[0]!.answer(view('1'));
    await settle();
    expect(wholeCalls[1]).toMatchObject({ since: '1', timeoutMs: 25_000 });
    expect(follower.snapshot?.generation).toBe('1');
    follower.stop();
  });

  it('a refetch answered with a newer view than a line that arrives after it: the view never steps back', async () => {
    const { clock, watches, deltaCalls, adopted, follower } = setup();
    follower.start();
    await settle();
    watches[0]!.line(view('e.1.1', { datasets: [dataset('d1')] }));
    await settle();
    await clock.advance(10);
    follower.refetch();
    // The refetch overtakes the stream: it answers e.1.3 while the stream's line for e.1.2 is on its way.
    deltaCalls[0]!.answer(delta('e.1.1', 'e.1.3', { datasets: [dataset('d2'), dataset('d3')] }));
    await settle();
    expect(follower.snapshot?.generation).toBe('e.1.3');
    await clock.advance(10);
    watches[0]!.line(delta('e.1.1', 'e.1.2', { datasets: [dataset('d2')] }));
    await settle();
    // Arrived later than the refetch was asked, but older: kept e.1.3 (a contact, not a change).
    expect(follower.snapshot?.generation).toBe('e.1.3');
    expect(ids(follower.snapshot)).toEqual(['d1', 'd2', 'd3']);
    expect(adopted.at(-1)).toMatchObject({ generation: 'e.1.3', change: 'none' });
    watches[0]!.line(delta('e.1.2', 'e.1.3', { datasets: [dataset('d3')] }));
    await settle();
    expect(follower.snapshot?.generation).toBe('e.1.3');
    expect(adopted.map((a) => a.change)).toEqual(['config', 'config', 'none', 'none']);
    // A restarted service (another epoch) is adopted, whatever its counters.
    await clock.advance(10);
    watches[0]!.line(view('f.0.1', { datasets: [dataset('d1')] }));
    await settle();
    expect(follower.snapshot?.generation).toBe('f.0.1');
    expect(ids(follower.snapshot)).toEqual(['d1']);
    follower.stop();
  });

  it('a refetch reads what changed since the view held; a refused refetch does not end the watch', async () => {
    const { watches, deltaCalls, follower } = setup();
    follower.start();
    await settle();
    watches[0]!.line(view('1', { datasets: [dataset('d1')] }));
    await settle();
    follower.refetch();
    expect(deltaCalls[0]).toMatchObject({ since: '1', timeoutMs: 0 });
    deltaCalls[0]!.answer({ ...delta('1', '2'), configuration_tag: 't2' });
    await settle();
    expect(follower.snapshot).toMatchObject({ generation: '2', configuration_tag: 't2' });
    // The stream's next delta is on its own view (1), not the refetch's.
    watches[0]!.line(delta('1', '3', { datasets: [dataset('d3')] }));
    await settle();
    expect(follower.snapshot?.generation).toBe('3');
    expect(ids(follower.snapshot)).toEqual(['d1', 'd3']);
    expect(watches).toHaveLength(1);
    follower.refetch();
    deltaCalls[1]!.fail(new FlockerApiError(400, 'INVALID_INPUT', 'no'));
    await settle();
    expect(follower.followMode).toBe('watch');
    follower.stop();
  });

  it('looks gaps of its view up in the whole cluster, as with long-poll deltas', async () => {
    const { watches, wholeCalls, follower } = setup();
    follower.start();
    await settle();
    watches[0]!.line(view('1', { nodes: [nodeState(ME)] }));
    await settle();
    follower.lookWhole({ instances: ['i-dead'], blockdevices: [], datasets: [] });
    expect(wholeCalls[0]).toMatchObject({ since: undefined, timeoutMs: 0 });
    const dead: NodeState = nodeState(DEAD, { alive: false, instance_id: 'i-dead' });
    wholeCalls[0]!.answer(view('1', { nodes: [nodeState(ME), dead] }));
    await settle();
    expect(follower.snapshot?.nodes.map((n) => n.uuid)).toEqual([ME, DEAD]);
    follower.stop();
  });

  it('stop ends the watch at once; nothing is adopted after', async () => {
    const { watches, adopted, follower } = setup();
    follower.start();
    await settle();
    watches[0]!.line(view('1'));
    await settle();
    follower.stop();
    await settle();
    expect(watches[0]!.closed).toBe(true);
    watches[0]!.line(delta('1', '2', { datasets: [dataset('d1')] }));
    await settle();
    expect(adopted.map((a) => a.generation)).toEqual(['1']);
    expect(watches).toHaveLength(1);
  });
});

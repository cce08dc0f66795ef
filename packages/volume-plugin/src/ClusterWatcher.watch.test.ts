/** ClusterWatcher following the whole cluster over a watch (issue 23): deltas merged, reconnects, fallback. */
import { type ClusterSnapshot, FlockerApiError } from '@flocker/api';
import * as winston from 'winston';
import { ClusterWatcher, olderGeneration } from './ClusterWatcher';
import { delta, fakeWatch, snap, until } from './testing/clusterWatch';

const logger = winston.createLogger({ silent: true, transports: [new winston.transports.Console()] });

describe('ClusterWatcher over the whole cluster watch', () => {
  it('takes the whole snapshot, merges each delta; waiters and listeners see every merged snapshot', async () => {
    const { streams, watch } = fakeWatch();
    const fetch = jest.fn(async () => snap('x.0.0'));
    const w = new ClusterWatcher(fetch, logger, 25_000, 10, watch);
    const seen: string[] = [];
    w.onSnapshot((s) => seen.push(s.generation));
    w.start();
    await until(() => streams.length === 1);
    expect(streams[0]?.since).toBeUndefined();
    expect(w.followed()).toBeUndefined();
    streams[0]?.push(snap('i.1.1', ['a']));
    expect((await w.first).generation).toBe('i.1.1');
    expect(w.followed()?.generation).toBe('i.1.1');
    const waited = w.waitFor((s) => (s.datasets.some((d) => d.dataset_id === 'b') ? s : undefined), 2000);
    streams[0]?.push(delta('i.1.1', 'i.2.1', ['b']));
    const s = await waited;
    expect(s.datasets.map((d) => d.dataset_id)).toEqual(['a', 'b']);
    expect(s.configuration_tag).toBe('ti.2.1');
    expect(w.current()).toBe(s);
    expect(seen).toEqual(['i.1.1', 'i.2.1']);
    // No long-poll at all while the watch answers.
    expect(fetch).not.toHaveBeenCalled();
    await w.close();
  });

  it('a cut watch is asked again from the generation it held; a delta that does not merge, from scratch', async () => {
    const { streams, watch } = fakeWatch();
    const w = new ClusterWatcher(async () => snap('x.0.0'), logger, 25_000, 10, watch);
    w.start();
    await until(() => streams.length === 1);
    streams[0]?.push(snap('i.1.1', ['a']));
    await w.first;
    streams[0]?.fail(new FlockerApiError(0, 'CONTROL_SERVICE_UNREACHABLE', 'cut'));
    await until(() => streams.length === 2);
    expect(w.followed()).toBeUndefined();
    expect(streams[1]?.since).toBe('i.1.1');
    streams[1]?.push(delta('i.1.1', 'i.2.1', ['b']));
    await until(() => w.followed()?.generation === 'i.2.1');
    // A delta for a view it does not hold: the whole cluster again.
    streams[1]?.push(delta('i.9.9', 'i.10.9', ['z']));
    await until(() => streams.length === 3);
    expect(streams[2]?.since).toBeUndefined();
    streams[2]?.push(snap('i.10.9', ['a', 'b', 'z']));
    await until(() => w.current()?.generation === 'i.10.9');
    expect(w.current()?.datasets.map((d) => d.dataset_id)).toEqual(['a', 'b', 'z']);
    await w.close();
  });

  it('a service without the watch (400: older) is long-polled, until a poll fails: then the watch is asked again', async () => {
    const { streams, watch } = fakeWatch();
    let polls = 0;
    let failNext = false;
    const fetch = async (since?: string, timeoutMs = 0): Promise<ClusterSnapshot> => {
      polls++;
      if (failNext) {
        failNext = false;
        throw new FlockerApiError(0, 'CONTROL_SERVICE_UNREACHABLE', 'restarting');
      }
      if (since !== undefined && timeoutMs > 0) await new Promise((r) => setTimeout(r, 20));
      return snap(`o.${polls}.0`);
    };
    const w = new ClusterWatcher(fetch, logger, 25, 10, watch);
    w.start();
    await until(() => streams.length === 1);
    streams[0]?.fail(new FlockerApiError(400, 'INVALID_REQUEST', 'node: Required'));
    await w.first;
    await until(() => polls >= 3);
    expect(w.followed()).toBeDefined();
    expect(streams).toHaveLength(1);
    failNext = true;
    await until(() => streams.length === 2, 5000);
    streams[1]?.push(snap('n.1.1'));
    await until(() => w.current()?.generation === 'n.1.1');
    const after = polls;
    await new Promise((r) => setTimeout(r, 60));
    expect(polls).toBe(after);
    await w.close();
  });

  it('a line older than a refresh (written before, arrived after) does not step the snapshot back', async () => {
    const { streams, watch } = fakeWatch();
    const w = new ClusterWatcher(async () => snap('i.3.1', ['a', 'b']), logger, 25_000, 10, watch);
    w.start();
    await until(() => streams.length === 1);
    streams[0]?.push(snap('i.1.1', ['a']));
    await w.first;
    await w.refresh();
    streams[0]?.push(delta('i.1.1', 'i.2.1'));
    await new Promise((r) => setTimeout(r, 20));
    expect(w.current()?.generation).toBe('i.3.1');
    streams[0]?.push(delta('i.2.1', 'i.4.1', ['b']));
    await until(() => w.current()?.generation === 'i.4.1');
    await w.close();
  });

  it('orders generations of one service process only', () => {
    expect(olderGeneration('i.1.1', 'i.2.1')).toBe(true);
    expect(olderGeneration('i.2.1', 'i.2.2')).toBe(true);
    expect(olderGeneration('i.2.1', 'i.2.1')).toBe(false);
    expect(olderGeneration('i.3.1', 'i.2.2')).toBe(false);
    expect(olderGeneration('i.1.1', 'j.2.2')).toBe(false);
    expect(olderGeneration('g1', 'g2')).toBe(false);
  });
});

/**
 * The scripted whole-cluster watch ClusterWatcher's watch tests share (issue 23): snapshots and deltas of datasets on
 * one node, a fake WatchCluster whose every call is one stream fed by push(), and a poll until a condition holds.
 */
import type { ClusterAnswer, ClusterDelta, ClusterSnapshot } from '@flocker/api';
import type { WatchCluster } from '../ClusterWatcher';

const NODE = '11111111-1111-4111-8111-111111111111';
const dataset = (id: string) => ({ dataset_id: id, primary: NODE, deleted: false, metadata: {} });

/** A whole snapshot at `generation` holding `datasets` (by id). */
export const snap = (generation: string, datasets: string[] = []): ClusterSnapshot => ({
  generation,
  configuration_tag: `t${generation}`,
  datasets: datasets.map(dataset),
  leases: [],
  nodes: [],
});

/** A delta from `since` to `generation` setting `added` (by id). */
export const delta = (since: string, generation: string, added: string[] = []): ClusterDelta => ({
  delta: true,
  since,
  generation,
  configuration_tag: `t${generation}`,
  datasets: added.map(dataset),
  removed_datasets: [],
  leases: [],
  removed_leases: [],
  nodes: [],
  removed_nodes: [],
});

/** A scripted watch: each call is one stream, fed by push(), ended by end() or fail(). */
export function fakeWatch() {
  const streams: Array<{
    since: string | undefined;
    push: (a: ClusterAnswer) => void;
    end: () => void;
    fail: (e: unknown) => void;
  }> = [];
  const watch: WatchCluster = (since, signal) => ({
    async *[Symbol.asyncIterator]() {
      const queue: Array<ClusterAnswer | { end: true } | { error: unknown }> = [];
      let wake: (() => void) | undefined;
      const put = (x: (typeof queue)[number]): void => {
        queue.push(x);
        wake?.();
      };
      streams.push({
        since,
        push: (a) => put(a),
        end: () => put({ end: true }),
        fail: (e) => put({ error: e }),
      });
      signal.addEventListener('abort', () => put({ end: true }));
      for (;;) {
        while (queue.length === 0) await new Promise<void>((r) => (wake = r));
        const x = queue.shift() as (typeof queue)[number];
        if ('end' in x) return;
        if ('error' in x) throw x.error;
        yield x;
      }
    },
  });
  return { streams, watch };
}

/** Polls every 2 ms until `what` holds; throws after `ms`. */
export const until = async (what: () => boolean, ms = 3000): Promise<void> => {
  const end = Date.now() + ms;
  while (!what()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 2));
  }
};

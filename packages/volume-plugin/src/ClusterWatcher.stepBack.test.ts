/**
 * ClusterWatcher over the whole cluster's watch (issue 23): a stream line written before a refresh's answer may arrive
 * after it carrying a later node report but an older configuration (`i.2.2` after `i.3.1`). Shown, it took back the
 * configuration change the refresh showed (the plugin refreshes after its own writes so that readers see them at
 * once: a created volume vanished from current() until the stream's next line). The stream's next line has both.
 */
import type { ClusterAnswer, ClusterDelta, ClusterSnapshot } from '@flocker/api';
import * as winston from 'winston';
import { ClusterWatcher, olderGeneration, type WatchCluster } from './ClusterWatcher';

const logger = winston.createLogger({ silent: true, transports: [new winston.transports.Console()] });
const NODE = '11111111-1111-4111-8111-111111111111';
const dataset = (id: string) => ({ dataset_id: id, primary: NODE, deleted: false, metadata: {} });
const snap = (generation: string, datasets: string[]): ClusterSnapshot => ({
  generation,
  configuration_tag: `t${generation}`,
  datasets: datasets.map(dataset),
  leases: [],
  nodes: [],
});
const delta = (since: string, generation: string, added: string[] = []): ClusterDelta => ({
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

/** One scripted stream: push() a line. */
function oneStream(): { watch: WatchCluster; push: (a: ClusterAnswer) => void; started: () => boolean } {
  const queue: ClusterAnswer[] = [];
  let wake: (() => void) | undefined;
  let started = false;
  const watch: WatchCluster = (_since, signal) => ({
    async *[Symbol.asyncIterator]() {
      started = true;
      signal.addEventListener('abort', () => wake?.());
      while (!signal.aborted) {
        while (queue.length === 0 && !signal.aborted) await new Promise<void>((r) => (wake = r));
        const x = queue.shift();
        if (x !== undefined) yield x;
      }
    },
  });
  return {
    watch,
    push: (a) => {
      queue.push(a);
      wake?.();
    },
    started: () => started,
  };
}

const until = async (what: () => boolean, ms = 3000): Promise<void> => {
  const end = Date.now() + ms;
  while (!what()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 2));
  }
};

describe('ClusterWatcher: a stream line behind a refresh in the configuration', () => {
  it('does not take back the configuration change the refresh showed (a later node report alone waits for the next line)', async () => {
    const s = oneStream();
    const w = new ClusterWatcher(async () => snap('i.3.1', ['a', 'made']), logger, 25_000, 10, s.watch);
    w.start();
    await until(s.started);
    s.push(snap('i.1.1', ['a']));
    await w.first;
    // Our own write (configuration 3), then the refresh that shows it.
    await w.refresh();
    // Written before: a node report (state 2) on configuration 1.
    s.push(delta('i.1.1', 'i.1.2'));
    await new Promise((r) => setTimeout(r, 20));
    expect(w.current()?.datasets.map((d) => d.dataset_id)).toEqual(['a', 'made']);
    expect(w.followed()?.generation).toBe('i.3.1');
    // The next line has both.
    s.push(delta('i.1.2', 'i.3.2', ['made']));
    await until(() => w.current()?.generation === 'i.3.2');
    expect(w.current()?.datasets.map((d) => d.dataset_id)).toEqual(['a', 'made']);
    await w.close();
  });

  it('orders a line behind in the configuration as older, whatever its state counter', () => {
    expect(olderGeneration('i.1.2', 'i.3.1')).toBe(true);
    expect(olderGeneration('i.3.2', 'i.3.1')).toBe(false);
    expect(olderGeneration('i.4.0', 'i.3.1')).toBe(false);
    expect(olderGeneration('j.1.2', 'i.3.1')).toBe(false);
  });
});

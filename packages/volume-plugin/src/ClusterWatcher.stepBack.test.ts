/**
 * ClusterWatcher over the whole cluster's watch (issue 23): a stream line written before a refresh's answer may arrive
 * after it carrying a later node report but an older configuration (`i.2.2` after `i.3.1`). Shown, it took back the
 * configuration change the refresh showed (the plugin refreshes after its own writes so that readers see them at
 * once: a created volume vanished from current() until the stream's next line). The stream's next line has both.
 */
import * as winston from 'winston';
import { ClusterWatcher, olderGeneration } from './ClusterWatcher';
import { delta, fakeWatch, snap, until } from './testing/clusterWatch';

const logger = winston.createLogger({ silent: true, transports: [new winston.transports.Console()] });

describe('ClusterWatcher: a stream line behind a refresh in the configuration', () => {
  it('does not take back the configuration change the refresh showed (a later node report alone waits for the next line)', async () => {
    const { streams, watch } = fakeWatch();
    const w = new ClusterWatcher(async () => snap('i.3.1', ['a', 'made']), logger, 25_000, 10, watch);
    w.start();
    await until(() => streams.length === 1);
    const s = streams[0]!;
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

import { FlockerApiError, type ClusterSnapshot, type DatasetConfiguration } from '@flocker/api';
import type { UiMessage } from '@flocker/web-ui';
import type { UiClient } from './actions';
import { ClusterFeed } from './ClusterFeed';

const A = '0a0a0a0a-0000-4000-8000-00000000000a';
const ds = (n: number, name: string): DatasetConfiguration => ({
  dataset_id: `d${n}d${n}d${n}d${n}-0000-4000-8000-0000000000d${n}`,
  primary: A,
  maximum_size: null,
  metadata: { name },
  deleted: false,
});
const snap = (generation: string, datasets: DatasetConfiguration[]): ClusterSnapshot => ({
  generation,
  configuration_tag: 't',
  datasets,
  leases: [],
  nodes: [
    {
      uuid: A,
      host: 'a',
      era: 'e',
      instance_id: 'i',
      backend: 'loopback',
      manifestations: [],
      volumes: [],
      errors: [],
      alive: true,
      last_seen: 'x',
    },
  ],
});
const unused: UiClient = {
  waitForCluster: async () => snap('1', []),
  createDataset: async () => Promise.reject(new Error('unused')),
  updateDataset: async () => Promise.reject(new Error('unused')),
  deleteDataset: async () => Promise.reject(new Error('unused')),
  releaseLease: async () => Promise.reject(new Error('unused')),
  createSnapshot: async () => Promise.reject(new Error('unused')),
  deleteSnapshot: async () => Promise.reject(new Error('unused')),
};

function clock() {
  let t = 0;
  return () => new Date(Date.UTC(2026, 0, 1, 0, 0, t++));
}

describe('ClusterFeed', () => {
  it('numbers and stamps events, remembers when volumes appeared, keeps a bounded backlog', () => {
    const feed = new ClusterFeed(unused, { controlUrl: 'u', now: clock(), backlog: 2 });
    const seen: UiMessage[] = [];
    feed.subscribe((m) => seen.push(m));
    feed.ingest(snap('1', [ds(1, 'old')]));
    feed.ingest(snap('2', [ds(1, 'old'), ds(2, 'new')]));
    feed.ingest(snap('3', [ds(1, 'old'), ds(2, 'new'), ds(3, 'newer')]));
    feed.ingest(snap('4', [ds(1, 'old')]));
    expect(seen.map((m) => m.events.map((e) => [e.id, e.kind]))).toEqual([
      [],
      [[1, 'created']],
      [[2, 'created']],
      [
        [3, 'deleted'],
        [4, 'deleted'],
      ],
    ]);
    expect(seen[1]!.events[0]!.time).toBe('2026-01-01T00:00:02.000Z');
    const now = feed.current();
    expect(now.events.map((e) => e.id)).toEqual([3, 4]);
    expect(now.started).toBe('2026-01-01T00:00:00.000Z');
    expect(seen[2]!.view?.volumes.map((v) => [v.name, v.first_seen])).toEqual([
      ['new', '2026-01-01T00:00:02.000Z'],
      ['newer', '2026-01-01T00:00:03.000Z'],
      ['old', null],
    ]);
  });

  it('tells browsers when the control service is out of reach, and when it is back', () => {
    const feed = new ClusterFeed(unused, { controlUrl: 'u', now: clock() });
    const seen: UiMessage[] = [];
    feed.subscribe((m) => seen.push(m));
    feed.fail(new FlockerApiError(0, 'CONTROL_SERVICE_UNREACHABLE', 'GET u failed: ECONNREFUSED'));
    feed.fail(new FlockerApiError(0, 'CONTROL_SERVICE_UNREACHABLE', 'GET u failed: ECONNREFUSED'));
    feed.ingest(snap('1', []));
    expect(seen.map((m) => m.control)).toEqual([
      { url: 'u', connected: false, error: 'GET u failed: ECONNREFUSED' },
      { url: 'u', connected: true, error: null },
    ]);
  });

  it('follows the long-poll with the last generation, retries failures, and stops', async () => {
    const asked: Array<[string | undefined, number | undefined]> = [];
    const answers: Array<ClusterSnapshot | Error> = [
      snap('1', []),
      new FlockerApiError(0, 'REQUEST_TIMEOUT', 'slow'),
      snap('1', []),
      snap('2', [ds(1, 'v')]),
    ];
    const client: UiClient = {
      ...unused,
      waitForCluster: async (since?: string, timeoutMs?: number) => {
        asked.push([since, timeoutMs]);
        const next = answers.shift();
        if (!next) {
          feed.stop();
          return snap('2', [ds(1, 'v')]);
        }
        if (next instanceof Error) throw next;
        return next;
      },
    };
    const feed = new ClusterFeed(client, { controlUrl: 'u', waitMs: 1000, retryMs: 1 });
    const seen: UiMessage[] = [];
    feed.subscribe((m) => seen.push(m));
    await feed.run();
    // After the failure a fresh read (no since): the control service answers at once, so browsers learn at once that it is back.
    expect(asked).toEqual([
      [undefined, 0],
      ['1', 1000],
      [undefined, 0],
      ['1', 1000],
      ['2', 1000],
    ]);
    expect(seen.map((m) => [m.control.connected, m.view?.generation, m.events.length])).toEqual([
      [true, '1', 0],
      [false, '1', 0],
      [true, '1', 0],
      [true, '2', 1],
    ]);
  });
});

/**
 * A fold of the etcd store's log (snapshot, chunks, log deletes) gives way to commits (issue 23): etcd
 * applies requests in order, so a fold request sent while creates stream in lands in front of one of
 * them. foldWaitMs is the decision; the rest runs against a real 3-member etcd.
 */
import { randomUUID } from 'node:crypto';
import { type Configuration, createDataset, registerNode } from '../configuration';
import { EtcdTestCluster } from '../testing/etcdCluster';
import { EtcdConfigurationStore, foldWaitMs } from './EtcdConfigurationStore';

jest.setTimeout(60_000);
const NODE = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';

describe('foldWaitMs', () => {
  it('sends at once after quietMs without a commit, never past the deadline', () => {
    // Quiet long enough: go.
    expect(foldWaitMs(1000, false, 980, 10, 5000)).toBe(0);
    expect(foldWaitMs(1000, false, 990, 10, 5000)).toBe(0);
    // The last commit ended 4 ms ago: 6 more.
    expect(foldWaitMs(1000, false, 996, 10, 5000)).toBe(6);
    // A commit in flight: a whole quiet period from now.
    expect(foldWaitMs(1000, true, 0, 10, 5000)).toBe(10);
    // Never past the deadline.
    expect(foldWaitMs(1000, true, 0, 10, 1004)).toBe(4);
    expect(foldWaitMs(1000, true, 0, 10, 1000)).toBe(0);
    // No commit yet, or no quiet asked for.
    expect(foldWaitMs(1000, false, -Infinity, 10, 5000)).toBe(0);
    expect(foldWaitMs(1000, true, 999, 0, 5000)).toBe(0);
  });
});

describe('a fold while commits stream in (real etcd)', () => {
  let etcd: EtcdTestCluster;
  beforeAll(async () => {
    etcd = await EtcdTestCluster.start();
  });
  afterAll(async () => {
    await etcd?.stop();
  });

  const open = (prefix: string, fold: { foldQuietMs: number; foldMaxDeferMs: number }): EtcdConfigurationStore =>
    new EtcdConfigurationStore({ endpoints: etcd.endpoints, prefix, snapshotEvery: 1e9, ...fold });

  async function commitOne(store: EtcdConfigurationStore, c: Configuration): Promise<Configuration> {
    const next = createDataset(c, { primary: NODE }).config;
    await store.commit(next, c);
    return next;
  }

  /** A store holding a node and `records` log records to fold. */
  async function withLog(store: EtcdConfigurationStore, records: number): Promise<Configuration> {
    let c = await store.load();
    const n = registerNode(c, { uuid: NODE, host: '10.0.0.1' });
    await store.commit(n, c);
    c = n;
    for (let i = 0; i < records; i++) c = await commitOne(store, c);
    return c;
  }

  /** Back-to-back commits for `ms`; whether the fold had finished by the end of them. */
  async function streamDuring(
    store: EtcdConfigurationStore,
    c: Configuration,
    fold: Promise<void>,
    ms: number,
  ): Promise<{ config: Configuration; foldDone: boolean }> {
    let foldDone = false;
    void fold.then(() => (foldDone = true));
    const until = performance.now() + ms;
    while (performance.now() < until) c = await commitOne(store, c);
    return { config: c, foldDone };
  }

  it('sends none of its requests while commits come back to back, then folds once they stop', async () => {
    const prefix = `/fold-${randomUUID()}`;
    const store = open(prefix, { foldQuietMs: 150, foldMaxDeferMs: 60_000 });
    try {
      let c = await withLog(store, 20);
      const fold = store.snapshot();
      const during = await streamDuring(store, c, fold, 1000);
      c = during.config;
      // Before: the fold's few requests went to etcd between two commits, done well within the stream.
      expect(during.foldDone).toBe(false);
      await fold;
      // What it folded loads back, with the commits made meanwhile from the log.
      const again = open(prefix, { foldQuietMs: 0, foldMaxDeferMs: 0 });
      try {
        const loaded = await again.load();
        expect(loaded.version).toBe(c.version);
        expect([...loaded.datasets.keys()].sort()).toEqual([...c.datasets.keys()].sort());
      } finally {
        await again.close();
      }
    } finally {
      await store.close();
    }
  });

  it('a fold waiting for quiet ends quietly when the store closes', async () => {
    const store = open(`/fold-${randomUUID()}`, { foldQuietMs: 60_000, foldMaxDeferMs: 60_000 });
    await withLog(store, 5);
    const fold = store.snapshot();
    await new Promise((r) => setTimeout(r, 100));
    const t0 = performance.now();
    await store.close();
    await expect(fold).resolves.toBeUndefined();
    expect(performance.now() - t0).toBeLessThan(5_000);
  });

  it('waits at most foldMaxDeferMs per request: a steady stream of commits still gets the log folded', async () => {
    const store = open(`/fold-${randomUUID()}`, { foldQuietMs: 60_000, foldMaxDeferMs: 20 });
    try {
      const c = await withLog(store, 20);
      const fold = store.snapshot();
      const during = await streamDuring(store, c, fold, 3000);
      expect(during.foldDone).toBe(true);
      await fold;
    } finally {
      await store.close();
    }
  });

  it("a commit's timeline (debug logs) says what it cost and which fold step ran beside it (issue 23)", async () => {
    const store = open(`/fold-${randomUUID()}`, { foldQuietMs: 60_000, foldMaxDeferMs: 60_000 });
    try {
      const c = await withLog(store, 5);
      const quiet = store.lastCommitTimeline();
      expect(quiet).toMatchObject({
        encode_ms: expect.any(Number),
        txn_ms: expect.any(Number),
        entry_bytes: expect.any(Number),
      });
      expect(quiet).not.toHaveProperty('fold_at_send');
      // snapshot() starts encoding at once (its first await is inside the encoder): the commit is sent beside it.
      const fold = store.snapshot();
      await commitOne(store, c);
      expect(store.lastCommitTimeline()).toMatchObject({ fold_at_send: 'encode' });
      await store.close();
      await fold;
    } finally {
      await store.close();
    }
  });
});

/**
 * The configuration_version rule (session 10, stale mounted) across control replicas on one etcd: the versions are
 * etcd's (one head for every replica), a report received by one replica reaches the others with its version, and
 * each replica notes the moves it commits or adopts. A report built before a move back, received by replica 1 after
 * the move back committed through replica 2, is not shown mounted by either.
 */
import { randomUUID } from 'node:crypto';
import { Etcd3 } from 'etcd3';
import type { FlockerClient } from '@flocker/api';
import { LogRecord } from './ConfigurationLog';
import type { EtcdConfigurationStore, EtcdStoreOptions } from './etcd/EtcdConfigurationStore';
import { etcdReplicas } from './testing/etcdReplicas';
import {
  A,
  B,
  letterReport as report,
  mountedManifestation as mounted,
  PREVIOUS_RELEASE_LOG_OPS,
} from './testing/fixtures';
import { configurationVersionOf as version, stateInList } from './testing/httpService';

jest.setTimeout(90_000);

const bed = etcdReplicas('all', 1);

/** What each replica gave its store to share (publishReport's JSON), per node: the same JSON again is no new write. */
const sharedBy = new Map<FlockerClient, Array<{ uuid: string; json: string }>>();

async function replica(prefix: string, options: Partial<EtcdStoreOptions> = {}): Promise<FlockerClient> {
  return replicaOn(bed.store(prefix, options));
}

async function replicaOn(store: EtcdConfigurationStore): Promise<FlockerClient> {
  const shared: Array<{ uuid: string; json: string }> = [];
  const publish = store.publishReport.bind(store);
  store.publishReport = (r, json, lastSeen, timeout) => {
    shared.push({ uuid: r.uuid, json });
    return publish(r, json, lastSeen, timeout);
  };
  const { client } = await bed.start(store);
  sharedBy.set(client, shared);
  return client;
}

const lastShared = (c: FlockerClient, uuid: string) =>
  [...(sharedBy.get(c) ?? [])].reverse().find((s) => s.uuid === uuid)?.json;

async function eventually(check: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Where the whole state list shows the dataset (its primary there), through replica `c`. */
const shownAt = async (c: FlockerClient, id: string) => (await stateInList(c, id))?.primary;

it('a report built before the move back (committed through the other replica) is shown mounted by neither', async () => {
  const prefix = `/flocker-test-${randomUUID()}/`;
  const one = await replica(prefix);
  const two = await replica(prefix);
  await one.reportNodeState(report(A, { configuration_version: await version(one) }));
  await one.reportNodeState(report(B, { configuration_version: await version(one) }));
  const id = (await one.createDataset({ primary: A, maximum_size: 1024 ** 3 })).dataset_id;
  const other = (await one.createDataset({ primary: A, maximum_size: 1024 ** 3 })).dataset_id;
  await eventually(async () => (await two.listDatasets()).length === 2);
  await two.updateDataset(id, { primary: B });
  const away = await version(two);
  await two.updateDataset(id, { primary: A });
  const back = await version(two);
  // One head for both replicas: the same versions.
  await eventually(async () => (await version(one)) === back);
  expect(back).toBeGreaterThan(away);
  // A's report built at the move away (unmounting), received by replica one after the move back; `other` marks it.
  await one.reportNodeState(
    report(A, { manifestations: [mounted(id, A), mounted(other, A)], configuration_version: away }),
  );
  for (const c of [one, two]) {
    await eventually(async () => (await shownAt(c, other)) === A);
    expect(await shownAt(c, id)).toBeUndefined();
  }
  // A's report at the move back's version: shown by both.
  await one.reportNodeState(
    report(A, { manifestations: [mounted(id, A), mounted(other, A)], configuration_version: back }),
  );
  for (const c of [one, two]) await eventually(async () => (await shownAt(c, id)) === A);
});

describe('a version-only report (session 10, helper J): not written to etcd unless it ends a hidden stale "mounted"', () => {
  it('shares the JSON etcd holds for a version-only report; one ending a stale mount reaches the other replica', async () => {
    const prefix = `/flocker-test-${randomUUID()}/`;
    const one = await replica(prefix);
    const two = await replica(prefix);
    await one.reportNodeState(report(A, { configuration_version: await version(one) }));
    await one.reportNodeState(report(B, { configuration_version: await version(one) }));
    const id = (await one.createDataset({ primary: A, maximum_size: 1024 ** 3 })).dataset_id;
    await one.reportNodeState(
      report(A, { manifestations: [mounted(id, A)], configuration_version: await version(one) }),
    );
    const written = lastShared(one, A);
    // A change elsewhere (a create on B): A's next heartbeat differs only in its version: the same JSON is shared.
    await one.createDataset({ primary: B, maximum_size: 1024 ** 3 });
    await one.reportNodeState(
      report(A, { manifestations: [mounted(id, A)], configuration_version: await version(one) }),
    );
    expect(lastShared(one, A)).toBe(written);
    // Moved away and back through replica two; A's report built before it acted on the move back reaches one.
    await eventually(async () => (await version(two)) === (await version(one)));
    await two.updateDataset(id, { primary: B });
    const away = await version(two);
    await two.updateDataset(id, { primary: A });
    const back = await version(two);
    await eventually(async () => (await version(one)) === back);
    await one.reportNodeState(report(A, { manifestations: [mounted(id, A)], configuration_version: away }));
    for (const c of [one, two]) await eventually(async () => (await shownAt(c, id)) !== A);
    // Acted on the move back, nothing else new: only the version, and it ends the hiding on both replicas.
    await one.reportNodeState(report(A, { manifestations: [mounted(id, A)], configuration_version: back }));
    expect(JSON.parse(lastShared(one, A) ?? '{}')).toMatchObject({ configuration_version: back });
    for (const c of [one, two]) await eventually(async () => (await shownAt(c, id)) === A);
  });

  it('a move committed through the other replica after its node reported that version is shared then', async () => {
    const prefix = `/flocker-test-${randomUUID()}/`;
    const one = await replica(prefix);
    const two = await replica(prefix);
    await one.reportNodeState(report(A, { configuration_version: await version(one) }));
    await one.reportNodeState(report(B, { configuration_version: await version(one) }));
    const id = (await one.createDataset({ primary: A, maximum_size: 1024 ** 3 })).dataset_id;
    await one.reportNodeState(
      report(A, { manifestations: [mounted(id, A)], configuration_version: await version(one) }),
    );
    await eventually(async () => (await shownAt(two, id)) === A);
    await two.updateDataset(id, { primary: B });
    const away = await version(two);
    await eventually(async () => (await version(one)) === away);
    // A's agent (following replica two) already has the move back's version when it reports to one, which has not
    // seen that commit yet: nothing pending there, so only the version is new and nothing is written.
    const written = lastShared(one, A);
    await one.reportNodeState(report(A, { manifestations: [mounted(id, A)], configuration_version: away + 1 }));
    expect(lastShared(one, A)).toBe(written);
    await two.updateDataset(id, { primary: A });
    expect(await version(two)).toBe(away + 1);
    // Two knows A's version from etcd only (older than the move back): it hides A's "mounted" until one, on adopting
    // the move back, shares A's report with the version it holds.
    for (const c of [one, two]) await eventually(async () => (await shownAt(c, id)) === A);
    expect(JSON.parse(lastShared(one, A) ?? '{}')).toMatchObject({ configuration_version: away + 1 });
  });
});

describe('the load floor (session 11): a replica that did not see the moves hides a report below the version it took whole', () => {
  /** A dataset on A (and `other` beside it, mounted), moved to B and straight back through `c`. */
  async function moveAwayAndBack(c: FlockerClient) {
    await c.reportNodeState(report(A, { configuration_version: await version(c) }));
    await c.reportNodeState(report(B, { configuration_version: await version(c) }));
    const id = (await c.createDataset({ primary: A, maximum_size: 1024 ** 3 })).dataset_id;
    const other = (await c.createDataset({ primary: A, maximum_size: 1024 ** 3 })).dataset_id;
    await c.updateDataset(id, { primary: B });
    const away = await version(c);
    await c.updateDataset(id, { primary: A });
    const back = await version(c);
    const inFlight = report(A, { manifestations: [mounted(id, A), mounted(other, A)], configuration_version: away });
    return { id, other, away, back, inFlight };
  }

  it('a failover to a replica (re)started after the move back: the old report is hidden there too', async () => {
    const prefix = `/flocker-test-${randomUUID()}/`;
    const one = await replica(prefix);
    const { id, other, back, inFlight } = await moveAwayAndBack(one);
    // What the replicas wrote to etcd is what release N reads (its strict schemas): no new op, no new field.
    const raw = new Etcd3({ hosts: bed.endpoints });
    try {
      const log = await raw.namespace(prefix).getAll().prefix('log/').strings();
      expect(Object.keys(log).length).toBeGreaterThan(0);
      for (const value of Object.values(log)) {
        const entry = JSON.parse(value) as { prev: number; record: unknown };
        expect(Object.keys(entry).sort()).toEqual(['prev', 'record']);
        const record = LogRecord.parse(entry.record);
        expect(Object.keys(record).sort()).toEqual(['ops', 'version']);
        for (const op of record.ops) expect(PREVIOUS_RELEASE_LOG_OPS).toContain(op.op);
      }
    } finally {
      raw.close();
    }
    // Replica one goes away; the agents fail over to replica two, started since (a rolling restart, a new host).
    await bed.closeAll();
    const two = await replica(prefix);
    expect(await version(two)).toBe(back);
    await two.reportNodeState(report(B, { configuration_version: back }));
    await two.reportNodeState(inFlight);
    // Before (moves noted in memory only): A, from a report built before A's agent acted on the move back. The floor
    // cannot tell which dataset moved: A's other "mounted" waits for A's report at the floor as well.
    expect(await shownAt(two, id)).toBeUndefined();
    expect(await shownAt(two, other)).toBeUndefined();
    await two.reportNodeState(
      report(A, { manifestations: [mounted(id, A), mounted(other, A)], configuration_version: back }),
    );
    expect(await shownAt(two, id)).toBe(A);
    expect(await shownAt(two, other)).toBe(A);
  });

  it('a replica that reads the whole configuration again (it missed records) sees only the final state: still hidden', async () => {
    const prefix = `/flocker-test-${randomUUID()}/`;
    const one = await replica(prefix);
    const twoStore = bed.store(prefix);
    // Replica two's watch loses the records while `dropping` (as after a watch restarted past a compaction).
    const dropping = { on: false };
    const store = twoStore as unknown as { onRecord(listener: unknown, kv: unknown): void };
    const onRecord = store.onRecord.bind(twoStore);
    store.onRecord = (listener, kv) => dropping.on || onRecord(listener, kv);
    const two = await replicaOn(twoStore);
    await one.reportNodeState(report(A, { configuration_version: await version(one) }));
    await one.reportNodeState(report(B, { configuration_version: await version(one) }));
    const id = (await one.createDataset({ primary: A, maximum_size: 1024 ** 3 })).dataset_id;
    const other = (await one.createDataset({ primary: A, maximum_size: 1024 ** 3 })).dataset_id;
    await eventually(async () => (await version(two)) === (await version(one)));
    dropping.on = true;
    await one.updateDataset(id, { primary: B });
    const away = await version(one);
    // The record of the move away never reaches replica two ...
    await new Promise((r) => setTimeout(r, 200));
    dropping.on = false;
    await one.updateDataset(id, { primary: A });
    const back = await version(one);
    // ... so the move back's does not follow what it holds: it reads everything again, the primary A as before.
    await eventually(async () => (await version(two)) === back);
    await two.reportNodeState(report(B, { configuration_version: back }));
    await two.reportNodeState(
      report(A, { manifestations: [mounted(id, A), mounted(other, A)], configuration_version: away }),
    );
    // Before: shown on A (no move noted: the primary read is the one it had).
    expect(await shownAt(two, id)).toBeUndefined();
    expect(await shownAt(two, other)).toBeUndefined();
    await two.reportNodeState(
      report(A, { manifestations: [mounted(id, A), mounted(other, A)], configuration_version: back }),
    );
    expect(await shownAt(two, id)).toBe(A);
    expect(await shownAt(two, other)).toBe(A);
  });

  it('a replica whose commit lost the race to a move away and back catches up from the records: noted, hidden', async () => {
    const prefix = `/flocker-test-${randomUUID()}/`;
    const one = await replica(prefix);
    const twoStore = bed.store(prefix);
    // Replica two's next compare-and-swap waits at `gate` (its commit in flight: records arriving meanwhile are held).
    let gate: Promise<void> | undefined;
    const store = twoStore as unknown as { compareAndSwap(...args: unknown[]): Promise<void> };
    const compareAndSwap = store.compareAndSwap.bind(twoStore);
    store.compareAndSwap = async (...args) => {
      await gate;
      return compareAndSwap(...args);
    };
    const two = await replicaOn(twoStore);
    await one.reportNodeState(report(A, { configuration_version: await version(one) }));
    await one.reportNodeState(report(B, { configuration_version: await version(one) }));
    const id = (await one.createDataset({ primary: A, maximum_size: 1024 ** 3 })).dataset_id;
    const other = (await one.createDataset({ primary: A, maximum_size: 1024 ** 3 })).dataset_id;
    await eventually(async () => (await version(two)) === (await version(one)));
    let open = (): void => undefined;
    gate = new Promise((resolve) => (open = resolve));
    const write = two.createDataset({ primary: B, maximum_size: 1024 ** 3 });
    await new Promise((r) => setTimeout(r, 100));
    await one.updateDataset(id, { primary: B });
    const away = await version(one);
    await one.updateDataset(id, { primary: A });
    await new Promise((r) => setTimeout(r, 200));
    gate = undefined;
    open();
    // Two loses the race, reads the records since its base (the move away and back) and commits its write after them.
    await write;
    const now = await version(two);
    await two.reportNodeState(report(B, { configuration_version: now }));
    await two.reportNodeState(
      report(A, { manifestations: [mounted(id, A), mounted(other, A)], configuration_version: away }),
    );
    // Before: shown on A (the catch-up's final state only: the primary A as before).
    expect(await shownAt(two, id)).toBeUndefined();
    expect(await shownAt(two, other)).toBe(A);
    await two.reportNodeState(
      report(A, { manifestations: [mounted(id, A), mounted(other, A)], configuration_version: now }),
    );
    expect(await shownAt(two, id)).toBe(A);
  });

  it('a replica started beside a live one, the agents reporting to that one: shown from their next report there', async () => {
    const prefix = `/flocker-test-${randomUUID()}/`;
    const one = await replica(prefix);
    await one.reportNodeState(report(A, { configuration_version: await version(one) }));
    const id = (await one.createDataset({ primary: A, maximum_size: 1024 ** 3 })).dataset_id;
    await one.reportNodeState(
      report(A, { manifestations: [mounted(id, A)], configuration_version: await version(one) }),
    );
    // Other changes: A's agent reports each new version to one, which shares none of them (nothing to show).
    await one.createDataset({ primary: A, maximum_size: 1024 ** 3 });
    const now = await version(one);
    await one.reportNodeState(report(A, { manifestations: [mounted(id, A)], configuration_version: now }));
    const startedAt = performance.now();
    const two = await replica(prefix);
    // Two read A's report from the store (below the version it loaded): held ...
    expect(await shownAt(two, id)).toBeUndefined();
    expect(await shownAt(one, id)).toBe(A);
    // ... until A's next report to one (a heartbeat: the same report again) shares it with its version.
    const heartbeat = setInterval(
      () => void one.reportNodeState(report(A, { manifestations: [mounted(id, A)], configuration_version: now })),
      100,
    );
    try {
      await eventually(async () => (await shownAt(two, id)) === A);
    } finally {
      clearInterval(heartbeat);
    }
    console.info(`replica two shows A's mounted ${(performance.now() - startedAt).toFixed(0)} ms after it started`);
  });
});

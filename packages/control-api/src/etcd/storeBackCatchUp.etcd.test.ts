/**
 * Review FR19-10 (session 19): a replica whose store answers again judged liveness at once, while its etcd watch
 * could still be waiting on its reconnect backoff (up to 30 s, the node timeout's order): the reports other replicas
 * stored meanwhile came later than its judgement. Now the store reads them and delivers them before it tells the
 * listener that it answers again. Against a real 3-member etcd cluster on loopback; the cut-off is this replica's
 * probe failing, its watch cancelled (one that has not reconnected yet).
 */
import { randomUUID } from 'node:crypto';
import type { Namespace, Watcher } from 'etcd3';
import type { StoreListener } from '../ConfigurationStore';
import { EtcdTestCluster } from '../testing/etcdCluster';
import { A, letterReport } from '../testing/fixtures';
import { EtcdConfigurationStore } from './EtcdConfigurationStore';

jest.setTimeout(60_000);

let etcd: EtcdTestCluster;
beforeAll(async () => {
  etcd = await EtcdTestCluster.start();
});
afterAll(async () => {
  await etcd?.stop();
});

async function until(done: () => boolean): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!done()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 50));
  }
}

it('the reports stored meanwhile are delivered before the store is said to answer again', async () => {
  const prefix = `/back-${randomUUID()}`;
  // 2 s: at 600 ms (200 ms an attempt) a loaded host's healthy etcd could fail x's real probes before the cut.
  const x = new EtcdConfigurationStore({ endpoints: etcd.endpoints, prefix, timeoutMs: 2000, probeMs: 200 });
  const y = new EtcdConfigurationStore({ endpoints: etcd.endpoints, prefix, timeoutMs: 2000 });
  const seen: string[] = [];
  const listener: StoreListener = {
    configuration: () => undefined,
    report: (report) => seen.push(`report ${report.uuid}`),
    reachable: (up) => seen.push(`reachable ${String(up)}`),
  };
  try {
    await x.load();
    await x.subscribe(listener);
    const inner = x as unknown as { ns: Namespace; watchers: Watcher[] };
    await Promise.all(inner.watchers.map((w) => w.cancel()));
    let cut = true;
    const get = inner.ns.get.bind(inner.ns);
    jest.spyOn(inner.ns, 'get').mockImplementation((key) => {
      if (cut) throw new Error('14 UNAVAILABLE: cut off');
      return get(key);
    });
    await until(() => seen.includes('reachable false'));
    // Node A reports to the other replica meanwhile.
    await y.load();
    const report = letterReport(A);
    await y.publishReport(report, JSON.stringify(report), Date.now());
    cut = false;
    await until(() => seen.includes('reachable true'));
    expect(seen).toEqual(['reachable false', `report ${A}`, 'reachable true']);
  } finally {
    jest.restoreAllMocks();
    await x.close();
    await y.close();
  }
});

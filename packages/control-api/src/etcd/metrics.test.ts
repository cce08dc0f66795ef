/**
 * Readiness on etcd: /readyz checks that etcd has a quorum (a linearizable read) and flocker_etcd_up follows it,
 * against a real 3-member etcd cluster with two members killed and restarted.
 */
import { randomUUID } from 'node:crypto';
import { startOnLoopback } from '../testing/httpService';
import { EtcdTestCluster } from '../testing/etcdCluster';
import { EtcdConfigurationStore } from './EtcdConfigurationStore';

jest.setTimeout(60_000);

let etcd: EtcdTestCluster;
beforeAll(async () => {
  etcd = await EtcdTestCluster.start();
});
afterAll(async () => {
  await etcd?.stop();
});

/** /readyz's status and the names of the failed checks. */
async function ready(url: string): Promise<{ status: number; failed: string[]; checks: string[] }> {
  const res = await fetch(`${url}/readyz`);
  const body = (await res.json()) as { failed: string[]; checks: { name: string }[] };
  return { status: res.status, failed: body.failed, checks: body.checks.map((c) => c.name) };
}

async function etcdUp(url: string): Promise<number | undefined> {
  const line = (await (await fetch(`${url}/metrics`)).text()).split('\n').find((l) => l.startsWith('flocker_etcd_up '));
  return line === undefined ? undefined : Number(line.split(' ')[1]);
}

it('/readyz fails naming etcd without a quorum, flocker_etcd_up follows, and both recover with it', async () => {
  const store = new EtcdConfigurationStore({
    endpoints: etcd.endpoints,
    prefix: `/t-${randomUUID()}`,
    // A healthy etcd on a loaded host must answer the first /readyz within it (1 s failed under load).
    timeoutMs: 2000,
  });
  const svc = await startOnLoopback({ store, metrics: { host: '127.0.0.1', port: 0 } });
  const url = svc.metricsUrl ?? '';
  try {
    expect(await ready(url)).toEqual({ status: 200, failed: [], checks: ['store', 'etcd'] });
    expect(await etcdUp(url)).toBe(1);
    await etcd.kill(1);
    await etcd.kill(2);
    const down = await ready(url);
    expect(down.status).toBe(503);
    expect(down.failed).toContain('etcd');
    expect(await etcdUp(url)).toBe(0);
    await etcd.restart(1);
    await etcd.restart(2);
    await etcd.waitHealthy(etcd.endpoints);
    let again = await ready(url);
    for (let i = 0; i < 20 && again.status !== 200; i++) {
      await new Promise((r) => setTimeout(r, 250));
      again = await ready(url);
    }
    expect(again).toEqual({ status: 200, failed: [], checks: ['store', 'etcd'] });
    expect(await etcdUp(url)).toBe(1);
  } finally {
    await svc.close();
  }
});

/**
 * A replica that cannot reach etcd (quorum lost, or the replica cut off) served its agents' long-polls from a frozen
 * view for as long as it lasted, so an agent kept waiting on it instead of moving to a healthy replica (review T4
 * finding 2, control half). Now its long-polls end with 503 STORE_UNAVAILABLE once its store probe fails, new ones are
 * refused at once, and both work again with quorum. Against a real 3-member etcd cluster on loopback.
 */
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { EtcdTestCluster } from '../testing/etcdCluster';
import { startOnLoopback } from '../testing/httpService';
import { EtcdConfigurationStore } from './EtcdConfigurationStore';

jest.setTimeout(60_000);

let etcd: EtcdTestCluster;
beforeAll(async () => {
  etcd = await EtcdTestCluster.start();
});
afterAll(async () => {
  await etcd?.stop();
});

const Snapshot = z.object({ generation: z.string() }).loose();
const Failure = z.object({ code: z.string() }).loose();

async function poll(url: string, since: string, timeoutMs: number): Promise<{ status: number; code?: string }> {
  const res = await fetch(`${url}/v1/agent/cluster?since=${encodeURIComponent(since)}&timeout_ms=${timeoutMs}`);
  const body: unknown = await res.json();
  return res.status === 200 ? { status: 200 } : { status: res.status, code: Failure.parse(body).code };
}

it('long-polls end with 503 STORE_UNAVAILABLE while the store is unreachable, new ones are refused, and resume', async () => {
  const store = new EtcdConfigurationStore({
    endpoints: etcd.endpoints,
    prefix: `/t-${randomUUID()}`,
    // A healthy etcd that fsyncs on a loaded host may not answer within 600 ms (200 ms an attempt): 2 s, still well
    // inside the 10 s detection bound (2 failed probes of up to 2 s, 300 ms apart).
    timeoutMs: 2000,
    probeMs: 300,
  });
  const svc = await startOnLoopback({ store });
  try {
    const first = Snapshot.parse(await (await fetch(`${svc.url}/v1/agent/cluster`)).json());
    const waiting = poll(svc.url, first.generation, 30_000);
    const leader = etcd.leader();
    const followers = [0, 1, 2].filter((i) => i !== leader);
    const cut = Date.now();
    await Promise.all(followers.map((i) => etcd.kill(i)));
    expect(await waiting).toEqual({ status: 503, code: 'STORE_UNAVAILABLE' });
    // Within the probe's bound (2 failures of up to 3 attempts of ~670 ms each, 300 ms apart), far below a 30 s poll.
    expect(Date.now() - cut).toBeLessThan(10_000);
    expect(await poll(svc.url, first.generation, 30_000)).toEqual({ status: 503, code: 'STORE_UNAVAILABLE' });
    for (const i of followers) await etcd.restart(i);
    const deadline = Date.now() + 20_000;
    let again = await poll(svc.url, first.generation, 200);
    while (again.status !== 200 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 200));
      again = await poll(svc.url, first.generation, 200);
    }
    expect(again).toEqual({ status: 200 });
  } finally {
    await svc.close();
  }
});

it('a streaming watch under way ends when the store stops answering, and a new one is refused 503 until it answers', async () => {
  const store = new EtcdConfigurationStore({
    endpoints: etcd.endpoints,
    prefix: `/t-${randomUUID()}`,
    // A healthy etcd that fsyncs on a loaded host may not answer within 600 ms (200 ms an attempt): 2 s, still well
    // inside the 10 s detection bound (2 failed probes of up to 2 s, 300 ms apart).
    timeoutMs: 2000,
    probeMs: 300,
  });
  const svc = await startOnLoopback({ store });
  const node = randomUUID();
  try {
    const res = await fetch(`${svc.url}/v1/agent/cluster/watch?node=${node}`);
    expect(res.status).toBe(200);
    const reader = res.body?.getReader();
    const ended = (async () => {
      for (;;) if ((await reader?.read())?.done !== false) return Date.now();
    })();
    const leader = etcd.leader();
    const followers = [0, 1, 2].filter((i) => i !== leader);
    const cut = Date.now();
    await Promise.all(followers.map((i) => etcd.kill(i)));
    expect((await ended) - cut).toBeLessThan(10_000);
    const again = await fetch(`${svc.url}/v1/agent/cluster/watch?node=${node}`);
    expect({ status: again.status, code: Failure.parse(await again.json()).code }).toEqual({
      status: 503,
      code: 'STORE_UNAVAILABLE',
    });
    for (const i of followers) await etcd.restart(i);
    const deadline = Date.now() + 20_000;
    let status = 0;
    while (status !== 200 && Date.now() < deadline) {
      const r = await fetch(`${svc.url}/v1/agent/cluster/watch?node=${node}`);
      status = r.status;
      await r.body?.cancel();
      if (status !== 200) await new Promise((r2) => setTimeout(r2, 200));
    }
    expect(status).toBe(200);
  } finally {
    await svc.close();
  }
});

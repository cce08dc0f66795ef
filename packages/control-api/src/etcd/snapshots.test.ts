/**
 * Snapshots through two control replicas sharing a real 3-member etcd (issue 20): what one
 * replica writes the other serves, writes through both are group-committed and rebased, and
 * a replica started later (or after the log was folded into etcd's snapshot) loads them.
 */
import { randomUUID } from 'node:crypto';
import winston from 'winston';
import { FlockerClient, type NodeReport } from '@flocker/api';
import { type ControlService, startControlService } from '../server';
import { EtcdTestCluster } from '../testing/etcdCluster';
import { EtcdConfigurationStore } from './EtcdConfigurationStore';

jest.setTimeout(90_000);
const silent = winston.createLogger({ silent: true });
const A = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
const D1 = '11111111-1111-4111-8111-111111111111';

const report = (snapshots: string[]): NodeReport => ({
  uuid: A,
  era: 'era-a',
  host: '10.0.0.1',
  instance_id: 'i-a',
  backend: 'loopback',
  manifestations: [],
  errors: [],
  snapshots: snapshots.map((id) => ({
    snapshot_id: id,
    dataset_id: D1,
    size: 64 * 1024 * 1024,
    created_at: new Date().toISOString(),
    status: 'ready',
    backend_id: id,
    source_blockdevice_id: 'v',
  })),
});

async function eventually(check: () => Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

let etcd: EtcdTestCluster;
beforeAll(async () => {
  etcd = await EtcdTestCluster.start();
});
afterAll(async () => {
  await etcd?.stop();
});

describe('snapshots in the etcd store, across replicas', () => {
  const services: ControlService[] = [];
  const prefix = `/flocker-snapshots-${randomUUID()}`;
  afterAll(async () => {
    for (const s of services) await s.close();
  });

  async function replica(snapshotEvery?: number): Promise<FlockerClient> {
    const store = new EtcdConfigurationStore({
      endpoints: etcd.endpoints,
      prefix,
      ...(snapshotEvery !== undefined ? { snapshotEvery } : {}),
    });
    const svc = await startControlService({ port: 0, host: '127.0.0.1', store, logger: silent });
    services.push(svc);
    return new FlockerClient({ baseUrl: svc.url, timeoutMs: 5000 });
  }

  it('a snapshot written through one replica is served by the other; deletes, clones and the purge replicate', async () => {
    const r1 = await replica(4);
    const r2 = await replica(4);
    await r1.reportNodeState(report([]));
    await r1.createDataset({ primary: A, dataset_id: D1 });
    const s1 = await r1.createSnapshot({ dataset_id: D1, metadata: { name: 'one' } });
    await eventually(async () => (await r2.listSnapshots()).some((s) => s.snapshot_id === s1.snapshot_id));
    // Writes through both at once: group-committed, a lost compare-and-swap rebased.
    const made = await Promise.all(
      Array.from({ length: 6 }, (_, i) => (i % 2 === 0 ? r1 : r2).createSnapshot({ dataset_id: D1 })),
    );
    // The same name through both replicas at once: one wins, the other is refused on the winner's configuration.
    const race = await Promise.allSettled(
      [r1, r2].map((r) => r.createSnapshot({ dataset_id: D1, metadata: { name: 'x' } })),
    );
    expect(race.map((r) => r.status).sort()).toEqual(['fulfilled', 'rejected']);
    expect(race.find((r) => r.status === 'rejected')).toMatchObject({
      reason: { status: 409, code: 'SNAPSHOT_NAME_IN_USE' },
    });
    const won = race.flatMap((r) => (r.status === 'fulfilled' ? [r.value.snapshot_id] : []));
    const ids = [s1.snapshot_id, ...made.map((s) => s.snapshot_id), ...won];
    for (const r of [r1, r2]) await eventually(async () => (await r.listSnapshots()).length === ids.length);
    await r2.deleteSnapshot(s1.snapshot_id);
    await eventually(async () => (await r1.getSnapshot(s1.snapshot_id)).deleted === true);
    const s2 = ids[1] as string;
    const clone = await r2.createDataset({ primary: A, source_snapshot_id: s2 });
    await eventually(async () =>
      (await r1.listDatasets()).some((d) => d.dataset_id === clone.dataset_id && d.source_snapshot_id === s2),
    );
    // The node reports every snapshot but s1 (destroyed): the replica it reports to purges s1, the other follows.
    await r1.reportNodeState(report(ids.slice(1)));
    await eventually(async () => (await r2.listSnapshots()).every((s) => s.snapshot_id !== s1.snapshot_id));
    // A replica started now loads them (the log was folded into etcd's snapshot key meanwhile: snapshotEvery 4).
    const r3 = await replica();
    expect((await r3.listSnapshots()).map((s) => s.snapshot_id).sort()).toEqual(ids.slice(1).sort());
  });
});

/**
 * Scheduled snapshots with two control replicas on a real 3-member etcd (issue 20): both
 * run the schedules (their timers fire at the same slot starts, and here they are also
 * driven at once by hand); the compare-and-set commit and the rebase that re-applies the
 * plan on the winner's configuration leave exactly one snapshot per slot, and retention
 * deletes each pruned snapshot once.
 */
import { randomUUID } from 'node:crypto';
import winston from 'winston';
import {
  FlockerClient,
  METADATA_SCHEDULED_KEY,
  METADATA_SNAPSHOT_KEEP_KEY,
  METADATA_SNAPSHOT_SCHEDULE_KEY,
} from '@flocker/api';
import { type ControlService, startControlService } from '../server';
import { EtcdTestCluster } from '../testing/etcdCluster';
import { nodeReport } from '../testing/httpService';
import { EtcdConfigurationStore } from './EtcdConfigurationStore';

jest.setTimeout(90_000);
const silent = winston.createLogger({ silent: true });
const A = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
const D1 = '11111111-1111-4111-8111-111111111111';

let etcd: EtcdTestCluster;
beforeAll(async () => {
  etcd = await EtcdTestCluster.start();
});
afterAll(async () => {
  await etcd?.stop();
});

describe('scheduled snapshots across two replicas', () => {
  const services: ControlService[] = [];
  afterAll(async () => {
    for (const s of services) await s.close();
  });

  it('one snapshot per slot and each pruned one deleted once, however both replicas race', async () => {
    const prefix = `/flocker-schedule-${randomUUID()}`;
    const replica = async (): Promise<ControlService> => {
      const store = new EtcdConfigurationStore({ endpoints: etcd.endpoints, prefix });
      const svc = await startControlService({
        port: 0,
        host: '127.0.0.1',
        store,
        logger: silent,
        testOnlyMinSnapshotIntervalSeconds: 1,
      });
      services.push(svc);
      return svc;
    };
    const [s1, s2] = [await replica(), await replica()] as [ControlService, ControlService];
    const c1 = new FlockerClient({ baseUrl: s1.url, timeoutMs: 5000 });
    await c1.reportNodeState(nodeReport(A));
    await c1.createDataset({
      primary: A,
      dataset_id: D1,
      metadata: { name: 'db', [METADATA_SNAPSHOT_SCHEDULE_KEY]: 'every 1s', [METADATA_SNAPSHOT_KEEP_KEY]: '3' },
    });
    // Besides their timers, both replicas apply the schedules at the same moments, many times a second.
    const started = Date.now();
    const until = started + 6000;
    while (Date.now() < until) {
      await Promise.all([s1.state.runSnapshotSchedules(), s2.state.runSnapshotSchedules()]);
      await new Promise((resolve) => setTimeout(resolve, 37));
    }
    // The replicas' own timers go on firing every second: compare the two views at a moment when the
    // last commit has reached both (they agree for most of each second), not after a fixed pause.
    const ids = (svc: ControlService): string =>
      [...(svc.state.configuration.snapshots?.values() ?? [])]
        .map((s) => `${s.snapshot_id}:${s.deleted === true}`)
        .sort()
        .join(',');
    let agreed = false;
    for (let i = 0; i < 100 && !agreed; i++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      agreed = ids(s1) === ids(s2);
    }
    expect(agreed).toBe(true);
    const elapsedSlots = Math.ceil((Date.now() - started) / 1000);
    const all = [...(s1.state.configuration.snapshots?.values() ?? [])];
    const scheduled = all.filter((s) => s.metadata[METADATA_SCHEDULED_KEY] !== undefined);
    // Every slot (second) at most once: never two snapshots asked for in the same slot.
    const slots = scheduled.map((s) => Math.floor(Date.parse(s.created_at) / 1000));
    expect(new Set(slots).size).toBe(slots.length);
    expect(scheduled.length).toBeGreaterThanOrEqual(5);
    expect(scheduled.length).toBeLessThanOrEqual(elapsedSlots + 1);
    // Retention: the newest 3 live, every older one deleted (nothing purged: no node reports snapshots).
    const live = scheduled.filter((s) => s.deleted !== true);
    expect(live.map((s) => s.created_at)).toEqual(
      scheduled
        .map((s) => s.created_at)
        .sort()
        .slice(-3),
    );
  });
});

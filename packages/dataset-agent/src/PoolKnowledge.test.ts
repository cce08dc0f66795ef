import type { ClusterSnapshot } from '@flocker/api';
import type { PoolListing, VolumeProblem } from '@flocker/storage-drivers';
import { FakeDriver } from './testing/fakes';
import { PoolKnowledge } from './PoolKnowledge';
import { ManualClock } from '@flocker/runtime/testing';

const A = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
const B = 'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb';

/** listPool reports the records in `bad` as unreadable (as the loopback driver does); counts listings. */
class BadRecords extends FakeDriver {
  readonly bad = new Set<string>();
  listings = 0;
  async listPool(): Promise<PoolListing> {
    this.listings++;
    const volumes = (await this.listVolumes()).filter((v) => !this.bad.has(v.blockdeviceId));
    const problems: VolumeProblem[] = [...this.bad].map((id) => ({
      code: 'CORRUPT_RECORD',
      blockdeviceId: id,
      message: `record ${id} is not JSON`,
    }));
    return { volumes, problems };
  }
}

function setup(snapshot: ClusterSnapshot | null = null) {
  const driver = new BadRecords();
  const clock = new ManualClock();
  return { driver, clock, pool: new PoolKnowledge(driver, clock, () => snapshot) };
}

describe('PoolKnowledge', () => {
  it("a record that goes bad stays its dataset's: an error on the dataset, still reported as there, its stray mounts kept", async () => {
    const { driver, clock, pool } = setup();
    driver.volumes.set('v1', { blockdeviceId: 'v1', datasetId: A, size: 1, attachedTo: 'i-me' });
    await pool.listPool();
    const since = clock.now();
    driver.bad.add('v1');
    expect(await pool.listPool()).toEqual([]);
    await clock.advance(1000);
    await pool.listPool();
    expect(pool.reportErrors()).toEqual([
      {
        dataset_id: A,
        action: 'observe',
        code: 'CORRUPT_RECORD',
        message: 'record v1 is not JSON',
        attempts: 1,
        since: new Date(since).toISOString(),
      },
    ]);
    expect(pool.stillThere(new Set()).map((v) => v.blockdeviceId)).toEqual(['v1']);
    expect(pool.stillThere(new Set(['v1']))).toEqual([]);
    const local = pool.withUnreadable({
      instanceId: 'i-me',
      volumes: [],
      strayMounts: [
        { datasetId: A, mountPath: `/flocker/${A}`, device: '/dev/loop1' },
        { datasetId: B, mountPath: `/flocker/${B}`, device: '/dev/loop2' },
      ],
    });
    expect(local.unreadable).toEqual([{ blockdeviceId: 'v1', datasetId: A }]);
    expect(local.strayMounts?.map((s) => s.datasetId)).toEqual([B]);
    // Repaired: nothing unreadable any more.
    driver.bad.clear();
    await pool.listPool();
    expect(pool.reportErrors()).toEqual([]);
    expect(pool.withUnreadable({ instanceId: 'i-me', volumes: [] })).toEqual({ instanceId: 'i-me', volumes: [] });
  });

  it("a record never read is attributed by another node's report; nothing telling, the error is on the node", async () => {
    const snapshot: ClusterSnapshot = {
      generation: '1',
      configuration_tag: 't',
      datasets: [{ dataset_id: A, primary: 'n', metadata: {}, deleted: false }],
      leases: [],
      nodes: [
        {
          uuid: 'n',
          era: 'e',
          host: 'h',
          instance_id: 'i-n',
          backend: 'fake',
          manifestations: [],
          volumes: [{ blockdevice_id: 'v1', dataset_id: A, size: 1, attached_to: null }],
          errors: [],
          alive: true,
          last_seen: '',
        },
      ],
    };
    const withReport = setup(snapshot);
    withReport.driver.bad.add('v1');
    await withReport.pool.listPool();
    expect(withReport.pool.reportErrors()[0]).toMatchObject({ dataset_id: A });
    expect(withReport.pool.rememberedDatasets()).toEqual(new Map([['v1', A]]));

    const alone = setup();
    alone.driver.bad.add('v2');
    await alone.pool.listPool();
    expect(alone.pool.reportErrors()[0]).not.toHaveProperty('dataset_id');
    expect(alone.pool.stillThere(new Set())).toEqual([]);
  });

  it("an unreadable record's error names its dataset as the API's Uuid takes it (lower-cased), else the node", async () => {
    // The report goes to the API whole: a dataset_id it would refuse must not be in it; one it takes, in its form.
    const ids = [A.toUpperCase(), '11111111-1111-1111-1111-111111111111', '-'.repeat(36), `${A}0`];
    const { driver, pool } = setup();
    ids.forEach((datasetId, i) =>
      driver.volumes.set(`v${i}`, { blockdeviceId: `v${i}`, datasetId, size: 1, attachedTo: null }),
    );
    await pool.listPool();
    ids.forEach((_id, i) => driver.bad.add(`v${i}`));
    await pool.listPool();
    expect(pool.reportErrors().map((e) => e.dataset_id ?? null)).toEqual([
      A,
      '11111111-1111-1111-1111-111111111111',
      null,
      null,
    ]);
  });

  it('concurrent observations share listings (FreshRead): one in flight plus one queued', async () => {
    const { driver, pool } = setup();
    await Promise.all([pool.listPool(), pool.listPool(), pool.listPool(), pool.listPool()]);
    expect(driver.listings).toBe(2);
  });
});

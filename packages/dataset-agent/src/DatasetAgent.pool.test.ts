/** The agent and a pool with an unreadable record, a volume reported elsewhere, the backend's size limit (issue 17). */
import { TEST_NODE, testAgentOptions } from './testing/agentOptions';
import type { PoolListing, VolumeProblem } from '@flocker/storage-drivers';
import { StorageError } from '@flocker/storage-drivers';
import { DatasetAgent } from './DatasetAgent';
import { FakeControl, FakeDriver, FakeHost } from './testing/fakes';
import { ManualClock } from '@flocker/runtime/testing';

const ME = TEST_NODE;
const C = '33333333-3333-4333-8333-333333333333';
const DS = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
const DS2 = 'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb';
const MiB = 1024 * 1024;

/** A pool whose records can go bad: listVolumes leaves them out, listPool reports them (as the loopback driver does). */
class PoolWithProblems extends FakeDriver {
  readonly bad = new Set<string>();
  maxSize: number | undefined;
  override async listVolumes() {
    return (await super.listVolumes()).filter((v) => !this.bad.has(v.blockdeviceId));
  }
  async listPool(): Promise<PoolListing> {
    const problems: VolumeProblem[] = [...this.bad].map((id) => ({
      code: 'CORRUPT_RECORD',
      blockdeviceId: id,
      message: `record ${id}.json is not valid JSON`,
    }));
    return { volumes: await this.listVolumes(), problems };
  }
  override async createVolume(datasetId: string, size: number) {
    if (this.maxSize !== undefined && size > this.maxSize)
      throw new StorageError('INVALID_SIZE', `volume size ${size} bytes is larger than the pool can hold`);
    return super.createVolume(datasetId, size);
  }
}

/** Node C's report: alive, holding one volume of DS (detached). */
function nodeCReporting(blockdeviceId: string) {
  return {
    uuid: C,
    era: 'e',
    host: 'c',
    instance_id: 'i-c',
    backend: 'fake',
    manifestations: [],
    volumes: [{ blockdevice_id: blockdeviceId, dataset_id: DS, size: 64 * MiB, attached_to: null }],
    errors: [],
    alive: true,
    last_seen: new Date(0).toISOString(),
  };
}

function setup(maxVolumeSize?: number) {
  const driver = new PoolWithProblems();
  const host = new FakeHost();
  const clock = new ManualClock();
  const control = new FakeControl(clock);
  const agent = new DatasetAgent(
    testAgentOptions({
      driver,
      hostOps: host,
      control,
      clock,
      ...(maxVolumeSize !== undefined ? { maxVolumeSize } : {}),
    }),
  );
  const eventually = (check: () => boolean, ms = 5000): Promise<number> => clock.advanceUntil(check, ms, 5);
  return { driver, host, control, agent, clock, eventually };
}

const dataset = (id: string, over: Partial<{ maximum_size: number; deleted: boolean }> = {}) => ({
  dataset_id: id,
  primary: ME,
  maximum_size: 64 * MiB,
  metadata: {},
  deleted: false,
  ...over,
});

describe('DatasetAgent and the pool (issue 17)', () => {
  it('one unreadable record: an error on its dataset, no second volume, its mount kept; every other dataset goes on', async () => {
    const { driver, host, control, agent, clock, eventually } = setup();
    agent.start();
    control.setDatasets([dataset(DS)]);
    await eventually(
      () => control.last()?.manifestations.some((m) => m.dataset_id === DS && m.status === 'mounted') === true,
    );
    const [volume] = await driver.listVolumes();
    // echo '{"truncated' > pool/volumes/<id>.json
    driver.bad.add(volume!.blockdeviceId);
    control.setDatasets([dataset(DS), dataset(DS2)]);
    await eventually(
      () => control.last()?.manifestations.some((m) => m.dataset_id === DS2 && m.status === 'mounted') === true,
    );
    await eventually(() => (control.last()?.errors ?? []).some((e) => e.code === 'CORRUPT_RECORD'));
    await clock.advance(1000); // turns, resyncs, backoffs: still nothing for DS
    expect([...driver.volumes.values()].filter((v) => v.datasetId === DS)).toHaveLength(1);
    expect(host.mounts.map((m) => m.mountPoint)).toContain(`/flocker/${DS}`); // not taken for a stale mount
    expect(control.last()!.errors).toEqual([
      expect.objectContaining({
        dataset_id: DS,
        action: 'observe',
        code: 'CORRUPT_RECORD',
        message: expect.stringContaining(volume!.blockdeviceId),
      }),
    ]);
    // Still reported as there (as last seen), so that other nodes know whose it is.
    expect(control.last()!.volumes).toContainEqual(
      expect.objectContaining({ blockdevice_id: volume!.blockdeviceId, dataset_id: DS }),
    );
    // Repaired: the error goes, nothing was lost.
    driver.bad.clear();
    await eventually(() => control.last()?.errors.length === 0 && control.last()?.manifestations.length === 2);
    expect(driver.volumes.size).toBe(2);
    await agent.stop();
  });

  it("a record nothing can attribute holds every create (it may be any dataset's), reported on the node", async () => {
    const { driver, control, agent, clock, eventually } = setup();
    driver.volumes.set('vol-bad', { blockdeviceId: 'vol-bad', datasetId: DS, size: 64 * MiB, attachedTo: null });
    driver.bad.add('vol-bad');
    agent.start();
    control.setDatasets([dataset(DS)]);
    await eventually(() => (control.last()?.errors ?? []).some((e) => e.code === 'CORRUPT_RECORD'));
    await clock.advance(1000);
    expect(driver.volumes.size).toBe(1);
    expect(control.last()!.errors.find((e) => e.action === 'observe')).not.toHaveProperty('dataset_id');
    await agent.stop();
  });

  it("a record this node never read is attributed by another node's report: only its dataset is held", async () => {
    const { driver, control, agent, clock, eventually } = setup();
    driver.volumes.set('vol-bad', { blockdeviceId: 'vol-bad', datasetId: DS, size: 64 * MiB, attachedTo: null });
    driver.bad.add('vol-bad');
    control.setNodes([nodeCReporting('vol-bad')]);
    agent.start();
    control.setDatasets([dataset(DS), dataset(DS2)]);
    await eventually(
      () => control.last()?.manifestations.some((m) => m.dataset_id === DS2 && m.status === 'mounted') === true,
    );
    await clock.advance(500);
    expect([...driver.volumes.values()].filter((v) => v.datasetId === DS)).toHaveLength(1);
    expect(control.last()!.errors).toEqual([expect.objectContaining({ dataset_id: DS, code: 'CORRUPT_RECORD' })]);
    await agent.stop();
  });

  it('creates no volume for a dataset another node reports a volume of that this pool lacks (split pools)', async () => {
    const { driver, control, agent, clock, eventually } = setup();
    control.setNodes([nodeCReporting('vol-in-another-pool')]);
    agent.start();
    control.setDatasets([dataset(DS)]);
    await eventually(() => (control.last()?.errors ?? []).some((e) => e.code === 'VOLUME_ELSEWHERE'));
    await clock.advance(500);
    expect(driver.volumes.size).toBe(0);
    expect(control.last()!.errors[0]).toMatchObject({
      dataset_id: DS,
      action: 'create',
      message: expect.stringContaining('vol-in-another-pool'),
    });
    await agent.stop();
  });

  it('reports the largest volume the backend can create, and a size beyond it as INVALID_SIZE on the dataset, in backoff', async () => {
    const { driver, control, agent, clock, eventually } = setup(1024 * MiB);
    driver.maxSize = 1024 * MiB;
    let creates = 0;
    const create = driver.createVolume.bind(driver);
    driver.createVolume = (d, s) => (creates++, create(d, s));
    agent.start();
    control.setDatasets([dataset(DS, { maximum_size: Number.MAX_SAFE_INTEGER })]);
    await eventually(() => (control.last()?.errors ?? []).some((e) => e.code === 'INVALID_SIZE'));
    expect(control.last()).toMatchObject({
      max_volume_size: 1024 * MiB,
      errors: [expect.objectContaining({ dataset_id: DS, action: 'create', code: 'INVALID_SIZE' })],
    });
    const before = creates;
    await clock.advance(1000);
    // Backoff (20 ms doubling to 50 ms here; 0.5 s to 30 s by default): about one try per 50 ms, not a spin.
    expect(creates - before).toBeLessThanOrEqual(21);
    expect(driver.volumes.size).toBe(0);
    await agent.stop();
  });
});

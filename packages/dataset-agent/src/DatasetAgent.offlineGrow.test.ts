/**
 * Review U6 finding 2 at the agent level: an ext4 file system smaller than its grown volume, mounted here (online
 * growth refused: no CAP_SYS_RESOURCE), grows offline once no lease is on its dataset: found at the agent's first look
 * (a restart since the refusal, or a volume grown under an older agent), and again when its last lease goes.
 */
import { Writable } from 'node:stream';
import type { ClusterSnapshot } from '@flocker/api';
import { ManualClock } from '@flocker/runtime/testing';
import { StorageError } from '@flocker/storage-drivers';
import winston from 'winston';
import { DatasetAgent } from './DatasetAgent';
import { TEST_NODE, testAgentOptions } from './testing/agentOptions';
import { FakeControl, FakeDriver, FakeHost } from './testing/fakes';

const DS = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
const MiB = 1024 * 1024;
const PATH = `/flocker/${DS}`;

class LeasedControl extends FakeControl {
  leased = false;
  override async waitForCluster(since?: string, timeoutMs?: number): Promise<ClusterSnapshot> {
    const s = await super.waitForCluster(since, timeoutMs);
    return { ...s, leases: this.leased ? [{ dataset_id: DS, node_uuid: TEST_NODE, expires: null }] : [] };
  }
  release(): void {
    this.leased = false;
    this.setDatasets([dataset]); // a new generation, as a lease's release makes
  }
}

class GrowHost extends FakeHost {
  fsSize = 64 * MiB;
  /** As linuxHostOps reads it from an ext4 superblock (HostOps.fullSize.test.ts). */
  fullWithin: number | undefined;
  readonly steps: string[] = [];
  override async filesystemSize(): Promise<number | null> {
    return this.fsSize;
  }
  override async filesystemOf(): Promise<{ fstype: 'ext4'; size: number; fullWithin?: number }> {
    return { fstype: 'ext4', size: this.fsSize, ...(this.fullWithin !== undefined && { fullWithin: this.fullWithin }) };
  }
  override async resizeFilesystem(): Promise<void> {
    throw new StorageError('BACKEND_ERROR', '`resize2fs` failed: Permission denied to resize filesystem');
  }
  override async unmount(mountPoint: string): Promise<void> {
    this.steps.push('unmount');
    await super.unmount(mountPoint);
  }
  override async growUnmountedFilesystem(): Promise<void> {
    this.steps.push(`grow mounted=${this.mounts.length}`);
    this.fsSize = 128 * MiB;
  }
  async deviceBusy(): Promise<boolean> {
    return false;
  }
}

const dataset = { dataset_id: DS, primary: TEST_NODE, maximum_size: 128 * MiB, metadata: {}, deleted: false };

async function setup(leased: boolean, volumeSize = 128 * MiB, configure?: (host: GrowHost) => void) {
  const clock = new ManualClock();
  const resized: number[] = [];
  const driver = Object.assign(new FakeDriver(), {
    resizeVolume: async (id: string, size: number) => {
      resized.push(size);
      return { blockdeviceId: id, datasetId: DS, size, attachedTo: 'i-me' };
    },
  });
  // Grown to 128 MiB before this agent started, its file system still 64 MiB, mounted here.
  const v = await driver.createVolume(DS, volumeSize);
  await driver.attachVolume(v.blockdeviceId, 'i-me');
  const host = new GrowHost();
  configure?.(host);
  host.formatted.add(`/dev/fake/${v.blockdeviceId}`);
  host.mounts.push({ device: `/dev/fake/${v.blockdeviceId}`, mountPoint: PATH, majorMinor: '0:0' });
  const control = new LeasedControl(clock);
  control.leased = leased;
  control.setDatasets([{ ...dataset, maximum_size: volumeSize }]);
  const logs: string[] = [];
  const logger = winston.createLogger({
    transports: [
      new winston.transports.Stream({
        stream: new Writable({
          write(chunk: Buffer, _enc, done) {
            logs.push(chunk.toString());
            done();
          },
        }),
      }),
    ],
  });
  const agent = new DatasetAgent(testAgentOptions({ driver, hostOps: host, control, clock, logger }));
  const eventually = (check: () => boolean) => clock.advanceUntil(check, 5000, 5);
  return { agent, host, control, clock, eventually, resized, logs };
}

describe('DatasetAgent: the offline grow of a file system left smaller than its volume', () => {
  it('found at the first look, no lease on it: unmounted, grown, mounted again', async () => {
    const { agent, host, eventually } = await setup(false);
    agent.start();
    await eventually(() => host.fsSize === 128 * MiB && host.mounts.length === 1);
    expect(host.steps).toEqual(['unmount', 'grow mounted=0']);
    expect(host.mounts.map((m) => m.mountPoint)).toEqual([PATH]);
    await agent.stop();
  });

  it('leased: never unmounted; grown once the lease goes', async () => {
    const { agent, host, control, clock, eventually } = await setup(true);
    agent.start();
    await clock.advance(1000);
    expect(host.steps).toEqual([]);
    expect(host.mounts).toHaveLength(1);
    control.release();
    await eventually(() => host.fsSize === 128 * MiB && host.mounts.length === 1);
    expect(host.steps).toEqual(['unmount', 'grow mounted=0']);
    await agent.stop();
  });

  it('leased: the report says the grow is pending (TN F3) until it is grown, then no more', async () => {
    const { agent, host, control, clock, eventually } = await setup(true);
    const pending = () => agent.buildReport().manifestations.find((m) => m.dataset_id === DS)?.grow_pending;
    agent.start();
    await eventually(() => pending() !== undefined);
    expect(pending()).toEqual({ reason: 'online_resize_refused' });
    expect(control.reports.at(-1)?.manifestations[0]?.grow_pending).toEqual({ reason: 'online_resize_refused' });
    await clock.advance(1000);
    expect(host.steps).toEqual([]);
    control.release();
    await eventually(() => host.fsSize === 128 * MiB && host.mounts.length === 1);
    expect(pending()).toBeUndefined();
    await eventually(() => control.reports.at(-1)?.manifestations[0]?.grow_pending === undefined);
    await agent.stop();
  });

  it('short of its volume by less than mke2fs and resize2fs leave off (FR finding 7): full size, not pending', async () => {
    // mkfs.ext4 on 1025 MiB: 1024 MiB, the last 256 blocks too few for a group's metadata.
    const { agent, host, clock, resized, logs } = await setup(false, 1025 * MiB, (h) => {
      h.fsSize = 1024 * MiB;
      h.fullWithin = 576 * 4096;
    });
    agent.start();
    await clock.advance(3000);
    expect(host.steps).toEqual([]);
    expect(resized).toEqual([]);
    expect(logs.filter((l) => l.includes('smaller than its volume'))).toEqual([]);
    expect(host.mounts).toHaveLength(1);
    await agent.stop();
  });

  it('short of its volume by a growable amount (grown by 64 MiB, under a group): grows', async () => {
    const { agent, host, eventually } = await setup(false, 1089 * MiB, (h) => {
      h.fsSize = 1024 * MiB;
      h.fullWithin = 576 * 4096;
    });
    agent.start();
    await eventually(() => host.steps.length === 2 && host.mounts.length === 1);
    expect(host.steps).toEqual(['unmount', 'grow mounted=0']);
    await agent.stop();
  });
});

/**
 * A restore hung on S3 (review T5 F3b) in the whole agent, on the fakes: the S3 endpoint is a local socket that
 * takes requests and never answers. Deleting the dataset aborts the restore (the delete goes ahead: the volume is
 * destroyed), and stop() ends at once with a restore hung: neither waits for S3's request timeouts.
 */
import { createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { ManualClock } from '@flocker/runtime/testing';
import { DatasetAgent } from './DatasetAgent';
import { TEST_NODE, testAgentOptions } from './testing/agentOptions';
import { FakeControl, FakeDriver, FakeHost } from './testing/fakes';

const ME = TEST_NODE;
const DS = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
const SNAP = '5a5a5a5a-0000-4000-8000-000000000001';
const MiB = 1024 * 1024;
const restored = {
  dataset_id: DS,
  primary: ME,
  maximum_size: 64 * MiB,
  metadata: {},
  deleted: false,
  source_backup: { target: 's3://hung/flocker', backup_id: `${DS}/20261204T065155123Z-${SNAP}` },
};

/** Accepts connections and never answers: S3 hung. */
async function hungS3(): Promise<{ server: Server; sockets: Socket[]; endpoint: string }> {
  const sockets: Socket[] = [];
  const server = createServer((s) => {
    sockets.push(s);
    s.on('error', () => {});
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, sockets, endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

describe('DatasetAgent: a restore hung on S3 (T5 F3b)', () => {
  let s3: Awaited<ReturnType<typeof hungS3>>;
  beforeEach(async () => {
    s3 = await hungS3();
  });
  afterEach(async () => {
    for (const s of s3.sockets) s.destroy();
    await new Promise((r) => s3.server.close(r));
  });

  function setup() {
    const driver = new FakeDriver();
    const host = new FakeHost();
    const clock = new ManualClock();
    const control = new FakeControl(clock);
    const agent = new DatasetAgent(
      testAgentOptions({
        driver,
        hostOps: host,
        control,
        clock,
        backups: {
          endpoint: s3.endpoint,
          region: 'us-east-1',
          credentials: { accessKeyId: 'k', secretAccessKey: 's' },
          forcePathStyle: true,
        },
      }),
    );
    /** Manual time for the agent, real time for the sockets. */
    const eventually = async (check: () => boolean, what: string): Promise<void> => {
      for (let i = 0; i < 500 && !check(); i++) {
        await clock.advance(5);
        await new Promise((r) => setTimeout(r, 5));
      }
      if (!check()) throw new Error(`timed out: ${what}`);
    };
    return { driver, host, control, agent, eventually };
  }

  it('deleting the dataset aborts its hung restore: the volume is destroyed, never mounted', async () => {
    const { driver, host, control, agent, eventually } = setup();
    agent.start();
    control.setDatasets([restored]);
    await eventually(() => s3.sockets.length > 0, 'the restore to ask S3');
    expect([...driver.volumes.values()].map((v) => v.datasetId)).toEqual([DS]);
    control.setDatasets([{ ...restored, deleted: true }]);
    await eventually(() => driver.volumes.size === 0, 'the volume destroyed');
    expect(host.mounts).toEqual([]);
    await agent.stop();
  });

  it('stop() with a restore hung ends at once', async () => {
    const { control, agent, eventually } = setup();
    agent.start();
    control.setDatasets([restored]);
    await eventually(() => s3.sockets.length > 0, 'the restore to ask S3');
    const t0 = Date.now();
    await agent.stop();
    // At once (hung, it would never return); 4 s leaves a loaded host room.
    expect(Date.now() - t0).toBeLessThan(4000);
  });
});

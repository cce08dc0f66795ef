/** ClusterFollower.lookWhole (issue 23): what the node's view cannot explain, looked up in the whole cluster. */
import type { ClusterAnswer, ClusterSnapshot } from '@flocker/api';
import { ManualClock, settle } from '@flocker/runtime/testing';
import winston from 'winston';
import { ClusterFollower, type SnapshotChange } from './ClusterFollower';
import { nodeState as node } from './testing/fakes';

const ME = '11111111-1111-4111-8111-111111111111';
const DEAD = '33333333-3333-4333-8333-333333333333';
const view: ClusterSnapshot = { generation: 'g1', configuration_tag: 't', datasets: [], leases: [], nodes: [node(ME)] };
const whole: ClusterSnapshot = { ...view, nodes: [node(ME), node(DEAD, { alive: false, instance_id: 'i-dead' })] };
const gaps = { instances: ['i-dead'], blockdevices: [], datasets: [] };

function setup(deltas = true) {
  const clock = new ManualClock();
  const wholeReads: number[] = [];
  const adopted: SnapshotChange[] = [];
  const follower = new ClusterFollower({
    waitForCluster: async () => (wholeReads.push(clock.now()), whole),
    ...(deltas ? { waitForClusterDelta: async (): Promise<ClusterAnswer> => view } : {}),
    nodeUuid: ME,
    clock,
    logger: winston.createLogger({ silent: true }),
    pollWaitMs: 25_000,
    backoffInitialMs: 100,
    backoffMaxMs: 400,
    adopted: (_s, _a, change) => adopted.push(change),
  });
  return { clock, wholeReads, adopted, follower };
}

describe('ClusterFollower.lookWhole', () => {
  it('looks once, merges what explains the gap for wholeLookFreshMs, and does not look again for the same gap', async () => {
    const { clock, wholeReads, adopted, follower } = setup();
    follower.refetch();
    await settle();
    expect(follower.snapshot?.nodes).toHaveLength(1);
    follower.lookWhole(gaps);
    follower.lookWhole(gaps);
    await settle();
    expect(wholeReads).toHaveLength(1);
    expect(adopted.at(-1)).toBe('config');
    expect(follower.snapshot?.nodes.map((n) => n.instance_id)).toEqual(['i-1', 'i-dead']);
    await clock.advance(10_001);
    expect(follower.snapshot?.nodes).toHaveLength(1);
    // The same gap: not looked up again before wholeLookAgainMs (5 min), then once more.
    follower.lookWhole(gaps);
    await settle();
    expect(wholeReads).toHaveLength(1);
    await clock.advance(300_000);
    follower.lookWhole(gaps);
    await settle();
    expect(wholeReads).toHaveLength(2);
    follower.stop();
  });

  it('a new gap waits wholeLookIntervalMs after the last look; a dataset gap counts once it stayed 30 s', async () => {
    const { clock, wholeReads, follower } = setup();
    follower.refetch();
    await settle();
    follower.lookWhole(gaps);
    await settle();
    follower.lookWhole({ instances: ['i-other'], blockdevices: [], datasets: [] });
    await settle();
    expect(wholeReads).toHaveLength(1);
    await clock.advance(10_000);
    follower.lookWhole({ instances: [], blockdevices: [], datasets: ['d1'] });
    await settle();
    expect(wholeReads).toHaveLength(1);
    await clock.advance(29_000);
    follower.lookWhole({ instances: [], blockdevices: [], datasets: ['d1'] });
    await settle();
    expect(wholeReads).toHaveLength(1);
    await clock.advance(1_000);
    follower.lookWhole({ instances: [], blockdevices: [], datasets: ['d1'] });
    await settle();
    expect(wholeReads).toHaveLength(2);
    // A gap that went away starts over.
    await clock.advance(60_000);
    follower.lookWhole({ instances: [], blockdevices: [], datasets: [] });
    follower.lookWhole({ instances: [], blockdevices: [], datasets: ['d2'] });
    await settle();
    expect(wholeReads).toHaveLength(2);
    follower.stop();
  });

  it('following whole snapshots (no deltas) never looks: the snapshot has everything', async () => {
    const { wholeReads, follower } = setup(false);
    follower.refetch();
    await settle();
    const reads = wholeReads.length;
    follower.lookWhole(gaps);
    await settle();
    expect(wholeReads).toHaveLength(reads);
    follower.stop();
  });
});

/**
 * Session 16 (review U2 finding "HIDDEN DATA"): a copy of a volume a node kept aside (writes the
 * live copy lacks, after a failover) was only in the agent's log. `flocker volumes show` and
 * `flocker describe volume` now name it, where it is and what to do with it.
 */
import type { ClusterSnapshot, FlockerClient } from '@flocker/api';
import { A, B, D1, dataset, node, snapshot } from '@flocker/web-ui/testing';
import { describeText, describeVolume, keptAsideOf } from './describe';
import { runCli } from './testing/runCli';

const MiB = 1024 * 1024;
const BTRFS_PATH = `/pool/flocker/diverged/${D1}-5c1f9a3e-0d2b-4b61-9f0e-2a7c4d8e1b36`;
const ZFS_PATH = `tank/flocker-diverged/${D1}-1234567890`;

/** r1 failed over to b (its replica promoted); a came back with writes b lacks and kept its copy aside. */
const failedOver = (engine: 'btrfs' | 'zfs' = 'btrfs', aAlive = true): ClusterSnapshot =>
  snapshot({
    datasets: [dataset(D1, 'r1', B)],
    nodes: [
      node(A, 'a', {
        backend: `local-${engine}`,
        alive: aAlive,
        kept_aside: [{ dataset_id: D1, path: engine === 'zfs' ? ZFS_PATH : BTRFS_PATH }],
      }),
      node(B, 'b', {
        backend: `local-${engine}`,
        manifestations: [
          { dataset_id: D1, blockdevice_id: `btrfs:/pool/${D1}`, size: 64 * MiB, status: 'mounted', path: '/b' },
        ],
      }),
    ],
  });

const fakeClient = (s: ClusterSnapshot) =>
  ({
    listDatasets: async () => s.datasets,
    waitForCluster: async () => s,
    listLeases: async () => [],
    listSnapshots: async () => [],
    listEvents: async () => [],
    listDatasetState: async () => [],
  }) as unknown as FlockerClient;

describe('copies kept aside (local storage)', () => {
  it('describe volume names the node, the path and what to do (btrfs)', () => {
    const s = failedOver();
    const text = describeText(describeVolume(s, s.datasets[0]!, [], [], []));
    expect(text).toContain(
      `Kept aside on a: ${BTRFS_PATH} (writes the live copy lacks; copy them back by hand from that read-only directory or delete it with btrfs subvolume delete ${BTRFS_PATH}; deleting the volume deletes it too)`,
    );
  });

  it('ZFS: the file system, how to see it and to delete it; a dead node says so', () => {
    const s = failedOver('zfs', false);
    const text = describeText(describeVolume(s, s.datasets[0]!, [], [], []));
    expect(text).toMatch(/^Kept aside on a \(dead\): tank\/flocker-diverged\//m);
    expect(text).toContain(`zfs set mountpoint=/mnt/kept ${ZFS_PATH}`);
    expect(text).toContain(`zfs destroy -r ${ZFS_PATH}`);
  });

  it("nothing kept aside: no line; another dataset's copy is not this one's", () => {
    const s = failedOver();
    s.nodes[0]!.kept_aside = [{ dataset_id: '0b0e6d4c-6c52-4a43-9d8a-4e3f1c1d2a10', path: '/x' }];
    expect(keptAsideOf(s, D1)).toEqual([]);
    expect(describeText(describeVolume(s, s.datasets[0]!, [], [], []))).not.toMatch(/Kept aside/);
  });

  it('volumes show: the line, and kept_aside in --json', async () => {
    const r = await runCli(() => fakeClient(failedOver()), ['volumes', 'show', 'r1']);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(new RegExp(`^Kept aside on a: ${BTRFS_PATH} \\(writes the live copy lacks;`, 'm'));
    const json = await runCli(() => fakeClient(failedOver()), ['volumes', 'show', 'r1', '--json']);
    expect((JSON.parse(json.out) as { kept_aside: unknown }).kept_aside).toEqual([
      { node_uuid: A, host: 'a', alive: true, path: BTRFS_PATH, engine: 'btrfs' },
    ]);
  });

  it('describe volume --json carries them too', async () => {
    const r = await runCli(() => fakeClient(failedOver()), ['describe', 'volume', 'r1', '--json']);
    expect(r.code).toBe(0);
    expect((JSON.parse(r.out) as { kept_aside: Array<{ path: string }> }).kept_aside.map((k) => k.path)).toEqual([
      BTRFS_PATH,
    ]);
  });
});

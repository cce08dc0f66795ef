/**
 * Session 16 (review U2 "HIDDEN DATA"): a copy of a volume a node kept aside (acknowledged writes the live copy
 * lacks, after a failover) is shown on the volume: its row's badge and the same sentence `flocker volumes show` prints.
 */
import type { ClusterSnapshot } from '@flocker/api/schemas';
import { keptAsideOf, keptAsideText } from './local';
import { clusterView } from './view';
import { A, B, D1, D2, dataset, mounted, node, snapshot } from '../testing/fixtures';

const BTRFS_PATH = `/pool/flocker/diverged/${D1}-5c1f9a3e-0d2b-4b61-9f0e-2a7c4d8e1b36`;
const ZFS_PATH = `tank/flocker-diverged/${D1}-1234567890`;

/** D1 failed over to b; a came back with writes b lacks and kept its copy aside. */
const failedOver = (engine: 'btrfs' | 'zfs' = 'btrfs', aAlive = true): ClusterSnapshot =>
  snapshot({
    datasets: [dataset(D1, 'r1', B), dataset(D2, 'other', B)],
    nodes: [
      node(A, 'a', {
        backend: `local-${engine}`,
        alive: aAlive,
        kept_aside: [{ dataset_id: D1, path: engine === 'zfs' ? ZFS_PATH : BTRFS_PATH }],
      }),
      node(B, 'b', { backend: `local-${engine}`, manifestations: [mounted(D1), mounted(D2)] }),
    ],
  });

describe('copies kept aside on the page', () => {
  it("the volume's view carries each copy: node, path, engine; another volume has none", () => {
    const v = clusterView(failedOver()).volumes;
    expect(v.find((x) => x.dataset_id === D1)?.kept_aside).toEqual([
      { node_uuid: A, host: 'a', alive: true, path: BTRFS_PATH, engine: 'btrfs' },
    ]);
    expect(v.find((x) => x.dataset_id === D2)?.kept_aside).toEqual([]);
  });

  it("the words are the CLI's: where, what it holds and what to do (btrfs)", () => {
    expect(keptAsideText(keptAsideOf(failedOver(), D1)[0]!)).toBe(
      `Kept aside on a: ${BTRFS_PATH} (writes the live copy lacks; copy them back by hand from that read-only directory or delete it with btrfs subvolume delete ${BTRFS_PATH}; deleting the volume deletes it too)`,
    );
  });

  it('ZFS: how to see it and delete it; a dead node says so', () => {
    const t = keptAsideText(keptAsideOf(failedOver('zfs', false), D1)[0]!);
    expect(t).toMatch(/^Kept aside on a \(dead\): tank\/flocker-diverged\//);
    expect(t).toContain(`zfs set mountpoint=/mnt/kept ${ZFS_PATH}`);
    expect(t).toContain(`zfs destroy -r ${ZFS_PATH}`);
  });
});

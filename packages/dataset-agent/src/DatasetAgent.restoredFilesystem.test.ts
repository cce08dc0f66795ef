/**
 * Review T5 F8: a dataset restored from a backup of an xfs volume was shown as ext4 (its metadata never said xfs). The
 * agent reports the file system of a mounted restore (ManifestationState.filesystem) until the control service marks
 * the restore done, which records it in the metadata (backups.ts restoredDatasets); never for other datasets, and no
 * longer once marked (agents one release behind parse node states strictly). Here an agent restarted with the restored
 * volume mounted (killed before its report): the mount table says the type.
 */
import { ManualClock } from '@flocker/runtime/testing';
import type { ClusterSnapshot, NodeReport } from '@flocker/api';
import { DatasetAgent, pendingRestores } from './DatasetAgent';
import { TEST_NODE, testAgentOptions } from './testing/agentOptions';
import { FakeControl, FakeDriver, FakeHost } from './testing/fakes';

const ME = TEST_NODE;
const RESTORED = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
const PLAIN = 'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb';
const SNAP = '5a5a5a5a-0000-4000-8000-000000000001';
const MiB = 1024 * 1024;
const source_backup = { target: 's3://b/flocker', backup_id: `${RESTORED}/20261204T065155123Z-${SNAP}` };
const restoredDataset = (restored: boolean): ClusterSnapshot['datasets'][number] => ({
  dataset_id: RESTORED,
  primary: ME,
  maximum_size: 512 * MiB,
  metadata: { name: 'r' },
  deleted: false,
  source_backup: restored ? { ...source_backup, restored: true } : source_backup,
});
const plainDataset: ClusterSnapshot['datasets'][number] = {
  dataset_id: PLAIN,
  primary: ME,
  maximum_size: 512 * MiB,
  metadata: { 'clusterhq:flocker:filesystem': 'xfs' },
  deleted: false,
};

describe('DatasetAgent: the file system of a mounted restore (T5 F8)', () => {
  it('reported while the restore is not marked done, and only for it', async () => {
    const driver = new FakeDriver();
    const host = new FakeHost();
    const clock = new ManualClock();
    const control = new FakeControl(clock);
    for (const ds of [RESTORED, PLAIN]) {
      const v = await driver.createVolume(ds, 512 * MiB);
      await driver.attachVolume(v.blockdeviceId, 'i-me');
      const device = `/dev/fake/${v.blockdeviceId}`;
      host.formatted.add(device);
      host.mounts.push({ device, mountPoint: `/flocker/${ds}`, majorMinor: '0:0', fstype: 'xfs' });
    }
    control.setDatasets([restoredDataset(false), plainDataset]);
    const agent = new DatasetAgent(testAgentOptions({ driver, hostOps: host, control, clock }));
    const manifestation = (r: NodeReport | undefined, ds: string) => r?.manifestations.find((m) => m.dataset_id === ds);
    const eventually = async (check: () => boolean, what: string): Promise<void> => {
      for (let i = 0; i < 500 && !check(); i++) {
        await clock.advance(5);
        await new Promise((r) => setImmediate(r));
      }
      if (!check()) throw new Error(`timed out: ${what}`);
    };
    agent.start();
    try {
      await eventually(() => manifestation(control.last(), RESTORED)?.status === 'mounted', 'a report of the mounts');
      expect(manifestation(control.last(), RESTORED)).toMatchObject({ status: 'mounted', filesystem: 'xfs' });
      expect(manifestation(control.last(), PLAIN)).toMatchObject({ status: 'mounted' });
      expect(manifestation(control.last(), PLAIN)?.filesystem).toBeUndefined();
      // Marked done (the metadata says it now): reports carry it no more.
      control.setDatasets([restoredDataset(true), plainDataset]);
      const before = control.reports.length;
      await eventually(
        () => control.reports.length > before && manifestation(control.last(), RESTORED)?.filesystem === undefined,
        'a report without it',
      );
      expect(manifestation(control.last(), RESTORED)).toMatchObject({ status: 'mounted' });
    } finally {
      await agent.stop();
    }
  });

  it('pendingRestores: datasets with a source_backup not marked restored, not deleted', () => {
    const snapshot = (datasets: ClusterSnapshot['datasets']): ClusterSnapshot => ({
      generation: '1',
      configuration_tag: 'v1',
      datasets,
      leases: [],
      nodes: [],
    });
    expect([...pendingRestores(null)]).toEqual([]);
    expect([...pendingRestores(snapshot([restoredDataset(false), plainDataset]))]).toEqual([RESTORED]);
    expect([...pendingRestores(snapshot([restoredDataset(true)]))]).toEqual([]);
    expect([...pendingRestores(snapshot([{ ...restoredDataset(false), deleted: true }]))]).toEqual([]);
  });
});

/**
 * Why ControlState.report keeps withoutReportedFilesystems (session 20, closing-s19's question): the file system an
 * agent reports for a mounted restore (T5 F8) is read once, from the report as received, and is neither answered nor
 * shared with other replicas. Replicas one release behind parse the shared reports strictly (etcd's nodes/<uuid>,
 * a ManifestationState is strict): a shared member they do not know would be STORE_CORRUPT to them.
 */
import { FlockerClient, type NodeReport } from '@flocker/api';
import { MemoryConfigurationStore } from './ConfigurationStore';
import { NODE_B as B, nodeReport, startOnLoopback } from './testing/httpService';

const D1 = '11111111-1111-4111-8111-111111111111';
const B1 = '5a5a5a5a-0000-4000-8000-0000000000b1';
const MiB = 1024 * 1024;

/** A memory store that shares reports as the etcd store does, keeping what it was handed. */
class SharingStore extends MemoryConfigurationStore {
  readonly shared: string[] = [];
  publishReport(_report: NodeReport, json: string): Promise<void> {
    this.shared.push(json);
    return Promise.resolve();
  }
}

it("a restore's reported file system is recorded, and neither kept in the shared report nor answered", async () => {
  const store = new SharingStore();
  const svc = await startOnLoopback({ store });
  try {
    const client = new FlockerClient({ baseUrl: svc.url, timeoutMs: 5000 });
    await client.reportNodeState(nodeReport(B, { backup_store: true }));
    const r = await client.createDataset({
      primary: B,
      maximum_size: 512 * MiB,
      metadata: { name: 'r' },
      source_backup: { target: 's3://backups/flocker', backup_id: `${D1}/20261204T065155123Z-${B1}` },
    });
    const mounted = { dataset_id: r.dataset_id, blockdevice_id: 'v', size: 512 * MiB, status: 'mounted' as const };
    store.shared.length = 0;
    await client.reportNodeState(
      nodeReport(B, { backup_store: true, manifestations: [{ ...mounted, path: '/f/r', filesystem: 'xfs' }] }),
    );
    expect((await client.listDatasets()).find((d) => d.dataset_id === r.dataset_id)?.metadata).toMatchObject({
      'clusterhq:flocker:filesystem': 'xfs',
    });
    expect(store.shared.length).toBeGreaterThan(0);
    for (const json of store.shared) {
      expect(json).toContain(r.dataset_id);
      expect(json).not.toContain('"filesystem"');
    }
    expect(JSON.stringify(await client.listDatasetState())).not.toContain('"filesystem"');
  } finally {
    await svc.close();
  }
});

/**
 * Review U2 (session 16), finding 2b: a host reboot (or plugin restart) while a local move when_released waits for
 * this node's containers. The plugin's start reconcile saw the volume no longer here (its primary the new node) and
 * dropped its mount IDs but kept the lease: no later reconcile knew of the volume, so the lease stayed "expires never"
 * and the move waited for ever. Now such an entry stays, and Docker's view decides: released once no container here
 * uses the volume (a reboot killed them), kept while one runs (only the plugin restarted). Real control service
 * (in-process), fake agents, a fake dockerd and a test clock.
 */
import type { ClusterSnapshot, DatasetConfiguration, NodeState } from '@flocker/api';
import type { DockerContainer } from './DockerView';
import { startReconcileStep, type FlockerVolumeBackend } from './FlockerVolumeBackend';
import { HOST_A, HOST_B, NODE_A, NODE_B } from './testing';
import { useClockedBed } from './testing/clockedBed';

const WINDOW = 60_000;
const ID = '11111111-1111-4111-8111-111111111111';

describe('startReconcileStep: what the start reconcile does with an entry holding mount IDs', () => {
  const dataset = (primary: string, deleted = false): DatasetConfiguration => ({
    dataset_id: ID,
    primary,
    metadata: { name: 'v' },
    deleted,
  });
  const node = (uuid: string, mounted: boolean): NodeState => ({
    uuid,
    era: `era-${uuid}`,
    host: uuid,
    instance_id: `instance-${uuid}`,
    backend: 'local-btrfs',
    manifestations: mounted
      ? [{ dataset_id: ID, blockdevice_id: 'x', size: 0, status: 'mounted', path: `/mnt/${ID}` }]
      : [],
    errors: [],
    alive: true,
    last_seen: '2026-12-05T22:00:00Z',
  });
  const snap = (d: DatasetConfiguration[], leaseHolder: string | undefined, nodes: NodeState[]): ClusterSnapshot => ({
    generation: 'g',
    configuration_tag: 'v1',
    datasets: d,
    leases:
      leaseHolder === undefined ? [] : [{ dataset_id: ID, node_uuid: leaseHolder, expires: null, holders: ['docker'] }],
    nodes,
  });

  it('used here (primary, mounted here): the lease is taken again', () => {
    expect(startReconcileStep(snap([dataset(NODE_A)], NODE_A, [node(NODE_A, true)]), NODE_A, ID)).toBe('retake');
    expect(startReconcileStep(snap([dataset(NODE_A)], undefined, [node(NODE_A, true)]), NODE_A, ID)).toBe('retake');
    // This node not reporting yet: taken as here, as before.
    expect(startReconcileStep(snap([dataset(NODE_A)], NODE_A, []), NODE_A, ID)).toBe('retake');
  });

  it('moved away under this node’s lease (when_released): left to Docker’s view, not dropped', () => {
    expect(startReconcileStep(snap([dataset(NODE_B)], NODE_A, [node(NODE_A, false)]), NODE_A, ID)).toBe('leave');
    expect(startReconcileStep(snap([dataset(NODE_B)], NODE_A, [node(NODE_A, true)]), NODE_A, ID)).toBe('leave');
  });

  it('this node’s lease, primary here, not mounted here (the agent after a reboot): left to Docker’s view', () => {
    expect(startReconcileStep(snap([dataset(NODE_A)], NODE_A, [node(NODE_A, false)]), NODE_A, ID)).toBe('leave');
  });

  it('stale: deleted, gone, or not here without this node’s lease', () => {
    expect(startReconcileStep(snap([dataset(NODE_A, true)], NODE_A, [node(NODE_A, true)]), NODE_A, ID)).toBe('drop');
    expect(startReconcileStep(snap([], NODE_A, [node(NODE_A, true)]), NODE_A, ID)).toBe('drop');
    expect(startReconcileStep(snap([dataset(NODE_B)], undefined, [node(NODE_A, false)]), NODE_A, ID)).toBe('drop');
    expect(startReconcileStep(snap([dataset(NODE_B)], NODE_B, [node(NODE_A, false)]), NODE_A, ID)).toBe('drop');
    expect(startReconcileStep(snap([dataset(NODE_A)], undefined, [node(NODE_A, false)]), NODE_A, ID)).toBe('drop');
  });
});

describe('a restart during a local move when_released does not keep the lease for ever', () => {
  const t = useClockedBed('plugin-reboot-lease-', [HOST_A, HOST_B], NODE_A, WINDOW);
  const { now, backend } = t;
  const container = (state: string): DockerContainer => ({
    id: 'hh',
    state,
    createdMs: now() - 3_600_000,
    mounts: [{ type: 'volume', name: 'vol1', driver: 'flocker', source: '' }],
  });

  /** v used on A (m1, A's lease), A a local node, moved to B when_released; then the plugin on A restarts. */
  async function restartedDuringMove(): Promise<{ a: FlockerVolumeBackend; datasetId: string }> {
    const first = await backend();
    await first.create({ Name: 'vol1' });
    const { Mountpoint } = await first.mount({ Name: 'vol1', ID: 'm1' });
    const d = (await t.client.listDatasets()).find((x) => x.metadata.name === 'vol1')!;
    // A is a local node (when_released needs one); its agent, stuck from here on, reports the volume mounted.
    await t.bed.reportStuckLocalMount(HOST_A, d.dataset_id, Mountpoint);
    await t.client.updateDataset(d.dataset_id, { primary: NODE_B, when_released: true });
    await first.close();
    const a = await backend();
    return { a, datasetId: d.dataset_id };
  }

  it('released once Docker shows no container uses the volume (the reboot killed it)', async () => {
    const { a, datasetId } = await restartedDuringMove();
    // Before the fix: the entry was dropped here, and nothing released the lease afterwards.
    expect(a['registry'].entries()).toEqual([{ datasetId, name: 'vol1', ids: ['m1'] }]);
    t.skew += WINDOW + 1_000;
    expect(await a.reconcileWithDocker([container('exited')], 'flocker')).toEqual([
      expect.objectContaining({ volume: 'vol1', result: 'released' }),
    ]);
    expect(await t.client.listLeases()).toEqual([]);
    expect(a['registry'].entries()).toEqual([]);
  });

  it('kept while a container still uses it (only the plugin restarted), released at its Unmount', async () => {
    const { a, datasetId } = await restartedDuringMove();
    t.skew += WINDOW + 1_000;
    expect(await a.reconcileWithDocker([container('running')], 'flocker')).toEqual([
      expect.objectContaining({ volume: 'vol1', result: 'kept', detail: 'in use by hh' }),
    ]);
    expect(await t.client.listLeases()).toEqual([
      { dataset_id: datasetId, node_uuid: NODE_A, expires: null, holders: ['docker'] },
    ]);
    await a.unmount({ Name: 'vol1', ID: 'm1' });
    for (let i = 0; i < 200 && (await t.client.listLeases()).length > 0; i++)
      await new Promise((r) => setTimeout(r, 10));
    expect(await t.client.listLeases()).toEqual([]);
  });
});

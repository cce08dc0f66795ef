/**
 * Review R1 (session 21): findings on idle leases, uncommitted; see /work/notes/s21-R1-findings.md. Fails on HEAD.
 */
import type { ClusterSnapshot, FlockerClient, Lease } from '@flocker/api';
import type { ControlClient } from './FlockerVolumeBackend';
import { BackendTestBed, HOST_A, HOST_B, NODE_A } from './testing';

describe('R1-F1: a plugin served views without the hand-over members keeps nothing idle', () => {
  let bed: BackendTestBed;
  let client: FlockerClient;

  beforeEach(async () => {
    bed = await BackendTestBed.start('flocker-r1-', [HOST_A, HOST_B]);
    client = bed.client;
  });

  afterEach(() => bed.close());

  it('the grant echoes release_on_request but the followed views leave it out (Views legacy variant): no idle keep', async () => {
    // What ed358d0 serves a plugin whose node's agent reports no/an older version, or any plugin on plain HTTP while
    // one alive node does: leases without release_on_request / release_requested. The lease POST (v1 route) still
    // echoes the field, so the plugin keeps the lease idle, but it can never see a request for it: every move, delete
    // or Mount elsewhere waits the whole hand-over (5 s) and is refused for up to idle_lease_seconds.
    const legacy = (s: ClusterSnapshot): ClusterSnapshot => ({
      ...s,
      leases: s.leases.map((l): Lease => {
        const { release_on_request: _p, release_requested: _r, ...plain } = l;
        return plain;
      }),
    });
    const c: ControlClient = {
      createDataset: (...a) => client.createDataset(...a),
      updateDataset: (...a) => client.updateDataset(...a),
      deleteDataset: (...a) => client.deleteDataset(...a),
      waitForCluster: async (...a) => legacy(await client.waitForCluster(...a)),
      acquireLease: (...a) => client.acquireLease(...a),
      releaseLease: (...a) => client.releaseLease(...a),
      declineReleaseRequest: (...a) => client.declineReleaseRequest(...a),
    };
    const a = await bed.backend(NODE_A, { client: c, idleLeaseMs: 60_000 });
    await a.create({ Name: 'vol1' });
    await a.mount({ Name: 'vol1', ID: 'c1' });
    expect((await client.listLeases())[0]?.release_on_request).toBe(true);
    await new Promise((r) => setTimeout(r, 100));
    await a.unmount({ Name: 'vol1', ID: 'c1' });
    await a.settled({ keepIdle: true });
    expect(a.keptIdle()).toEqual([]);
    expect(await client.listLeases()).toEqual([]);
  });
});

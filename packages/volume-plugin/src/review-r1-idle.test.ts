/**
 * Review R1 (session 21): findings on idle leases, uncommitted; see /work/notes/s21-R1-findings.md. Fails on HEAD.
 */
import type { ClusterSnapshot, FlockerClient, Lease } from '@flocker/api';
import { BackendTestBed, forwardingClient, HOST_A, HOST_B, NODE_A, NODE_B, until, useOnce } from './testing';

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
    const c = forwardingClient(client, { waitForCluster: async (...a) => legacy(await client.waitForCluster(...a)) });
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

  it('R1-F5: a decline names the request it answers (its by and at: the control service clears only that one)', async () => {
    // The decline route cleared whatever request was pending. The client repeats a DELETE it did not hear back from
    // (safe-to-repeat set): a repeat that lands after the holder went idle and another requester asked cleared that
    // newer request, which its requester then heard as "declined: a container on <host> uses it" although none did.
    // Fixed by naming the request (control-api leaseHandover.wait: a late decline leaves a newer request pending)
    // rather than a configuration tag, which any unrelated change would fail.
    const at = '2026-12-06T15:00:00.000Z';
    const seen: unknown[][] = [];
    const c = forwardingClient(client, {
      waitForCluster: async (...a) => {
        const s = await client.waitForCluster(...a);
        return { ...s, leases: s.leases.map((l): Lease => ({ ...l, release_requested: { by: 'api', at } })) };
      },
      declineReleaseRequest: async (...a) => {
        seen.push(a);
        const lease = (await client.listLeases()).find((l) => l.dataset_id === a[0]);
        if (lease === undefined) throw new Error('no lease');
        return lease;
      },
    });
    const a = await bed.backend(NODE_A, { client: c, idleLeaseMs: 60_000 });
    await a.create({ Name: 'vol1' });
    await a.mount({ Name: 'vol1', ID: 'c1' });
    await a.watcher.refresh();
    await until('the decline', () => seen.length > 0);
    expect(seen).toHaveLength(1);
    // The options of the decline: the request it answers, which a later request does not match.
    expect(seen[0]?.[1]).toMatchObject({ request: { by: 'api', at } });
    await a.settled({ keepIdle: true });
  });

  it('R1-F2: an idle lease is not trusted on a snapshot the plugin no longer follows (cut from the control service)', async () => {
    // The plugin's watch fails (its link to the control service is cut); meanwhile the lease it keeps idle ends at
    // the control service (an administrator's `flocker leases release --force`, or the dead-node rule: node timeout +
    // lease grace) and another node takes it. A Mount here trusts the last snapshot it has (current(), not followed())
    // and answers from memory: no lease POST, no fresh look, a container started on a volume another node holds.
    let cut = false;
    const c = forwardingClient(client, {
      waitForCluster: async (...a) => {
        if (cut) throw new Error('connect ECONNREFUSED (cut)');
        return client.waitForCluster(...a);
      },
    });
    const a = await bed.backend(NODE_A, { client: c, idleLeaseMs: 60_000, mountTimeoutMs: 2_000 });
    await a.create({ Name: 'vol1' });
    await useOnce(a);
    const [d] = await client.listDatasets();
    expect(a.keptIdle()).toEqual([d?.dataset_id]);
    cut = true;
    // The watcher notices (a long-poll fails): it no longer follows.
    await until('the watch to stop following', () => a.watcher.followed() === undefined);
    expect(a.watcher.followed()).toBeUndefined();
    await client.releaseLease(d?.dataset_id ?? '');
    await client.acquireLease({ dataset_id: d?.dataset_id ?? '', node_uuid: NODE_B, expires: null, holder: 'csi' });
    await expect(a.mount({ Name: 'vol1', ID: 'c2' })).rejects.toThrow();
  });
});

/**
 * A Mount whose lease is released while it waits for the agent's mount (session 26, the s25 CI failure of e2e
 * review-f-control-restart-dead-host): after a restart of the control service, a node whose agent had not reported
 * within the node timeout was declared dead with the dead host, the lease its plugin had just taken was released by
 * the dead-node sweep, and its Mount waited for "mounted under this node's lease" until its timeout (100 s) although
 * the agent mounted the volume a second later. Now the Mount takes the lease again (once this node shows alive) and
 * answers. Real control service (in-process), fake agents; the release is an administrator's here (the sweep's write
 * is the same configuration change).
 */
import type { FlockerClient } from '@flocker/api';
import type { FlockerVolumeBackend } from './FlockerVolumeBackend';
import { BackendTestBed, HOST_A, HOST_B, NODE_A, NODE_B, type FakeDatasetAgent, until } from './testing';

let bed: BackendTestBed;
let client: FlockerClient;
let agentA: FakeDatasetAgent;

beforeEach(async () => {
  bed = await BackendTestBed.start('flocker-lease-lost-', [HOST_A, HOST_B]);
  client = bed.client;
  agentA = bed.agents[0] as FakeDatasetAgent;
});

afterEach(() => bed.close());

/** The plugin's followed snapshot shows the volume leased to this host. */
async function showsLeaseHere(a: FlockerVolumeBackend): Promise<boolean> {
  const status = (await a.get({ Name: 'vol1' })).Volume.Status ?? {};
  return [status['in_use_on'], status['leased_to']].some((v) => typeof v === 'string' && v.startsWith('host-a'));
}

it('a lease released while the Mount waits for the mount is taken again, and the Mount answers once mounted', async () => {
  // A mount timeout far above what the test waits: the Mount must answer on the agent's report, not time out.
  const a = await bed.backend(NODE_A, { mountTimeoutMs: 60_000 });
  agentA.paused = true;
  await a.create({ Name: 'vol1' });
  const id = (await client.listDatasets())[0]!.dataset_id;
  const t = Date.now();
  const mounting = a.mount({ Name: 'vol1', ID: 'c1' });
  mounting.catch(() => undefined);
  await until('the lease taken and followed by the plugin', () => showsLeaseHere(a));
  // Released under the waiting Mount (the dead-node sweep's write), then the agent mounts the volume.
  await client.releaseLease(id);
  // Taken again while the agent still has not mounted it (this node alive): the Mount did not wait on a lost lease.
  await until('the lease taken again', async () => (await client.listLeases()).some((l) => l.node_uuid === NODE_A));
  agentA.paused = false;
  await agentA.poke();
  await expect(mounting).resolves.toEqual({ Mountpoint: `/flocker-a/${id}` });
  expect(Date.now() - t).toBeLessThan(30_000);
  expect(await client.listLeases()).toEqual([expect.objectContaining({ dataset_id: id, node_uuid: NODE_A })]);
});

it('a lease released and the volume moved elsewhere while the Mount waits: the Mount fails, the volume is not moved back', async () => {
  // review S26B B6: `flocker leases release v` then `flocker volumes move v --node B` while a docker run on A mounts.
  // The plugin's watch is held across both changes and then cut, so the snapshot it resyncs with shows both at once
  // (no race between the plugin's re-take and the test's move).
  let hold: { gate: Promise<void>; open: () => void } | undefined;
  const watched = new Proxy(client, {
    get(target, prop) {
      if (prop === 'watchCluster')
        return async function* (...args: Parameters<FlockerClient['watchCluster']>) {
          for await (const line of target.watchCluster(...args)) {
            if (hold !== undefined) {
              await hold.gate;
              throw new Error('watch cut by the test');
            }
            yield line;
          }
        };
      const v: unknown = Reflect.get(target, prop, target);
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
  const a = await bed.backend(NODE_A, { mountTimeoutMs: 60_000, client: watched });
  agentA.paused = true;
  await a.create({ Name: 'vol1' });
  const id = (await client.listDatasets())[0]!.dataset_id;
  const mounting = a.mount({ Name: 'vol1', ID: 'c1' });
  mounting.catch(() => undefined);
  await until('the lease taken and followed by the plugin', () => showsLeaseHere(a));
  let open = (): void => undefined;
  hold = { gate: new Promise<void>((r) => (open = r)), open: () => open() };
  const held = hold;
  await client.releaseLease(id);
  await client.updateDataset(id, { primary: NODE_B });
  hold = undefined;
  held.open();
  await expect(mounting).rejects.toMatchObject({ code: 'VOLUME_IN_USE' });
  expect((await client.getDataset(id)).primary).toBe(NODE_B);
  expect((await client.listLeases()).filter((l) => l.node_uuid === NODE_A)).toEqual([]);
});

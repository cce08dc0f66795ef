/**
 * Review U2 (session 16), findings 4: a Mount of a local volume whose data is on a dead host waited its whole timeout
 * (100 s) although this node's agent refused at once (SOURCE_UNREACHABLE), and left the volume's primary on this host.
 * Against a real control service (in-process) with fake agents; host B is shown dead through the client's view.
 */
import { type ClusterSnapshot, type FlockerClient } from '@flocker/api';
import type { ControlClient, FlockerVolumeBackend } from './FlockerVolumeBackend';
import { BackendTestBed, HOST_A, HOST_B, NODE_A, NODE_B, type FakeDatasetAgent } from './testing';

describe('a Mount this node’s agent refuses until the user acts', () => {
  let bed: BackendTestBed;
  let client: FlockerClient;
  let agentA: FakeDatasetAgent;
  let agentB: FakeDatasetAgent;

  beforeEach(async () => {
    bed = await BackendTestBed.start('flocker-refused-', [HOST_A, HOST_B]);
    client = bed.client;
    [agentA, agentB] = bed.agents as [FakeDatasetAgent, FakeDatasetAgent];
  });

  afterEach(() => bed.close());

  /**
   * Host A's client, seeing host B dead (its last report kept) and, when given, B's report naming a replica. Both
   * nodes on local storage (the fake agents report backend 'fake'): the data stays bound to B.
   */
  function seeingBDead(replica?: { node: string; takenAt: string }): ControlClient {
    const adjust = (s: ClusterSnapshot): ClusterSnapshot => ({
      ...s,
      nodes: s.nodes.map((n) =>
        n.uuid === NODE_B
          ? {
              ...n,
              backend: 'local-btrfs',
              alive: false,
              dead_since: new Date(Date.now() - 20_000).toISOString(),
              ...(replica !== undefined
                ? {
                    replicas: n.manifestations.map((m) => ({
                      dataset_id: m.dataset_id,
                      node_uuid: replica.node,
                      snapshot: 'replica-000003',
                      taken_at: replica.takenAt,
                    })),
                  }
                : {}),
            }
          : { ...n, backend: 'local-btrfs' },
      ),
    });
    return {
      createDataset: (...x) => client.createDataset(...x),
      updateDataset: (...x) => client.updateDataset(...x),
      deleteDataset: (...x) => client.deleteDataset(...x),
      acquireLease: (...x) => client.acquireLease(...x),
      releaseLease: (...x) => client.releaseLease(...x),
      waitForCluster: async (...x) => adjust(await client.waitForCluster(...x)),
    };
  }

  /** vol1 made on B and mounted there once (its data on B), then B's agent stops reporting (powered off). */
  async function volumeOnDeadB(): Promise<string> {
    const b = await bed.backend(NODE_B);
    await b.create({ Name: 'vol1' });
    await b.mount({ Name: 'vol1', ID: 'on-b' });
    await b.unmount({ Name: 'vol1', ID: 'on-b' });
    await b.settled();
    const id = (await client.listDatasets())[0]!.dataset_id;
    agentB.paused = true;
    agentA.refusing.set(id, {
      code: 'SOURCE_UNREACHABLE',
      message: `the data of dataset ${id} is on node ${NODE_B} (host-b), which is dead: local storage cannot be moved off a dead node; bring it back, or move the dataset back to it`,
    });
    return id;
  }

  async function mountFails(a: FlockerVolumeBackend): Promise<{ error: Error; seconds: number }> {
    const t = Date.now();
    const error = await a.mount({ Name: 'vol1', ID: 'on-a' }).then(
      () => new Error('mounted'),
      (e: unknown) => e as Error,
    );
    return { error, seconds: (Date.now() - t) / 1000 };
  }

  it('fails within seconds, saying what to do, puts the primary back and lets the lease go', async () => {
    await volumeOnDeadB();
    const a = await bed.backend(NODE_A, { client: seeingBDead(), mountTimeoutMs: 30_000, refusalGraceMs: 500 });
    const { error, seconds } = await mountFails(a);
    expect(seconds).toBeLessThan(5);
    expect(error).toMatchObject({ code: 'MOUNT_REFUSED' });
    expect(error.message).toMatch(/its data is on host host-b, which is dead/);
    expect(error.message).toMatch(/Bring host-b back, then run the container again/);
    expect(error.message).toMatch(/The volume stays on host-b \(this Mount's move was taken back\)/);
    expect(error.message).toMatch(
      /The dataset agent on this host reports: the data of dataset .* \(SOURCE_UNREACHABLE\)/,
    );
    expect(error.message).not.toMatch(/replica/);
    const [d] = await client.listDatasets();
    expect(d?.primary).toBe(NODE_B);
    expect(await client.listLeases()).toEqual([]);
  });

  it('not permitted to put it back (a node’s certificate moves datasets only to itself): says how to take the move back', async () => {
    await volumeOnDeadB();
    const seeing = seeingBDead();
    const nodeA: ControlClient = {
      ...seeing,
      updateDataset: (id, req, options) =>
        req.primary !== undefined && req.primary !== NODE_A
          ? Promise.reject(Object.assign(new Error('node-a may move datasets only to itself'), { status: 403 }))
          : client.updateDataset(id, req, options),
    };
    const a = await bed.backend(NODE_A, { client: nodeA, mountTimeoutMs: 30_000, refusalGraceMs: 500 });
    const { error, seconds } = await mountFails(a);
    expect(seconds).toBeLessThan(5);
    expect(error.message).toMatch(
      /Bring host-b back, then run the container again\. The move here stays asked for \(it goes on by itself once host-b is back\); to take it back: flocker volumes move vol1 host-b\./,
    );
    expect((await client.listDatasets())[0]?.primary).toBe(NODE_A);
    expect(await client.listLeases()).toEqual([]);
  });

  it('names the standby replica’s host and the command that fails over to it', async () => {
    await volumeOnDeadB();
    const takenAt = new Date(Date.now() - 12_000).toISOString();
    const a = await bed.backend(NODE_A, {
      client: seeingBDead({ node: NODE_A, takenAt }),
      mountTimeoutMs: 30_000,
      refusalGraceMs: 500,
    });
    const { error } = await mountFails(a);
    expect(error.message).toMatch(
      /Or start from the standby replica on this host \(host-a\), 1\d s old, losing every write after it: flocker volumes move vol1 host-a --accept-replica-loss, then run the container again\./,
    );
  });

  it('a refusal that clears within the grace (a stale view) does not fail the Mount', async () => {
    const id = await volumeOnDeadB();
    const a = await bed.backend(NODE_A, { client: seeingBDead(), mountTimeoutMs: 30_000, refusalGraceMs: 1_500 });
    const mounting = a.mount({ Name: 'vol1', ID: 'on-a' });
    // Refused at first, then the agent's view catches up (here: it mounts the volume) within the grace.
    for (let i = 0; i < 100 && !(await client.listDatasets()).some((d) => d.primary === NODE_A); i++)
      await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setTimeout(r, 500));
    agentA.refusing.delete(id);
    await agentA.poke();
    await expect(mounting).resolves.toEqual({ Mountpoint: `/flocker-a/${id}` });
  });

  it('a SOURCE_UNREACHABLE naming no dead node (a holder not reported since a restart) is waited for', async () => {
    const id = await volumeOnDeadB();
    agentA.refusing.set(id, {
      code: 'SOURCE_UNREACHABLE',
      message: `dataset ${id} has data (this node's pool keeps snapshots or a copy of it that is not live) but no node this node sees holds its live copy`,
    });
    const a = await bed.backend(NODE_A, { client: seeingBDead(), mountTimeoutMs: 2_500, refusalGraceMs: 200 });
    const { error, seconds } = await mountFails(a);
    expect(error).toMatchObject({ code: 'MOUNT_TIMEOUT' });
    expect(seconds).toBeGreaterThan(2);
    // A timeout is no refusal that needs the user (RV finding 3): the move may only be slow, so it stays asked for.
    expect((await client.listDatasets())[0]?.primary).toBe(NODE_A);
  });

  it('TWO_LIVE_COPIES fails fast with the agent’s words', async () => {
    const id = await volumeOnDeadB();
    agentA.refusing.set(id, {
      code: 'TWO_LIVE_COPIES',
      message: `dataset ${id} has a live copy on this node (${NODE_A}) and on node ${NODE_B} (host-b): both were written since they parted`,
    });
    const a = await bed.backend(NODE_A, { mountTimeoutMs: 30_000, refusalGraceMs: 300 });
    const { error, seconds } = await mountFails(a);
    expect(seconds).toBeLessThan(5);
    expect(error).toMatchObject({ code: 'MOUNT_REFUSED' });
    expect(error.message).toMatch(/volume vol1 cannot be mounted on this host until you act.*TWO_LIVE_COPIES/);
    expect(await client.listLeases()).toEqual([]);
  });
});

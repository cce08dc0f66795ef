import * as fs from 'node:fs';
import * as path from 'node:path';
import { FlockerApiError, METADATA_PROFILE_KEY, type FlockerClient } from '@flocker/api';
import { mountedPath, type FlockerVolumeBackend, type ControlClient } from './FlockerVolumeBackend';
import { MountRegistry } from './MountRegistry';
import { BackendTestBed, GiB, HOST_A, HOST_B, NODE_A, NODE_B, type FakeDatasetAgent } from './testing';
import { volumeDatasetId } from './volumeOptions';

/** Unmount answers Docker before the lease release; tests look after both. */
async function unmountSettled(b: FlockerVolumeBackend, req: { Name: string; ID: string }): Promise<void> {
  await b.unmount(req);
  await b.settled();
}

describe('FlockerVolumeBackend against a real control service', () => {
  let bed: BackendTestBed;
  let client: FlockerClient;
  let dir: string;
  let agentA: FakeDatasetAgent;
  let agentB: FakeDatasetAgent;

  const backendFor = (
    node: string,
    mountTimeoutMs = 5_000,
    extra: { createCycleGraceMs?: number; copyUpMaxMs?: number; client?: ControlClient; now?: () => number } = {},
  ): Promise<FlockerVolumeBackend> => bed.backend(node, { mountTimeoutMs, ...extra });

  beforeEach(async () => {
    bed = await BackendTestBed.start('flocker-backend-', [HOST_A, HOST_B]);
    ({ client, dir } = bed);
    [agentA, agentB] = bed.agents as [FakeDatasetAgent, FakeDatasetAgent];
  });

  afterEach(() => bed.close());

  /** Unmounts mount IDs c1 then c2 of the volume: its lease stays until the last of them is unmounted. */
  async function expectLeaseUntilLastUnmount(b: FlockerVolumeBackend, name: string): Promise<void> {
    await unmountSettled(b, { Name: name, ID: 'c1' });
    expect(await client.listLeases()).toHaveLength(1);
    await unmountSettled(b, { Name: name, ID: 'c2' });
    expect(await client.listLeases()).toEqual([]);
  }

  it('Create makes a dataset on this node named after the volume, once', async () => {
    const a = await backendFor(NODE_A);
    await a.create({ Name: 'vol1', Opts: { size: '2G', profile: 'gold' } });
    await a.create({ Name: 'vol1', Opts: { size: '2G' } });
    const datasets = await client.listDatasets();
    expect(datasets).toHaveLength(1);
    expect(datasets[0]).toMatchObject({
      primary: NODE_A,
      maximum_size: 2 * GiB,
      metadata: { name: 'vol1', [METADATA_PROFILE_KEY]: 'gold' },
    });
    expect((await a.list()).Volumes).toEqual([expect.objectContaining({ Name: 'vol1' })]);
  });

  it("Create refuses a profile its node's backend does not know (as `flocker volumes create --profile`)", async () => {
    const a = await backendFor(NODE_A);
    await expect(a.create({ Name: 'v-glod', Opts: { profile: 'glod' } })).rejects.toMatchObject({
      code: 'INVALID_PROFILE',
      message: expect.stringMatching(/^unknown storage profile "glod": use gold, silver or bronze \(on Cinder nodes/),
    });
    await a.create({ Name: 'v-silver', Opts: { profile: 'Silver' } });
    expect(await client.listDatasets()).toEqual([
      expect.objectContaining({
        metadata: expect.objectContaining({ name: 'v-silver', [METADATA_PROFILE_KEY]: 'silver' }),
      }),
    ]);
  });

  it('Create with the default size, and bad input creates nothing', async () => {
    const a = await backendFor(NODE_A);
    await a.create({ Name: 'vol1' });
    expect((await client.listDatasets())[0]?.maximum_size).toBe(GiB);
    await expect(a.create({ Name: 'v2', Opts: { size: 'huge' } })).rejects.toMatchObject({ code: 'INVALID_SIZE' });
    await expect(a.create({ Name: 'v2', Opts: { size: '1M' } })).rejects.toThrow(/too small/);
    await expect(a.create({ Name: '-bad' })).rejects.toMatchObject({ code: 'INVALID_NAME' });
    await expect(a.create({ Name: 'v2', Opts: { colour: 'red' } })).rejects.toThrow(/unknown volume option "colour"/);
    expect(await client.listDatasets()).toHaveLength(1);
  });

  it('Mount waits for the agent, counts IDs, and Unmount of the last releases the lease', async () => {
    const a = await backendFor(NODE_A);
    await a.create({ Name: 'vol1' });
    const [d] = await client.listDatasets();
    const m1 = await a.mount({ Name: 'vol1', ID: 'c1' });
    expect(m1.Mountpoint).toBe(`/flocker-a/${d?.dataset_id}`);
    expect(await client.listLeases()).toEqual([
      { dataset_id: d?.dataset_id, node_uuid: NODE_A, expires: null, holders: ['docker'] },
    ]);
    expect((await a.mount({ Name: 'vol1', ID: 'c2' })).Mountpoint).toBe(m1.Mountpoint);
    expect(await a.path({ Name: 'vol1' })).toEqual({ Mountpoint: m1.Mountpoint });
    const got = await a.get({ Name: 'vol1' });
    expect(Date.parse(got.Volume.CreatedAt ?? '')).toBeGreaterThan(Date.now() - 60_000);
    expect(got.Volume).toMatchObject({
      Name: 'vol1',
      Mountpoint: m1.Mountpoint,
      Status: { dataset_id: d?.dataset_id, size: '1 GiB', node: 'host-a', state: 'mounted', in_use_on: 'host-a' },
    });
    await expectLeaseUntilLastUnmount(a, 'vol1');
  });

  it('Get shows the size a volume really has: its node rounded the size asked for up (as the CLI and web UI)', async () => {
    agentA.allocationUnit = 1024 * 1024;
    const a = await backendFor(NODE_A);
    await a.create({ Name: 'odd', Opts: { size: '67108865' } });
    await a.mount({ Name: 'odd', ID: 'c1' });
    expect((await a.get({ Name: 'odd' })).Volume.Status).toMatchObject({ size: '65 MiB' });
    await a.create({ Name: 'even', Opts: { size: '64M' } });
    expect((await a.get({ Name: 'even' })).Volume.Status).toMatchObject({ size: '64 MiB' });
    await unmountSettled(a, { Name: 'odd', ID: 'c1' });
  });

  it('Get during a move shows the size of the copy that exists (the old node rounded it up), as the CLI (W6)', async () => {
    // `flocker volumes list/show` describe a volume by the copy its holder has (the old node until the new primary
    // reports it); Get read only the new primary's device and showed the size asked for: 64 MiB beside the CLI's 65.
    agentA.allocationUnit = 1024 * 1024;
    const a = await backendFor(NODE_A);
    await a.create({ Name: 'odd', Opts: { size: '67108865' } });
    await a.mount({ Name: 'odd', ID: 'c1' });
    await unmountSettled(a, { Name: 'odd', ID: 'c1' });
    agentA.paused = true;
    agentB.paused = true;
    const [d] = await client.listDatasets();
    await client.updateDataset(d?.dataset_id ?? '', { primary: NODE_B });
    // Once the plugin's view has the move (its watch follows the control service's).
    let status = (await a.get({ Name: 'odd' })).Volume.Status;
    for (let i = 0; i < 100 && status?.node_uuid !== NODE_B; i++) {
      await new Promise((r) => setTimeout(r, 50));
      status = (await a.get({ Name: 'odd' })).Volume.Status;
    }
    expect(status).toMatchObject({ size: '65 MiB', node_uuid: NODE_B });
  });

  it('Mount on another host fails fast while a container uses the volume, then moves it once released', async () => {
    const a = await backendFor(NODE_A);
    const b = await backendFor(NODE_B);
    await a.create({ Name: 'vol1' });
    await a.mount({ Name: 'vol1', ID: 'c1' });
    const started = Date.now();
    await expect(b.mount({ Name: 'vol1', ID: 'x' })).rejects.toThrow(
      'volume vol1 is in use by a container on host host-a (by docker).',
    );
    // Fast: waiting, it would fail at the 5 s mount timeout (half of it leaves a loaded host room).
    expect(Date.now() - started).toBeLessThan(2_500);
    await expect(b.remove({ Name: 'vol1' })).rejects.toThrow(/in use by a container on host host-a/);
    await unmountSettled(a, { Name: 'vol1', ID: 'c1' });
    const [d] = await client.listDatasets();
    const m = await b.mount({ Name: 'vol1', ID: 'x' });
    expect(m.Mountpoint).toBe(`/flocker-b/${d?.dataset_id}`);
    expect((await client.listDatasets())[0]?.primary).toBe(NODE_B);
    expect(await a.path({ Name: 'vol1' })).toEqual({});
    expect((await a.get({ Name: 'vol1' })).Volume.Status).toMatchObject({ node: 'host-b' });
  });

  // With a control service that knows move_here the move is the lease POST's (moveHere.backend.test); one release
  // behind, it refuses the key and the Mount moves the volume as before it.
  it('against a control service without move_here, a Mount that moves a volume sends the primary change beside the lease, and makes it again when it was refused because the lease was not ours yet', async () => {
    const a = await backendFor(NODE_A);
    await a.create({ Name: 'vol1' });
    await a.mount({ Name: 'vol1', ID: 'c1' });
    const [d] = await client.listDatasets();
    const calls: string[] = [];
    let updateAnswered: () => void = () => undefined;
    const answered = new Promise<void>((r) => (updateAnswered = r));
    // The lease goes out only once the primary change was answered: refused while A holds its lease,
    // which A lets go of just before B's lease arrives.
    const watched: ControlClient = {
      ...client,
      createDataset: (...x) => client.createDataset(...x),
      deleteDataset: (...x) => client.deleteDataset(...x),
      releaseLease: (...x) => client.releaseLease(...x),
      waitForCluster: (...x) => client.waitForCluster(...x),
      updateDataset: async (...x) => {
        calls.push('update');
        try {
          return await client.updateDataset(...x);
        } catch (err) {
          calls.push(`update refused ${(err as { status?: number }).status}`);
          throw err;
        } finally {
          updateAnswered();
        }
      },
      acquireLease: async (...x) => {
        if (x[0].move_here === true) {
          calls.push('lease with move_here refused');
          const problem = '(body): Unrecognized key: "move_here"';
          throw new FlockerApiError(400, 'INVALID_REQUEST', `The request is not valid: ${problem}`, [problem]);
        }
        calls.push('lease');
        await answered;
        if (calls.length === 4) await unmountSettled(a, { Name: 'vol1', ID: 'c1' });
        return client.acquireLease(...x);
      },
    };
    const b = await backendFor(NODE_B, 5_000, { client: watched });
    const m = await b.mount({ Name: 'vol1', ID: 'x' });
    expect(m.Mountpoint).toBe(`/flocker-b/${d?.dataset_id}`);
    // Both went out before either was answered; the refused change was made again after the lease.
    expect(calls).toEqual(['lease with move_here refused', 'update', 'lease', 'update refused 409', 'update']);
    expect((await client.listDatasets())[0]?.primary).toBe(NODE_B);
    expect(await client.listLeases()).toEqual([expect.objectContaining({ node_uuid: NODE_B })]);
  });

  describe("one node's lease shared with the CSI node plugin (holder csi) on the same host", () => {
    /** What the CSI node plugin on host A does at NodeStageVolume / NodeUnstageVolume. */
    const csiStage = (id: string) =>
      client.acquireLease({ dataset_id: id, node_uuid: NODE_A, expires: null, holder: 'csi' });
    const csiUnstage = (id: string) => client.releaseLease(id, { holder: 'csi' });

    it("the last Unmount lets go of only the plugin's share: the pod keeps the lease, host B cannot take the volume", async () => {
      const a = await backendFor(NODE_A);
      const b = await backendFor(NODE_B);
      await a.create({ Name: 'vol1' });
      const [d] = await client.listDatasets();
      const id = d!.dataset_id;
      await csiStage(id);
      await a.mount({ Name: 'vol1', ID: 'c1' });
      expect((await client.listLeases())[0]?.holders).toEqual(['csi', 'docker']);
      await unmountSettled(a, { Name: 'vol1', ID: 'c1' });
      expect(await client.listLeases()).toEqual([
        { dataset_id: id, node_uuid: NODE_A, expires: null, holders: ['csi'] },
      ]);
      await expect(b.mount({ Name: 'vol1', ID: 'x' })).rejects.toThrow(
        'volume vol1 is in use by a container on host host-a (by csi). Stop that container first',
      );
      await expect(b.remove({ Name: 'vol1' })).rejects.toThrow(/in use by a container on host host-a \(by csi\)/);
      expect((await client.listDatasets())[0]?.primary).toBe(NODE_A);
      // The pod goes: the lease ends, and host B may have the volume.
      expect(await csiUnstage(id)).toMatchObject({ remains: false });
      expect((await b.mount({ Name: 'vol1', ID: 'x' })).Mountpoint).toBe(`/flocker-b/${id}`);
    });

    it("a Mount while CSI holds the lease adds the plugin's share; CSI letting go keeps it for the container", async () => {
      const a = await backendFor(NODE_A);
      const b = await backendFor(NODE_B);
      await a.create({ Name: 'vol1' });
      const id = (await client.listDatasets())[0]!.dataset_id;
      await csiStage(id);
      await a.mount({ Name: 'vol1', ID: 'c1' });
      expect(await csiUnstage(id)).toMatchObject({ holders: ['docker'], remains: true });
      await expect(b.mount({ Name: 'vol1', ID: 'x' })).rejects.toThrow(
        /in use by a container on host host-a \(by docker\)/,
      );
      await unmountSettled(a, { Name: 'vol1', ID: 'c1' });
      expect(await client.listLeases()).toEqual([]);
    });

    it('a failed Mount lets go of only its own share', async () => {
      const a = await backendFor(NODE_A, 1_500);
      // Failing from the start: the agent never reported it mounted.
      agentA.failing.set(volumeDatasetId('vol1'), 'mkfs failed: no space left on device');
      await a.create({ Name: 'vol1' });
      const id = (await client.listDatasets())[0]!.dataset_id;
      await csiStage(id);
      await agentA.poke();
      await expect(a.mount({ Name: 'vol1', ID: 'c1' })).rejects.toThrow(/Timed out/);
      await a.settled();
      expect(await client.listLeases()).toEqual([
        { dataset_id: id, node_uuid: NODE_A, expires: null, holders: ['csi'] },
      ]);
    });
  });

  it('Mount of a volume of this node waits for the agent while it takes the lease: mounted as soon as both are done, refused at once when another node holds the lease', async () => {
    const a = await backendFor(NODE_A);
    // The agent is slow (has not mounted the new volume): the lease is taken meanwhile, and the Mount
    // answers when the agent reports.
    agentA.paused = true;
    await a.create({ Name: 'vol1' });
    const id = (await client.listDatasets())[0]!.dataset_id;
    let answered = false;
    const mounting = a.mount({ Name: 'vol1', ID: 'c1' }).finally(() => (answered = true));
    for (let i = 0; i < 100 && (await client.listLeases()).length === 0; i++)
      await new Promise((r) => setTimeout(r, 10));
    expect(await client.listLeases()).toEqual([expect.objectContaining({ dataset_id: id, node_uuid: NODE_A })]);
    expect(answered).toBe(false);
    agentA.paused = false;
    await agentA.poke();
    await expect(mounting).resolves.toEqual({ Mountpoint: `/flocker-a/${id}` });
    await unmountSettled(a, { Name: 'vol1', ID: 'c1' });
    // Leased by B: refused without waiting for the mount's deadline.
    await client.acquireLease({ dataset_id: id, node_uuid: NODE_B, expires: null });
    const t = Date.now();
    await expect(a.mount({ Name: 'vol1', ID: 'c2' })).rejects.toThrow(/in use by a container on host host-b/);
    expect(Date.now() - t).toBeLessThan(2_000);
    expect(await client.listLeases()).toEqual([expect.objectContaining({ dataset_id: id, node_uuid: NODE_B })]);
  });

  it('Mount times out with the agent’s error and lets the volume go', async () => {
    const a = await backendFor(NODE_A, 1_500);
    // Failing from the start: the agent never reported it mounted.
    agentA.failing.set(volumeDatasetId('vol1'), 'mkfs failed: no space left on device');
    await a.create({ Name: 'vol1' });
    await agentA.poke();
    await expect(a.mount({ Name: 'vol1', ID: 'c1' })).rejects.toThrow(
      /Timed out after 2 s waiting for volume vol1 to be mounted on this host\. The dataset agent reports: mkfs failed/,
    );
    expect(await client.listLeases()).toEqual([]);
  });

  it('Mount completes as soon as a slow agent reports, without polling', async () => {
    // Long-polls of 10 s: a mount that waited for the next one to end instead of being woken would take seconds.
    const a = await bed.backend(NODE_B, { pollMs: 10_000 });
    const b = await backendFor(NODE_A);
    await b.create({ Name: 'vol1' }); // primary A
    agentB.paused = true;
    const mounting = a.mount({ Name: 'vol1', ID: 'c1' });
    await new Promise((r) => setTimeout(r, 300));
    agentB.paused = false;
    const t = Date.now();
    await agentB.poke();
    await expect(mounting).resolves.toMatchObject({ Mountpoint: expect.stringMatching(/^\/flocker-b\//) });
    // Woken by the report, not by the 10 s long-poll's end (500 ms is tight on a loaded host).
    expect(Date.now() - t).toBeLessThan(4_000);
  });

  it('Remove is refused while mounted here, then deletes the dataset', async () => {
    const a = await backendFor(NODE_A);
    await a.create({ Name: 'vol1' });
    await a.mount({ Name: 'vol1', ID: 'c1' });
    await expect(a.remove({ Name: 'vol1' })).rejects.toThrow(
      'volume vol1 is in use by 1 container on this host; remove it first.',
    );
    await unmountSettled(a, { Name: 'vol1', ID: 'c1' });
    await a.remove({ Name: 'vol1' });
    expect((await client.listDatasets())[0]?.deleted).toBe(true);
    expect((await a.list()).Volumes).toEqual([]);
    await expect(a.get({ Name: 'vol1' })).rejects.toThrow('no such volume: vol1');
    await a.remove({ Name: 'vol1' }); // idempotent
  });

  it('mount IDs survive a plugin restart; stale ones are dropped', async () => {
    let a = await backendFor(NODE_A);
    await a.create({ Name: 'vol1' });
    await a.create({ Name: 'vol2' });
    await a.mount({ Name: 'vol1', ID: 'c1' });
    await a.mount({ Name: 'vol1', ID: 'c2' });
    await a.mount({ Name: 'vol2', ID: 'c3' });
    await a.close();
    // While the plugin is down: vol2's lease disappears and it moves away.
    const vol2 = (await client.listDatasets()).find((d) => d.metadata.name === 'vol2')!;
    await client.releaseLease(vol2.dataset_id);
    await client.updateDataset(vol2.dataset_id, { primary: NODE_B });
    // And vol1's lease is lost too (e.g. released by an administrator): it is re-taken.
    const vol1 = (await client.listDatasets()).find((d) => d.metadata.name === 'vol1')!;
    await client.releaseLease(vol1.dataset_id);
    await new Promise((r) => setTimeout(r, 200)); // let agent A report vol2 gone
    a = await backendFor(NODE_A);
    expect(await client.listLeases()).toEqual([
      { dataset_id: vol1.dataset_id, node_uuid: NODE_A, expires: null, holders: ['docker'] },
    ]);
    await expectLeaseUntilLastUnmount(a, 'vol1');
    expect(MountRegistry.read(path.join(dir, NODE_A, 'plugin-mounts.json')).latest).toMatchObject({ volumes: {} });
  });

  it('concurrent Creates of one name make one dataset; concurrent Mounts count both', async () => {
    const a = await backendFor(NODE_A);
    await Promise.all([a.create({ Name: 'twin' }), a.create({ Name: 'twin' }), a.create({ Name: 'twin' })]);
    expect(await client.listDatasets()).toHaveLength(1);
    const [m1, m2] = await Promise.all([a.mount({ Name: 'twin', ID: 'c1' }), a.mount({ Name: 'twin', ID: 'c2' })]);
    expect(m1.Mountpoint).toBe(m2.Mountpoint);
    await expectLeaseUntilLastUnmount(a, 'twin');
  });

  it('a lease release cut short by a crash is finished at the next start', async () => {
    const a = await backendFor(NODE_A);
    await a.create({ Name: 'vol1' });
    await a.mount({ Name: 'vol1', ID: 'c1' });
    await a.close();
    const [d] = await client.listDatasets();
    // As if the plugin died right after answering the last Unmount.
    const file = path.join(dir, NODE_A, 'plugin-mounts.json');
    fs.writeFileSync(file, JSON.stringify({ version: 1, volumes: { [d!.dataset_id]: { name: 'vol1', ids: [] } } })); // no seq: as an earlier version wrote it
    fs.rmSync(`${file}.1`, { force: true });
    expect(await client.listLeases()).toHaveLength(1);
    await backendFor(NODE_A);
    expect(await client.listLeases()).toEqual([]);
    expect(MountRegistry.read(file).latest).toMatchObject({ volumes: {} });
  });

  it('Unmount answers before the lease release; a following Mount waits for it', async () => {
    const a = await backendFor(NODE_A);
    await a.create({ Name: 'vol1' });
    await a.mount({ Name: 'vol1', ID: 'c1' });
    await a.unmount({ Name: 'vol1', ID: 'c1' });
    await a.mount({ Name: 'vol1', ID: 'c2' });
    await a.settled();
    expect(await client.listLeases()).toHaveLength(1); // the release did not overtake the Mount
    await unmountSettled(a, { Name: 'vol1', ID: 'c2' });
    expect(await client.listLeases()).toEqual([]);
  });

  /** The client, counting lease calls. */
  function countingClient(): { client: ControlClient; acquired: () => number; released: () => number } {
    let acquired = 0;
    let released = 0;
    const counting: ControlClient = {
      createDataset: (...a) => client.createDataset(...a),
      updateDataset: (...a) => client.updateDataset(...a),
      deleteDataset: (...a) => client.deleteDataset(...a),
      waitForCluster: (...a) => client.waitForCluster(...a),
      // Leases taken, not asked for: a Mount asks on the followed configuration first and, refused because it changed
      // meanwhile (412: nothing taken), once more without condition — under load the release of a previous run is
      // often that change (the copy-up test saw 3 asks for 2 leases, session 20).
      acquireLease: (...a) => client.acquireLease(...a).then((r) => (acquired++, r)),
      releaseLease: (...a) => (released++, client.releaseLease(...a)),
    };
    return { client: counting, acquired: () => acquired, released: () => released };
  }

  it("Docker's create-time Mount, Unmount, Mount keeps the lease: no release and re-acquire in between", async () => {
    const c = countingClient();
    const a = await backendFor(NODE_A, 5_000, { client: c.client });
    await a.create({ Name: 'vol1' });
    const first = await a.mount({ Name: 'vol1', ID: 'copy-up' });
    await a.unmount({ Name: 'vol1', ID: 'copy-up' });
    const second = await a.mount({ Name: 'vol1', ID: 'container' });
    expect(second).toEqual(first);
    expect([c.acquired(), c.released()]).toEqual([1, 0]);
    expect(await client.listLeases()).toHaveLength(1);
    // The container ran (longer than a copy-up): its Unmount releases at once.
    await new Promise((r) => setTimeout(r, 100));
    await a.unmount({ Name: 'vol1', ID: 'container' });
    for (let i = 0; i < 100 && c.released() === 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(c.released()).toBe(1);
    await a.settled();
    expect(await client.listLeases()).toEqual([]);
  });

  it("the copy-up window ends when Docker's Unmount arrives: an Unmount whose turn in the volume's queue comes past the window still keeps the lease (issue 23)", async () => {
    const c = countingClient();
    // A call ahead of the Unmount in the volume's queue takes 200 ms (here a slow grow; on a loaded host, any call).
    const slow: ControlClient = {
      ...c.client,
      updateDataset: async (...args) => {
        await new Promise((r) => setTimeout(r, 200));
        return c.client.updateDataset(...args);
      },
    };
    const a = await backendFor(NODE_A, 5_000, { client: slow, copyUpMaxMs: 50 });
    await a.create({ Name: 'vol1' });
    const first = await a.mount({ Name: 'vol1', ID: 'copy-up' });
    const growing = a.create({ Name: 'vol1', Opts: { size: '2G' } });
    await a.unmount({ Name: 'vol1', ID: 'copy-up' }); // arrived at once, done ~200 ms later
    await growing;
    expect(await a.mount({ Name: 'vol1', ID: 'container' })).toEqual(first);
    expect([c.acquired(), c.released()]).toEqual([1, 0]);
    // The same with a clock that jumps while the Unmount waits: only its arrival counts.
    let t = Date.now();
    const b = await backendFor(NODE_A, 5_000, { client: c.client, copyUpMaxMs: 50, now: () => t });
    const [acquired, released] = [c.acquired(), c.released()]; // b's start re-took vol1's lease (a's registry)
    await b.create({ Name: 'vol2' });
    const mounted = await b.mount({ Name: 'vol2', ID: 'copy-up' });
    t += 10;
    const unmounting = b.unmount({ Name: 'vol2', ID: 'copy-up' });
    t += 200;
    await unmounting;
    expect(await b.mount({ Name: 'vol2', ID: 'container' })).toEqual(mounted);
    expect([c.acquired(), c.released()]).toEqual([acquired + 1, released]);
    // The container's own Unmount, arriving after it ran (past the window), releases at once.
    t += 500;
    await unmountSettled(b, { Name: 'vol2', ID: 'container' });
    expect([c.acquired(), c.released()]).toEqual([acquired + 1, released + 1]);
  });

  it('a stray Unmount (an ID no container here has) during the copy-up grace does not give away the kept lease', async () => {
    const a = await backendFor(NODE_A);
    await a.create({ Name: 'vol1' });
    await a.mount({ Name: 'vol1', ID: 'copy-up' });
    await a.unmount({ Name: 'vol1', ID: 'copy-up' }); // the lease is kept for the container-start Mount
    await a.unmount({ Name: 'vol1', ID: 'stray' }); // say, Docker repeating an old container's Unmount
    await a.mount({ Name: 'vol1', ID: 'container' });
    const d = (await client.listDatasets()).find((x) => x.metadata.name === 'vol1')!;
    expect(await client.listLeases()).toEqual([
      { dataset_id: d.dataset_id, node_uuid: NODE_A, expires: null, holders: ['docker'] },
    ]);
  });

  it("the copy-up cycle of an existing volume keeps the lease too; each run's own Unmount releases it", async () => {
    const c = countingClient();
    const made = await backendFor(NODE_A);
    await made.create({ Name: 'vol1' });
    await made.close();
    // The backend's clock is the test's: on a loaded host the real time between the Mount's answer and the copy-up
    // Unmount exceeded COPY_UP_MAX_MS (50 ms), and the lease was released and taken again (acquired 3, not 2).
    let t = Date.now();
    const a = await backendFor(NODE_A, 5_000, { client: c.client, now: () => t });
    for (let run = 1; run <= 2; run++) {
      const first = await a.mount({ Name: 'vol1', ID: `copy-up-${run}` });
      t += 10; // Docker's copy-up Unmount follows at once
      await a.unmount({ Name: 'vol1', ID: `copy-up-${run}` });
      expect(await a.mount({ Name: 'vol1', ID: `container-${run}` })).toEqual(first);
      expect([c.acquired(), c.released()]).toEqual([run, run - 1]);
      t += 500; // the container ran, well past the copy-up window
      await new Promise((r) => setTimeout(r, 100));
      await a.unmount({ Name: 'vol1', ID: `container-${run}` });
      for (let i = 0; i < 1000 && c.released() < run; i++) await new Promise((r) => setTimeout(r, 10));
      expect(c.released()).toBe(run);
    }
    await a.settled();
    expect(await client.listLeases()).toEqual([]);
  });

  it('a lease kept for the create-time cycle is released when no Mount follows, or before a Remove', async () => {
    const a = await backendFor(NODE_A, 5_000, { createCycleGraceMs: 100 });
    await a.create({ Name: 'vol1' });
    await a.mount({ Name: 'vol1', ID: 'copy-up' });
    await a.unmount({ Name: 'vol1', ID: 'copy-up' });
    expect(await client.listLeases()).toHaveLength(1);
    const deadline = Date.now() + 3_000;
    while ((await client.listLeases()).length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(await client.listLeases()).toEqual([]);

    const b = await backendFor(NODE_A, 5_000, { createCycleGraceMs: 60_000 });
    await b.create({ Name: 'vol3' });
    await b.mount({ Name: 'vol3', ID: 'copy-up' });
    await b.unmount({ Name: 'vol3', ID: 'copy-up' });
    await b.remove({ Name: 'vol3' });
    expect((await client.listDatasets()).find((d) => d.metadata.name === 'vol3')?.deleted).toBe(true);
    expect(await client.listLeases()).toEqual([]);
  });

  it('a first Unmount long after its Mount (a container that ran) releases at once, so another host can take the volume', async () => {
    const c = countingClient();
    const a = await backendFor(NODE_A, 5_000, { client: c.client, copyUpMaxMs: 50, createCycleGraceMs: 60_000 });
    const b = await backendFor(NODE_B);
    await a.create({ Name: 'vol1' });
    await a.mount({ Name: 'vol1', ID: 'container' }); // as with volume-nocopy: no copy-up cycle
    await new Promise((r) => setTimeout(r, 100));
    await a.unmount({ Name: 'vol1', ID: 'container' });
    for (let i = 0; i < 200 && c.released() === 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(c.released()).toBe(1);
    await expect(b.mount({ Name: 'vol1', ID: 'x' })).resolves.toMatchObject({
      Mountpoint: expect.stringMatching(/^\/flocker-b\//),
    });
  });

  it('Creates of one new name on two hosts at once make one dataset (its name-based id), and a removed name can be made again', async () => {
    const a = await backendFor(NODE_A);
    const b = await backendFor(NODE_B);
    await Promise.all([a.create({ Name: 'shared' }), b.create({ Name: 'shared' })]);
    const made = (await client.listDatasets()).filter((d) => d.metadata.name === 'shared');
    expect(made).toEqual([expect.objectContaining({ dataset_id: volumeDatasetId('shared') })]);
    expect(await b.get({ Name: 'shared' })).toMatchObject({ Volume: { Name: 'shared' } });
    // Removed: its id stays with the deleted dataset, so the new volume gets another.
    await a.remove({ Name: 'shared' });
    await a.create({ Name: 'shared' });
    const again = (await client.listDatasets()).filter((d) => d.metadata.name === 'shared');
    expect(again).toHaveLength(2);
    expect(again.find((d) => !d.deleted)?.dataset_id).not.toBe(volumeDatasetId('shared'));
    expect(await a.get({ Name: 'shared' })).toMatchObject({
      Volume: { Status: { dataset_id: again.find((d) => !d.deleted)?.dataset_id } },
    });
  });

  it('Remove answers once the dataset is marked deleted, before the agent destroyed it; the name made again at once is a new, empty dataset, never the old one', async () => {
    // While `gate` is closed long-polls answer nobody: the followed snapshot still shows the removed volume live.
    let gate: Promise<void> = Promise.resolve();
    let open = (): void => undefined;
    const lagging: ControlClient = {
      ...client,
      createDataset: (...a) => client.createDataset(...a),
      updateDataset: (...a) => client.updateDataset(...a),
      deleteDataset: (...a) => client.deleteDataset(...a),
      acquireLease: (...a) => client.acquireLease(...a),
      releaseLease: (...a) => client.releaseLease(...a),
      waitForCluster: async (since, timeoutMs) => {
        const s = await client.waitForCluster(since, timeoutMs);
        if (since !== undefined && (timeoutMs ?? 1) > 0) await gate;
        return s;
      },
    };
    const a = await backendFor(NODE_A, 5_000, { client: lagging });
    await a.create({ Name: 'reborn' });
    const first = await a.mount({ Name: 'reborn', ID: 'c1' });
    await unmountSettled(a, { Name: 'reborn', ID: 'c1' });
    const old = (await client.listDatasets()).find((d) => d.metadata.name === 'reborn')!;
    expect(first.Mountpoint).toBe(`/flocker-a/${old.dataset_id}`);
    // A stuck agent: the old volume stays mounted (its destroy has not even started).
    agentA.paused = true;
    gate = new Promise((r) => (open = r));
    const t = Date.now();
    await a.remove({ Name: 'reborn' });
    // Not held up by the stuck agent (the alternative: the 5 s mount timeout or more).
    expect(Date.now() - t).toBeLessThan(2_500);
    expect((await client.waitForCluster(undefined, 0)).nodes[0]?.manifestations).toEqual([
      expect.objectContaining({ dataset_id: old.dataset_id, status: 'mounted' }),
    ]);
    expect(a.watcher.followed()?.datasets.find((d) => d.dataset_id === old.dataset_id)).toMatchObject({
      deleted: false,
    });
    // Docker forgot the volume: its next Get misses, and the same name is made again.
    await expect(a.get({ Name: 'reborn' })).rejects.toMatchObject({ code: 'NO_SUCH_VOLUME' });
    expect((await a.list()).Volumes).toEqual([]);
    await a.create({ Name: 'reborn' });
    const live = (await client.listDatasets()).filter((d) => d.metadata.name === 'reborn' && !d.deleted);
    expect(live).toHaveLength(1);
    expect(live[0]?.dataset_id).not.toBe(old.dataset_id);
    expect(await a.get({ Name: 'reborn' })).toMatchObject({ Volume: { Status: { dataset_id: live[0]?.dataset_id } } });
    agentA.paused = false;
    open();
    await agentA.poke();
    const again = await a.mount({ Name: 'reborn', ID: 'c2' });
    expect(again.Mountpoint).toBe(`/flocker-a/${live[0]?.dataset_id}`);
    await unmountSettled(a, { Name: 'reborn', ID: 'c2' });
    // Removing a leased volume is still refused, naming the holder.
    await a.create({ Name: 'held' });
    const held = (await client.listDatasets()).find((d) => d.metadata.name === 'held')!;
    await client.acquireLease({ dataset_id: held.dataset_id, node_uuid: NODE_B, expires: null });
    await expect(a.remove({ Name: 'held' })).rejects.toThrow(/volume held is in use by a container on host host-b/);
    expect((await client.listDatasets()).find((d) => d.dataset_id === held.dataset_id)?.deleted).toBe(false);
  });

  describe('Mount of an existing volume mounted here: the lease asked for on the followed configuration', () => {
    /**
     * A client whose long-polls answer nobody while the gate is closed (the followed snapshot lags
     * every change from then on), logging each lease asked for and on which configuration tag.
     */
    function gatedClient(): { client: ControlClient; close(): void; open(): void; leases: string[] } {
      let gate: Promise<void> = Promise.resolve();
      let release = (): void => undefined;
      const leases: string[] = [];
      const gated: ControlClient = {
        createDataset: (...a) => client.createDataset(...a),
        updateDataset: (...a) => client.updateDataset(...a),
        deleteDataset: (...a) => client.deleteDataset(...a),
        releaseLease: (...a) => client.releaseLease(...a),
        acquireLease: (req, options) => {
          leases.push(options?.ifConfigurationMatches !== undefined ? `on ${options.ifConfigurationMatches}` : 'any');
          return client.acquireLease(req, options);
        },
        waitForCluster: async (since, timeoutMs) => {
          const s = await client.waitForCluster(since, timeoutMs);
          if (since !== undefined && (timeoutMs ?? 1) > 0) await gate;
          return s;
        },
      };
      return {
        client: gated,
        close: () => {
          gate = new Promise((r) => (release = r));
        },
        open: () => release(),
        leases,
      };
    }

    /** A volume of node A, mounted there, no lease; `a` follows a snapshot that shows it so. */
    async function mountedIdle(a: FlockerVolumeBackend): Promise<string> {
      await a.create({ Name: 'vol1' });
      const id = (await client.listDatasets())[0]!.dataset_id;
      await a.watcher.waitFor((s) => mountedPath(s, NODE_A, id), 2_000);
      return id;
    }

    it('granted: the Mount answers at once, without waiting for the push of its own lease', async () => {
      const g = gatedClient();
      const a = await backendFor(NODE_A, 1_500, { client: g.client });
      const id = await mountedIdle(a);
      const tag = a.watcher.followed()?.configuration_tag;
      g.close(); // from now on no snapshot reaches the plugin: not even the one showing its lease
      await expect(a.mount({ Name: 'vol1', ID: 'c1' })).resolves.toEqual({ Mountpoint: `/flocker-a/${id}` });
      expect(g.leases).toEqual([`on ${tag}`]);
      expect(await client.listLeases()).toEqual([
        { dataset_id: id, node_uuid: NODE_A, expires: null, holders: ['docker'] },
      ]);
      g.open();
      await unmountSettled(a, { Name: 'vol1', ID: 'c1' });
      expect(await client.listLeases()).toEqual([]);
    });

    it('the configuration changed since the followed snapshot (412): the lease is asked for again without condition, and the Mount waits for the snapshot that shows it', async () => {
      const g = gatedClient();
      const a = await backendFor(NODE_A, 5_000, { client: g.client });
      const id = await mountedIdle(a);
      const tag = a.watcher.followed()?.configuration_tag;
      g.close();
      await client.createDataset({ primary: NODE_B, metadata: { name: 'elsewhere' } });
      let answered = false;
      const mounting = a.mount({ Name: 'vol1', ID: 'c1' }).finally(() => (answered = true));
      for (let i = 0; i < 100 && (await client.listLeases()).length === 0; i++)
        await new Promise((r) => setTimeout(r, 10));
      await new Promise((r) => setTimeout(r, 200));
      expect(g.leases).toEqual([`on ${tag}`, 'any']);
      expect(await client.listLeases()).toEqual([expect.objectContaining({ dataset_id: id, node_uuid: NODE_A })]);
      expect(answered).toBe(false);
      g.open();
      await expect(mounting).resolves.toEqual({ Mountpoint: `/flocker-a/${id}` });
    });

    it('a followed snapshot from before a move away never answers the Mount, though it shows the volume mounted here', async () => {
      const g = gatedClient();
      const a = await backendFor(NODE_A, 1_500, { client: g.client });
      const id = await mountedIdle(a);
      g.close();
      // Moved to B (no lease held it): agent A unmounts it; the plugin's snapshot still shows it mounted on A.
      await client.updateDataset(id, { primary: NODE_B });
      expect(mountedPath(a.watcher.followed()!, NODE_A, id)).toBe(`/flocker-a/${id}`);
      const mounting = a.mount({ Name: 'vol1', ID: 'c1' });
      mounting.catch(() => undefined);
      await new Promise((r) => setTimeout(r, 300));
      g.open();
      await expect(mounting).rejects.toMatchObject({ code: 'MOUNT_TIMEOUT' });
      expect(g.leases[0]).toMatch(/^on /);
      await a.settled();
      expect(await client.listLeases()).toEqual([]);
    });
  });

  it('Get of an unknown volume answers from the followed snapshot; Create of a name made elsewhere meanwhile makes no duplicate', async () => {
    let refreshes = 0;
    // Long-polls after the first never answer: the followed snapshot lags every change.
    const lagging: ControlClient = {
      ...client,
      createDataset: (...a) => client.createDataset(...a),
      updateDataset: (...a) => client.updateDataset(...a),
      deleteDataset: (...a) => client.deleteDataset(...a),
      acquireLease: (...a) => client.acquireLease(...a),
      releaseLease: (...a) => client.releaseLease(...a),
      waitForCluster: (since, timeoutMs) => {
        if (timeoutMs === 0) refreshes++;
        return since !== undefined && (timeoutMs ?? 1) > 0
          ? new Promise(() => undefined)
          : client.waitForCluster(since, timeoutMs);
      },
    };
    const a = await backendFor(NODE_A, 5_000, { client: lagging });
    const other = await backendFor(NODE_A);
    const before = refreshes;
    await expect(a.get({ Name: 'nope' })).rejects.toMatchObject({ code: 'NO_SUCH_VOLUME' });
    expect(refreshes).toBe(before);
    await other.create({ Name: 'made-elsewhere' });
    await a.create({ Name: 'made-elsewhere' });
    expect((await client.listDatasets()).filter((d) => d.metadata.name === 'made-elsewhere')).toHaveLength(1);
    expect(await a.get({ Name: 'made-elsewhere' })).toMatchObject({ Volume: { Name: 'made-elsewhere' } });
    // Docker's Get right after its Create: answered from the POST's answer, no fresh look (the snapshot lags).
    const beforeMine = refreshes;
    await a.create({ Name: 'mine' });
    expect(await a.get({ Name: 'mine' })).toMatchObject({
      Volume: { Name: 'mine', Status: { node_uuid: NODE_A, state: 'pending' } },
    });
    expect(refreshes).toBe(beforeMine);
  });

  it('Create -o snapshot-schedule/-o snapshot-keep stores the schedule; the service refuses one too frequent; a repeated create elsewhere changes it', async () => {
    const SCHEDULE = 'clusterhq:flocker:snapshot-schedule';
    const KEEP = 'clusterhq:flocker:snapshot-keep';
    const a = await backendFor(NODE_A);
    await a.create({ Name: 'db', Opts: { 'snapshot-schedule': 'hourly', 'snapshot-keep': '24' } });
    expect((await client.listDatasets())[0]?.metadata).toMatchObject({ [SCHEDULE]: 'hourly', [KEEP]: '24' });
    expect((await a.get({ Name: 'db' })).Volume.Status).toMatchObject({ snapshot_schedule: 'hourly, keep 24' });
    await expect(a.create({ Name: 'often', Opts: { 'snapshot-schedule': 'every 1m' } })).rejects.toThrow(
      /minimum interval of 5m/,
    );
    expect(await client.listDatasets()).toHaveLength(1);
    const b = await backendFor(NODE_B);
    await b.create({ Name: 'db', Opts: { 'snapshot-schedule': 'daily' } });
    expect((await client.listDatasets())[0]?.metadata).toMatchObject({ [SCHEDULE]: 'daily', [KEEP]: '24' });
  });

  it('Create -o replicas=1 stores clusterhq:flocker:replicas; a repeated create changes it; a bad count creates nothing', async () => {
    const REPLICAS = 'clusterhq:flocker:replicas';
    const a = await backendFor(NODE_A);
    await a.create({ Name: 'db', Opts: { replicas: '1' } });
    expect((await client.listDatasets())[0]?.metadata).toMatchObject({ name: 'db', [REPLICAS]: '1' });
    await expect(a.create({ Name: 'two', Opts: { replicas: '2' } })).rejects.toMatchObject({ code: 'INVALID_OPTION' });
    expect(await client.listDatasets()).toHaveLength(1);
    const b = await backendFor(NODE_B);
    await b.create({ Name: 'db', Opts: { replicas: '0' } });
    expect((await client.listDatasets())[0]?.metadata).toMatchObject({ [REPLICAS]: '0' });
  });

  it('Capabilities say global scope', async () => {
    const a = await backendFor(NODE_A);
    expect(await a.capabilities()).toEqual({ Capabilities: { Scope: 'global' } });
  });
});

/**
 * Issue 23: a new volume's first Mount is answered when the agent's mount of it shows in the kernel's
 * table, not one report and one push later — only for a dataset made by this plugin's Create, under a
 * lease granted on the followed configuration (showing it live, here, reported nowhere), and only on
 * the first mount seen at its path. Otherwise the Mount waits for the snapshot as before. Against a real
 * control service (in-process), a fake agent held from reporting, and a fake mount-event source.
 */
import { FlockerApiError, type FlockerClient } from '@flocker/api';
import type { ControlClient, FlockerVolumeBackend } from './FlockerVolumeBackend';
import { MountTable, SOURCE_READY_MS } from './MountTable';
import { BackendTestBed, HOST_A, NODE_A, silentLogger } from './testing';
import { FakeMountSource, followedFakeTable, settledWithin } from './testing/FakeMountSource';

describe('a new volume answered from the kernel’s first mount (issue 23)', () => {
  let bed: BackendTestBed;
  let client: FlockerClient;
  let src: FakeMountSource;
  let table: MountTable;
  let conditionalRefused: boolean;

  beforeEach(async () => {
    bed = await BackendTestBed.start('plugin-first-mount-', [HOST_A]);
    client = bed.client;
    ({ src, table } = followedFakeTable(HOST_A.mountRoot));
    conditionalRefused = false;
    // The agent does the work but is slow to report it: the snapshot shows nothing mounted until unpaused.
    bed.agents[0]!.paused = true;
  });

  afterEach(async () => {
    bed.agents[0]!.paused = false;
    table.close();
    await bed.close();
  });

  /** The bed's client, its conditional lease refused (412) while conditionalRefused: the configuration changed. */
  const controlClient = (): ControlClient => ({
    createDataset: (r) => client.createDataset(r),
    updateDataset: (id, r) => client.updateDataset(id, r),
    deleteDataset: (id, o) => client.deleteDataset(id, o),
    releaseLease: (id, o) => client.releaseLease(id, o),
    waitForCluster: (since, t, o) => client.waitForCluster(since, t, o),
    acquireLease: async (r, o) => {
      if (conditionalRefused && o?.ifConfigurationMatches !== undefined)
        throw new FlockerApiError(412, 'CONFIGURATION_CHANGED', 'changed');
      return client.acquireLease(r, o);
    },
  });

  const backend = (withTable = true): Promise<FlockerVolumeBackend> =>
    bed.backend(NODE_A, {
      client: controlClient(),
      mountTimeoutMs: 3_000,
      ...(withTable ? { mountTable: { table, hostMountRoot: HOST_A.mountRoot } } : {}),
    });

  /** Until the backend follows a snapshot showing the volume (Docker's Mount comes after that in practice). */
  const followedShows = async (b: FlockerVolumeBackend, name: string): Promise<string> => {
    for (;;) {
      const d = b.watcher.followed()?.datasets.find((x) => x.metadata.name === name && !x.deleted);
      if (d !== undefined) return d.dataset_id;
      await new Promise((r) => setTimeout(r, 10));
    }
  };

  /** The agent reports at last: the snapshot shows the volume mounted. */
  const agentReports = async () => {
    bed.agents[0]!.paused = false;
    await bed.agents[0]!.poke();
  };

  it('answers the Mount at the kernel’s mount, before the snapshot shows it mounted, with the lease held', async () => {
    const b = await backend();
    await b.create({ Name: 'v1', Opts: null });
    const id = await followedShows(b, 'v1');
    const mount = b.mount({ Name: 'v1', ID: 'm1' });
    expect(await settledWithin(mount, 100)).toBe('pending');
    src.emit('mount', `${HOST_A.mountRoot}/${id}`);
    expect(await settledWithin(mount, 1_000)).toEqual({ Mountpoint: `${HOST_A.mountRoot}/${id}` });
    // The snapshot wait it raced is given up, not left to time out (a volume let go and removed never shows mounted
    // under the lease: a waiter and timer would stay for the mount timeout and count as a failed wait).
    expect(b.watcher['waiters'].size).toBe(0);
    const s = await client.waitForCluster(undefined, 0);
    expect(s.leases.find((l) => l.dataset_id === id)?.node_uuid).toBe(NODE_A);
    // The path answered is the one the agent then reports.
    await agentReports();
    const reported = (await client.waitForCluster(undefined, 0)).nodes
      .find((n) => n.uuid === NODE_A)
      ?.manifestations.find((m) => m.dataset_id === id);
    expect(reported?.path).toBe(`${HOST_A.mountRoot}/${id}`);
  });

  it('not when the lease could not be had on the followed configuration (it changed): the snapshot decides', async () => {
    const b = await backend();
    await b.create({ Name: 'v2', Opts: null });
    const id = await followedShows(b, 'v2');
    conditionalRefused = true;
    const mount = b.mount({ Name: 'v2', ID: 'm1' });
    src.emit('mount', `${HOST_A.mountRoot}/${id}`);
    expect(await settledWithin(mount, 300)).toBe('pending');
    await agentReports();
    expect(await settledWithin(mount, 2_000)).toEqual({ Mountpoint: `${HOST_A.mountRoot}/${id}` });
  });

  it('not when the kernel showed an umount at the path since the Create (not the first mount)', async () => {
    const b = await backend();
    await b.create({ Name: 'v3', Opts: null });
    const id = await followedShows(b, 'v3');
    src.emit('mount', `${HOST_A.mountRoot}/${id}`);
    src.emit('umount', `${HOST_A.mountRoot}/${id}`);
    const mount = b.mount({ Name: 'v3', ID: 'm1' });
    src.emit('mount', `${HOST_A.mountRoot}/${id}`);
    expect(await settledWithin(mount, 300)).toBe('pending');
    await agentReports();
    expect(await settledWithin(mount, 2_000)).toEqual({ Mountpoint: `${HOST_A.mountRoot}/${id}` });
  });

  it('not for a volume this plugin did not make (made through the API): the snapshot decides', async () => {
    const b = await backend();
    const d = await client.createDataset({ primary: NODE_A, metadata: { name: 'v4' } });
    await followedShows(b, 'v4');
    const mount = b.mount({ Name: 'v4', ID: 'm1' });
    src.emit('mount', `${HOST_A.mountRoot}/${d.dataset_id}`);
    expect(await settledWithin(mount, 300)).toBe('pending');
    await agentReports();
    expect(await settledWithin(mount, 2_000)).toEqual({ Mountpoint: `${HOST_A.mountRoot}/${d.dataset_id}` });
  });

  it('not when the mount-table source stopped after the Create (events may have been missed)', async () => {
    const b = await backend();
    await b.create({ Name: 'v5', Opts: null });
    const id = await followedShows(b, 'v5');
    src.end('findmnt exited');
    const mount = b.mount({ Name: 'v5', ID: 'm1' });
    src.emit('mount', `${HOST_A.mountRoot}/${id}`);
    expect(await settledWithin(mount, 300)).toBe('pending');
    await agentReports();
    expect(await settledWithin(mount, 2_000)).toEqual({ Mountpoint: `${HOST_A.mountRoot}/${id}` });
  });

  it('without a mount table the Mount waits for the snapshot, as before', async () => {
    const b = await backend(false);
    await b.create({ Name: 'v6', Opts: null });
    const id = await followedShows(b, 'v6');
    const mount = b.mount({ Name: 'v6', ID: 'm1' });
    src.emit('mount', `${HOST_A.mountRoot}/${id}`);
    expect(await settledWithin(mount, 300)).toBe('pending');
    await agentReports();
    expect(await settledWithin(mount, 2_000)).toEqual({ Mountpoint: `${HOST_A.mountRoot}/${id}` });
  });

  it('a table not followed yet (on demand) is started by the Create, and follows in time for its Mount', async () => {
    table.close();
    src = new FakeMountSource();
    src.readyNow = true; // the run polls as soon as it starts (findmnt: a millisecond or two after its spawn)
    table = new MountTable(HOST_A.mountRoot, silentLogger, src, () => 0); // the clock never reaches SOURCE_READY_MS
    const b = await backend();
    expect(src.starts).toBe(0);
    await b.create({ Name: 'v7', Opts: null });
    expect(src.starts).toBe(1);
    const id = await followedShows(b, 'v7');
    const mount = b.mount({ Name: 'v7', ID: 'm1' });
    expect(await settledWithin(mount, 100)).toBe('pending');
    src.emit('mount', `${HOST_A.mountRoot}/${id}`);
    expect(await settledWithin(mount, 1_000)).toEqual({ Mountpoint: `${HOST_A.mountRoot}/${id}` });
  });

  it('a table paused while idle is resumed by the Create, and the Mount is answered at the kernel’s mount', async () => {
    table.close();
    src = new FakeMountSource();
    const clock = { ms: 0 };
    table = new MountTable(HOST_A.mountRoot, silentLogger, src, () => clock.ms, 5);
    table.start();
    clock.ms = SOURCE_READY_MS;
    await new Promise((r) => setTimeout(r, 30));
    expect(src.paused).toBe(true);
    const b = await backend();
    await b.create({ Name: 'v8', Opts: null });
    expect(src.paused).toBe(false);
    const id = await followedShows(b, 'v8');
    const mount = b.mount({ Name: 'v8', ID: 'm1' });
    expect(await settledWithin(mount, 100)).toBe('pending');
    src.emit('mount', `${HOST_A.mountRoot}/${id}`);
    expect(await settledWithin(mount, 1_000)).toEqual({ Mountpoint: `${HOST_A.mountRoot}/${id}` });
    expect(src.starts).toBe(1);
  });
});

/**
 * Issue 23 (session 25): a Mount that moves a volume here (its lease POST carries move_here) is answered at the first
 * of the snapshot showing it mounted here under the lease and the kernel showing the agent's fresh mount of it here:
 * the agent's report and its push leave `docker run`'s path. The grant is the proof that it stays (lease and move in
 * one write; nothing moves a dataset away from its lease holder); a mount at the path from before the Mount, or one
 * after an umount seen there, is never taken. Against a real control service (in-process), fake agents (B's held from
 * reporting) and a fake mount-event source.
 */
import { FlockerApiError, type FlockerClient } from '@flocker/api';
import type { ControlClient, FlockerVolumeBackend } from './FlockerVolumeBackend';
import type { MountTable } from './MountTable';
import { BackendTestBed, GiB, HOST_A, HOST_B, NODE_A, NODE_B } from './testing';
import { type FakeMountSource, followedFakeTable, settledWithin } from './testing/FakeMountSource';

describe('a Mount moving a volume here, answered at the kernel’s fresh mount (issue 23)', () => {
  let bed: BackendTestBed;
  let client: FlockerClient;
  let src: FakeMountSource;
  let table: MountTable;

  beforeEach(async () => {
    bed = await BackendTestBed.start('plugin-move-mount-', [HOST_A, HOST_B]);
    client = bed.client;
    ({ src, table } = followedFakeTable(HOST_B.mountRoot));
  });

  afterEach(async () => {
    for (const a of bed.agents) a.paused = false;
    table.close();
    await bed.close();
  });

  /** Host B's backend, following the fake table (or not); `c`: its client (the bed's by default). */
  const backendB = (withTable = true, c?: ControlClient): Promise<FlockerVolumeBackend> =>
    bed.backend(NODE_B, {
      mountTimeoutMs: 3_000,
      ...(c !== undefined ? { client: c } : {}),
      ...(withTable ? { mountTable: { table, hostMountRoot: HOST_B.mountRoot } } : {}),
    });

  /** A volume on host A (mounted there, no lease), as B's backend follows it. */
  const onA = async (b: FlockerVolumeBackend, name: string): Promise<string> => {
    const d = await client.createDataset({ primary: NODE_A, metadata: { name }, maximum_size: GiB });
    await b.watcher.waitFor(
      (s) =>
        s.nodes.some((n) => n.uuid === NODE_A && n.manifestations.some((m) => m.dataset_id === d.dataset_id))
          ? true
          : undefined,
      10_000,
    );
    return d.dataset_id;
  };

  /** Until the configuration shows B primary and lease holder (B's agent may mount it from then on). */
  const movedToB = async (id: string): Promise<void> => {
    for (let i = 0; i < 1_000; i++) {
      const s = await client.waitForCluster(undefined, 0);
      const leased = s.leases.some((l) => l.dataset_id === id && l.node_uuid === NODE_B);
      if (leased && s.datasets.some((d) => d.dataset_id === id && d.primary === NODE_B)) return;
      await new Promise((r) => setTimeout(r, 10));
    }
    throw new Error('never moved to B');
  };

  const path = (id: string) => `${HOST_B.mountRoot}/${id}`;

  /** Until the Mount tracks the dataset's path in the table (its lease request goes out after that). */
  const tracking = async (id: string): Promise<void> => {
    for (let i = 0; i < 1_000 && !table['tracked'].has(id); i++) await new Promise((r) => setTimeout(r, 5));
    expect(table['tracked'].has(id)).toBe(true);
  };

  it('answers at the agent’s fresh mount, before its report, with the lease held and the move made', async () => {
    const b = await backendB();
    const id = await onA(b, 'v1');
    // B's agent mounts but does not report yet: the snapshot never shows it mounted here meanwhile.
    bed.agents[1]!.paused = true;
    const mount = b.mount({ Name: 'v1', ID: 'm1' });
    await movedToB(id);
    expect(await settledWithin(mount, 100)).toBe('pending');
    src.emit('mount', path(id));
    expect(await settledWithin(mount, 5_000)).toEqual({ Mountpoint: path(id) });
    const s = await client.waitForCluster(undefined, 0);
    expect(s.leases.find((l) => l.dataset_id === id)?.node_uuid).toBe(NODE_B);
    expect(s.nodes.find((n) => n.uuid === NODE_B)?.manifestations.some((m) => m.dataset_id === id)).toBe(false);
    // The Mount's tracker is gone with it.
    expect(table['tracked'].size).toBe(0);
  });

  it('after the hand-over of a lease kept idle on A, answers at the agent’s fresh mount on B', async () => {
    const a = await bed.backend(NODE_A, { idleLeaseMs: 60_000 });
    await a.create({ Name: 'idle' });
    await a.mount({ Name: 'idle', ID: 'c1' });
    await new Promise((r) => setTimeout(r, 100)); // past Docker's copy-up window: an exit, the lease kept idle
    await a.unmount({ Name: 'idle', ID: 'c1' });
    await a.settled({ keepIdle: true });
    const id = (await client.listDatasets()).find((d) => d.metadata['name'] === 'idle')!.dataset_id;
    expect((await client.listLeases()).find((l) => l.dataset_id === id)?.node_uuid).toBe(NODE_A);
    const b = await backendB();
    bed.agents[1]!.paused = true;
    const mount = b.mount({ Name: 'idle', ID: 'm1' });
    await movedToB(id);
    expect(await settledWithin(mount, 100)).toBe('pending');
    src.emit('mount', path(id));
    expect(await settledWithin(mount, 5_000)).toEqual({ Mountpoint: path(id) });
    expect((await client.listLeases()).find((l) => l.dataset_id === id)?.node_uuid).toBe(NODE_B);
  });

  it('never takes a mount already at the path when the Mount began, nor one after an umount: the snapshot answers', async () => {
    const b = await backendB();
    const id = await onA(b, 'v2');
    // A mount left at B's path from before (an agent not done unmounting for an earlier move away).
    src.emit('mount', path(id));
    bed.agents[1]!.paused = true;
    const mount = b.mount({ Name: 'v2', ID: 'm1' });
    await movedToB(id);
    // Its umount and a new mount: not a first mount since tracking began either.
    src.emit('umount', path(id));
    src.emit('mount', path(id));
    expect(await settledWithin(mount, 300)).toBe('pending');
    bed.agents[1]!.paused = false;
    await bed.agents[1]!.poke();
    expect(await settledWithin(mount, 5_000)).toEqual({ Mountpoint: path(id) });
  });

  it('an umount seen at the path after the Mount began spoils the tracker', async () => {
    const b = await backendB();
    const id = await onA(b, 'v3');
    bed.agents[1]!.paused = true;
    const mount = b.mount({ Name: 'v3', ID: 'm1' });
    await tracking(id);
    src.emit('umount', path(id));
    await movedToB(id);
    src.emit('mount', path(id));
    expect(await settledWithin(mount, 300)).toBe('pending');
    bed.agents[1]!.paused = false;
    await bed.agents[1]!.poke();
    expect(await settledWithin(mount, 5_000)).toEqual({ Mountpoint: path(id) });
  });

  it('without a followed table the snapshot answers, as before', async () => {
    const b = await backendB(false);
    const id = await onA(b, 'v4');
    bed.agents[1]!.paused = true;
    const mount = b.mount({ Name: 'v4', ID: 'm1' });
    await movedToB(id);
    src.emit('mount', path(id));
    expect(await settledWithin(mount, 300)).toBe('pending');
    bed.agents[1]!.paused = false;
    await bed.agents[1]!.poke();
    expect(await settledWithin(mount, 5_000)).toEqual({ Mountpoint: path(id) });
  });

  it('with a followed table and no mount event, the snapshot answers and the tracker goes', async () => {
    const b = await backendB();
    const id = await onA(b, 'v5');
    expect(await settledWithin(b.mount({ Name: 'v5', ID: 'm1' }), 5_000)).toEqual({ Mountpoint: path(id) });
    expect(table['tracked'].size).toBe(0);
  });

  it('a refused lease takes no kernel answer and leaves no tracker', async () => {
    const refusing: ControlClient = {
      createDataset: (...a) => client.createDataset(...a),
      updateDataset: (...a) => client.updateDataset(...a),
      deleteDataset: (...a) => client.deleteDataset(...a),
      waitForCluster: (...a) => client.waitForCluster(...a),
      acquireLease: () => Promise.reject(new FlockerApiError(403, 'FORBIDDEN', 'not allowed')),
      releaseLease: (...a) => client.releaseLease(...a),
    };
    const b = await backendB(true, refusing);
    const id = await onA(b, 'v6');
    const mount = b.mount({ Name: 'v6', ID: 'm1' });
    src.emit('mount', path(id));
    await expect(mount).rejects.toThrow('not allowed');
    expect(table['tracked'].size).toBe(0);
    expect((await client.getDataset(id)).primary).toBe(NODE_A);
  });
});

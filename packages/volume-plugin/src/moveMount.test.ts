/**
 * Issue 23: a Mount of a volume that lives on another host is answered at the first of the snapshot showing it
 * mounted here under the lease and the kernel showing the agent's fresh mount of it here, once a state read after
 * the lease and the primary change proves it stays here (moveMount.ts). A mount there from before the move is never
 * taken. Pure race first, then against a real control service (in-process), fake agents and a fake mount source.
 */
import type { ClusterSnapshot } from '@flocker/api';
import type { FlockerVolumeBackend } from './FlockerVolumeBackend';
import type { MountTable, MountTracker } from './MountTable';
import { movedHereUnderLease, moveMountOrSnapshot, mountPathUnder } from './moveMount';
import { BackendTestBed, HOST_A, HOST_B, NODE_A, NODE_B } from './testing';
import { FakeMountSource, followedFakeTable, settledWithin } from './testing/FakeMountSource';

const ID = '11111111-1111-4111-8111-111111111111';

function snapshot(primary: string, leaseOn: string | undefined, deleted = false): ClusterSnapshot {
  return {
    generation: 'g1',
    configuration_tag: 'v1',
    datasets: [{ dataset_id: ID, primary, metadata: { name: 'v' }, deleted }],
    leases: leaseOn !== undefined ? [{ dataset_id: ID, node_uuid: leaseOn, expires: null, holders: ['docker'] }] : [],
    nodes: [],
  };
}

describe('movedHereUnderLease', () => {
  it('holds only for a live dataset of which this node is primary and lease holder', () => {
    expect(movedHereUnderLease(snapshot(NODE_B, NODE_B), NODE_B, ID)).toBe(true);
    expect(movedHereUnderLease(snapshot(NODE_A, NODE_B), NODE_B, ID)).toBe(false); // not moved (or moved on) yet
    expect(movedHereUnderLease(snapshot(NODE_B, NODE_A), NODE_B, ID)).toBe(false); // another node's lease
    expect(movedHereUnderLease(snapshot(NODE_B, undefined), NODE_B, ID)).toBe(false); // no lease: may move away
    expect(movedHereUnderLease(snapshot(NODE_B, NODE_B, true), NODE_B, ID)).toBe(false);
    expect(movedHereUnderLease({ ...snapshot(NODE_B, NODE_B), datasets: [] }, NODE_B, ID)).toBe(false);
  });
});

describe('moveMountOrSnapshot (the race)', () => {
  /** A tracker the test drives: mount() as the first mount seen while fresh, spoil() as an umount seen. */
  function fakeTracker(): MountTracker & { mount(): void; spoil(): void } {
    let fresh = true;
    let resolve: (() => void) | undefined;
    const mounted = new Promise<void>((r) => (resolve = r));
    return {
      datasetId: ID,
      mounted: () => mounted,
      fresh: () => fresh,
      close: () => undefined,
      mount: () => resolve?.(),
      spoil: () => {
        fresh = false;
      },
    };
  }
  function deferred<T>(): { promise: Promise<T>; resolve: (v: T) => void; reject: (e: unknown) => void } {
    let resolve!: (v: T) => void;
    let reject!: (e: unknown) => void;
    const promise = new Promise<T>((res, rej) => ((resolve = res), (reject = rej)));
    promise.catch(() => undefined);
    return { promise, resolve, reject };
  }

  const race = (tracker: MountTracker, proof: Promise<ClusterSnapshot>, snap: Promise<string>, wait: AbortController) =>
    moveMountOrSnapshot({
      nodeUuid: NODE_B,
      tracker,
      hostMountRoot: '/flocker-b/',
      proof,
      snapshot: snap,
      snapshotWait: wait,
    });

  it('answers at the fresh mount under a proven lease, giving up the snapshot wait', async () => {
    const t = fakeTracker();
    const snap = deferred<string>();
    const wait = new AbortController();
    const r = race(t, Promise.resolve(snapshot(NODE_B, NODE_B)), snap.promise, wait);
    expect(await settledWithin(r, 20)).toBe('pending');
    t.mount();
    expect(await r).toEqual({ path: `/flocker-b/${ID}`, by: 'kernel' });
    expect(wait.signal.aborted).toBe(true);
  });

  it('takes a mount seen before the proof came once the proof holds', async () => {
    const t = fakeTracker();
    t.mount();
    const proof = deferred<ClusterSnapshot>();
    const r = race(t, proof.promise, deferred<string>().promise, new AbortController());
    expect(await settledWithin(r, 20)).toBe('pending');
    proof.resolve(snapshot(NODE_B, NODE_B));
    expect(await r).toEqual({ path: `/flocker-b/${ID}`, by: 'kernel' });
  });

  it('leaves it to the snapshot when the proof does not hold, fails, or the tracker was spoiled', async () => {
    for (const [proof, spoil] of [
      [Promise.resolve(snapshot(NODE_A, NODE_B)), false], // moved on elsewhere before the lease
      [Promise.resolve(snapshot(NODE_B, undefined)), false],
      [Promise.reject(new Error('control service unreachable')), false],
      [Promise.resolve(snapshot(NODE_B, NODE_B)), true], // an umount seen at the path since tracking began
    ] as const) {
      const t = fakeTracker();
      if (spoil) t.spoil();
      t.mount();
      const snap = deferred<string>();
      const wait = new AbortController();
      const r = race(t, proof, snap.promise, wait);
      expect(await settledWithin(r, 20)).toBe('pending');
      snap.resolve('/flocker-b/from-snapshot');
      expect(await r).toEqual({ path: '/flocker-b/from-snapshot', by: 'snapshot' });
      expect(wait.signal.aborted).toBe(false);
    }
  });

  it('answers from the snapshot when it comes first, and passes on its failure', async () => {
    const t = fakeTracker();
    await expect(
      race(t, Promise.resolve(snapshot(NODE_B, NODE_B)), Promise.resolve('/p'), new AbortController()),
    ).resolves.toEqual({ path: '/p', by: 'snapshot' });
    const failed = deferred<string>();
    const r = race(t, Promise.resolve(snapshot(NODE_B, NODE_B)), failed.promise, new AbortController());
    failed.reject(new Error('timed out'));
    await expect(r).rejects.toThrow('timed out');
  });

  it('names the path under the mount root the cluster state uses', () => {
    expect(mountPathUnder('/flocker', ID)).toBe(`/flocker/${ID}`);
    expect(mountPathUnder('/flocker//', ID)).toBe(`/flocker/${ID}`);
  });
});

describe('a Mount moving a volume here, answered from the kernel’s fresh mount (issue 23)', () => {
  let bed: BackendTestBed;
  let src: FakeMountSource;
  let table: MountTable;

  beforeEach(async () => {
    bed = await BackendTestBed.start('plugin-move-mount-', [HOST_A, HOST_B]);
    ({ src, table } = followedFakeTable(HOST_B.mountRoot));
  });

  afterEach(async () => {
    for (const a of bed.agents) a.paused = false;
    table.close();
    await bed.close();
  });

  /** Host B's backend, following the fake table (or not). */
  const backendB = (withTable = true): Promise<FlockerVolumeBackend> =>
    bed.backend(NODE_B, {
      mountTimeoutMs: 3_000,
      ...(withTable ? { mountTable: { table, hostMountRoot: HOST_B.mountRoot } } : {}),
    });

  /** A volume idle on host A (mounted there, no lease), as B's backend follows it. */
  const idleOnA = async (b: FlockerVolumeBackend, name: string): Promise<string> => {
    const d = await bed.client.createDataset({ primary: NODE_A, metadata: { name }, maximum_size: 1024 ** 3 });
    await b.watcher.waitFor(
      (s) =>
        s.nodes.some((n) => n.uuid === NODE_A && n.manifestations.some((m) => m.dataset_id === d.dataset_id))
          ? true
          : undefined,
      3_000,
    );
    return d.dataset_id;
  };

  /** Until the configuration shows this node primary and leasing (the agent acts on it: mounts). */
  const movedToB = async (id: string): Promise<void> => {
    for (;;) {
      const s = await bed.client.waitForCluster(undefined, 0);
      const leased = s.leases.some((l) => l.dataset_id === id && l.node_uuid === NODE_B);
      if (leased && s.datasets.some((d) => d.dataset_id === id && d.primary === NODE_B)) return;
      await new Promise((r) => setTimeout(r, 10));
    }
  };

  it('answers at the agent’s fresh mount, before its report, with the lease held and the move made', async () => {
    const b = await backendB();
    const id = await idleOnA(b, 'v1');
    // B's agent mounts but does not report yet: the snapshot never shows it mounted here meanwhile.
    bed.agents[1]!.paused = true;
    const mount = b.mount({ Name: 'v1', ID: 'm1' });
    await movedToB(id);
    expect(await settledWithin(mount, 100)).toBe('pending');
    src.emit('mount', `${HOST_B.mountRoot}/${id}`);
    expect(await settledWithin(mount, 1_000)).toEqual({ Mountpoint: `${HOST_B.mountRoot}/${id}` });
    const s = await bed.client.waitForCluster(undefined, 0);
    expect(s.leases.find((l) => l.dataset_id === id)?.node_uuid).toBe(NODE_B);
    expect(s.nodes.find((n) => n.uuid === NODE_B)?.manifestations.some((m) => m.dataset_id === id)).toBe(false);
  });

  it('never takes a mount already at the path when the Mount began: it waits for the snapshot', async () => {
    const b = await backendB();
    const id = await idleOnA(b, 'v2');
    // A mount left at B's path from before (an agent not done unmounting for an earlier move away).
    src.emit('mount', `${HOST_B.mountRoot}/${id}`);
    bed.agents[1]!.paused = true;
    const mount = b.mount({ Name: 'v2', ID: 'm1' });
    await movedToB(id);
    // Its umount and the agent's new mount: not a first mount since tracking began either.
    src.emit('umount', `${HOST_B.mountRoot}/${id}`);
    src.emit('mount', `${HOST_B.mountRoot}/${id}`);
    expect(await settledWithin(mount, 300)).toBe('pending');
    bed.agents[1]!.paused = false;
    await bed.agents[1]!.poke();
    await expect(mount).resolves.toEqual({ Mountpoint: `${HOST_B.mountRoot}/${id}` });
  });

  it('without a followed table the snapshot answers, as before', async () => {
    const b = await backendB(false);
    const id = await idleOnA(b, 'v3');
    bed.agents[1]!.paused = true;
    const mount = b.mount({ Name: 'v3', ID: 'm1' });
    await movedToB(id);
    src.emit('mount', `${HOST_B.mountRoot}/${id}`);
    expect(await settledWithin(mount, 300)).toBe('pending');
    bed.agents[1]!.paused = false;
    await bed.agents[1]!.poke();
    await expect(mount).resolves.toEqual({ Mountpoint: `${HOST_B.mountRoot}/${id}` });
  });

  it('with a followed table, the snapshot still answers when no mount event comes', async () => {
    const b = await backendB();
    const id = await idleOnA(b, 'v4');
    // Bounded by the Mount's own timeout (3 s).
    await expect(b.mount({ Name: 'v4', ID: 'm1' })).resolves.toEqual({ Mountpoint: `${HOST_B.mountRoot}/${id}` });
    // The Mount's tracker is gone: the table pauses when idle again.
    expect(table['tracked'].size).toBe(0);
  });
});

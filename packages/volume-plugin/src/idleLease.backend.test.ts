/**
 * Session 21: the plugin keeps the lease of a volume no container here uses (idleLeaseMs), answers the next Mount
 * from it, and lets go of it when the control service asks (release_requested on the followed snapshot), declines
 * when a container here uses the volume, and keeps nothing idle against a control service that does not echo
 * release_on_request. Against a real control service in this process; a request is shown to the plugin by adding
 * release_requested to the snapshots it follows (the control service's own hand-over is tested in control-api and e2e).
 */
import * as path from 'node:path';
import { FlockerApiError, type ClusterSnapshot, type FlockerClient, type Lease } from '@flocker/api';
import type { ControlClient } from './FlockerVolumeBackend';
import { BackendTestBed, HOST_A, HOST_B, NODE_A, NODE_B, until, useOnce } from './testing';

const REQUEST = { by: NODE_B, at: '2026-12-06T15:00:00.000Z' };

describe('idle leases (session 21)', () => {
  let bed: BackendTestBed;
  let client: FlockerClient;

  beforeEach(async () => {
    bed = await BackendTestBed.start('flocker-idle-', [HOST_A, HOST_B]);
    client = bed.client;
  });

  afterEach(() => bed.close());

  /**
   * The bed's client, counting lease calls, with the snapshots it follows changed by `view` (a request on a lease),
   * and declines recorded instead of sent; `grant` changes what a lease POST answers (an older control service).
   */
  function wrapped(
    opts: {
      view?: (s: ClusterSnapshot) => ClusterSnapshot;
      acquire?: ControlClient['acquireLease'];
      noDecline?: boolean;
      /** A control service before release_holder: the DELETE's query is not read. */
      deleteIgnoresRelease?: boolean;
    } = {},
  ) {
    const calls = { acquired: 0, released: 0, declined: [] as string[], deletes: [] as (string | undefined)[] };
    const view = (s: ClusterSnapshot) => (opts.view ? opts.view(s) : s);
    const c: ControlClient = {
      createDataset: (...a) => client.createDataset(...a),
      updateDataset: (...a) => client.updateDataset(...a),
      deleteDataset: (id, o) => {
        calls.deletes.push(o?.releaseHolder);
        const { releaseHolder, ...rest } = o ?? {};
        return client.deleteDataset(id, opts.deleteIgnoresRelease === true ? rest : { ...rest, releaseHolder });
      },
      waitForCluster: async (...a) => view(await client.waitForCluster(...a)),
      acquireLease: async (...a) => {
        const r = await (opts.acquire ?? ((...x) => client.acquireLease(...x)))(...a);
        calls.acquired++;
        return r;
      },
      releaseLease: (...a) => (calls.released++, client.releaseLease(...a)),
      ...(opts.noDecline === true
        ? {}
        : {
            declineReleaseRequest: async (id: string) => {
              calls.declined.push(id);
              const lease = (await client.listLeases()).find((l) => l.dataset_id === id);
              if (lease === undefined) throw new FlockerApiError(404, 'LEASE_NOT_FOUND', 'no lease');
              return lease;
            },
          }),
    };
    return { client: c, calls };
  }

  /** A request for every lease of NODE_A while `on()`. */
  const requesting =
    (on: () => boolean) =>
    (s: ClusterSnapshot): ClusterSnapshot =>
      on()
        ? {
            ...s,
            leases: s.leases.map((l): Lease => (l.node_uuid === NODE_A ? { ...l, release_requested: REQUEST } : l)),
          }
        : s;

  it('keeps the lease of an idle volume (release_on_request), answers the next Mount without a lease POST, lets go after the idle time', async () => {
    const w = wrapped();
    const a = await bed.backend(NODE_A, { client: w.client, idleLeaseMs: 60_000 });
    await a.create({ Name: 'vol1' });
    const first = await useOnce(a);
    const [d] = await client.listDatasets();
    expect(await client.listLeases()).toEqual([
      { dataset_id: d?.dataset_id, node_uuid: NODE_A, expires: null, holders: ['docker'], release_on_request: true },
    ]);
    expect(a.keptIdle()).toEqual([d?.dataset_id]);
    expect((await a.get({ Name: 'vol1' })).Volume.Status).toMatchObject({
      leased_to: 'host-a (idle: handed over on request)',
    });
    const acquired = w.calls.acquired;
    expect(await a.mount({ Name: 'vol1', ID: 'c2' })).toEqual(first);
    expect([w.calls.acquired - acquired, w.calls.released]).toEqual([0, 0]);
    expect((await a.get({ Name: 'vol1' })).Volume.Status).toMatchObject({ in_use_on: 'host-a' });
    await new Promise((r) => setTimeout(r, 100));
    await a.unmount({ Name: 'vol1', ID: 'c2' });
    // Closing the plugin lets go of idle leases (a crash leaves them to the next start).
    await a.settled();
    expect(await client.listLeases()).toEqual([]);
  });

  it('the idle time runs out: the lease goes', async () => {
    const w = wrapped();
    const a = await bed.backend(NODE_A, { client: w.client, idleLeaseMs: 300 });
    await a.create({ Name: 'vol1' });
    await useOnce(a);
    await until('the idle lease to go', async () => (await client.listLeases()).length === 0);
    expect(a.keptIdle()).toEqual([]);
    expect(w.calls.released).toBe(1);
  });

  it('a request for an idle lease lets go of it at once; the volume then moves to the requester', async () => {
    let requested = false;
    const w = wrapped({ view: requesting(() => requested) });
    const a = await bed.backend(NODE_A, { client: w.client, idleLeaseMs: 60_000 });
    const b = await bed.backend(NODE_B);
    await a.create({ Name: 'vol1' });
    await useOnce(a);
    expect(await client.listLeases()).toHaveLength(1);
    requested = true;
    await a.watcher.refresh();
    await until('the requested lease to go', async () => (await client.listLeases()).length === 0);
    expect(a.keptIdle()).toEqual([]);
    expect(w.calls.declined).toEqual([]);
    const [d] = await client.listDatasets();
    expect((await b.mount({ Name: 'vol1', ID: 'x' })).Mountpoint).toBe(`/flocker-b/${d?.dataset_id}`);
  });

  it('a request for a lease a container here uses is declined, once per request', async () => {
    let requested = false;
    const w = wrapped({ view: requesting(() => requested) });
    const a = await bed.backend(NODE_A, { client: w.client, idleLeaseMs: 60_000 });
    await a.create({ Name: 'vol1' });
    await a.mount({ Name: 'vol1', ID: 'c1' });
    requested = true;
    await a.watcher.refresh();
    const [d] = await client.listDatasets();
    await until('the decline', () => w.calls.declined.length > 0);
    await a.watcher.refresh();
    await a.watcher.refresh();
    await a.settled({ keepIdle: true });
    expect(w.calls.declined).toEqual([d?.dataset_id]);
    expect(await client.listLeases()).toHaveLength(1);
    expect(w.calls.released).toBe(0);
    // The container exits while the request is still shown: nothing is kept, the lease goes at once.
    await new Promise((r) => setTimeout(r, 100));
    await a.unmount({ Name: 'vol1', ID: 'c1' });
    await until('the lease to go', async () => (await client.listLeases()).length === 0);
  });

  it("a request for a lease in use is declined at once, not after the volume's queue (a slow call ahead)", async () => {
    let requested = false;
    let open: () => void = () => undefined;
    const gate = new Promise<void>((r) => (open = r));
    const w = wrapped({ view: requesting(() => requested) });
    const slow: ControlClient = {
      ...w.client,
      updateDataset: async (...x) => {
        await gate;
        return client.updateDataset(...x);
      },
    };
    const a = await bed.backend(NODE_A, { client: slow, idleLeaseMs: 60_000 });
    await a.create({ Name: 'vol1' });
    await a.mount({ Name: 'vol1', ID: 'c1' });
    // A grow holds the volume's queue until the gate opens.
    const growing = a.create({ Name: 'vol1', Opts: { size: '2G' } });
    requested = true;
    await a.watcher.refresh();
    await until('the decline', () => w.calls.declined.length > 0);
    open();
    await growing;
    expect(w.calls.released).toBe(0);
  });

  it('a Mount racing a request keeps the lease and declines; never both', async () => {
    let requested = false;
    const w = wrapped({ view: requesting(() => requested) });
    const a = await bed.backend(NODE_A, { client: w.client, idleLeaseMs: 60_000 });
    await a.create({ Name: 'vol1' });
    const first = await useOnce(a);
    requested = true;
    // The Mount is queued before the snapshot with the request arrives: it keeps the lease, the look declines.
    const mounting = a.mount({ Name: 'vol1', ID: 'c2' });
    const refreshing = a.watcher.refresh();
    expect(await mounting).toEqual(first);
    await refreshing;
    await until('the decline', () => w.calls.declined.length > 0);
    expect(w.calls.released).toBe(0);
    expect(await client.listLeases()).toHaveLength(1);
  });

  it('a request seen before a Mount: the lease goes first, and the Mount takes it again', async () => {
    let requested = false;
    const w = wrapped({ view: requesting(() => requested) });
    const a = await bed.backend(NODE_A, { client: w.client, idleLeaseMs: 60_000 });
    await a.create({ Name: 'vol1' });
    const first = await useOnce(a);
    requested = true;
    await a.watcher.refresh();
    const acquired = w.calls.acquired;
    requested = false;
    expect(await a.mount({ Name: 'vol1', ID: 'c2' })).toEqual(first);
    expect([w.calls.released, w.calls.acquired - acquired]).toEqual([1, 1]);
    expect(await client.listLeases()).toHaveLength(1);
  });

  it('an idle volume moved away (the snapshot shows another primary) lets go of its lease', async () => {
    let moved = false;
    const w = wrapped({
      view: (s) =>
        moved ? { ...s, datasets: s.datasets.map((d) => ({ ...d, primary: NODE_B, metadata: d.metadata })) } : s,
    });
    const a = await bed.backend(NODE_A, { client: w.client, idleLeaseMs: 60_000 });
    await a.create({ Name: 'vol1' });
    await useOnce(a);
    moved = true;
    await a.watcher.refresh();
    await until('the lease to go', async () => (await client.listLeases()).length === 0);
  });

  it('a volume resized since its lease was taken keeps nothing idle (a grow may wait for no lease)', async () => {
    const a = await bed.backend(NODE_A, { idleLeaseMs: 60_000 });
    await a.create({ Name: 'vol1' });
    await useOnce(a);
    const [d] = await client.listDatasets();
    // Resized while idle: let go of.
    await client.updateDataset(d?.dataset_id ?? '', { maximum_size: 2 * 1024 ** 3 });
    await until('the lease to go', async () => (await client.listLeases()).length === 0);
    // Resized while in use: not kept after the last Unmount.
    await a.mount({ Name: 'vol1', ID: 'c2' });
    await client.updateDataset(d?.dataset_id ?? '', { maximum_size: 3 * 1024 ** 3 });
    await until('the snapshot to show the new size', async () =>
      (await a.watcher.latest()).datasets.some((x) => x.maximum_size === 3 * 1024 ** 3),
    );
    await new Promise((r) => setTimeout(r, 100));
    await a.unmount({ Name: 'vol1', ID: 'c2' });
    await until('the lease to go', async () => (await client.listLeases()).length === 0);
    expect(a.keptIdle()).toEqual([]);
  });

  it('an idle lease of a volume whose node reports a pending grow is let go of at once (TN F3, R1 F6)', async () => {
    // The lease taken again after the resize (same maximum_size): only the agent's grow_pending says a grow waits.
    let pending = false;
    const w = wrapped({
      view: (s) =>
        pending
          ? {
              ...s,
              nodes: s.nodes.map((n) =>
                n.uuid === NODE_A
                  ? {
                      ...n,
                      manifestations: s.datasets.map((d) => ({
                        dataset_id: d.dataset_id,
                        blockdevice_id: 'b',
                        size: 1024 ** 3,
                        status: 'mounted' as const,
                        path: '/p',
                        grow_pending: { reason: 'online_resize_refused' as const },
                      })),
                    }
                  : n,
              ),
            }
          : s,
    });
    const a = await bed.backend(NODE_A, { client: w.client, idleLeaseMs: 60_000 });
    await a.create({ Name: 'vol1' });
    await useOnce(a);
    expect(a.keptIdle()).toHaveLength(1);
    pending = true;
    await a.watcher.refresh();
    await until('the lease to go', async () => (await client.listLeases()).length === 0);
    expect(a.keptIdle()).toEqual([]);
  });

  it("docker volume rm here of an idle volume ends its lease in the DELETE's own change: one request, no release", async () => {
    const w = wrapped();
    const a = await bed.backend(NODE_A, { client: w.client, idleLeaseMs: 60_000 });
    await a.create({ Name: 'vol1' });
    await useOnce(a);
    await a.remove({ Name: 'vol1' });
    expect(await client.listLeases()).toEqual([]);
    expect((await client.listDatasets())[0]?.deleted).toBe(true);
    expect(a.keptIdle()).toEqual([]);
    expect({ released: w.calls.released, deletes: w.calls.deletes }).toEqual({ released: 0, deletes: ['docker'] });
    // A volume of the same name again: a new dataset, leased and removed the same way.
    await a.create({ Name: 'vol1' });
    await useOnce(a);
    await a.remove({ Name: 'vol1' });
    expect(await client.listLeases()).toEqual([]);
    expect((await client.listDatasets()).map((d) => d.deleted)).toEqual([true, true]);
    expect({ released: w.calls.released, deletes: w.calls.deletes.length }).toEqual({ released: 0, deletes: 2 });
  });

  it('against a control service that ignores release_holder: let go of, then deleted, as before (and so for a while)', async () => {
    const w = wrapped({ deleteIgnoresRelease: true });
    const a = await bed.backend(NODE_A, { client: w.client, idleLeaseMs: 60_000 });
    await a.create({ Name: 'vol1' });
    await useOnce(a);
    await a.remove({ Name: 'vol1' });
    expect(await client.listLeases()).toEqual([]);
    expect((await client.listDatasets())[0]?.deleted).toBe(true);
    expect({ released: w.calls.released, deletes: w.calls.deletes }).toEqual({
      released: 1,
      deletes: ['docker', undefined],
    });
    await a.create({ Name: 'vol1' });
    await useOnce(a, 'c2');
    await a.remove({ Name: 'vol1' });
    expect({ released: w.calls.released, deletes: w.calls.deletes }).toEqual({
      released: 2,
      deletes: ['docker', undefined, undefined],
    });
  });

  it('against a control service that refuses release_on_request (400) or does not echo it, nothing is kept idle', async () => {
    const refusing = wrapped({
      acquire: async (req, o) => {
        if (req.release_on_request !== undefined)
          throw new FlockerApiError(400, 'INVALID_REQUEST', 'Unrecognized key: "release_on_request"');
        return client.acquireLease(req, o);
      },
    });
    // Older than a create's lease too (session 28): it refuses that member.
    const plainCreate = refusing.client.createDataset;
    refusing.client.createDataset = (req, o) => {
      if (req.lease !== undefined) {
        const problem = '(body): Unrecognized key: "lease"';
        return Promise.reject(new FlockerApiError(400, 'INVALID_REQUEST', problem, [problem]));
      }
      return plainCreate(req, o);
    };
    const a = await bed.backend(NODE_A, { client: refusing.client, idleLeaseMs: 60_000 });
    await a.create({ Name: 'vol1' });
    await useOnce(a);
    await until('the lease to go', async () => (await client.listLeases()).length === 0);
    expect(a.keptIdle()).toEqual([]);
    const silent = wrapped({
      acquire: async (req, o) => {
        const { release_on_request: _dropped, ...lease } = await client.acquireLease(req, o);
        return lease;
      },
    });
    const b = await bed.backend(NODE_B, { client: silent.client, idleLeaseMs: 60_000 });
    await b.mount({ Name: 'vol1', ID: 'y' });
    await new Promise((r) => setTimeout(r, 100));
    await b.unmount({ Name: 'vol1', ID: 'y' });
    await until('the lease to go', async () => (await client.listLeases()).length === 0);
    expect(b.keptIdle()).toEqual([]);
  });

  it('review s28 F5: a newer request is declined while the decline of an older one is still on its way', async () => {
    // `declining` was keyed by dataset: the newer request's decline was skipped while the older one's was in flight,
    // and that one (naming only its own request) commits nothing, so its requester waited out the hand-over.
    let request: { by: string; at: string } | undefined;
    let open: () => void = () => undefined;
    const gate = new Promise<void>((r) => (open = r));
    const declines: string[] = [];
    const w = wrapped({
      view: (s) => ({
        ...s,
        leases: s.leases.map((l): Lease =>
          l.node_uuid === NODE_A && request ? { ...l, release_requested: request } : l,
        ),
      }),
    });
    const c: ControlClient = {
      ...w.client,
      declineReleaseRequest: async (id, o) => {
        declines.push(o?.request?.at ?? '');
        if (declines.length === 1) await gate;
        const lease = (await client.listLeases()).find((l) => l.dataset_id === id);
        if (lease === undefined) throw new FlockerApiError(404, 'LEASE_NOT_FOUND', 'no lease');
        return lease;
      },
    };
    const a = await bed.backend(NODE_A, { client: c, idleLeaseMs: 60_000 });
    await a.create({ Name: 'vol1' });
    await a.mount({ Name: 'vol1', ID: 'c1' });
    request = REQUEST;
    await a.watcher.refresh();
    await until('the first decline', () => declines.length === 1);
    request = { by: NODE_B, at: '2026-12-06T15:00:30.000Z' };
    await a.watcher.refresh();
    try {
      await until('the newer request declined', () => declines.length === 2, 2_000);
      expect(declines).toEqual([REQUEST.at, request.at]);
    } finally {
      open();
    }
  });

  it('a crash while idle leaves an entry without IDs: the next start lets go of the lease', async () => {
    const registryFile = path.join(bed.dir, 'a', 'plugin-mounts.json');
    const a = await bed.backend(NODE_A, { idleLeaseMs: 60_000, registryFile });
    await a.create({ Name: 'vol1' });
    await useOnce(a);
    expect(await client.listLeases()).toHaveLength(1);
    // A second process on the same registry, as after kill -9 (the first one's timers are of no account here).
    await bed.backend(NODE_A, { idleLeaseMs: 60_000, registryFile });
    expect(await client.listLeases()).toEqual([]);
  });
});

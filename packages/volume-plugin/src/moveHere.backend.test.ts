/**
 * Session 24 (issue 23): a Mount of a volume whose primary is another node takes the lease and moves the volume in
 * one request (the lease POST with move_here), where it sent a move POST and a lease POST (and the lease POST, late
 * behind the hand-over's release, cost a commit of its own). Against a control service one release behind (it refuses
 * the key, 400): the move goes beside the lease as before, and so for MOVE_HERE_RETRY_MS, then it is asked again.
 * Against a real control service in this process (fake agents).
 */
import { type CreateLeaseRequest, FlockerApiError, type FlockerClient } from '@flocker/api';
import { type ControlClient, type FlockerVolumeBackend, MOVE_HERE_RETRY_MS } from './FlockerVolumeBackend';
import { BackendTestBed, HOST_A, HOST_B, NODE_A, NODE_B } from './testing';

/** The 400 of a control service whose CreateLeaseRequest has no move_here (zod's strict object, as for unique_name). */
const OLD_REFUSAL = new FlockerApiError(
  400,
  'INVALID_REQUEST',
  'The request is not valid: (body): Unrecognized key: "move_here"',
  ['(body): Unrecognized key: "move_here"'],
);

describe('a Mount moving a volume here (move_here)', () => {
  let bed: BackendTestBed;
  let client: FlockerClient;

  beforeEach(async () => {
    bed = await BackendTestBed.start('flocker-move-here-', [HOST_A, HOST_B]);
    client = bed.client;
  });

  afterEach(() => bed.close());

  /** The bed's client recording lease bodies and moves; `old`: refuses move_here as a service one release behind. */
  function recording(old = false) {
    const leases: CreateLeaseRequest[] = [];
    const moves: string[] = [];
    const c: ControlClient = {
      createDataset: (...a) => client.createDataset(...a),
      updateDataset: (id, req, o) => {
        if (req.primary !== undefined) moves.push(req.primary);
        return client.updateDataset(id, req, o);
      },
      deleteDataset: (...a) => client.deleteDataset(...a),
      waitForCluster: (...a) => client.waitForCluster(...a),
      acquireLease: (req, o) => {
        leases.push(req);
        if (old && req.move_here !== undefined) return Promise.reject(OLD_REFUSAL);
        return client.acquireLease(req, o);
      },
      releaseLease: (...a) => client.releaseLease(...a),
    };
    return { client: c, leases, moves };
  }

  async function createdOnA(name: string): Promise<string> {
    const a = await bed.backend(NODE_A);
    await a.create({ Name: name });
    const d = (await client.listDatasets()).find((x) => x.metadata['name'] === name);
    if (d === undefined) throw new Error(`no dataset ${name}`);
    return d.dataset_id;
  }

  async function mountedOnB(b: FlockerVolumeBackend, name: string, id: string): Promise<void> {
    const m = await b.mount({ Name: name, ID: `c-${name}` });
    expect(m.Mountpoint).toBe(`${HOST_B.mountRoot}/${id}`);
    expect((await client.getDataset(id)).primary).toBe(NODE_B);
    expect((await client.listLeases()).find((l) => l.dataset_id === id)?.node_uuid).toBe(NODE_B);
  }

  it('one lease POST carries the move: no move request', async () => {
    const id = await createdOnA('vol1');
    const r = recording();
    const b = await bed.backend(NODE_B, { client: r.client });
    await mountedOnB(b, 'vol1', id);
    expect(r.leases).toEqual([expect.objectContaining({ dataset_id: id, node_uuid: NODE_B, move_here: true })]);
    expect(r.moves).toEqual([]);
  });

  it('a volume already here asks its lease without move_here', async () => {
    const r = recording();
    const b = await bed.backend(NODE_B, { client: r.client });
    await b.create({ Name: 'here' });
    await b.mount({ Name: 'here', ID: 'c1' });
    expect(r.leases.length).toBeGreaterThan(0);
    expect(r.leases.every((l) => l.move_here === undefined)).toBe(true);
    expect(r.moves).toEqual([]);
  });

  it('a control service one release behind: moved beside the lease, asked again only after MOVE_HERE_RETRY_MS', async () => {
    const ids = [await createdOnA('old1'), await createdOnA('old2'), await createdOnA('old3')];
    const r = recording(true);
    let t = Date.now();
    const b = await bed.backend(NODE_B, { client: r.client, now: () => t });
    await mountedOnB(b, 'old1', ids[0] as string);
    // Refused once (nothing done), then the lease and the move as before move_here.
    expect(r.leases.map((l) => l.move_here)).toEqual([true, undefined]);
    expect(r.moves).toEqual([NODE_B]);
    // Remembered: the next Mount does not ask with it.
    await mountedOnB(b, 'old2', ids[1] as string);
    expect(r.leases.map((l) => l.move_here)).toEqual([true, undefined, undefined]);
    expect(r.moves).toEqual([NODE_B, NODE_B]);
    // The service may have been upgraded since: asked with it again.
    t += MOVE_HERE_RETRY_MS;
    await mountedOnB(b, 'old3', ids[2] as string);
    expect(r.leases.map((l) => l.move_here)).toEqual([true, undefined, undefined, true, undefined]);
    expect(r.moves).toEqual([NODE_B, NODE_B, NODE_B]);
  });

  it('a move the control service refuses fails the Mount with its refusal, at once, and leaves no lease', async () => {
    const id = await createdOnA('restoring');
    // The answer to a lease POST whose move is refused (a restore not finished on node A): nothing done.
    const refused = new FlockerApiError(409, 'RESTORE_IN_PROGRESS', `The dataset ${id} is being restored.`);
    const r = recording();
    const c: ControlClient = {
      ...r.client,
      acquireLease: (req, o) => (req.move_here === true ? Promise.reject(refused) : r.client.acquireLease(req, o)),
    };
    const b = await bed.backend(NODE_B, { client: c, mountTimeoutMs: 30_000 });
    const t0 = Date.now();
    await expect(b.mount({ Name: 'restoring', ID: 'c1' })).rejects.toMatchObject({ code: 'RESTORE_IN_PROGRESS' });
    // Not waited out as a lease refusal (the Mount's 30 s deadline).
    expect(Date.now() - t0).toBeLessThan(20_000);
    expect((await client.listLeases()).some((l) => l.dataset_id === id)).toBe(false);
    expect((await client.getDataset(id)).primary).toBe(NODE_A);
  });
});

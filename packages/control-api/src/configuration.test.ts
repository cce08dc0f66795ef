import {
  acquireLease,
  type Configuration,
  configurationTag,
  createDataset,
  deleteDataset,
  emptyConfiguration,
  expireLeases,
  listLeases,
  nextLeaseExpiry,
  registerNode,
  releaseDeadNodeLeases,
  releaseLease,
  updateDataset,
} from './configuration';
import { ConfigurationError } from './errors';
import { toApiError } from './httpErrors';
import { A, B, C, D1, T0 } from './testing/fixtures';

function withNodes(): Configuration {
  return registerNode(registerNode(emptyConfiguration, { uuid: A, host: '10.0.0.1' }), { uuid: B, host: '10.0.0.2' });
}

function expectApiError(fn: () => unknown, status: number, code: string): void {
  try {
    fn();
  } catch (err) {
    // The configuration logic names the problem; the HTTP status comes from the one mapping.
    expect(err).toBeInstanceOf(ConfigurationError);
    expect((err as ConfigurationError).code).toBe(code);
    expect(toApiError(err).status).toBe(status);
    return;
  }
  throw new Error(`expected ApiError ${code}`);
}

describe('registerNode', () => {
  it('records a new node and bumps the version; the same host again changes nothing', () => {
    const c1 = registerNode(emptyConfiguration, { uuid: A, host: 'h' });
    expect(c1.version).toBe(1);
    expect(registerNode(c1, { uuid: A, host: 'h' })).toBe(c1);
    const c2 = registerNode(c1, { uuid: A, host: 'h2' });
    expect(c2.nodes.get(A)?.host).toBe('h2');
    expect(c2.version).toBe(2);
  });
});

describe('createDataset', () => {
  it('creates with a generated id, empty metadata and deleted=false; the input value is untouched', () => {
    const c = withNodes();
    const r = createDataset(c, { primary: A }, () => D1);
    expect(r.status).toBe(201);
    expect(r.result).toEqual({ dataset_id: D1, primary: A, metadata: {}, deleted: false });
    expect(r.config.version).toBe(c.version + 1);
    expect(c.datasets.size).toBe(0);
    expect(configurationTag(r.config)).not.toBe(configurationTag(c));
  });
  it('keeps a given id, size and metadata', () => {
    const r = createDataset(withNodes(), {
      primary: A,
      dataset_id: D1,
      maximum_size: 67108864,
      metadata: { name: 'v' },
    });
    expect(r.result).toEqual({
      dataset_id: D1,
      primary: A,
      maximum_size: 67108864,
      metadata: { name: 'v' },
      deleted: false,
    });
  });
  it('rejects a dataset id in use (409), even a deleted one', () => {
    const c = createDataset(withNodes(), { primary: A, dataset_id: D1 }).config;
    expectApiError(() => createDataset(c, { primary: A, dataset_id: D1 }), 409, 'DATASET_ID_IN_USE');
    const deleted = deleteDataset(c, D1, T0).config;
    expectApiError(() => createDataset(deleted, { primary: A, dataset_id: D1 }), 409, 'DATASET_ID_IN_USE');
  });
  it('rejects an unknown primary (400)', () => {
    expectApiError(() => createDataset(withNodes(), { primary: C }), 400, 'UNKNOWN_NODE');
  });
});

describe('updateDataset', () => {
  const base = createDataset(withNodes(), { primary: A, dataset_id: D1 }).config;
  it('moves to another known node', () => {
    const r = updateDataset(base, D1, { primary: B }, T0);
    expect(r.result.primary).toBe(B);
    expect(r.config.datasets.get(D1)?.primary).toBe(B);
  });
  it('changes maximum_size', () => {
    expect(updateDataset(base, D1, { maximum_size: 134217728 }, T0).result.maximum_size).toBe(134217728);
  });
  it('grows only: a smaller maximum_size, or unsetting it, is 400 DATASET_SHRINK (issue 20); a size where none was set is fine', () => {
    const sized = updateDataset(base, D1, { maximum_size: 134217728 }, T0).config;
    expectApiError(() => updateDataset(sized, D1, { maximum_size: 67108864 }, T0), 400, 'DATASET_SHRINK');
    expectApiError(() => updateDataset(sized, D1, { maximum_size: null }, T0), 400, 'DATASET_SHRINK');
    expect(updateDataset(sized, D1, { maximum_size: 134217728 }, T0).config).toBe(sized);
    expect(updateDataset(sized, D1, { maximum_size: 268435456 }, T0).result.maximum_size).toBe(268435456);
  });
  it('returns the same configuration when nothing changes', () => {
    expect(updateDataset(base, D1, { primary: A }, T0).config).toBe(base);
    expect(updateDataset(base, D1, {}, T0).config).toBe(base);
  });
  it("404 for an unknown dataset, 400 for an unknown node, 405 DATASET_DELETED (Flocker's) for a deleted dataset", () => {
    expectApiError(() => updateDataset(base, C, { primary: B }, T0), 404, 'DATASET_NOT_FOUND');
    expectApiError(() => updateDataset(base, D1, { primary: C }, T0), 400, 'UNKNOWN_NODE');
    const deleted = deleteDataset(base, D1, T0).config;
    expectApiError(() => updateDataset(deleted, D1, { primary: B }, T0), 405, 'DATASET_DELETED');
    expectApiError(() => updateDataset(deleted, D1, { maximum_size: 134217728 }, T0), 405, 'DATASET_DELETED');
    expectApiError(
      () => acquireLease(deleted, { dataset_id: D1, node_uuid: A, expires: null }, T0),
      405,
      'DATASET_DELETED',
    );
    // Deleting again stays idempotent (as in Flocker).
    expect(deleteDataset(deleted, D1, T0).result.deleted).toBe(true);
  });
  it('a live lease of another node forbids the move; the holder itself may receive it; an expired one does not count', () => {
    const leased = acquireLease(base, { dataset_id: D1, node_uuid: A, expires: 10 }, T0).config;
    expectApiError(() => updateDataset(leased, D1, { primary: B }, T0 + 1000), 409, 'LEASE_HELD');
    expect(updateDataset(leased, D1, { primary: B }, T0 + 10_001).result.primary).toBe(B);
    const leasedToB = acquireLease(base, { dataset_id: D1, node_uuid: B, expires: null }, T0).config;
    expect(updateDataset(leasedToB, D1, { primary: B }, T0).result.primary).toBe(B);
  });
});

describe('deleteDataset', () => {
  const base = createDataset(withNodes(), { primary: A, dataset_id: D1 }).config;
  it('marks deleted and is idempotent', () => {
    const r = deleteDataset(base, D1, T0);
    expect(r.result.deleted).toBe(true);
    expect(deleteDataset(r.config, D1, T0).config).toBe(r.config);
  });
  it('404 unknown, 409 while leased', () => {
    expectApiError(() => deleteDataset(base, C, T0), 404, 'DATASET_NOT_FOUND');
    const leased = acquireLease(base, { dataset_id: D1, node_uuid: A, expires: null }, T0).config;
    expectApiError(() => deleteDataset(leased, D1, T0), 409, 'LEASE_HELD');
  });
});

describe('leases', () => {
  it('201 new, 200 renewed by the same node, 409 held by another', () => {
    const r1 = acquireLease(emptyConfiguration, { dataset_id: D1, node_uuid: A, expires: 60 }, T0);
    expect(r1.status).toBe(201);
    expect(r1.result).toEqual({ dataset_id: D1, node_uuid: A, expires: 60 });
    const r2 = acquireLease(r1.config, { dataset_id: D1, node_uuid: A, expires: 120 }, T0 + 30_000);
    expect(r2.status).toBe(200);
    expect(r2.config.leases.get(D1)?.expires_at).toBe(T0 + 150_000);
    expectApiError(
      () => acquireLease(r2.config, { dataset_id: D1, node_uuid: B, expires: null }, T0),
      409,
      'LEASE_HELD',
    );
  });
  it('another node may take an expired lease (201)', () => {
    const c = acquireLease(emptyConfiguration, { dataset_id: D1, node_uuid: A, expires: 1 }, T0).config;
    expect(acquireLease(c, { dataset_id: D1, node_uuid: B, expires: null }, T0 + 1000).status).toBe(201);
  });
  it('lists remaining seconds and hides expired leases', () => {
    const c = acquireLease(emptyConfiguration, { dataset_id: D1, node_uuid: A, expires: 10 }, T0).config;
    expect(listLeases(c, T0 + 4000)).toEqual([{ dataset_id: D1, node_uuid: A, expires: 6 }]);
    expect(listLeases(c, T0 + 10_000)).toEqual([]);
  });
  it('release: 200 with the lease, 404 when none or expired', () => {
    const c = acquireLease(emptyConfiguration, { dataset_id: D1, node_uuid: A, expires: null }, T0).config;
    const r = releaseLease(c, D1, T0);
    expect(r.result).toEqual({ dataset_id: D1, node_uuid: A, expires: null });
    expect(r.config.leases.size).toBe(0);
    expectApiError(() => releaseLease(r.config, D1, T0), 404, 'LEASE_NOT_FOUND');
    const short = acquireLease(emptyConfiguration, { dataset_id: D1, node_uuid: A, expires: 1 }, T0).config;
    expectApiError(() => releaseLease(short, D1, T0 + 2000), 404, 'LEASE_NOT_FOUND');
  });
  it('expireLeases drops exactly the expired ones; nextLeaseExpiry finds the earliest', () => {
    let c = acquireLease(emptyConfiguration, { dataset_id: D1, node_uuid: A, expires: 1 }, T0).config;
    c = acquireLease(c, { dataset_id: C, node_uuid: A, expires: 5 }, T0).config;
    c = acquireLease(c, { dataset_id: B, node_uuid: A, expires: null }, T0).config;
    expect(nextLeaseExpiry(c)).toBe(T0 + 1000);
    expect(expireLeases(c, T0 + 500)).toBe(c);
    const e = expireLeases(c, T0 + 1000);
    expect([...e.leases.keys()].sort()).toEqual([B, C].sort());
    expect(nextLeaseExpiry(expireLeases(c, T0 + 5000))).toBeUndefined();
  });
});

describe("lease holders (local users sharing their node's lease)", () => {
  const take = (c: Configuration, holder?: string, node = A) =>
    acquireLease(c, { dataset_id: D1, node_uuid: node, expires: null, ...(holder ? { holder } : {}) }, T0);

  it("a second holder joins the node's lease (200); taking it again is idempotent; another node is still refused", () => {
    const docker = take(emptyConfiguration, 'docker');
    expect(docker.status).toBe(201);
    expect(docker.result).toEqual({ dataset_id: D1, node_uuid: A, expires: null, holders: ['docker'] });
    const both = take(docker.config, 'csi');
    expect(both.status).toBe(200);
    expect(both.result.holders).toEqual(['docker', 'csi']);
    const again = take(both.config, 'docker');
    expect(again.result.holders).toEqual(['docker', 'csi']);
    expect(again.config.leases.get(D1)).toEqual(both.config.leases.get(D1));
    expectApiError(() => take(both.config, 'csi', B), 409, 'LEASE_HELD');
    try {
      take(both.config, 'csi', B);
    } catch (err) {
      expect((err as Error).message).toMatch(/node .* \(used there by docker, csi\)/);
    }
  });

  it("a holder's release keeps the lease for the others (remains: true); the last one ends it (remains: false)", () => {
    const both = take(take(emptyConfiguration, 'csi').config, 'docker').config;
    const csiGone = releaseLease(both, D1, T0, 'csi');
    expect(csiGone.result).toEqual({ dataset_id: D1, node_uuid: A, expires: null, holders: ['docker'], remains: true });
    expect(listLeases(csiGone.config, T0)).toEqual([
      { dataset_id: D1, node_uuid: A, expires: null, holders: ['docker'] },
    ]);
    // Still the node's lease: another node can neither take it nor move the dataset away.
    expectApiError(() => take(csiGone.config, 'csi', B), 409, 'LEASE_HELD');
    const last = releaseLease(csiGone.config, D1, T0, 'docker');
    expect(last.result).toEqual({ dataset_id: D1, node_uuid: A, expires: null, holders: ['docker'], remains: false });
    expect(last.config.leases.size).toBe(0);
    expectApiError(() => releaseLease(last.config, D1, T0, 'docker'), 404, 'LEASE_NOT_FOUND');
  });

  it('releasing a holder that does not hold the lease changes nothing (idempotent)', () => {
    const docker = take(emptyConfiguration, 'docker').config;
    const r = releaseLease(docker, D1, T0, 'csi');
    expect(r.config).toBe(docker);
    expect(r.result).toMatchObject({ holders: ['docker'], remains: true });
  });

  it('a release without holder ends the lease whoever holds it (admin, Flocker v1 clients)', () => {
    const both = take(take(emptyConfiguration, 'csi').config, 'docker').config;
    const r = releaseLease(both, D1, T0);
    expect(r.result).toEqual({ dataset_id: D1, node_uuid: A, expires: null, holders: ['csi', 'docker'] });
    expect(r.config.leases.size).toBe(0);
  });

  it('an acquire without holder is an unnamed share that only a release without holder ends', () => {
    const legacy = take(emptyConfiguration);
    // Stored and shown exactly as before holders existed.
    expect(legacy.config.leases.get(D1)).toEqual({ dataset_id: D1, node_uuid: A, expires_at: null });
    expect(legacy.result).toEqual({ dataset_id: D1, node_uuid: A, expires: null });
    const withCsi = take(legacy.config, 'csi');
    expect(withCsi.result).toEqual({
      dataset_id: D1,
      node_uuid: A,
      expires: null,
      holders: ['csi'],
      unnamed_holder: true,
    });
    const csiGone = releaseLease(withCsi.config, D1, T0, 'csi');
    expect(csiGone.result).toEqual({ dataset_id: D1, node_uuid: A, expires: null, remains: true });
    expect(csiGone.config.leases.get(D1)).toEqual({ dataset_id: D1, node_uuid: A, expires_at: null });
    expect(releaseLease(csiGone.config, D1, T0, 'csi').config).toBe(csiGone.config);
    expect(releaseLease(csiGone.config, D1, T0).config.leases.size).toBe(0);
    // The unnamed share joins named ones just the same.
    const named = take(take(emptyConfiguration, 'docker').config);
    expect(named.result).toMatchObject({ holders: ['docker'], unnamed_holder: true });
    expect(releaseLease(named.config, D1, T0, 'docker').result).toMatchObject({ remains: true });
  });

  it("a holder's release keeps the lease pinned and its expiry; the holder that renews sets the expiry", () => {
    let c = acquireLease(
      emptyConfiguration,
      { dataset_id: D1, node_uuid: A, expires: 60, pinned: true, holder: 'csi' },
      T0,
    ).config;
    c = acquireLease(c, { dataset_id: D1, node_uuid: A, expires: 120, holder: 'docker' }, T0).config;
    expect(c.leases.get(D1)).toEqual({
      dataset_id: D1,
      node_uuid: A,
      expires_at: T0 + 120_000,
      pinned: true,
      holders: ['csi', 'docker'],
    });
    const r = releaseLease(c, D1, T0, 'docker');
    expect(r.config.leases.get(D1)).toEqual({
      dataset_id: D1,
      node_uuid: A,
      expires_at: T0 + 120_000,
      pinned: true,
      holders: ['csi'],
    });
  });

  it("expiry and a dead node's release end the whole lease, every holder's share", () => {
    const c = acquireLease(
      take(emptyConfiguration, 'csi').config,
      { dataset_id: D1, node_uuid: A, expires: 10, holder: 'docker' },
      T0,
    ).config;
    expect(expireLeases(c, T0 + 10_000).leases.size).toBe(0);
    const dead = releaseDeadNodeLeases(c, (n) => (n === A ? T0 - 60_000 : undefined), T0, 5_000);
    expect(dead.config.leases.size).toBe(0);
    expect(dead.result).toHaveLength(1);
  });

  it('a move or delete refused by the lease names its holders', () => {
    const ds = createDataset(withNodes(), { primary: A, dataset_id: D1 }).config;
    const leased = take(take(ds, 'docker').config, 'csi').config;
    expect(() => updateDataset(leased, D1, { primary: B }, T0)).toThrow(
      /node .* \(used there by docker, csi\) holds a lease/,
    );
    expect(() => deleteDataset(leased, D1, T0)).toThrow(/\(used there by docker, csi\)/);
  });
});

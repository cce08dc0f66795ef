/**
 * A move when released through the API (issue 24, U's item 5): POST /v1/configuration/datasets/<id>
 * with `when_released: true` moves a local dataset its primary holds the lease on (the container
 * there keeps running; the agents copy first and finish once it lets go); the lease stays; the
 * data-node marker is recorded. A block dataset is refused as before, the description saying why.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { METADATA_DATA_NODE_KEY, type NodeReport } from '@flocker/api';
import { NODE_A as A, NODE_B as B, nodeReport, type ServiceOnDir, startOnDir } from './testing/httpService';

const D = '11111111-1111-4111-8111-111111111111';

function report(uuid: string, backend: string, mounted: string[] = []): NodeReport {
  return nodeReport(uuid, {
    backend,
    manifestations: mounted.map((id) => ({ dataset_id: id, blockdevice_id: id, size: 1 << 26, status: 'mounted' })),
  });
}

async function move(svc: ServiceOnDir, body: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const r = await fetch(`${svc.svc.url}/v1/configuration/datasets/${D}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: r.status, json: (await r.json()) as Record<string, unknown> };
}

describe('a move when released, through the API', () => {
  let dir: string;
  let svc: ServiceOnDir;

  beforeEach(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'when-released-'));
    svc = await startOnDir(dir);
  });
  afterEach(async () => {
    await svc.svc.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function leasedOnA(backend: string): Promise<void> {
    await svc.client.reportNodeState(report(A, backend));
    await svc.client.reportNodeState(report(B, backend));
    await svc.client.createDataset({ primary: A, dataset_id: D });
    await svc.client.reportNodeState(report(A, backend, [D]));
    await svc.client.acquireLease({ dataset_id: D, node_uuid: A, expires: null });
  }

  it('local: refused without the opt-in (saying to add it), accepted with it; the lease stays, the marker names A', async () => {
    await leasedOnA('local-btrfs');
    const plain = await move(svc, { primary: B });
    expect(plain.status).toBe(409);
    expect(plain.json['code']).toBe('LEASE_HELD');
    expect(plain.json['description']).toContain('--when-released');
    const moved = await move(svc, { primary: B, when_released: true });
    expect(moved.status).toBe(200);
    expect(moved.json['primary']).toBe(B);
    expect((moved.json['metadata'] as Record<string, string>)[METADATA_DATA_NODE_KEY]).toBe(A);
    expect(moved.json).not.toHaveProperty('when_released');
    expect((await svc.client.listLeases()).map((l) => l.node_uuid)).toEqual([A]);
    // Deleting stays refused while the lease is held.
    expect((await fetch(`${svc.svc.url}/v1/configuration/datasets/${D}`, { method: 'DELETE' })).status).toBe(409);
  });

  it('block: refused with the opt-in too, saying it applies only to local storage', async () => {
    await leasedOnA('loopback');
    const r = await move(svc, { primary: B, when_released: true });
    expect(r.status).toBe(409);
    expect(r.json['code']).toBe('LEASE_HELD');
    expect(r.json['description']).toContain('when_released applies only to local storage');
    expect((await svc.client.getDataset(D)).primary).toBe(A);
  });

  it('not a boolean: 400', async () => {
    await leasedOnA('local-btrfs');
    expect((await move(svc, { primary: B, when_released: 'yes' })).status).toBe(400);
  });
});

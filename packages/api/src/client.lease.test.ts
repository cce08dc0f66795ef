/** The client's lease calls on the wire: the holder in the body, ?holder= on a release, the answers parsed. */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { FlockerClient } from './client';
import { CreateLeaseRequest, Lease, LeaseHolder, ReleasedLease } from './schemas';

const D = '11111111-1111-4111-8111-111111111111';
const N = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';

interface Seen {
  method: string;
  url: string;
  body: string;
}

async function recorder(answer: unknown): Promise<{ url: string; seen: Seen[]; close: () => Promise<void> }> {
  const seen: Seen[] = [];
  const srv: Server = createServer((req: IncomingMessage, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      seen.push({ method: req.method ?? '', url: req.url ?? '', body: Buffer.concat(chunks).toString() });
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(answer));
    });
  });
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const port = (srv.address() as AddressInfo).port;
  return { url: `http://127.0.0.1:${port}`, seen, close: () => new Promise((r) => srv.close(() => r())) };
}

describe('FlockerClient lease holders', () => {
  it('releaseLease with a holder sends ?holder= and reads remains; without one it sends no query', async () => {
    const srv = await recorder({ dataset_id: D, node_uuid: N, expires: null, holders: ['docker'], remains: true });
    try {
      const client = new FlockerClient({ baseUrl: srv.url });
      expect(await client.releaseLease(D, { holder: 'csi' })).toEqual({
        dataset_id: D,
        node_uuid: N,
        expires: null,
        holders: ['docker'],
        remains: true,
      });
      await client.releaseLease(D);
      expect(srv.seen.map((s) => `${s.method} ${s.url}`)).toEqual([
        `DELETE /v1/configuration/leases/${D}?holder=csi`,
        `DELETE /v1/configuration/leases/${D}`,
      ]);
    } finally {
      await srv.close();
    }
  });

  it('acquireLease sends the holder in the body and reads the holders of the answer', async () => {
    const srv = await recorder({ dataset_id: D, node_uuid: N, expires: null, holders: ['csi', 'docker'] });
    try {
      const lease = await new FlockerClient({ baseUrl: srv.url }).acquireLease({
        dataset_id: D,
        node_uuid: N,
        expires: null,
        holder: 'docker',
      });
      expect(lease.holders).toEqual(['csi', 'docker']);
      expect(JSON.parse(srv.seen[0]?.body ?? '')).toEqual({
        dataset_id: D,
        node_uuid: N,
        expires: null,
        holder: 'docker',
      });
    } finally {
      await srv.close();
    }
  });

  it('holder names: lower-case letters, digits and -, starting with a letter, at most 32', () => {
    for (const ok of ['docker', 'csi', 'k8s-node-2', 'a'.repeat(32)])
      expect(LeaseHolder.safeParse(ok).success).toBe(true);
    for (const bad of ['', 'Docker', '-x', '2csi', 'a b', 'a'.repeat(33), 'csi/'])
      expect(LeaseHolder.safeParse(bad).success).toBe(false);
    expect(CreateLeaseRequest.safeParse({ dataset_id: D, node_uuid: N, expires: null, holder: 'CSI' }).success).toBe(
      false,
    );
    // The answer stays strict: an unknown field is refused.
    expect(ReleasedLease.safeParse({ dataset_id: D, node_uuid: N, expires: null, other: 1 }).success).toBe(false);
  });

  it('acquireLease sends release_on_request; the answer reads release_on_request and release_requested', async () => {
    const requested = { by: 'api', at: '2026-12-06T15:40:00.000Z' };
    const srv = await recorder({
      dataset_id: D,
      node_uuid: N,
      expires: null,
      holders: ['docker'],
      release_on_request: true,
      release_requested: requested,
    });
    try {
      const client = new FlockerClient({ baseUrl: srv.url });
      const lease = await client.acquireLease({
        dataset_id: D,
        node_uuid: N,
        expires: null,
        holder: 'docker',
        release_on_request: true,
      });
      expect(lease.release_on_request).toBe(true);
      expect(lease.release_requested).toEqual(requested);
      expect(JSON.parse(srv.seen[0]?.body ?? '')).toMatchObject({ release_on_request: true });
      expect(await client.declineReleaseRequest(D)).toMatchObject({ dataset_id: D });
      // Naming the request it answers (review R1 F5): only that one is cleared.
      expect(await client.declineReleaseRequest(D, { request: requested })).toMatchObject({ dataset_id: D });
      expect(srv.seen.map((s) => `${s.method} ${s.url}`)).toEqual([
        'POST /v1/configuration/leases',
        `DELETE /v1/configuration/leases/${D}/release-request`,
        `DELETE /v1/configuration/leases/${D}/release-request?by=api&at=2026-12-06T15%3A40%3A00.000Z`,
      ]);
    } finally {
      await srv.close();
    }
  });

  it('release_requested: by a node UUID or api, at an ISO time; release_on_request only true in a lease', () => {
    const base = { dataset_id: D, node_uuid: N, expires: 3 };
    expect(Lease.safeParse({ ...base, release_requested: { by: N, at: '2026-12-06T15:40:00Z' } }).success).toBe(true);
    expect(Lease.safeParse({ ...base, release_requested: { by: 'someone', at: '2026-12-06T15:40:00Z' } }).success).toBe(
      false,
    );
    expect(Lease.safeParse({ ...base, release_requested: { by: 'api', at: 'yesterday' } }).success).toBe(false);
    expect(Lease.safeParse({ ...base, release_on_request: false }).success).toBe(false);
    expect(CreateLeaseRequest.safeParse({ ...base, release_on_request: false }).success).toBe(true);
    expect(CreateLeaseRequest.safeParse({ ...base, release_on_request: 'yes' }).success).toBe(false);
  });
});

/**
 * Issue 17, item 4, end to end over mutual TLS: a node certificate must not reach
 * another node's identity, instance, lease or dataset by writing a UUID in another
 * case. Raw HTTPS requests (the FlockerClient would canonicalise what it sends).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { request as httpsRequest } from 'node:https';
import winston from 'winston';
import { nodeCommonName, userCommonName, type NodeReport } from '@flocker/api';
import { startControlService, type ControlService } from '@flocker/control-api';
import type { PemPair } from '@flocker/cli';
import { ClusterPki } from './cluster/pki';

const silent = winston.createLogger({ silent: true });
// Letters in every group, so that upper case differs from lower case.
const A = 'aaaaaaaa-0000-4000-8000-00000000000a';
const B = 'bbbbbbbb-0000-4000-8000-00000000000b';
const DB = 'dbdbdbdb-0000-4000-8000-0000000000db';
const INSTANCE_A = 'i-host-a';
const INSTANCE_B = 'i-host-b';

interface Answer {
  status: number;
  body: unknown;
}

function report(uuid: string, instance: string, extra: Partial<NodeReport> = {}): NodeReport {
  return {
    uuid,
    era: `era-${instance}`,
    host: '127.0.0.1',
    instance_id: instance,
    backend: 'loopback',
    manifestations: [],
    errors: [],
    ...extra,
  };
}

describe('UUID case cannot alias another node, lease or dataset (mutual TLS)', () => {
  let dir: string;
  let pki: ClusterPki;
  let control: ControlService;
  let admin: PemPair;
  let nodeA: PemPair;
  let nodeB: PemPair;

  function call(pem: PemPair, method: string, urlPath: string, body?: unknown): Promise<Answer> {
    return new Promise((resolve, reject) => {
      const u = new URL(`${control.url}${urlPath}`);
      const data = body === undefined ? undefined : JSON.stringify(body);
      const req = httpsRequest(
        {
          method,
          host: u.hostname,
          port: u.port,
          path: u.pathname + u.search,
          ca: fs.readFileSync(pki.caFile),
          cert: pem.certificate,
          key: pem.privateKey,
          headers:
            data === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) },
        },
        (r) => {
          let text = '';
          r.on('data', (c: Buffer) => (text += c.toString()));
          r.on('end', () =>
            resolve({ status: r.statusCode ?? 0, body: text === '' ? undefined : (JSON.parse(text) as unknown) }),
          );
        },
      );
      req.on('error', reject);
      req.end(data);
    });
  }

  const bReport = () =>
    report(B, INSTANCE_B, {
      manifestations: [
        { dataset_id: DB, blockdevice_id: 'vol-db', size: 67108864, status: 'mounted', path: `/flocker/${DB}` },
      ],
      volumes: [{ blockdevice_id: 'vol-db', dataset_id: DB, size: 67108864, attached_to: INSTANCE_B }],
    });

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flocker-canonical-'));
    pki = await ClusterPki.create(path.join(dir, 'pki'), ['127.0.0.1', 'localhost']);
    control = await startControlService({
      port: 0,
      host: '127.0.0.1',
      dataDir: path.join(dir, 'data'),
      logger: silent,
      tls: pki.serverCredentials(),
      nodeTimeoutSeconds: 1,
      leaseGraceSeconds: 60,
    });
    admin = await pki.issue(userCommonName('admin'), 'user');
    nodeA = await pki.issue(nodeCommonName(A), 'node');
    nodeB = await pki.issue(nodeCommonName(B), 'node');
    expect((await call(nodeA, 'PUT', `/v1/agent/nodes/${A}`, report(A, INSTANCE_A))).status).toBe(200);
    expect((await call(nodeB, 'PUT', `/v1/agent/nodes/${B}`, bReport())).status).toBe(200);
    // B's volume, created by a client that wrote the id in upper case; B holds its lease the same way.
    expect(
      (
        await call(admin, 'POST', '/v1/configuration/datasets', {
          primary: B,
          dataset_id: DB.toUpperCase(),
          metadata: { name: 'b-data' },
        })
      ).status,
    ).toBe(201);
    expect(
      (
        await call(nodeB, 'POST', '/v1/configuration/leases', {
          dataset_id: DB.toUpperCase(),
          node_uuid: B,
          expires: null,
        })
      ).status,
    ).toBe(201);
  });
  afterAll(async () => {
    await control?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('the dataset and the lease are stored under the canonical (lower-case) id', async () => {
    const datasets = (await call(admin, 'GET', '/v1/configuration/datasets')).body as { dataset_id: string }[];
    expect(datasets.map((d) => d.dataset_id)).toEqual([DB]);
    const leases = (await call(admin, 'GET', '/v1/configuration/leases')).body as {
      dataset_id: string;
      node_uuid: string;
    }[];
    expect(leases).toEqual([{ dataset_id: DB, node_uuid: B, expires: null }]);
  });

  it.each([
    ['upper case', DB.toUpperCase()],
    ['lower case', DB],
    ['mixed case', 'DbDbDbDb-0000-4000-8000-0000000000Db'],
  ])("node A can neither release B's lease, resize, move away nor delete B's dataset (%s id)", async (_name, id) => {
    for (const [method, url, body] of [
      ['DELETE', `/v1/configuration/leases/${id}`, undefined],
      // Nor one holder's share of it.
      ['DELETE', `/v1/configuration/leases/${id}?holder=docker`, undefined],
      ['DELETE', `/v1/configuration/leases/${id}?holder=csi`, undefined],
      ['POST', `/v1/configuration/datasets/${id}`, { maximum_size: 134217728 }],
      ['POST', `/v1/configuration/datasets/${id}`, { primary: B.toUpperCase() }],
      ['DELETE', `/v1/configuration/datasets/${id}`, undefined],
    ] as const) {
      const answer = await call(nodeA, method, url, body);
      expect({ method, url, status: answer.status }).toEqual({ method, url, status: 403 });
    }
    // Moving it to A is what the plugin would do, and B's lease forbids it.
    expect((await call(nodeA, 'POST', `/v1/configuration/datasets/${id}`, { primary: A.toUpperCase() })).status).toBe(
      409,
    );
    const leases = (await call(admin, 'GET', '/v1/configuration/leases')).body;
    expect(leases).toEqual([{ dataset_id: DB, node_uuid: B, expires: null }]);
    const datasets = (await call(admin, 'GET', '/v1/configuration/datasets')).body;
    expect(datasets).toEqual([{ dataset_id: DB, primary: B, metadata: { name: 'b-data' }, deleted: false }]);
  });

  it("the ghost-node attack: A reports as its upper-case alias claiming B's instance and dataset; B's instance must never look dead", async () => {
    const ghost = report(A.toUpperCase(), INSTANCE_B, {
      manifestations: [
        {
          dataset_id: DB.toUpperCase(),
          blockdevice_id: 'vol-db',
          size: 67108864,
          status: 'mounted',
          path: `/flocker/${DB}`,
        },
      ],
      volumes: [{ blockdevice_id: 'vol-db', dataset_id: DB.toUpperCase(), size: 67108864, attached_to: INSTANCE_B }],
    });
    const answer = await call(nodeA, 'PUT', `/v1/agent/nodes/${A.toUpperCase()}`, ghost);
    expect(answer).toMatchObject({
      status: 409,
      body: { code: 'INSTANCE_CLAIMED', description: expect.stringContaining(B) },
    });
    // Wait past the node timeout, B and A still reporting: whatever happened, no dead node may claim B's instance.
    const until = Date.now() + 2_500;
    while (Date.now() < until) {
      expect((await call(nodeB, 'PUT', `/v1/agent/nodes/${B}`, bReport())).status).toBe(200);
      expect((await call(nodeA, 'PUT', `/v1/agent/nodes/${A}`, report(A, INSTANCE_A))).status).toBe(200);
      await new Promise((r) => setTimeout(r, 300));
    }
    const snapshot = (await call(admin, 'GET', '/v1/agent/cluster')).body as {
      nodes: { uuid: string; instance_id: string; alive: boolean }[];
    };
    expect(snapshot.nodes.map((n) => n.uuid).sort()).toEqual([A, B]);
    expect(snapshot.nodes.filter((n) => n.instance_id === INSTANCE_B)).toEqual([
      expect.objectContaining({ uuid: B, alive: true }),
    ]);
  });
});

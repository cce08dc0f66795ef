/**
 * Mutual TLS and authorization of the control service, end to end over real
 * HTTPS: who gets through the handshake, and what each identity may do.
 */
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { request as httpsRequest } from 'node:https';
import { connect as tcpConnect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import winston from 'winston';
import {
  FlockerApiError,
  FlockerClient,
  nodeCommonName,
  tlsDispatcher,
  userCommonName,
  type NodeReport,
} from '@flocker/api';
import { startControlService, type ControlService } from '@flocker/control-api';
import type { PemPair } from '@flocker/cli';
import { ClusterPki } from './cluster/pki';

const silent = winston.createLogger({ silent: true });
const A = randomUUID();
const B = randomUUID();

function report(uuid: string): NodeReport {
  return {
    uuid,
    era: `era-${uuid}`,
    host: '127.0.0.1',
    instance_id: uuid,
    backend: 'loopback',
    manifestations: [],
    errors: [],
  };
}

describe('control service security (mutual TLS + authorization)', () => {
  let dir: string;
  let pki: ClusterPki;
  let other: ClusterPki;
  let control: ControlService;
  let admin: FlockerClient;
  let nodeA: FlockerClient;
  let nodeB: FlockerClient;
  const dispatchers: ReturnType<typeof tlsDispatcher>[] = [];

  function clientWith(pem: Partial<PemPair>, ca: string | Buffer = fs.readFileSync(pki.caFile)): FlockerClient {
    const dispatcher = tlsDispatcher({
      ca,
      ...(pem.certificate ? { cert: pem.certificate } : {}),
      ...(pem.privateKey ? { key: pem.privateKey } : {}),
    });
    dispatchers.push(dispatcher);
    return new FlockerClient({ baseUrl: control.url, timeoutMs: 5_000, dispatcher });
  }

  /** The request must fail below HTTP: no status code, no answer from the API. */
  async function expectHandshakeRefused(p: Promise<unknown>): Promise<void> {
    const err: unknown = await p.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeDefined();
    // The client reports a transport failure as status 0 (no HTTP answer at all).
    if (err instanceof FlockerApiError) expect(err.status).toBe(0);
  }

  async function expectForbidden(p: Promise<unknown>, text: RegExp): Promise<void> {
    const err: unknown = await p.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(FlockerApiError);
    expect(err).toMatchObject({ status: 403, code: 'FORBIDDEN' });
    expect((err as Error).message).toMatch(text);
  }

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flocker-security-'));
    pki = await ClusterPki.create(path.join(dir, 'pki'), ['127.0.0.1', 'localhost']);
    other = await ClusterPki.create(path.join(dir, 'other-pki'), ['127.0.0.1']);
    control = await startControlService({
      port: 0,
      host: '127.0.0.1',
      dataDir: path.join(dir, 'data'),
      logger: silent,
      tls: pki.serverCredentials(),
    });
    expect(control.url).toMatch(/^https:/);
    admin = clientWith(await pki.issue(userCommonName('admin'), 'user'));
    nodeA = clientWith(await pki.issue(nodeCommonName(A), 'node'));
    nodeB = clientWith(await pki.issue(nodeCommonName(B), 'node'));
    await nodeA.reportNodeState(report(A));
    await nodeB.reportNodeState(report(B));
  });
  afterAll(async () => {
    await Promise.all(dispatchers.map((d) => d.destroy().catch(() => undefined)));
    await control?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  describe('allowed', () => {
    it('an API user may do everything in the public API and read the agent channel', async () => {
      const d = await admin.createDataset({ primary: B, metadata: { name: 'by-admin' } });
      await admin.updateDataset(d.dataset_id, { primary: A });
      await admin.acquireLease({ dataset_id: d.dataset_id, node_uuid: A, expires: 60 });
      expect((await admin.listLeases()).map((l) => l.dataset_id)).toContain(d.dataset_id);
      await admin.releaseLease(d.dataset_id);
      await admin.deleteDataset(d.dataset_id);
      expect((await admin.waitForCluster(undefined, 0)).nodes.map((n) => n.uuid).sort()).toEqual([A, B].sort());
    });

    it('a node reports its own state, reads, and makes the changes that concern only itself', async () => {
      await nodeA.reportNodeState(report(A));
      expect((await nodeA.listNodes()).length).toBe(2);
      const d = await nodeA.createDataset({ primary: A, metadata: { name: 'mine' } });
      await nodeA.acquireLease({ dataset_id: d.dataset_id, node_uuid: A, expires: null });
      await nodeA.releaseLease(d.dataset_id);
      // Moving a dataset to itself (the plugin's Mount on another host).
      await nodeB.updateDataset(d.dataset_id, { primary: B });
      await nodeB.deleteDataset(d.dataset_id);
    });
  });

  describe('refused', () => {
    it('no client certificate: the TLS handshake fails', async () => {
      await expectHandshakeRefused(clientWith({}).version());
    });

    it('a certificate from another CA: the TLS handshake fails', async () => {
      await expectHandshakeRefused(clientWith(await other.issue(userCommonName('admin'), 'user')).version());
    });

    it('an expired certificate: the TLS handshake fails', async () => {
      const expired = await pki.issue(userCommonName('admin'), 'user', {
        notBefore: new Date(Date.now() - 10 * 86_400_000),
        notAfter: new Date(Date.now() - 86_400_000),
      });
      await expectHandshakeRefused(clientWith(expired).version());
    });

    it('a certificate whose key does not match: the TLS handshake fails', async () => {
      const mine = await pki.issue(userCommonName('admin'), 'user');
      const someoneElses = await pki.issue(userCommonName('mallory'), 'user');
      const before = (await admin.listDatasets()).length;
      await expectHandshakeRefused(
        clientWith({ certificate: mine.certificate, privateKey: someoneElses.privateKey }).createDataset({
          primary: A,
        }),
      );
      expect((await admin.listDatasets()).length).toBe(before);
    });

    it('a server certificate the client does not trust (another CA) is refused by the client', async () => {
      const mine = await pki.issue(userCommonName('admin'), 'user');
      await expectHandshakeRefused(clientWith(mine, fs.readFileSync(other.caFile)).version());
    });

    it("a node certificate reporting another node's state: 403", async () => {
      await expectForbidden(nodeA.reportNodeState(report(B)), new RegExp(`node ${A} may report only its own state`));
    });

    it('a node certificate changing the configuration on behalf of another node: 403', async () => {
      await expectForbidden(nodeA.createDataset({ primary: B }), /only with itself as primary/);
      const d = await admin.createDataset({ primary: B });
      await expectForbidden(nodeA.updateDataset(d.dataset_id, { primary: B }), /only to itself/);
      await expectForbidden(
        nodeA.updateDataset(d.dataset_id, { maximum_size: 134217728 }),
        /only datasets whose primary it is/,
      );
      await expectForbidden(
        nodeA.acquireLease({ dataset_id: d.dataset_id, node_uuid: B, expires: null }),
        /leases only for itself/,
      );
      await nodeB.acquireLease({ dataset_id: d.dataset_id, node_uuid: B, expires: null });
      await expectForbidden(nodeA.releaseLease(d.dataset_id), new RegExp(`node ${B} holds the lease`));
      await expectForbidden(
        nodeA.deleteDataset(d.dataset_id),
        new RegExp(`may delete only datasets whose primary it is; dataset ${d.dataset_id} is on node ${B}`),
      );
      // Least privilege (issue 17 #5): without any lease, A still may not delete, resize or release on B's dataset.
      const unleased = await admin.createDataset({ primary: B });
      await expectForbidden(nodeA.deleteDataset(unleased.dataset_id), /may delete only datasets whose primary it is/);
      await expectForbidden(
        nodeA.updateDataset(unleased.dataset_id, { maximum_size: 134217728 }),
        /only datasets whose primary it is/,
      );
      // Releasing a lease nobody holds is a no-op (404), for anyone.
      await expect(nodeA.releaseLease(unleased.dataset_id)).rejects.toMatchObject({ status: 404 });
      expect((await admin.listDatasets()).find((x) => x.dataset_id === unleased.dataset_id)).toMatchObject({
        primary: B,
        deleted: false,
      });
      // Nothing changed.
      expect((await admin.listDatasets()).find((x) => x.dataset_id === d.dataset_id)).toMatchObject({
        primary: B,
        deleted: false,
      });
      expect((await admin.listLeases()).find((l) => l.dataset_id === d.dataset_id)?.node_uuid).toBe(B);
    });

    it('an API user may not write to the agent channel', async () => {
      await expectForbidden(admin.reportNodeState(report(A)), /may read the agent channel but not write/);
    });

    it('a certificate of this CA with an unknown common name, or the control certificate as a client: 403 everywhere', async () => {
      const stranger = clientWith(await pki.issue('mallory', 'user'));
      await expectForbidden(stranger.version(), /names no Flocker identity/);
      await expectForbidden(stranger.listDatasets(), /names no Flocker identity/);
      const controlAsClient = clientWith({
        certificate: fs.readFileSync(pki.control.cert, 'utf8'),
        privateKey: fs.readFileSync(pki.control.key, 'utf8'),
      });
      // The control certificate is for servers (serverAuth only); either the handshake or the API refuses it.
      const err: unknown = await controlAsClient.version().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeDefined();
      expect(err).toBeInstanceOf(FlockerApiError);
      expect([0, 403]).toContain((err as FlockerApiError).status);
    });

    it('an unknown path answers 403 JSON to an unknown identity, not 404', async () => {
      const pem = await pki.issue('not-flocker', 'user');
      const res = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const u = new URL(`${control.url}/no/such/path`);
        const req = httpsRequest(
          {
            host: u.hostname,
            port: u.port,
            path: u.pathname,
            ca: fs.readFileSync(pki.caFile),
            cert: pem.certificate,
            key: pem.privateKey,
          },
          (r) => {
            let body = '';
            r.on('data', (c: Buffer) => (body += c.toString()));
            r.on('end', () => resolve({ status: r.statusCode ?? 0, body }));
          },
        );
        req.on('error', reject);
        req.end();
      });
      expect(res.status).toBe(403);
      expect(JSON.parse(res.body)).toMatchObject({ code: 'FORBIDDEN', description: expect.any(String) });
    });
  });

  describe('slow clients over TLS (slow loris)', () => {
    let slow: ControlService;
    beforeAll(async () => {
      slow = await startControlService({
        port: 0,
        host: '127.0.0.1',
        dataDir: path.join(dir, 'slow'),
        logger: silent,
        tls: pki.serverCredentials(),
        limits: { headersTimeoutMs: 500, requestTimeoutMs: 800, checkIntervalMs: 100 },
      });
    });
    afterAll(async () => slow?.close());

    /** Resolves with how long the server kept the connection open. */
    function closedAfter(socket: NodeJS.EventEmitter & { destroy(): void }): Promise<number> {
      const start = Date.now();
      return new Promise((resolve, reject) => {
        const guard = setTimeout(() => {
          socket.destroy();
          reject(new Error('the server kept a slow connection open for 10 s'));
        }, 10_000);
        socket.on('error', () => undefined);
        socket.on('close', () => {
          clearTimeout(guard);
          resolve(Date.now() - start);
        });
      });
    }

    it('a connection that never starts the TLS handshake is closed', async () => {
      const socket = tcpConnect(slow.port, '127.0.0.1');
      expect(await closedAfter(socket)).toBeLessThan(5_000);
    });

    it('an authenticated client dripping its headers is cut off', async () => {
      const pem = await pki.issue(userCommonName('admin'), 'user');
      const socket = tlsConnect({
        port: slow.port,
        host: '127.0.0.1',
        ca: fs.readFileSync(pki.caFile),
        cert: pem.certificate,
        key: pem.privateKey,
      });
      const closed = closedAfter(socket);
      socket.once('secureConnect', () => {
        socket.write('GET /v1/version HTTP/1.1\r\nHost: x\r\n');
        const drip = setInterval(() => {
          if (!socket.destroyed) socket.write('X-Slow: 1\r\n');
        }, 100);
        socket.once('close', () => clearInterval(drip));
      });
      expect(await closed).toBeLessThan(5_000);
    });
  });
});

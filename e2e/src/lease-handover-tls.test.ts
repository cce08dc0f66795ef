/**
 * The lease hand-over end to end over mutual TLS (session 21): a real control service with node and API user
 * certificates, the real `flocker` CLI, and node A's Docker plugin played by this test through A's certificate (it
 * lets go of its idle lease, or declines, once the request shows; LEASE-P's e2e runs the real plugin). Node B's lease
 * POST, an administrator's move and `flocker volumes destroy` wait and go through once A lets go; a decline refuses at
 * once, a silent holder after --handover-wait, each saying why; the requester is named by its certificate; only the
 * holder (or an administrator) may decline; the holder's own DELETE is refused at once, never a request to itself.
 */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import winston from 'winston';
import {
  FlockerApiError,
  FlockerClient,
  type Lease,
  type NodeReport,
  nodeCommonName,
  tlsDispatcher,
} from '@flocker/api';
import { startControlService, type ControlService } from '@flocker/control-api';
import { ClusterPki } from './cluster/pki';
import { REPO_ROOT } from './cluster/Cluster';

jest.setTimeout(120_000);

const CLI_MAIN = path.join(REPO_ROOT, 'packages/cli/dist/main.js');
const A = 'aaaaaaaa-1111-4111-8111-00000000000a';
const B = 'bbbbbbbb-2222-4222-8222-00000000000b';

/**
 * This release, as a current dataset agent reports it (packages/metrics releaseVersion): the control service asks a
 * holder for its lease only when the views its node is served carry release_requested (review R1 F1).
 */
const RELEASE = (
  JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'packages/metrics/package.json'), 'utf8')) as { version: string }
).version;

function report(uuid: string, host: string): NodeReport {
  return {
    uuid,
    era: `era-${host}`,
    host,
    instance_id: `i-${host}`,
    backend: 'loopback',
    manifestations: [],
    errors: [],
    version: RELEASE,
  };
}

async function outcome<T>(p: Promise<T>): Promise<{ value?: T; error?: FlockerApiError; ms: number }> {
  const t0 = Date.now();
  try {
    return { value: await p, ms: Date.now() - t0 };
  } catch (e) {
    if (!(e instanceof FlockerApiError)) throw e;
    return { error: e, ms: Date.now() - t0 };
  }
}

describe.each([
  ['a wait of 20 s', 20],
  ['a wait of 1 s', 1],
])('lease hand-over over mutual TLS (%s)', (_name, waitSeconds) => {
  let dir: string;
  let control: ControlService;
  let admin: FlockerClient;
  let nodeA: FlockerClient;
  let nodeB: FlockerClient;
  let cliEnv: Record<string, string>;

  const flocker = (args: string[]): Promise<{ code: number; out: string; err: string; ms: number }> =>
    new Promise((resolve) => {
      const t0 = Date.now();
      execFile(process.execPath, [CLI_MAIN, ...args], { env: { ...process.env, ...cliEnv } }, (e, out, err) => {
        const code = e === null ? 0 : typeof e.code === 'number' ? e.code : -1;
        resolve({ code, out, err, ms: Date.now() - t0 });
      });
    });

  /** A volume on A whose lease A's plugin keeps (release_on_request), as a plugin with idle leases takes it. */
  async function idle(name: string): Promise<string> {
    // Both nodes report again: reported only once, they were declared dead (30 s node timeout) part-way through the
    // file on a loaded host, and A's lease released by the dead-node rules instead of asked for (session 22).
    await nodeA.reportNodeState(report(A, '127.0.0.2'));
    await nodeB.reportNodeState(report(B, '127.0.0.3'));
    const d = await admin.createDataset({ primary: A, metadata: { name } });
    const granted = await nodeA.acquireLease({
      dataset_id: d.dataset_id,
      node_uuid: A,
      expires: null,
      holder: 'docker',
      release_on_request: true,
    });
    expect(granted.release_on_request).toBe(true);
    return d.dataset_id;
  }

  /** Polls the lease until `check` holds (no fixed sleep). */
  async function leaseOf(id: string, check: (l: Lease | undefined) => boolean): Promise<Lease | undefined> {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const l = (await admin.listLeases()).find((x) => x.dataset_id === id);
      if (check(l)) return l;
      if (Date.now() > deadline) throw new Error(`lease of ${id}: ${JSON.stringify(l)}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  /** A's plugin: once asked, lets go of its share or declines (through A's own certificate). */
  async function holderA(id: string, answer: 'release' | 'decline'): Promise<Lease | undefined> {
    const asked = await leaseOf(id, (l) => l?.release_requested !== undefined);
    if (answer === 'release') await nodeA.releaseLease(id, { holder: 'docker' });
    else await nodeA.declineReleaseRequest(id);
    return asked;
  }

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flocker-e2e-handover-'));
    const pki = await ClusterPki.create(path.join(dir, 'pki'), ['127.0.0.1']);
    control = await startControlService({
      port: 0,
      host: '127.0.0.1',
      dataDir: path.join(dir, 'control'),
      logger: winston.createLogger({ silent: true }),
      tls: pki.serverCredentials(),
      handoverWaitSeconds: waitSeconds,
    });
    const as = async (uuid: string): Promise<FlockerClient> => {
      const pem = await pki.issue(nodeCommonName(uuid), 'node');
      const dispatcher = tlsDispatcher({ ca: fs.readFileSync(pki.caFile), cert: pem.certificate, key: pem.privateKey });
      return new FlockerClient({ baseUrl: control.url, dispatcher, timeoutMs: 30_000 });
    };
    admin = new FlockerClient({ baseUrl: control.url, dispatcher: await pki.userDispatcher('admin') });
    nodeA = await as(A);
    nodeB = await as(B);
    cliEnv = { ...(await pki.cliEnv('admin')), FLOCKER_CONTROL_URL: control.url };
    await nodeA.reportNodeState(report(A, '127.0.0.2'));
    await nodeB.reportNodeState(report(B, '127.0.0.3'));
  });
  afterAll(async () => {
    await control?.close();
    if (dir !== undefined) fs.rmSync(dir, { recursive: true, force: true });
  });

  if (waitSeconds === 20) {
    it("node B's lease POST waits and is granted once A lets go; the request names B (its certificate)", async () => {
      const id = await idle('b-wants');
      const asked = outcome(nodeB.acquireLease({ dataset_id: id, node_uuid: B, expires: null, holder: 'docker' }));
      const seen = await holderA(id, 'release');
      expect(seen?.release_requested?.by).toBe(B);
      const { value, error, ms } = await asked;
      expect(error).toBeUndefined();
      expect(value).toMatchObject({ dataset_id: id, node_uuid: B });
      expect(ms).toBeLessThan(20_000);
    });

    it("an administrator's move waits and moves; A declining the next one refuses it at once, saying why", async () => {
      const id = await idle('moved');
      const move = outcome(admin.updateDataset(id, { primary: B }));
      expect((await holderA(id, 'release'))?.release_requested?.by).toBe('api');
      expect((await move).value?.primary).toBe(B);

      const busy = await idle('busy');
      const refused = outcome(admin.updateDataset(busy, { primary: B }));
      await leaseOf(busy, (l) => l?.release_requested !== undefined);
      // Only the holder (or an administrator) may decline: B's certificate is refused, A's is not.
      const notB = await outcome(nodeB.declineReleaseRequest(busy));
      expect(notB.error?.status).toBe(403);
      await nodeA.declineReleaseRequest(busy);
      const { error, ms } = await refused;
      expect({ status: error?.status, code: error?.code }).toEqual({ status: 409, code: 'LEASE_HELD' });
      expect(error?.description).toMatch(/declined to let go of it: a container on 127\.0\.0\.2 uses it\.$/);
      expect(ms).toBeLessThan(20_000);
      expect((await admin.getDataset(busy)).primary).toBe(A);
    });

    it('flocker volumes destroy of an idle volume: the CLI leaves it to the control service, which asks A', async () => {
      const id = await idle('to-destroy');
      const list = await flocker(['leases', 'list']);
      expect(list.code).toBe(0);
      expect(list.out).toMatch(/to-destroy .*docker; released on request/);
      const destroy = flocker(['volumes', 'destroy', 'to-destroy']);
      await holderA(id, 'release');
      const done = await destroy;
      expect({ code: done.code, err: done.err }).toEqual({ code: 0, err: 'Destroying to-destroy\n' });
      expect((await admin.getDataset(id)).deleted).toBe(true);
    });

    it('flocker volumes destroy of a volume its holder uses: refused saying what to do; --force warns, then destroys', async () => {
      const id = await idle('in-use');
      const refused = flocker(['volumes', 'destroy', 'in-use']);
      await holderA(id, 'decline');
      const r = await refused;
      expect(r.code).toBe(4);
      expect(r.err).toMatch(
        /volume in-use is in use on 127\.0\.0\.2 \(node aaaaaaaa\): its holder's Docker plugin declined to let go of it: a container there uses it\. Stop that container first, or pass --force to release the lease and destroy it anyway \(that container loses its data\)\./,
      );
      expect(r.err).not.toMatch(/Release the lease first/);
      expect((await admin.getDataset(id)).deleted).toBe(false);
      // Forced: asked first all the same; declined again, so the warning of a volume in use, then the destroy.
      const forced = flocker(['volumes', 'destroy', 'in-use', '--force']);
      await holderA(id, 'decline');
      const f = await forced;
      expect(f.code).toBe(0);
      expect(f.err).toMatch(/warning: volume in-use is in use on 127\.0\.0\.2 .*that container loses its data/);
      expect((await admin.getDataset(id)).deleted).toBe(true);
    });

    it("the holder's own DELETE is refused at once as before, never a request to itself", async () => {
      const id = await idle('own');
      const own = await outcome(nodeA.deleteDataset(id));
      expect(own.error?.code).toBe('LEASE_HELD');
      expect(own.ms).toBeLessThan(10_000);
      expect((await leaseOf(id, () => true))?.release_requested).toBeUndefined();
    });
  } else {
    it('a silent holder: refused after the wait, and flocker volumes move says what to check', async () => {
      const id = await idle('silent');
      const del = await outcome(admin.deleteDataset(id));
      expect(del.error?.code).toBe('LEASE_HELD');
      expect(del.error?.description).toMatch(
        /Its holder was asked to let go of it and did not within 1 s \(is the Docker plugin on 127\.0\.0\.2 running\?\)\.$/,
      );
      const move = await flocker(['volumes', 'move', 'silent', B]);
      expect(move.code).toBe(4);
      expect(move.err).toMatch(
        /volume silent cannot move: 127\.0\.0\.2 \(node aaaaaaaa\) holds its lease\. Its holder was asked to let go of it and did not within 1 s .*Check that plugin, or release the lease \("flocker leases release silent --force"\)/,
      );
      expect((await admin.getDataset(id)).primary).toBe(A);
    });
  }
});

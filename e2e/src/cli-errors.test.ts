/**
 * The real `flocker` binary against a real control service over mutual TLS, with real
 * certificates from the project's CA code: each connection failure is told apart, with
 * the fix in the message, its own stable code and exit code (issue 21, "Errors say what
 * is wrong"); `--json` errors are one JSON object on stderr.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import winston from 'winston';
import { randomUUID } from 'node:crypto';
import { CONTROL_COMMON_NAME, FlockerClient, nodeCommonName, tlsDispatcher, userCommonName } from '@flocker/api';
import type { PemPair } from '@flocker/cli';
import { startControlService, type ControlService } from '@flocker/control-api';
import { ClusterPki } from './cluster/pki';
import { REPO_ROOT } from './cluster';

jest.setTimeout(60_000);

const CLI = path.join(REPO_ROOT, 'packages/cli/dist/main.js');
const DAY = 86_400_000;
const silent = winston.createLogger({ silent: true });

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

let dir: string;
let pki: ClusterPki;
let other: ClusterPki;
let control: ControlService;
let expiredControl: ControlService;
/** A home and credentials directory of our own, so no cli.yml or /etc/flocker of this machine is used. */
let home: string;

function flocker(args: string[], env: Record<string, string> = {}): Promise<Result> {
  return new Promise((resolve) => {
    const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('FLOCKER_')));
    const p = spawn(process.execPath, [CLI, ...args], {
      env: { ...clean, HOME: home, FLOCKER_CREDENTIALS_DIR: path.join(home, 'no-credentials'), ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    p.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    p.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

function write(name: string, pem: PemPair): { cert: string; key: string } {
  const cert = path.join(dir, `${name}.crt`);
  const key = path.join(dir, `${name}.key`);
  fs.writeFileSync(cert, pem.certificate);
  fs.writeFileSync(key, pem.privateKey, { mode: 0o600 });
  return { cert, key };
}

/** `flocker volumes list --json` with these credentials: the JSON error it printed, and the exit code. */
async function jsonFailure(
  url: string,
  creds: string[],
): Promise<{ code: number | null; error: { code: string; message: string; exit_code: number } }> {
  const r = await flocker(['volumes', 'list', '--json', '--control-url', url, ...creds]);
  expect(r.stdout).toBe('');
  const parsed = JSON.parse(r.stderr) as { error: { code: string; message: string; exit_code: number } };
  expect(parsed.error.exit_code).toBe(r.code);
  return { code: r.code, error: parsed.error };
}

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flocker-cli-errors-'));
  home = path.join(dir, 'home');
  fs.mkdirSync(home);
  pki = await ClusterPki.create(path.join(dir, 'pki'), ['127.0.0.1']);
  other = await ClusterPki.create(path.join(dir, 'other-pki'), ['127.0.0.1'], 'other-cluster');
  control = await startControlService({
    port: 0,
    host: '127.0.0.1',
    dataDir: path.join(dir, 'data'),
    logger: silent,
    tls: pki.serverCredentials(),
  });
  const expiredServer = await pki.issue(CONTROL_COMMON_NAME, 'control', {
    notBefore: new Date(Date.now() - 10 * DAY),
    notAfter: new Date(Date.now() - DAY),
  });
  expiredControl = await startControlService({
    port: 0,
    host: '127.0.0.1',
    dataDir: path.join(dir, 'data-expired'),
    logger: silent,
    tls: {
      ca: fs.readFileSync(pki.caFile),
      cert: Buffer.from(expiredServer.certificate),
      key: Buffer.from(expiredServer.privateKey),
    },
  });
});

afterAll(async () => {
  await control?.close();
  await expiredControl?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('flocker tells connection failures apart (issue 21)', () => {
  it('with good credentials it works (the baseline)', async () => {
    const admin = await pki.user('admin');
    const r = await flocker([
      'volumes',
      'list',
      '--json',
      '--control-url',
      control.url,
      '--cacert',
      pki.caFile,
      '--cert',
      admin.cert,
      '--key',
      admin.key,
    ]);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    expect(JSON.parse(r.stdout)).toEqual([]);
  });

  it('--cert/--key without --cacert fall back to cluster.crt in the credentials directory', async () => {
    const admin = await pki.user('admin');
    const creds = path.join(dir, 'credentials');
    fs.mkdirSync(creds, { recursive: true });
    fs.copyFileSync(pki.caFile, path.join(creds, 'cluster.crt'));
    const args = ['volumes', 'list', '--control-url', control.url, '--cert', admin.cert, '--key', admin.key];
    const r = await flocker(args, { FLOCKER_CREDENTIALS_DIR: creds });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    // Without one: a usage error naming --cacert, not "self-signed certificate in certificate chain".
    const none = await flocker(args);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/give --cacert/);
    expect(none.stderr).not.toMatch(/self-signed/);
  });

  it('unreachable: exit 6, CONTROL_SERVICE_UNREACHABLE, says nothing listens there', async () => {
    const admin = await pki.user('admin');
    const closed = 'https://127.0.0.1:9';
    const r = await jsonFailure(closed, ['--cacert', pki.caFile, '--cert', admin.cert, '--key', admin.key]);
    expect(r.code).toBe(6);
    expect(r.error.code).toBe('CONTROL_SERVICE_UNREACHABLE');
    expect(r.error.message).toMatch(/ECONNREFUSED.*nothing is listening/);
  });

  it("a server certificate from another cluster's CA: exit 7, TLS_SERVER_UNTRUSTED, names the CA file to fix", async () => {
    const admin = await pki.user('admin');
    const r = await jsonFailure(control.url, ['--cacert', other.caFile, '--cert', admin.cert, '--key', admin.key]);
    expect(r.code).toBe(7);
    expect(r.error.code).toBe('TLS_SERVER_UNTRUSTED');
    expect(r.error.message).toContain(other.caFile);
    expect(r.error.message).toMatch(/did not sign/);
    expect(r.error.message).toMatch(/wrong file/);
    expect(r.error.message).toMatch(/--cacert/);
  });

  it("a client certificate from another cluster's CA: exit 7, TLS_CLIENT_CERT_REJECTED (not 'other side closed')", async () => {
    const foreign = write('foreign', await other.issue(userCommonName('admin'), 'user'));
    const r = await jsonFailure(control.url, ['--cacert', pki.caFile, '--cert', foreign.cert, '--key', foreign.key]);
    expect(r.code).toBe(7);
    expect(r.error.code).toBe('TLS_CLIENT_CERT_REJECTED');
    expect(r.error.message).toMatch(/rejected your client certificate/);
    expect(r.error.message).toMatch(/not by this cluster's CA/);
    expect(r.error.message).toMatch(/create-api-certificate/);
    expect(r.error.message).not.toMatch(/other side closed/);
  });

  it('no client certificate at all: TLS_CLIENT_CERT_REJECTED saying one is required', async () => {
    const r = await jsonFailure(control.url, ['--cacert', pki.caFile]);
    expect(r.code).toBe(7);
    expect(r.error.code).toBe('TLS_CLIENT_CERT_REJECTED');
    expect(r.error.message).toMatch(/requires a client certificate.*--cert and --key/);
  });

  it('the control service certificate used as a client certificate: rejected, says it is not a client certificate', async () => {
    const r = await jsonFailure(control.url, [
      '--cacert',
      pki.caFile,
      '--cert',
      pki.control.cert,
      '--key',
      pki.control.key,
    ]);
    expect(r.code).toBe(7);
    expect(r.error.code).toBe('TLS_CLIENT_CERT_REJECTED');
    expect(r.error.message).toMatch(/not a client certificate/);
  });

  it('an expired client certificate: TLS_CERT_EXPIRED, says it is ours and when it expired', async () => {
    const notAfter = new Date(Date.now() - DAY);
    const expired = write(
      'expired',
      await pki.issue(userCommonName('alice'), 'user', { notBefore: new Date(Date.now() - 10 * DAY), notAfter }),
    );
    const r = await jsonFailure(control.url, ['--cacert', pki.caFile, '--cert', expired.cert, '--key', expired.key]);
    expect(r.code).toBe(7);
    expect(r.error.code).toBe('TLS_CERT_EXPIRED');
    expect(r.error.message).toMatch(/your client certificate .*expired on/);
    expect(r.error.message).toContain(notAfter.toISOString().slice(0, 10));
    expect(r.error.message).toMatch(/create-api-certificate alice/);
  });

  it("an expired control service certificate: TLS_CERT_EXPIRED, says it is the server's", async () => {
    const admin = await pki.user('admin');
    const r = await jsonFailure(expiredControl.url, ['--cacert', pki.caFile, '--cert', admin.cert, '--key', admin.key]);
    expect(r.code).toBe(7);
    expect(r.error.code).toBe('TLS_CERT_EXPIRED');
    expect(r.error.message).toMatch(/the control service's certificate .*expired on/);
    expect(r.error.message).toMatch(/create-control-certificate/);
  });

  it('without --json the same failure is one plain line with the same exit code', async () => {
    const admin = await pki.user('admin');
    const r = await flocker([
      'volumes',
      'list',
      '--control-url',
      control.url,
      '--cacert',
      other.caFile,
      '--cert',
      admin.cert,
      '--key',
      admin.key,
    ]);
    expect(r.code).toBe(7);
    expect(r.stderr).toMatch(/^flocker: the control service at .* did not sign/);
  });
});

describe('input checks against the real control service (issue 21)', () => {
  const NODE = randomUUID();
  let admin: string[];

  beforeAll(async () => {
    const files = await pki.user('admin');
    admin = ['--control-url', control.url, '--cacert', pki.caFile, '--cert', files.cert, '--key', files.key];
    // A node that reports 78 GB free, as a loopback agent does for its pool.
    const pem = await pki.issue(nodeCommonName(NODE), 'node');
    const dispatcher = tlsDispatcher({ ca: fs.readFileSync(pki.caFile), cert: pem.certificate, key: pem.privateKey });
    try {
      await new FlockerClient({ baseUrl: control.url, dispatcher }).reportNodeState({
        uuid: NODE,
        era: `era-${NODE}`,
        host: '127.0.0.1',
        instance_id: NODE,
        backend: 'loopback',
        manifestations: [],
        errors: [],
        available_bytes: 78_000_000_000,
      });
    } finally {
      await dispatcher.destroy();
    }
  });

  it('a volume larger than the free capacity: a JSON warning naming it on stderr, the volume created', async () => {
    const r = await flocker([
      'volumes',
      'create',
      'huge',
      '--size',
      '10TiB',
      '--node',
      NODE,
      '--no-wait',
      '--json',
      ...admin,
    ]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stderr)).toMatchObject({
      warning: { code: 'OVERCOMMIT', available_bytes: 78_000_000_000, requested_bytes: 10 * 1024 ** 4, node: NODE },
    });
    expect(JSON.parse(r.stdout)).toMatchObject({ maximum_size: 10 * 1024 ** 4, metadata: { name: 'huge' } });
    const text = await flocker([
      'volumes',
      'create',
      'huge2',
      '--size',
      '10TiB',
      '--node',
      NODE,
      '--no-wait',
      ...admin,
    ]);
    expect(text.stderr).toMatch(/^flocker: warning: huge2 \(10 TiB\) is more than the 72\.6 GiB free on 127\.0\.0\.1/);
  });

  it('refused before anything is sent: long metadata, negative size, unknown profile (exit 2, a sentence)', async () => {
    const cases: Array<[string[], RegExp]> = [
      [
        ['--metadata', `owner=${'a'.repeat(300)}`],
        /^flocker: metadata\.owner: metadata values are at most 256 characters$/m,
      ],
      [['--size', '-5G'], /^flocker: --size -5G: a size cannot be negative/m],
      [['--profile', 'platinum'], /^flocker: unknown storage profile "platinum": use gold, silver or bronze/m],
    ];
    for (const [args, message] of cases) {
      const r = await flocker(['volumes', 'create', 'refused', '--node', NODE, '--no-wait', ...args, ...admin]);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(message);
    }
    const names = await flocker(['volumes', 'list', '--json', ...admin]);
    expect((JSON.parse(names.stdout) as Array<{ name: string }>).map((v) => v.name)).not.toContain('refused');
  });
});

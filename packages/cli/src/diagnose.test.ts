/**
 * Telling connection failures apart (issue 21): real certificates from the project's CA
 * code, a real HTTPS server demanding client certificates as the control service does,
 * and the pure `explain` for the cases a test server cannot easily stage.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FlockerApiError, LEFT_REPLICA, SizeError } from '@flocker/api';
import { createClusterCa, issueCertificate, type PemPair } from './ca/certificates';
import { explain, probeControl, toCliError, type LocalFacts } from './diagnose';
import { CliError, EXIT, jsonError } from './errors';

const DAY = 86_400_000;
let dir: string;
let ca: PemPair;
let otherCa: PemPair;
let server: Server;
let url: string;
const files: Record<string, string> = {};

function write(name: string, pem: PemPair): void {
  files[`${name}.crt`] = join(dir, `${name}.crt`);
  files[`${name}.key`] = join(dir, `${name}.key`);
  writeFileSync(files[`${name}.crt`]!, pem.certificate);
  writeFileSync(files[`${name}.key`]!, pem.privateKey);
}
const f = (name: string): string => files[name]!;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'flocker-diagnose-'));
  ca = (await createClusterCa('diagnose')).pem;
  otherCa = (await createClusterCa('another-cluster')).pem;
  write('cluster', ca);
  write('other-cluster', otherCa);
  const control = await issueCertificate(ca, {
    commonName: 'control-service',
    role: 'control',
    subjectAltNames: ['127.0.0.1'],
  });
  write('control', control);
  write('admin', await issueCertificate(ca, { commonName: 'user-admin', role: 'user' }));
  write('foreign', await issueCertificate(otherCa, { commonName: 'user-admin', role: 'user' }));
  write(
    'expired',
    await issueCertificate(ca, {
      commonName: 'user-alice',
      role: 'user',
      notBefore: new Date(Date.now() - 10 * DAY),
      notAfter: new Date(Date.now() - DAY),
    }),
  );
  write(
    'named',
    await issueCertificate(ca, {
      commonName: 'control-service',
      role: 'control',
      subjectAltNames: ['control.example'],
    }),
  );
  // As the control service: only certificates of its CA get past the handshake.
  server = createServer(
    {
      ca: ca.certificate,
      cert: control.certificate,
      key: control.privateKey,
      requestCert: true,
      rejectUnauthorized: true,
    },
    (_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{"flocker":"test"}'),
  );
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
  rmSync(dir, { recursive: true, force: true });
});

/** What the CLI says when a request to `baseUrl` with these files got no HTTP answer. */
async function diagnosis(args: {
  'control-url': string;
  cacert?: string;
  cert?: string;
  key?: string;
}): Promise<CliError> {
  const failure = new FlockerApiError(0, 'CONTROL_SERVICE_UNREACHABLE', 'GET /v1/version failed: other side closed');
  const err = await toCliError(failure, args);
  if (err === undefined) throw new Error('not explained');
  return err;
}

describe('probeControl against a server that demands client certificates', () => {
  it('good credentials: the server answers', async () => {
    await expect(
      probeControl({ baseUrl: url, cacert: f('cluster.crt'), cert: f('admin.crt'), key: f('admin.key') }),
    ).resolves.toEqual({
      kind: 'answered',
      status: 200,
    });
  });

  it("no client certificate, or one of another CA: the server rejects it (the alert, not 'other side closed')", async () => {
    await expect(probeControl({ baseUrl: url, cacert: f('cluster.crt') })).resolves.toMatchObject({
      kind: 'client-rejected',
      alert: expect.stringMatching(/CERTIFICATE_REQUIRED/),
    });
    await expect(
      probeControl({ baseUrl: url, cacert: f('cluster.crt'), cert: f('foreign.crt'), key: f('foreign.key') }),
      // The alert (unknown CA) or, when the server closes first, just the close.
    ).resolves.toMatchObject({ kind: 'client-rejected' });
  });

  it("a CA file of another cluster: the server's certificate is untrusted, with its issuer", async () => {
    await expect(
      probeControl({ baseUrl: url, cacert: f('other-cluster.crt'), cert: f('admin.crt'), key: f('admin.key') }),
    ).resolves.toMatchObject({ kind: 'server-untrusted', peer: { issuer: 'diagnose', subject: 'control-service' } });
  });

  it('nothing listening: unreachable, ECONNREFUSED', async () => {
    await expect(probeControl({ baseUrl: 'https://127.0.0.1:9' })).resolves.toMatchObject({
      kind: 'unreachable',
      code: 'ECONNREFUSED',
    });
    await expect(probeControl({ baseUrl: 'http://127.0.0.1:9' })).resolves.toMatchObject({ code: 'ECONNREFUSED' });
  });
});

describe('toCliError: the message says what is wrong and how to fix it, with a stable code and exit code', () => {
  it('unreachable → exit 6 CONTROL_SERVICE_UNREACHABLE', async () => {
    const e = await diagnosis({ 'control-url': 'https://127.0.0.1:9', cacert: f('cluster.crt') });
    expect(e).toMatchObject({ exitCode: EXIT.UNREACHABLE, code: 'CONTROL_SERVICE_UNREACHABLE' });
    expect(e.message).toMatch(/nothing is listening there: is the control service running/);
  });

  it('another CA file → exit 7 TLS_SERVER_UNTRUSTED, naming the file and that the client certificate comes from the server CA', async () => {
    const e = await diagnosis({
      'control-url': url,
      cacert: f('other-cluster.crt'),
      cert: f('admin.crt'),
      key: f('admin.key'),
    });
    expect(e).toMatchObject({ exitCode: EXIT.CREDENTIALS, code: 'TLS_SERVER_UNTRUSTED' });
    expect(e.message).toContain(f('other-cluster.crt'));
    expect(e.message).toMatch(/issued by diagnose.*did not sign.*wrong file.*--cacert/);
  });

  it('a client certificate of another cluster → exit 7 TLS_CLIENT_CERT_REJECTED, naming its issuer', async () => {
    const e = await diagnosis({
      'control-url': url,
      cacert: f('cluster.crt'),
      cert: f('foreign.crt'),
      key: f('foreign.key'),
    });
    expect(e).toMatchObject({ exitCode: EXIT.CREDENTIALS, code: 'TLS_CLIENT_CERT_REJECTED' });
    expect(e.message).toMatch(
      /rejected your client certificate .*issued by another-cluster, not by this cluster's CA diagnose/,
    );
  });

  it('no client certificate → TLS_CLIENT_CERT_REJECTED asking for --cert and --key', async () => {
    const e = await diagnosis({ 'control-url': url, cacert: f('cluster.crt') });
    expect(e.code).toBe('TLS_CLIENT_CERT_REJECTED');
    expect(e.message).toMatch(/requires a client certificate .*give --cert and --key/);
  });

  it('an expired client certificate → TLS_CERT_EXPIRED, found in the file (no probe needed)', async () => {
    const probe = jest.fn();
    const e = await toCliError(
      new FlockerApiError(0, 'CONTROL_SERVICE_UNREACHABLE', 'x'),
      {
        'control-url': url,
        cacert: f('cluster.crt'),
        cert: f('expired.crt'),
        key: f('expired.key'),
      },
      probe,
    );
    expect(e).toMatchObject({ exitCode: EXIT.CREDENTIALS, code: 'TLS_CERT_EXPIRED' });
    expect(e?.message).toMatch(
      /your client certificate .*expired\.crt \(user-alice\) expired on .*create-api-certificate alice/,
    );
    expect(probe).not.toHaveBeenCalled();
  });

  it('a key of another certificate → TLS_KEY_MISMATCH; an unreadable file → TLS_CREDENTIALS_UNREADABLE', async () => {
    const mismatch = await diagnosis({
      'control-url': url,
      cacert: f('cluster.crt'),
      cert: f('admin.crt'),
      key: f('foreign.key'),
    });
    expect(mismatch).toMatchObject({ exitCode: EXIT.CREDENTIALS, code: 'TLS_KEY_MISMATCH' });
    const missing = await diagnosis({
      'control-url': url,
      cacert: join(dir, 'nope.crt'),
      cert: f('admin.crt'),
      key: f('admin.key'),
    });
    expect(missing).toMatchObject({ exitCode: EXIT.CREDENTIALS, code: 'TLS_CREDENTIALS_UNREADABLE' });
    expect(missing.message).toMatch(/cannot read the CA certificate \(--cacert\) .*nope\.crt/);
  });

  it("a server certificate for another name → TLS_SERVER_NAME_MISMATCH; an expired one → TLS_CERT_EXPIRED, saying it is the server's", () => {
    const facts: LocalFacts = {};
    const peer = {
      subject: 'control-service',
      issuer: 'c',
      notBefore: new Date(0),
      notAfter: new Date('2026-01-02T00:00:00Z'),
    };
    const now = new Date('2026-06-01T00:00:00Z');
    expect(
      explain('https://10.0.0.1:4523', facts, { kind: 'server-name', detail: 'not in altnames', peer }, 'x', now),
    ).toMatchObject({
      code: 'TLS_SERVER_NAME_MISMATCH',
      message: expect.stringMatching(/not valid for https:\/\/10\.0\.0\.1:4523 .*create-control-certificate/),
    });
    expect(explain('u', facts, { kind: 'server-untrusted', reason: 'CERT_HAS_EXPIRED', peer }, 'x', now)).toMatchObject(
      {
        exitCode: EXIT.CREDENTIALS,
        code: 'TLS_CERT_EXPIRED',
        message: expect.stringMatching(
          /the control service's certificate \(control-service\) expired on 2026-01-02T00:00:00Z/,
        ),
      },
    );
  });

  it('a server certificate that names another host is told from an untrusted one', async () => {
    const named = createServer({
      ca: ca.certificate,
      cert: readFileSync(f('named.crt')),
      key: readFileSync(f('named.key')),
      requestCert: true,
      rejectUnauthorized: true,
    });
    await new Promise<void>((r) => named.listen(0, '127.0.0.1', r));
    try {
      const at = `https://127.0.0.1:${(named.address() as AddressInfo).port}`;
      await expect(
        probeControl({ baseUrl: at, cacert: f('cluster.crt'), cert: f('admin.crt'), key: f('admin.key') }),
      ).resolves.toMatchObject({
        kind: 'server-name',
      });
    } finally {
      named.closeAllConnections();
      await new Promise((r) => named.close(r));
    }
  });

  it('http:// for a control service serving HTTPS, and https:// for one serving plain HTTP: say to switch', async () => {
    const plainUrl = url.replace('https:', 'http:');
    const toTls = await diagnosis({ 'control-url': plainUrl });
    expect(toTls).toMatchObject({ exitCode: EXIT.CREDENTIALS, code: 'TLS_REQUIRED' });
    expect(toTls.message).toContain(`Use ${url} with --cacert, --cert and --key`);
    const plain = createHttpServer((_req, res) => res.end('{}'));
    await new Promise<void>((r) => plain.listen(0, '127.0.0.1', r));
    try {
      const port = (plain.address() as AddressInfo).port;
      await expect(probeControl({ baseUrl: `http://127.0.0.1:${port}` })).resolves.toEqual({
        kind: 'answered',
        status: 200,
      });
      const toPlain = await diagnosis({ 'control-url': `https://127.0.0.1:${port}`, cacert: f('cluster.crt') });
      expect(toPlain).toMatchObject({ code: 'TLS_NOT_SERVED' });
      expect(toPlain.message).toMatch(new RegExp(`does not speak TLS .*use http://127\\.0\\.0\\.1:${port}`));
    } finally {
      plain.closeAllConnections();
      await new Promise((r) => plain.close(r));
    }
  });

  it('errors that are not the connection: sizes, zod issues, refusals by status', async () => {
    await expect(toCliError(new SizeError('size "x" is not understood'), {})).resolves.toMatchObject({
      exitCode: EXIT.USAGE,
      code: 'INVALID_SIZE',
    });
    const zod = Object.assign(new Error('[{"json":1}]'), {
      name: 'ZodError',
      issues: [{ path: ['metadata', 'owner'], message: 'metadata values are at most 256 characters' }],
    });
    await expect(toCliError(zod, {})).resolves.toMatchObject({
      exitCode: EXIT.USAGE,
      message: 'metadata.owner: metadata values are at most 256 characters',
    });
    const forbidden = await toCliError(
      new FlockerApiError(
        403,
        'FORBIDDEN',
        'The client certificate names no Flocker identity (expected a common name user-<name> or node-<uuid>).',
      ),
      {},
    );
    expect(forbidden).toMatchObject({ exitCode: EXIT.CREDENTIALS, code: 'TLS_CLIENT_CERT_REJECTED' });
    expect(forbidden?.message).toMatch(/create-api-certificate/);
    await expect(toCliError(new FlockerApiError(409, 'LEASE_HELD', 'leased'), {})).resolves.toMatchObject({
      exitCode: EXIT.CONFLICT,
      code: 'LEASE_HELD',
    });
    await expect(toCliError(new Error('bug'), {})).resolves.toBeUndefined();
  });

  it('a request ended because the client left its replica (LEFT_REPLICA) is no connection problem: no probe', async () => {
    // FR19-4: status 0 (no answer), but the replica was reached: its store is down. Before, it was that other
    // call's 503 STORE_UNAVAILABLE, refused as such (exit 1); probing the connection would explain nothing.
    const left = new FlockerApiError(
      0,
      LEFT_REPLICA,
      'left https://ctl1:4523 while this request was open there (its outcome is unknown: it may have been applied): STORE_UNAVAILABLE: etcd did not answer',
    );
    const probe = () => Promise.reject(new Error('probed'));
    await expect(toCliError(left, { 'control-url': 'https://ctl1:4523' }, probe)).resolves.toMatchObject({
      exitCode: EXIT.FAILURE,
      code: 'LEFT_REPLICA',
      message: left.description,
    });
  });

  it('--json prints the error as one object with code, message and exit code', () => {
    expect(JSON.parse(jsonError(new CliError(EXIT.NOT_FOUND, 'no volume "x"')))).toEqual({
      error: { code: 'NOT_FOUND', message: 'no volume "x"', exit_code: 3 },
    });
  });
});

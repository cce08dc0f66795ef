import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, resolveConnection } from './connection';

describe('resolveConnection', () => {
  const local = new Set(['/etc/flocker/cluster.crt', '/etc/flocker/admin.crt', '/etc/flocker/admin.key']);
  const has = (p: string) => local.has(p);
  const none = () => false;

  it('uses the local cluster credentials over HTTPS when present', () => {
    expect(resolveConnection({}, {}, has)).toEqual({
      baseUrl: 'https://127.0.0.1:4523',
      cacert: '/etc/flocker/cluster.crt',
      cert: '/etc/flocker/admin.crt',
      key: '/etc/flocker/admin.key',
    });
    expect(resolveConnection({ 'control-url': 'https://c:4523' }, {}, has)).toMatchObject({
      baseUrl: 'https://c:4523',
      cert: '/etc/flocker/admin.crt',
    });
  });

  it('falls back to plain HTTP on localhost without credentials, or for an explicit http URL', () => {
    expect(resolveConnection({}, {}, none)).toEqual({ baseUrl: 'http://127.0.0.1:4523' });
    expect(resolveConnection({}, { FLOCKER_CONTROL_URL: 'http://10.0.0.1:4523' }, has)).toEqual({
      baseUrl: 'http://10.0.0.1:4523',
    });
  });

  it('flags beat the environment, which beats the local files', () => {
    const env = {
      FLOCKER_CA_CERT: '/env/ca',
      FLOCKER_CERT: '/env/c',
      FLOCKER_KEY: '/env/k',
      FLOCKER_CONTROL_URL: 'https://env:1',
    };
    expect(resolveConnection({}, env, has)).toEqual({
      baseUrl: 'https://env:1',
      cacert: '/env/ca',
      cert: '/env/c',
      key: '/env/k',
    });
    expect(
      resolveConnection({ cacert: '/f/ca', cert: '/f/c', key: '/f/k', 'control-url': 'https://f:2' }, env, has),
    ).toEqual({
      baseUrl: 'https://f:2',
      cacert: '/f/ca',
      cert: '/f/c',
      key: '/f/k',
    });
    expect(resolveConnection({ cacert: '/f/ca' }, {}, none)).toEqual({
      baseUrl: 'https://127.0.0.1:4523',
      cacert: '/f/ca',
    });
  });

  it('--cert/--key without --cacert use the local cluster.crt, or say to give --cacert (issue 21)', () => {
    expect(resolveConnection({ cert: '/u/alice.crt', key: '/u/alice.key' }, {}, has)).toEqual({
      baseUrl: 'https://127.0.0.1:4523',
      cacert: '/etc/flocker/cluster.crt',
      cert: '/u/alice.crt',
      key: '/u/alice.key',
    });
    expect(() => resolveConnection({ cert: '/u/alice.crt', key: '/u/alice.key' }, {}, none)).toThrow(
      /give --cacert .*\/etc\/flocker\/cluster\.crt, the default, does not exist/,
    );
  });

  it('FLOCKER_CREDENTIALS_DIR moves the local files', () => {
    const elsewhere = new Set(['/x/cluster.crt', '/x/admin.crt', '/x/admin.key']);
    expect(resolveConnection({}, { FLOCKER_CREDENTIALS_DIR: '/x' }, (p) => elsewhere.has(p))).toMatchObject({
      cacert: '/x/cluster.crt',
    });
  });
});

describe('the CLI config file', () => {
  const none = () => false;

  it('is used below flags and environment, with paths relative to it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'flocker-cli-config-'));
    try {
      const file = join(dir, 'cli.yml');
      writeFileSync(
        file,
        'control_url: https://control.example:4523\ncacert: certs/cluster.crt\ncert: certs/alice.crt\nkey: certs/alice.key\n',
      );
      const env = { FLOCKER_CONFIG: file };
      expect(resolveConnection({}, env)).toEqual({
        baseUrl: 'https://control.example:4523',
        cacert: join(dir, 'certs/cluster.crt'),
        cert: join(dir, 'certs/alice.crt'),
        key: join(dir, 'certs/alice.key'),
      });
      expect(resolveConnection({ 'control-url': 'https://flag:1' }, { ...env, FLOCKER_CERT: '/env/c' })).toMatchObject({
        baseUrl: 'https://flag:1',
        cert: '/env/c',
      });
      writeFileSync(file, 'control_url: not a url\nextra: 1\n');
      expect(() => resolveConnection({}, env)).toThrow(/control_url.*extra|extra.*control_url/s);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('names a missing FLOCKER_CONFIG, and is optional otherwise', () => {
    expect(() => resolveConnection({}, { FLOCKER_CONFIG: '/nonexistent/cli.yml' }, none)).toThrow(/does not exist/);
    expect(resolveConnection({}, { HOME: '/nonexistent' }, none)).toEqual({ baseUrl: 'http://127.0.0.1:4523' });
  });
});

describe('connect', () => {
  it('reads the cluster views leniently: a node state member a newer control service adds is dropped (FR F12)', async () => {
    const N = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
    const node = { uuid: N, era: 'e1', host: '10.0.0.1', instance_id: 'i-1', backend: 'loopback' };
    const known = { ...node, manifestations: [], errors: [], alive: true, last_seen: '2026-12-06T08:00:00.000Z' };
    const snapshot = { generation: 'g2', configuration_tag: 'v1', datasets: [], leases: [], nodes: [known] };
    const srv = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ ...snapshot, nodes: [{ ...known, future_state: { code: 'X' } }], future_member: 1 }));
    });
    await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
    try {
      const port = (srv.address() as AddressInfo).port;
      const client = connect({ 'control-url': `http://127.0.0.1:${port}` }, { HOME: '/nonexistent' });
      expect(await client.waitForCluster(undefined, 0)).toEqual(snapshot);
    } finally {
      await new Promise<void>((resolve) => srv.close(() => resolve()));
    }
  });
});

/**
 * Review T6 F0b (session 19): `flocker ui` acts with the admin's credentials, and its Host/Origin checks stop only
 * browsers: any local process (another user, a container with --network host) that set `Origin:
 * http://127.0.0.1:<port>` deleted volumes as the admin. Now a token made at start, printed in the URL, is exchanged
 * for an HttpOnly SameSite=Strict cookie, and every /api call (the event stream and the state too) needs it.
 */
import { request } from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ClusterSnapshot, DatasetConfiguration } from '@flocker/api';
import { A, B, D1, dataset, node } from '@flocker/web-ui/testing';
import { UiActions, type UiClient } from './actions';
import { ClusterFeed } from './ClusterFeed';
import { UiServer } from './UiServer';

const existing = dataset(D1, 'pgdata', A);
const cluster: ClusterSnapshot = {
  generation: '1',
  configuration_tag: 't',
  datasets: [existing],
  leases: [],
  nodes: [node(A, 'a'), node(B, 'b')],
};
const deleted: string[] = [];
const client = {
  waitForCluster: async () => cluster,
  deleteDataset: async (id: string): Promise<DatasetConfiguration> => {
    deleted.push(id);
    return { ...existing, deleted: true };
  },
} as unknown as UiClient;

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}
function call(port: number, method: string, path: string, headers: Record<string, string> = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        text += c;
        if (path === '/api/events') res.destroy(); // the stream stays open: its first event is enough
      });
      res.on('close', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
    });
    req.on('error', reject);
    req.end();
  });
}

let appDir: string;
let server: UiServer;
let url: URL;
let port: number;
beforeEach(async () => {
  deleted.length = 0;
  appDir = mkdtempSync(join(tmpdir(), 'flocker-ui-token-'));
  writeFileSync(join(appDir, 'index.html'), '<!doctype html><title>Flocker</title>');
  const feed = new ClusterFeed(client, { controlUrl: 'http://control' });
  feed.ingest(cluster);
  server = new UiServer({ feed, actions: new UiActions(client, () => feed.latest()), appDir });
  url = new URL(await server.listen(0));
  port = Number(url.port);
});
afterEach(async () => {
  await server.close();
  rmSync(appDir, { recursive: true, force: true });
});

const origin = () => ({ origin: `http://127.0.0.1:${port}` });
async function login(): Promise<string> {
  const r = await call(port, 'GET', `/?token=${url.searchParams.get('token')}`);
  expect(r.status).toBe(303);
  expect(r.headers.location).toBe('/');
  const set = [r.headers['set-cookie'] ?? []].flat();
  expect(set).toHaveLength(1);
  expect(set[0]).toMatch(/; HttpOnly/);
  expect(set[0]).toMatch(/; SameSite=Strict/);
  expect(set[0]).toMatch(/; Path=\//);
  return set[0]!.split(';')[0]!;
}

describe('flocker ui: a token, not a forgeable Origin, lets a caller act as the admin (T6 F0b)', () => {
  it('prints a URL with a random token', async () => {
    const token = url.searchParams.get('token') ?? '';
    expect(token).toMatch(/^[A-Za-z0-9_-]{40,}$/);
    expect(url.pathname).toBe('/');
  });

  it('refuses a local process with the forged Origin but no token: the volume is not deleted', async () => {
    const r = await call(port, 'DELETE', `/api/volumes/${D1}`, origin());
    expect(r.status).toBe(401);
    expect(JSON.parse(r.body)).toMatchObject({ error: { code: 'UNAUTHORIZED' } });
    expect(deleted).toEqual([]);
    // The cluster's state and its event stream are the admin's view too.
    expect((await call(port, 'GET', '/api/state')).status).toBe(401);
    expect((await call(port, 'GET', '/api/events')).status).toBe(401);
    // A wrong token is not exchanged for a cookie, and a made-up cookie is no use.
    const bad = await call(port, 'GET', '/?token=guess');
    expect(bad.status).toBe(403);
    expect(bad.headers['set-cookie']).toBeUndefined();
    const cookie = (await login()).replace(/=.*/, '=guess');
    expect((await call(port, 'DELETE', `/api/volumes/${D1}`, { ...origin(), cookie })).status).toBe(401);
    expect(deleted).toEqual([]);
  });

  it('exchanges the token for a cookie that every /api call then carries', async () => {
    const cookie = await login();
    expect((await call(port, 'GET', '/api/state', { cookie })).status).toBe(200);
    const events = await call(port, 'GET', '/api/events', { cookie });
    expect(events.status).toBe(200);
    expect(events.body).toContain('data: ');
    expect((await call(port, 'DELETE', `/api/volumes/${D1}`, { ...origin(), cookie })).status).toBe(200);
    expect(deleted).toEqual([D1]);
    // The Origin check still applies with the cookie (a cross-site form).
    expect((await call(port, 'DELETE', `/api/volumes/${D1}`, { cookie })).status).toBe(403);
  });

  it('names the cookie after the port: two `flocker ui` on one host do not overwrite each other', async () => {
    expect(await login()).toMatch(new RegExp(`^flocker_ui_${port}=`));
  });
});

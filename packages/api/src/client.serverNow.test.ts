/**
 * serverNow (review FR F5): the control service's clock, from the HTTP Date header of an answer this client returned,
 * so that its own times (reported_at) are judged against it and not against this host's clock, which may be off.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { FlockerClient, serverNow } from './client';

const N = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
const SERVER_TIME = Date.parse('2026-12-06T05:30:00.000Z');

async function serving(date: string | undefined): Promise<{ url: string; close: () => Promise<void> }> {
  const srv: Server = createServer((_req, res) => {
    if (date === undefined) res.sendDate = false;
    else res.setHeader('date', date);
    res.writeHead(200, { 'content-type': 'application/json', etag: '"x.1"' });
    res.end(JSON.stringify([{ name: 'web', node_uuid: N, image: 'nginx', running: true }]));
  });
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const port = (srv.address() as AddressInfo).port;
  return { url: `http://127.0.0.1:${port}`, close: () => new Promise((r) => srv.close(() => r())) };
}

describe('serverNow', () => {
  it('is the Date header of the answer plus the time since it arrived, whatever this host’s clock says', async () => {
    const srv = await serving(new Date(SERVER_TIME).toUTCString());
    const realNow = Date.now.bind(Date);
    // This host's clock an hour ahead of the service's.
    const skewed = jest.spyOn(Date, 'now').mockImplementation(() => realNow() + 3_600_000);
    try {
      const answer = await new FlockerClient({ baseUrl: srv.url }).listContainerState();
      const first = serverNow(answer);
      expect(first).toBeGreaterThanOrEqual(SERVER_TIME);
      expect(first).toBeLessThan(SERVER_TIME + 1_000);
      await new Promise((r) => setTimeout(r, 120));
      const later = serverNow(answer) ?? 0;
      expect(later - (first ?? 0)).toBeGreaterThanOrEqual(100);
      // The 120 ms passed, not the hour of skew (a loaded host may take a few seconds over the sleep).
      expect(later - (first ?? 0)).toBeLessThan(10_000);
    } finally {
      skewed.mockRestore();
      await srv.close();
    }
  });

  it('a second read answered 304 (unchanged) carries that answer’s Date', async () => {
    let date = new Date(SERVER_TIME).toUTCString();
    const srv: Server = createServer((req, res) => {
      res.setHeader('date', date);
      if (req.headers['if-none-match'] === '"x.1"') {
        res.writeHead(304, { etag: '"x.1"' });
        res.end();
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json', etag: '"x.1"' });
      res.end('[]');
    });
    await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
    try {
      const client = new FlockerClient({ baseUrl: `http://127.0.0.1:${(srv.address() as AddressInfo).port}` });
      await client.listContainerState();
      date = new Date(SERVER_TIME + 60_000).toUTCString();
      const again = await client.listContainerState();
      expect(serverNow(again)).toBeGreaterThanOrEqual(SERVER_TIME + 60_000);
    } finally {
      await new Promise<void>((r) => srv.close(() => r()));
    }
  });

  it('undefined without a Date header, or for a value this client did not return', async () => {
    const srv = await serving(undefined);
    try {
      expect(serverNow(await new FlockerClient({ baseUrl: srv.url }).listContainerState())).toBeUndefined();
      expect(serverNow([])).toBeUndefined();
    } finally {
      await srv.close();
    }
  });
});

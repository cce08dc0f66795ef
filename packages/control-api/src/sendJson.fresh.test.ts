/**
 * sendJson on conditional requests (review of 270b153): express's res.send answered a GET or HEAD it found fresh
 * (req.fresh) with a 304 and no body. Without an ETag or Last-Modified on the answer, `If-None-Match: *` alone is
 * fresh (RFC 9110 13.1.2: the condition is false when a current representation exists); with an ETag, a matching
 * tag. Not when the request says Cache-Control: no-cache, nor for another method or a non-2xx status. The raw answers
 * of the old way (res.type + res.send) and of sendJson are compared on each such request.
 */
import type { AddressInfo } from 'node:net';
import express from 'express';
import { sendJson } from './server';
import { rawAnswer } from './testing/httpService';

describe('sendJson on conditional requests: as express res.send answered them', () => {
  let server: ReturnType<express.Express['listen']>;
  let port = 0;
  let status = 200;
  let etag: string | undefined;

  beforeAll(async () => {
    const app = express();
    app.disable('x-powered-by');
    app.set('etag', false);
    for (const method of ['get', 'post'] as const) {
      app[method]('/old', (_req, res) => {
        res.status(status).type('application/json');
        if (etag !== undefined) res.setHeader('ETag', etag);
        res.send('{"flocker":"1.0"}');
      });
      app[method]('/new', (req, res) => {
        res.statusCode = status;
        res.setHeader('Content-Type', 'application/json; charset=utf-8');
        if (etag !== undefined) res.setHeader('ETag', etag);
        sendJson(req, res, '{"flocker":"1.0"}');
      });
    }
    await new Promise<void>((resolve) => {
      server = app.listen(0, '127.0.0.1', () => resolve());
    });
    port = (server.address() as AddressInfo).port;
  });

  afterAll(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  const conditions: Record<string, string>[] = [
    { 'If-None-Match': '*' },
    { 'If-None-Match': '*', 'Cache-Control': 'no-cache' },
    { 'If-None-Match': '"a"' },
    { 'If-None-Match': 'W/"a", "b"' },
    { 'If-Modified-Since': 'Sat, 05 Dec 2026 13:00:00 GMT' },
    { 'If-None-Match': '*', 'If-Modified-Since': 'Sat, 05 Dec 2026 13:00:00 GMT' },
    {},
  ];

  it.each([
    [200, undefined],
    [201, undefined],
    [404, undefined],
    [200, '"a"'],
  ])('status %d, ETag %s: GET, HEAD and POST with each condition', async (s, tag) => {
    status = s;
    etag = tag;
    for (const headers of conditions)
      for (const method of ['GET', 'HEAD', 'POST']) {
        const [before, after] = [
          await rawAnswer(port, method, '/old', headers),
          await rawAnswer(port, method, '/new', headers),
        ];
        expect({ method, headers, answer: after }).toEqual({ method, headers, answer: before });
      }
  });

  it('If-None-Match: * on a GET of a 200 answer without an ETag: 304, no body (as before 270b153)', async () => {
    status = 200;
    etag = undefined;
    expect(await rawAnswer(port, 'GET', '/new', { 'If-None-Match': '*' })).toMatch(/^HTTP\/1\.1 304 Not Modified\r\n/);
  });
});

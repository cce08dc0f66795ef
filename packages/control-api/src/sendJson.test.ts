import type { AddressInfo } from 'node:net';
import express from 'express';
import fc from 'fast-check';
import { sendJson } from './server';
import { rawAnswer } from './testing/httpService';

interface Case {
  status: number;
  /** A string body, or its UTF-8 bytes (a cached body). */
  body: string;
  asBuffer: boolean;
  /** Headers the server sets before the Content-Type (the configuration tag) and after it (ETag, Vary). */
  tag: string | undefined;
  etag: string | undefined;
}

/**
 * The server's JSON answers skip express's res.send (issue 23: per-answer CPU of a move). They must stay the same bytes:
 * the old way (res.status().type('application/json') then res.send) and the new (statusCode, the Content-Type, then
 * sendJson) are run side by side on the same inputs, GET and HEAD, and their raw answers compared.
 */
describe('sendJson (issue 23): the bytes of express res.send, without its per-answer work', () => {
  let server: ReturnType<express.Express['listen']>;
  let port = 0;
  let current: Case = { status: 200, body: '{}', asBuffer: false, tag: undefined, etag: undefined };

  beforeAll(async () => {
    const app = express();
    app.disable('x-powered-by');
    app.set('etag', false);
    const head = (res: express.Response): void => {
      if (current.tag !== undefined) res.setHeader('x-configuration-tag', current.tag);
    };
    const tail = (res: express.Response): void => {
      if (current.etag !== undefined) res.setHeader('ETag', current.etag);
    };
    const body = (): string | Buffer => (current.asBuffer ? Buffer.from(current.body) : current.body);
    app.get('/old', (_req, res) => {
      head(res);
      res.status(current.status).type('application/json');
      tail(res);
      res.send(body());
    });
    app.get('/new', (req, res) => {
      head(res);
      res.statusCode = current.status;
      res.setHeader('Content-Type', 'application/json; charset=utf-8');
      tail(res);
      sendJson(req, res, body());
    });
    await new Promise<void>((resolve) => {
      server = app.listen(0, '127.0.0.1', () => resolve());
    });
    port = (server.address() as AddressInfo).port;
  });

  afterAll(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  const json = fc.oneof(
    fc.json(),
    fc.string({ unit: 'binary', maxLength: 2000 }).map((s) => JSON.stringify(s)),
    fc.string({ minLength: 1000, maxLength: 3000 }).map((s) => JSON.stringify({ s })),
  );
  const cases: fc.Arbitrary<Case> = fc.record({
    status: fc.constantFrom(200, 201, 400, 403, 404, 409, 412, 500, 503),
    body: json,
    asBuffer: fc.boolean(),
    tag: fc.option(fc.constantFrom('v1', 'v42'), { nil: undefined }),
    etag: fc.option(fc.constantFrom('"abc.datasets.3.1"', 'W/"x"'), { nil: undefined }),
  });

  it('answers GET and HEAD byte for byte as res.send did (random bodies: ASCII, multi-byte UTF-8, long; string or Buffer)', async () => {
    await fc.assert(
      fc.asyncProperty(cases, async (c) => {
        current = c;
        for (const method of ['GET', 'HEAD']) {
          const [before, after] = [await rawAnswer(port, method, '/old'), await rawAnswer(port, method, '/new')];
          expect(after).toBe(before);
        }
      }),
      { numRuns: 150 },
    );
  });

  it('an example answer, headers in order', async () => {
    current = { status: 201, body: '{"a":"é"}', asBuffer: false, tag: 'v3', etag: undefined };
    expect(await rawAnswer(port, 'GET', '/new')).toBe(
      'HTTP/1.1 201 Created\r\nx-configuration-tag: v3\r\nContent-Type: application/json; charset=utf-8\r\n' +
        `Content-Length: 10\r\nDate: -\r\nConnection: close\r\n\r\n${Buffer.from('{"a":"é"}').toString('latin1')}`,
    );
  });
});

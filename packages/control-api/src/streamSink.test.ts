/**
 * The watch's sink (issue 23): lines framed once and written straight to the socket put the same bytes on the wire
 * as res.write; a pipelined answer, and a full socket, still behave.
 */
import { createServer, type Server, type ServerResponse } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import type { StreamSink } from './routeSpec';
import { chunkOf, responseSink } from './streamSink';

/** A server whose handler gets each request's response (headers flushed) and path. */
async function serve(handler: (res: ServerResponse, path: string) => void): Promise<{ server: Server; port: number }> {
  const server = createServer((req, res) => handler(res, req.url ?? ''));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as AddressInfo).port };
}

/** A raw connection: what arrives, as text. */
function raw(port: number, send: string): { socket: Socket; text: () => string } {
  const socket = connect(port, '127.0.0.1');
  const got: Buffer[] = [];
  socket.on('data', (c: Buffer) => got.push(c));
  socket.write(send);
  return { socket, text: () => Buffer.concat(got).toString() };
}

const until = async (what: () => boolean, ms = 5000): Promise<void> => {
  const end = Date.now() + ms;
  while (!what()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 10));
  }
};

const GET = (path: string): string => `GET ${path} HTTP/1.1\r\nHost: localhost\r\n\r\n`;
/** The body part of a raw answer (after its headers), Date header and all before it dropped. */
const body = (text: string): string => text.slice(text.indexOf('\r\n\r\n') + 4);

describe('responseSink', () => {
  const servers: Server[] = [];
  const sockets: Socket[] = [];
  afterEach(async () => {
    for (const s of sockets.splice(0)) s.destroy();
    for (const s of servers.splice(0)) await new Promise((r) => s.close(r));
  });

  it('puts on the wire the bytes res.write would (a Buffer, a string, a heartbeat), a shared line framed once', async () => {
    const shared = Buffer.from('{"delta":true,"é":1}\n');
    const lines: (Buffer | string)[] = [shared, '{"x":"ü"}\n', Buffer.from('\n'), shared];
    const bodies: string[] = [];
    for (const viaSink of [false, true]) {
      const { server, port } = await serve((res) => {
        res.flushHeaders();
        const sink: Pick<StreamSink, 'write'> = viaSink ? responseSink(res, new AbortController().signal) : res;
        for (const l of lines) sink.write(l);
        res.end();
      });
      servers.push(server);
      const c = raw(port, GET('/watch'));
      sockets.push(c.socket);
      await until(() => c.text().endsWith('0\r\n\r\n'));
      bodies.push(body(c.text()));
    }
    expect(bodies[1]).toBe(bodies[0]);
    // Each line one chunk: its length in bytes (hex), CRLF, the line, CRLF; then the last chunk.
    const chunk = (l: Buffer | string): string => `${Buffer.byteLength(l).toString(16)}\r\n${l.toString()}\r\n`;
    expect(bodies[1]).toBe(`${lines.map(chunk).join('')}0\r\n\r\n`);
    // One framed copy per shared line, whoever writes it.
    expect(chunkOf(shared)).toBe(chunkOf(shared));
  });

  it('a pipelined answer waits for the one before it: its lines never go ahead on the socket', async () => {
    let first: ServerResponse | undefined;
    const { server, port } = await serve((res, path) => {
      if (path === '/slow') {
        first = res;
        return;
      }
      res.flushHeaders();
      const sink = responseSink(res, new AbortController().signal);
      sink.write(Buffer.from('line-1\n'));
      sink.write('line-2\n');
    });
    servers.push(server);
    const c = raw(port, GET('/slow') + GET('/watch'));
    sockets.push(c.socket);
    await until(() => first !== undefined);
    // The watch's lines were written while /slow had the socket: nothing of them may have gone out.
    await new Promise((r) => setTimeout(r, 100));
    expect(c.text()).toBe('');
    first?.end('slow');
    await until(() => c.text().includes('line-2'));
    const text = c.text();
    expect(text.indexOf('slow')).toBeLessThan(text.indexOf('HTTP/1.1 200', 10));
    expect(body(text.slice(text.indexOf('HTTP/1.1 200', 10)))).toBe('7\r\nline-1\n\r\n7\r\nline-2\n\r\n');
  });

  it('says when the socket is full, and drained() resolves once the client reads again', async () => {
    let sink: StreamSink | undefined;
    const { server, port } = await serve((res) => {
      res.flushHeaders();
      sink = responseSink(res, new AbortController().signal);
    });
    servers.push(server);
    const c = raw(port, GET('/watch'));
    sockets.push(c.socket);
    await until(() => sink !== undefined);
    c.socket.pause();
    const big = Buffer.alloc(256 * 1024, 'x');
    let writes = 0;
    while ((sink as StreamSink).write(big) && writes < 1000) writes++;
    expect(writes).toBeLessThan(1000);
    let drained = false;
    void (sink as StreamSink).drained().then(() => (drained = true));
    await new Promise((r) => setTimeout(r, 100));
    expect(drained).toBe(false);
    c.socket.resume();
    await until(() => drained);
  });
});

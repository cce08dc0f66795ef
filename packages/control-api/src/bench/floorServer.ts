/**
 * The floor of a whole-list read (issue 23): a plain Node HTTP server, in a child process, that fetches the service's
 * whole lists once and then sends each from one prebuilt Buffer. Read by the same client in the same rounds as the
 * service, it is what the bytes alone cost on this host and load (loopback, the client's decoding): a service read
 * cannot go below it. Used by listBench --floor and the scale bench.
 *   node packages/control-api/dist/bench/floorServer.js <service url>   (prints {"listening": url})
 */
import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

export const LIST_PATHS = { datasets: '/v1/configuration/datasets', states: '/v1/state/datasets' } as const;

/** The server itself (this module run as a script): the service's two lists fetched once, then each sent from one Buffer. */
async function serveFloor(serviceUrl: string): Promise<void> {
  const bodies = new Map<string, Buffer>();
  for (const p of Object.values(LIST_PATHS))
    bodies.set(p, Buffer.from(await (await fetch(`${serviceUrl}${p}`)).arrayBuffer()));
  const server = createServer((req, res) => {
    const body = bodies.get(req.url ?? '');
    if (body === undefined) return void res.writeHead(404).end();
    res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': body.length });
    res.end(body);
  });
  server.keepAliveTimeout = 65_000;
  server.listen(0, '127.0.0.1', () => {
    const { port } = server.address() as AddressInfo;
    process.stdout.write(`${JSON.stringify({ listening: `http://127.0.0.1:${port}` })}\n`);
  });
}

/** Starts the floor of `serviceUrl`'s lists (as they are now): its URL, and how to stop it. */
export function startFloor(serviceUrl: string): Promise<{ kill: () => void; url: string }> {
  const child = spawn(process.execPath, [__filename, serviceUrl], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString();
      const nl = out.indexOf('\n');
      if (nl >= 0)
        resolve({ kill: () => child.kill(), url: (JSON.parse(out.slice(0, nl)) as { listening: string }).listening });
    });
    child.once('exit', (code) => reject(new Error(`floor server exited (${code})`)));
  });
}

if (require.main === module) {
  const url = process.argv[2];
  if (url === undefined) throw new Error('usage: floorServer.js <service url>');
  serveFloor(url).catch((err: unknown) => {
    process.stderr.write(`floor server: ${String(err)}\n`);
    process.exit(1);
  });
}

/** Helpers shared by this package's tests (and the e2e tests): talk to a plugin socket like Docker does. */
import * as http from 'node:http';

export interface PluginReply {
  status: number;
  contentType: string | undefined;
  body: unknown;
}

/** POST raw `body` text to `path` on the plugin's Unix socket. */
export function callPlugin(socketPath: string, path: string, body: string | object = ''): Promise<PluginReply> {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = http.request(
      { socketPath, path, method: 'POST', headers: { Accept: 'application/vnd.docker.plugins.v1+json', 'Content-Length': Buffer.byteLength(text) } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const raw = Buffer.concat(chunks).toString('utf8');
          resolve({ status: res.statusCode ?? 0, contentType: res.headers['content-type'], body: raw ? JSON.parse(raw) : undefined });
        });
      },
    );
    req.on('error', reject);
    req.end(text);
  });
}

/** Talk to a plugin socket like Docker does (test support for this package's tests and the e2e tests). */
import * as http from 'node:http';

export interface PluginReply {
  status: number;
  contentType: string | undefined;
  body: unknown;
}

/**
 * POST raw `body` text to `path` on the plugin's Unix socket. Resolves with the answer once
 * the request is also sent to its end (or the server closed the connection after
 * answering): a caller never leaves a request half-written behind it.
 */
export function callPlugin(socketPath: string, path: string, body: string | object = ''): Promise<PluginReply> {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    let reply: PluginReply | undefined;
    let sent = false;
    const settle = () => {
      if (reply !== undefined && sent) resolve(reply);
    };
    const req = http.request(
      {
        socketPath,
        path,
        method: 'POST',
        headers: { Accept: 'application/vnd.docker.plugins.v1+json', 'Content-Length': Buffer.byteLength(text) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const raw = Buffer.concat(chunks).toString('utf8');
          try {
            reply = {
              status: res.statusCode ?? 0,
              contentType: res.headers['content-type'],
              body: raw ? JSON.parse(raw) : undefined,
            };
          } catch (err) {
            reject(err instanceof Error ? err : new Error(String(err)));
            return;
          }
          settle();
        });
      },
    );
    // Sending the rest can fail once the server answered and closed: the answer is what counts.
    const cutOff = (err: Error) => {
      sent = true;
      if (reply !== undefined) settle();
      else reject(err);
    };
    req.on('error', cutOff);
    req.on('socket', (socket) => socket.on('error', (err) => cutOff(err)));
    req.on('close', () => {
      sent = true;
      if (reply !== undefined) settle();
    });
    req.end(text, () => {
      sent = true;
      settle();
    });
  });
}

/**
 * A stand-in for the control service's watch route (issue 23) that FlockerClient.watchCluster's tests share: each
 * request is answered with `contentType`, a first line (watchView of generation x.1.1), then what `after` does.
 */
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** An empty cluster view at `generation`, as one watch line's JSON (no newline). */
export const watchView = (generation: string): string =>
  JSON.stringify({ generation, configuration_tag: 't', datasets: [], leases: [], nodes: [] });

/** A watch route that sends the view x.1.1, then does what `after` does with the answer (heartbeats, or nothing). */
export async function watchServer(
  contentType: string,
  after: (res: ServerResponse) => void,
): Promise<{ url: string; close: () => Promise<void> }> {
  const open = new Set<ServerResponse>();
  const srv: Server = createServer((_req, res) => {
    open.add(res);
    res.writeHead(200, { 'content-type': contentType });
    res.write(`${watchView('x.1.1')}\n`);
    after(res);
  });
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const port = (srv.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () => {
      for (const r of open) r.destroy();
      return new Promise((resolve) => srv.close(() => resolve()));
    },
  };
}

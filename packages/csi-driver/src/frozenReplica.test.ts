/**
 * A frozen control replica (SIGSTOP: its connections stay open, nothing is answered) first in the CSI driver's list
 * (s24 FAIL-C, as review T4 for the dataset agent): a controller call must still finish within the CSI sidecars'
 * default timeout (external-provisioner/resizer/snapshotter --timeout, 10 s). With the client's default 30 s timeout
 * CreateVolume's first read waited 30 s on the frozen replica: every call in the first 30 s of a freeze timed out.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { FlockerClient } from '@flocker/api';
import winston from 'winston';
import { csiClientOptions } from './controlClient';
import { CsiDriver } from './CsiDriver';

jest.setTimeout(120_000);

/** The CSI sidecars' default --timeout (kubernetes-csi external-provisioner, -resizer, -snapshotter). */
const SIDECAR_TIMEOUT_MS = 10_000;
const NODE = '11111111-1111-4111-8111-111111111111';

/** A control replica in its own process, so that it can be frozen: one node, no dataset, creates answered. */
const REPLICA = `
  const http = require('node:http');
  const node = { uuid: '${NODE}', era: 'e', host: 'node1', instance_id: 'i-1', backend: 'loopback',
    manifestations: [], errors: [], alive: true, last_seen: new Date().toISOString() };
  const view = JSON.stringify({ generation: 'g1', configuration_tag: 'v1', datasets: [], leases: [], nodes: [node] });
  const srv = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    const send = (status, body) => { res.statusCode = status; res.setHeader('content-type', 'application/json'); res.end(body); };
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      if (url.pathname === '/v1/agent/cluster') return send(200, view);
      if (url.pathname === '/v1/configuration/datasets' && req.method === 'GET') return send(200, '[]');
      if (url.pathname === '/v1/configuration/datasets' && req.method === 'POST') {
        const r = JSON.parse(body);
        return send(201, JSON.stringify({ dataset_id: r.dataset_id, primary: r.primary, maximum_size: r.maximum_size,
          metadata: r.metadata ?? {}, deleted: false }));
      }
      send(404, JSON.stringify({ description: 'no such route' }));
    });
  });
  srv.listen(0, '127.0.0.1', () => process.stdout.write('port ' + srv.address().port + '\\n'));
`;

async function replica(): Promise<{ proc: ChildProcess; url: string }> {
  const proc = spawn(process.execPath, ['-e', REPLICA], { stdio: ['ignore', 'pipe', 'inherit'] });
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    proc.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      const port = /port (\d+)\n/.exec(out)?.[1];
      if (port !== undefined) resolve(`http://127.0.0.1:${port}`);
    });
    proc.once('exit', (code) => reject(new Error(`the replica exited (${code})`)));
  });
  return { proc, url };
}

it('a replica frozen first in the list: CreateVolume still answers within the sidecars’ default timeout', async () => {
  const [frozen, live] = [await replica(), await replica()];
  try {
    frozen.proc.kill('SIGSTOP');
    // As startCsiDriver builds it: the default timeout, and this package's options.
    const client = new FlockerClient({ baseUrl: `${frozen.url},${live.url}`, ...csiClientOptions() });
    const driver = new CsiDriver({
      client,
      logger: winston.createLogger({ silent: true }),
      mode: 'controller',
      mounter: { mounts: async () => [], bind: async () => undefined, unmount: async () => undefined },
      version: 'test',
      defaultSize: 64 * 1024 * 1024,
      stageTimeoutMs: 100_000,
    });
    const started = Date.now();
    const answer = await driver.createVolume({
      name: 'pvc-frozen-replica',
      volume_capabilities: [{ mount: {}, access_mode: { mode: 'SINGLE_NODE_WRITER' } }],
    });
    expect(answer).toMatchObject({ volume: { volume_id: expect.any(String) as string } });
    expect(Date.now() - started).toBeLessThan(SIDECAR_TIMEOUT_MS);
  } finally {
    frozen.proc.kill('SIGCONT');
    frozen.proc.kill('SIGKILL');
    live.proc.kill('SIGKILL');
  }
});

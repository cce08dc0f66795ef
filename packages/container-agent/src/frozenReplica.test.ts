/**
 * A frozen control replica (SIGSTOP: its connections stay open, nothing is answered) first in the container agent's
 * list (s24 FAIL-C, as review T4 for the dataset agent): the agent's report must reach another replica before the
 * control service drops its last one as stale (CONTAINER_REPORT_STALE_MS, 30 s: the node's containers vanish from
 * /v1/state/containers, flocker-deploy --wait and the web UI). With the client's default 30 s timeout a request held
 * by the frozen replica (a long poll: 30 s + its wait) moved on only after that.
 */
import type { ChildProcess } from 'node:child_process';
import { childServer } from '@flocker/runtime/testing';
import { FlockerClient } from '@flocker/api';
import winston from 'winston';
import { ContainerAgent } from './ContainerAgent';
import { containerAgentClientOptions } from './controlClient';
import type { ContainerRuntime } from './DockerOps';

jest.setTimeout(120_000);

const ME = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
/** The control service's bound (control-api nodeReports.ts), which this package does not import. */
const CONTAINER_REPORT_STALE_MS = 30_000;
/** The agent's default resync (main.ts --resync 5). */
const RESYNC_MS = 5_000;

/**
 * A control replica in its own process, so that it can be frozen: an empty cluster, long polls held up to 1 s, and
 * each container report logged on stdout ("report").
 */
const REPLICA = `
  const http = require('node:http');
  const view = JSON.stringify({ generation: 'g1', configuration_tag: 'v1', datasets: [], leases: [], nodes: [] });
  const srv = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    const send = (body) => { res.setHeader('content-type', 'application/json'); res.end(body); };
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      if (url.pathname === '/v1/agent/cluster') {
        const wait = url.searchParams.get('since') === 'g1' ? Math.min(1000, Number(url.searchParams.get('timeout_ms') ?? 0)) : 0;
        return setTimeout(() => send(view), wait);
      }
      if (req.method === 'PUT' && /^\\/v1\\/agent\\/nodes\\/[^/]+\\/containers$/.test(url.pathname)) {
        process.stdout.write('report\\n');
        return send(JSON.stringify({ generation: 'g1' }));
      }
      if (['/v1/configuration/containers', '/v1/configuration/datasets', '/v1/state/nodes'].includes(url.pathname)) return send('[]');
      res.statusCode = 404;
      send(JSON.stringify({ description: 'no such route' }));
    });
  });
  srv.listen(0, '127.0.0.1', () => process.stdout.write('port ' + srv.address().port + '\\n'));
`;

interface Replica {
  proc: ChildProcess;
  url: string;
  /** Arrival times (ms, this process's clock) of the container reports it got. */
  reports: number[];
}

async function replica(): Promise<Replica> {
  const reports: number[] = [];
  const { proc, url } = await childServer(REPLICA, [], (line) => {
    if (line === 'report') reports.push(Date.now());
  });
  return { proc, url, reports };
}

async function until(what: string, cond: () => boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`not within ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** No container here: what the agent reports is an empty list, every turn. */
const noContainers: ContainerRuntime = {
  list: () => Promise.resolve([]),
  create: () => Promise.reject(new Error('no create expected')),
  start: () => Promise.reject(new Error('no start expected')),
  remove: () => Promise.reject(new Error('no remove expected')),
};

it('a replica frozen first in the list: the next report reaches another replica before the last one goes stale', async () => {
  const [frozen, live] = [await replica(), await replica()];
  // As main.ts builds it: the default timeout, and this package's options.
  const client = new FlockerClient({ baseUrl: `${frozen.url},${live.url}`, ...containerAgentClientOptions(RESYNC_MS) });
  const agent = new ContainerAgent({
    client,
    runtime: noContainers,
    nodeUuid: ME,
    logger: winston.createLogger({ silent: true }),
    resyncMs: RESYNC_MS,
  });
  const running = agent.run();
  try {
    await until('a report to the first replica', () => frozen.reports.length > 0, 30_000);
    frozen.proc.kill('SIGSTOP');
    const lastBefore = frozen.reports[frozen.reports.length - 1]!;
    await until('a report to the other replica', () => live.reports.length > 0, 60_000);
    expect(live.reports[0]! - lastBefore).toBeLessThan(CONTAINER_REPORT_STALE_MS);
  } finally {
    agent.stop();
    frozen.proc.kill('SIGCONT');
    frozen.proc.kill('SIGKILL');
    live.proc.kill('SIGKILL');
    await running.catch(() => undefined);
  }
});

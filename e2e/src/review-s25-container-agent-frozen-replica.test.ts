/**
 * s24 FAIL-C / s25 (issue 23), as review-s24-csi-frozen-replica for the CSI driver: one of three control replicas
 * frozen (SIGSTOP: its connections stay open, nothing answers) and first in the container agent's list. The agent
 * (its own binary, main.ts's client) must report its containers to another replica before the control service drops
 * its last report as stale (CONTAINER_REPORT_STALE_MS, 30 s): the node's running container must stay listed by the
 * replicas that answer, throughout. With the client's 30 s timeout alone a long poll held by the frozen replica moved
 * on after 30 s + its wait, and the container vanished from /v1/state/containers (flocker-deploy --wait, the web UI).
 * dockerd is a stand-in on a Unix socket (list, create, start): the path under test is the agent's to the control
 * replicas, and a shared dockerd would let the agent remove other tests' Flocker-labelled containers.
 */
import { spawn } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { join, resolve } from 'node:path';
import { FlockerClient } from '@flocker/api';
import { useEtcdBed } from './testing/etcdBed';

jest.setTimeout(300_000);

const CONTAINER_AGENT_MAIN = resolve(__dirname, '../../packages/container-agent/dist/main.js');
/** control-api nodeReports.ts: a container report older than this is left out of /v1/state/containers. */
const CONTAINER_REPORT_STALE_MS = 30_000;
/** How long the replica stays frozen: past the staleness bound with room (a report gap of 36 s was the failure). */
const FROZEN_MS = CONTAINER_REPORT_STALE_MS + 15_000;

interface FakeContainer {
  Id: string;
  Names: string[];
  Image: string;
  Labels: Record<string, string>;
  State: string;
  Status: string;
}

/** dockerd's container API as dockerode calls it for the container agent: list, create, start, stop, remove. */
async function fakeDockerd(socketPath: string): Promise<{ containers: FakeContainer[]; close: () => Promise<void> }> {
  const containers: FakeContainer[] = [];
  const srv: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://docker');
      const path = url.pathname.replace(/^\/v[\d.]+/, '');
      const json = (status: number, value?: unknown): void => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(value === undefined ? undefined : JSON.stringify(value));
      };
      const byId = (id: string | undefined) => containers.find((c) => c.Id === id || c.Names[0] === `/${id}`);
      if (req.method === 'GET' && path === '/containers/json') return json(200, containers);
      if (req.method === 'POST' && path === '/containers/create') {
        const spec = JSON.parse(body) as { Image: string; Labels?: Record<string, string> };
        const c: FakeContainer = {
          Id: `c${containers.length + 1}`.padEnd(64, '0'),
          Names: [`/${url.searchParams.get('name') ?? 'unnamed'}`],
          Image: spec.Image,
          Labels: spec.Labels ?? {},
          State: 'created',
          Status: 'Created',
        };
        containers.push(c);
        return json(201, { Id: c.Id, Warnings: [] });
      }
      const m = /^\/containers\/([^/]+)(?:\/(start|stop|json))?$/.exec(path);
      const c = byId(m?.[1]);
      if (m === null || c === undefined) return json(404, { message: 'no such container' });
      if (req.method === 'POST' && m[2] === 'start') {
        // "Up 2 hours": not a recent start, so the agent does not inspect it (nothing here to inspect).
        Object.assign(c, { State: 'running', Status: 'Up 2 hours' });
        return json(204);
      }
      if (req.method === 'POST' && m[2] === 'stop') {
        Object.assign(c, { State: 'exited', Status: 'Exited (0) 1 second ago' });
        return json(204);
      }
      if (req.method === 'DELETE' && m[2] === undefined) {
        containers.splice(containers.indexOf(c), 1);
        return json(204);
      }
      return json(404, { message: `not served here: ${req.method ?? ''} ${path}` });
    });
  });
  await new Promise<void>((r) => srv.listen(socketPath, r));
  return {
    containers,
    close: () => {
      srv.closeAllConnections();
      return new Promise((r) => srv.close(() => r()));
    },
  };
}

const theBed = useEtcdBed('flk-s25-ca-frozen-');

it('a replica frozen first in the container agent’s list: its running container stays listed throughout', async () => {
  const bed = theBed();
  const { replicas } = await bed.startReplicasBehindHoles({
    prefix: `/s25-ca-frozen-${process.pid}`,
    etcdTimeout: 2,
    nodeTimeout: 10,
    leaseGrace: 2,
  });
  const urls = replicas.map((r) => r.url);
  const healthy = new FlockerClient({ baseUrl: urls[1]!, baseUrls: [urls[2]!], timeoutMs: 3_000 });
  // The node (its dataset agent names the replicas that stay up, so the node stays alive and unfenced).
  bed.startAgent('a', [replicas[1]!.hostPort, replicas[2]!.hostPort]);
  const node = await bed.registered('a', healthy);
  const dockerd = await fakeDockerd(join(bed.dir, 'docker.sock'));
  try {
    await healthy.createContainer({ name: 'web', node_uuid: node, image: 'flocker-tiny' });
    // As an operator runs it: every replica named, the frozen one first; the default resync (5 s).
    bed.track(
      spawn(
        process.execPath,
        [
          CONTAINER_AGENT_MAIN,
          '--control-url',
          urls.join(','),
          '--node-uuid',
          node,
          '--docker-socket',
          join(bed.dir, 'docker.sock'),
          '--metrics-port',
          '0',
        ],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      ),
      'container-agent.log',
    );
    const shown = async (): Promise<boolean> =>
      (await healthy.listContainerState()).some((c) => c.name === 'web' && c.node_uuid === node && c.running);
    await bed.waitFor('the container agent to run web and report it', shown, 60_000);

    replicas[0]!.proc!.kill('SIGSTOP');
    const frozenAt = Date.now();
    // When (ms into the freeze) the container was not listed: its node's last report reached the replicas that
    // answer more than CONTAINER_REPORT_STALE_MS before.
    const notListedAt: number[] = [];
    let reads = 0;
    while (Date.now() - frozenAt < FROZEN_MS) {
      await new Promise((r) => setTimeout(r, 500));
      // A read that fails (a loaded host) proves nothing either way: asked again.
      const listed = await shown().catch(() => undefined);
      if (listed !== undefined) reads++;
      if (listed === false) notListedAt.push(Date.now() - frozenAt);
    }
    expect(notListedAt).toEqual([]);
    // Read all along (at least one read per 5 s of the freeze), not only at its ends.
    expect(reads).toBeGreaterThanOrEqual(FROZEN_MS / 5_000);
    expect(dockerd.containers.map((c) => ({ name: c.Names[0], state: c.State }))).toEqual([
      { name: '/web', state: 'running' },
    ]);
  } finally {
    replicas[0]!.proc!.kill('SIGCONT');
    await dockerd.close();
  }
});

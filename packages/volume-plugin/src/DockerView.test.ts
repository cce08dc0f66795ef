import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import * as winston from 'winston';
import { DockerodeView, DockerUnreachableError } from './DockerView';

const logger = winston.createLogger({ silent: true, transports: [new winston.transports.Console()] });

/** Just enough of the Engine API on a unix socket: the container and volume lists and a quiet event stream. */
function fakeEngine(
  socketPath: string,
  list: unknown,
  volumes: unknown = { Volumes: [], Warnings: [] },
): Promise<{ server: http.Server; events: http.ServerResponse[] }> {
  const events: http.ServerResponse[] = [];
  const server = http.createServer((req, res) => {
    const inspected = /^\/containers\/([a-z]+)\/json/.exec(req.url ?? '');
    if (inspected?.[1] === 'exited' || inspected?.[1] === 'created') {
      const at = inspected[1] === 'exited' ? '2026-12-06T01:21:05.5Z' : '0001-01-01T00:00:00Z';
      res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ State: { FinishedAt: at } }));
    } else if (req.url?.startsWith('/containers/json')) {
      res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify(list));
    } else if (req.url?.startsWith('/volumes')) {
      res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify(volumes));
    } else if (req.url?.startsWith('/events')) {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.flushHeaders();
      events.push(res);
    } else res.writeHead(404).end('{}');
  });
  return new Promise((resolve) => server.listen(socketPath, () => resolve({ server, events })));
}

async function closeEngine(e: { server: http.Server; events: http.ServerResponse[] }): Promise<void> {
  for (const r of e.events) r.destroy();
  e.server.closeAllConnections();
  await new Promise<void>((r) => e.server.close(() => r()));
}

async function until(probe: () => boolean, ms = 5_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!probe()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('DockerodeView (Engine API over a unix socket)', () => {
  let dir: string;
  let sock: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flocker-dockerview-'));
    sock = path.join(dir, 'docker.sock');
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('lists containers with their state, creation time and mounts', async () => {
    const engine = await fakeEngine(sock, [
      {
        Id: 'abc',
        State: 'running',
        Created: 1_700_000_000,
        Names: ['/web'],
        Mounts: [
          { Type: 'volume', Name: 'pg', Driver: 'flocker', Source: '/flocker/x', Destination: '/data' },
          { Type: 'bind', Source: '/etc/hosts', Destination: '/etc/hosts' },
        ],
      },
      { Id: 'def', State: 'created', Created: 1_700_000_001, Mounts: null },
    ]);
    try {
      const view = new DockerodeView({ socketPath: sock, logger });
      expect(await view.containers()).toEqual([
        {
          id: 'abc',
          state: 'running',
          createdMs: 1_700_000_000_000,
          mounts: [
            { type: 'volume', name: 'pg', driver: 'flocker', source: '/flocker/x' },
            { type: 'bind', source: '/etc/hosts' },
          ],
        },
        { id: 'def', state: 'created', createdMs: 1_700_000_001_000, mounts: [] },
      ]);
    } finally {
      await closeEngine(engine);
    }
  });

  it('lists volumes with the driver name Docker knows each under', async () => {
    const engine = await fakeEngine(sock, [], {
      Volumes: [
        { Name: 'pg', Driver: 'flocker:latest', Mountpoint: '', Scope: 'global' },
        { Name: 'cache', Driver: 'local', Mountpoint: '/var/lib/docker/volumes/cache/_data' },
      ],
      Warnings: null,
    });
    try {
      const view = new DockerodeView({ socketPath: sock, logger });
      expect(await view.volumes()).toEqual([
        { name: 'pg', driver: 'flocker:latest' },
        { name: 'cache', driver: 'local' },
      ]);
    } finally {
      await closeEngine(engine);
    }
  });

  it('tells when a container last finished (0: never ran); a container it does not know is an error', async () => {
    const engine = await fakeEngine(sock, []);
    try {
      const view = new DockerodeView({ socketPath: sock, logger });
      expect(await view.finishedAt('exited')).toBe(Date.parse('2026-12-06T01:21:05.5Z'));
      expect(await view.finishedAt('created')).toBe(0);
      await expect(view.finishedAt('gone')).rejects.toBeInstanceOf(DockerUnreachableError);
    } finally {
      await closeEngine(engine);
    }
  });

  it('says unreachable when there is no dockerd, or it answers nonsense', async () => {
    const view = new DockerodeView({ socketPath: sock, logger });
    await expect(view.containers()).rejects.toBeInstanceOf(DockerUnreachableError);
    await expect(view.volumes()).rejects.toBeInstanceOf(DockerUnreachableError);
    const engine = await fakeEngine(sock, { not: 'a list' }, { Volumes: 'nope' });
    try {
      await expect(view.containers()).rejects.toThrow(/unexpected container list/);
      await expect(view.volumes()).rejects.toThrow(/unexpected volume list/);
    } finally {
      await closeEngine(engine);
    }
  });

  it('follows dockerd: connects once it appears, notices it going away, reconnects when it is back', async () => {
    const view = new DockerodeView({ socketPath: sock, logger, retryMs: 20 });
    let connects = 0;
    const drops: string[] = [];
    const follower = view.follow({ onConnect: () => connects++, onDisconnect: (r) => drops.push(r) });
    try {
      await new Promise((r) => setTimeout(r, 100)); // no dockerd yet: it keeps trying
      expect(connects).toBe(0);
      let engine = await fakeEngine(sock, []);
      await until(() => connects === 1);
      await closeEngine(engine); // dockerd killed
      fs.rmSync(sock, { force: true });
      await until(() => drops.length === 1);
      engine = await fakeEngine(sock, []);
      await until(() => connects === 2);
      follower.close();
      await closeEngine(engine);
      expect(drops).toHaveLength(1);
    } finally {
      follower.close();
    }
  });
});

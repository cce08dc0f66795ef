/**
 * A frozen control replica (SIGSTOP: its connections stay open, nothing is answered) first in the plugin's control URL
 * list (issue 23): the plugin as startVolumePlugin builds it, with FlockerClient's default failoverTimeoutMs, leaves it
 * for the next replica after that bound, not the client's whole 30 s timeout — its cluster watcher (whose stream idles
 * out, then reconnects) and its Docker calls alike. The first replica is a TCP relay in its own process to the same
 * (in-process) control service as the second, so both show one cluster, and stopping the relay freezes it.
 */
import type { ChildProcess } from 'node:child_process';
import { childServer } from '@flocker/runtime/testing';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { FlockerClient } from '@flocker/api';
import { MemoryConfigurationStore, startControlService, type ControlService } from '@flocker/control-api';
import * as winston from 'winston';
import { startVolumePlugin, type RunningVolumePlugin } from './startVolumePlugin';
import { callPlugin } from './testing/callPlugin';
import { FakeDatasetAgent } from './testing/FakeDatasetAgent';

jest.setTimeout(120_000);

const NODE = 'cccccccc-cccc-4ccc-8ccc-cccccccccccc';
const logger = winston.createLogger({ silent: true, transports: [new winston.transports.Console()] });
/** FlockerClient's timeoutMs, what a frozen first replica held a request (or a watch's reconnect) before. */
const CLIENT_TIMEOUT_MS = 30_000;

/** A replica in its own process: relays each connection to the control service's port; "conn" on stdout for each. */
const RELAY = `
  const net = require('node:net');
  const target = Number(process.argv[1]);
  const srv = net.createServer((c) => {
    process.stdout.write('conn\\n');
    const u = net.connect(target, '127.0.0.1');
    const end = () => { c.destroy(); u.destroy(); };
    c.pipe(u);
    u.pipe(c);
    for (const s of [c, u]) { s.on('error', end); s.on('close', end); }
  });
  srv.listen(0, '127.0.0.1', () => process.stdout.write('port ' + srv.address().port + '\\n'));
`;

interface Relay {
  proc: ChildProcess;
  url: string;
  connections: () => number;
}

async function relay(port: number): Promise<Relay> {
  let connections = 0;
  const { proc, url } = await childServer(RELAY, [String(port)], (line) => {
    if (line === 'conn') connections++;
  });
  return { proc, url, connections: () => connections };
}

async function until(what: string, cond: () => boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`not within ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

interface Bed {
  control: ControlService;
  plugin: RunningVolumePlugin;
  sock: string;
  close: () => Promise<void>;
}

/**
 * A control service, a fake agent, the relay first in the plugin's list and the plugin, which has worked through the
 * relay before the relay is frozen. One per test (not beforeEach): the tests run concurrently, each mostly waiting out
 * the client's bounds on its own frozen relay, so the file takes its longer test, not the sum.
 */
async function bed(): Promise<Bed> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flocker-plugin-frozen-'));
  const control = await startControlService({
    port: 0,
    host: '127.0.0.1',
    store: new MemoryConfigurationStore(),
    logger,
  });
  const agent = new FakeDatasetAgent(control.url, NODE, 'node-c', '/mnt/flocker');
  await agent.start();
  const frozen = await relay(control.port);
  const sock = path.join(dir, 'flocker.sock');
  let plugin: RunningVolumePlugin | undefined;
  const close = async (): Promise<void> => {
    frozen.proc.kill('SIGCONT');
    frozen.proc.kill('SIGKILL');
    await plugin?.close();
    await agent.stop();
    await control.close();
    fs.rmSync(dir, { recursive: true, force: true });
  };
  try {
    // As main.ts builds it: the control URLs, FlockerClient's default options.
    plugin = await startVolumePlugin({
      controlUrl: `${frozen.url},${control.url}`,
      nodeUuid: NODE,
      socketPath: sock,
      stateDir: dir,
      mountTimeoutMs: 100_000,
      defaultSize: 1024 ** 3,
      logger,
    });
    // The plugin works through the first replica (its watch and its start's reads) before it freezes.
    expect((await callPlugin(sock, '/VolumeDriver.Create', { Name: 'before' })).body).toEqual({ Err: '' });
    // Its 'conn' line comes over a pipe, which may be read after the answer on the socket.
    await until('a connection through the first replica', () => frozen.connections() > 0, 5_000);
    frozen.proc.kill('SIGSTOP');
    return { control, plugin, sock, close };
  } catch (e) {
    await close();
    throw e;
  }
}

describe('volume plugin, a frozen control replica first in its list', () => {
  it.concurrent(
    "the watcher follows the other replica: a dataset made there is seen well before the client's timeout",
    async () => {
      const { control, plugin, close } = await bed();
      try {
        const direct = new FlockerClient({ baseUrl: control.url });
        const started = Date.now();
        const made = await direct.createDataset({ primary: NODE, metadata: { name: 'elsewhere' } });
        const watcher = plugin.backend['watcher'];
        await until(
          'the plugin’s watcher shows the dataset',
          () => watcher.current()?.datasets.some((d) => d.dataset_id === made.dataset_id) === true,
          60_000,
        );
        // Before the default: the stream's idle cut (3 heartbeats, 6 s), then the reconnect held 30 s by the frozen one.
        expect(Date.now() - started).toBeLessThan(CLIENT_TIMEOUT_MS - 5_000);
      } finally {
        await close();
      }
    },
  );

  it.concurrent("Docker's calls move on to the other replica within the default bound", async () => {
    const { sock, close } = await bed();
    try {
      const started = Date.now();
      expect((await callPlugin(sock, '/VolumeDriver.Create', { Name: 'during' })).body).toEqual({ Err: '' });
      // Before the default: the create (safe to repeat: it names its dataset_id) waited the whole 30 s.
      expect(Date.now() - started).toBeLessThan(CLIENT_TIMEOUT_MS - 5_000);
      const mount = await callPlugin(sock, '/VolumeDriver.Mount', { Name: 'during', ID: 'c1' });
      expect(mount.body).toEqual({ Mountpoint: expect.stringMatching(/^\/mnt\/flocker\//), Err: '' });
      expect((await callPlugin(sock, '/VolumeDriver.List')).body).toEqual({
        Volumes: expect.arrayContaining([
          expect.objectContaining({ Name: 'before' }),
          expect.objectContaining({ Name: 'during' }),
        ]) as unknown,
        Err: '',
      });
      // All of it within Docker's 60 s for one call, never near it.
      expect(Date.now() - started).toBeLessThan(CLIENT_TIMEOUT_MS);
    } finally {
      await close();
    }
  });
});

/**
 * T6 (session 19): a second dataset bearing an existing volume's name. The control service does not keep
 * dataset names unique (only snapshot names), and any client may create one: an API user (flocker volumes create,
 * a Flocker v1 client) or any node's certificate (a node may create a dataset with itself as primary, with any
 * metadata). The plugin resolves a volume by the first live dataset of that name in the snapshot (findVolume).
 * Expected: a Mount of "db" keeps answering the dataset the plugin created for "db" (its name-based id).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type * as http from 'node:http';
import { FlockerClient } from '@flocker/api';
import { MemoryConfigurationStore, startControlService, type ControlService } from '@flocker/control-api';
import * as winston from 'winston';
import { FakeDatasetAgent } from './testing/FakeDatasetAgent';
import { FlockerVolumeBackend } from './FlockerVolumeBackend';
import { MountRegistry } from './MountRegistry';
import { createPluginHttpServer, listenOnUnixSocket } from './PluginHttpServer';
import { callPlugin } from './testing/callPlugin';
import { volumeDatasetId } from './volumeOptions';

const NODE = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
const silent = winston.createLogger({ silent: true, transports: [new winston.transports.Console()] });

describe('T6: a second dataset with an existing volume name', () => {
  let control: ControlService;
  let agent: FakeDatasetAgent;
  let dir: string;
  let socketPath: string;
  let server: http.Server;
  let backend: FlockerVolumeBackend;

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 't6-dupname-'));
    control = await startControlService({
      port: 0,
      host: '127.0.0.1',
      store: new MemoryConfigurationStore(),
      logger: silent,
    });
    agent = new FakeDatasetAgent(control.url, NODE, 'host-a', '/flocker-a');
    await agent.start();
    backend = new FlockerVolumeBackend({
      client: new FlockerClient({ baseUrl: control.url }),
      nodeUuid: NODE,
      registry: await MountRegistry.load(path.join(dir, 'plugin-mounts.json')),
      logger: silent,
      mountTimeoutMs: 3_000,
      defaultSize: 64 * 1024 * 1024,
      pollMs: 200,
    });
    await backend.start();
    socketPath = path.join(dir, 'flocker.sock');
    server = createPluginHttpServer(backend, silent);
    await listenOnUnixSocket(server, { socketPath });
  });

  afterAll(async () => {
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
    await backend.close();
    await agent.stop();
    await control.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('Mount of "db" still answers the volume created as "db" after someone creates another dataset named "db"', async () => {
    expect((await callPlugin(socketPath, '/VolumeDriver.Create', { Name: 'db', Opts: {} })).body).toEqual({ Err: '' });
    const first = await callPlugin(socketPath, '/VolumeDriver.Mount', { Name: 'db', ID: 'c1' });
    const own = volumeDatasetId('db');
    expect(first.body).toEqual({ Err: '', Mountpoint: `/flocker-a/${own}` });
    expect((await callPlugin(socketPath, '/VolumeDriver.Unmount', { Name: 'db', ID: 'c1' })).body).toEqual({ Err: '' });

    // A careless user (or any node's certificate: primary = itself) makes another dataset with the same name.
    const api = new FlockerClient({ baseUrl: control.url });
    const impostor = '00000000-0000-4000-8000-000000000000';
    await api.createDataset({ primary: NODE, dataset_id: impostor, metadata: { name: 'db' } });
    await new Promise((r) => setTimeout(r, 500));

    const get = await callPlugin(socketPath, '/VolumeDriver.Get', { Name: 'db' });
    const again = await callPlugin(socketPath, '/VolumeDriver.Mount', { Name: 'db', ID: 'c2' });
    expect({ get: get.body, mount: again.body }).toEqual({
      get: expect.objectContaining({ Err: '' }),
      mount: { Err: '', Mountpoint: `/flocker-a/${own}` },
    });
  }, 30_000);
});

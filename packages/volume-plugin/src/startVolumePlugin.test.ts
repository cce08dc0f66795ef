import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { MemoryConfigurationStore, startControlService, type ControlService } from '@flocker/control-api';
import * as winston from 'winston';
import { resolveSettings } from './config';
import { FakeDatasetAgent } from './testing/FakeDatasetAgent';
import { FakeDocker } from './testing/FakeDocker';
import { MountRegistry } from './MountRegistry';
import { startVolumePlugin, type RunningVolumePlugin } from './startVolumePlugin';
import { callPlugin } from './testing/callPlugin';

const NODE = 'cccccccc-cccc-4ccc-8ccc-cccccccccccc';
const logger = winston.createLogger({ silent: true, transports: [new winston.transports.Console()] });

describe('startVolumePlugin', () => {
  let dir: string;
  let control: ControlService | undefined;
  let agent: FakeDatasetAgent | undefined;
  let plugin: RunningVolumePlugin | undefined;

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flocker-plugin-start-'));
  });
  afterEach(async () => {
    await plugin?.close();
    await agent?.stop();
    await control?.close();
    plugin = agent = control = undefined;
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('serves Docker end to end from agent.yml and node.json', async () => {
    const store = new MemoryConfigurationStore();
    control = await startControlService({ port: 0, host: '127.0.0.1', store, logger });
    agent = new FakeDatasetAgent(control.url, NODE, 'node-c', '/mnt/flocker');
    await agent.start();
    const stateDir = path.join(dir, 'state');
    fs.mkdirSync(stateDir);
    fs.writeFileSync(path.join(stateDir, 'node.json'), JSON.stringify({ uuid: NODE }));
    fs.writeFileSync(
      path.join(dir, 'agent.yml'),
      `version: 1\ncontrol-service: {hostname: 127.0.0.1, port: ${control.port}}\ndataset: {backend: loopback}\nnode: {state_dir: ${stateDir}}\n`,
    );
    const settings = await resolveSettings({
      agentConfig: path.join(dir, 'agent.yml'),
      socket: path.join(dir, 'plugins', 'flocker.sock'),
      mountTimeout: 5,
      defaultSize: '1G',
    });
    expect(settings).toMatchObject({
      controlUrl: control.url,
      nodeUuid: NODE,
      stateDir,
      mountTimeoutMs: 5000,
      defaultSize: 1024 ** 3,
    });
    plugin = await startVolumePlugin({ ...settings, logger, pollMs: 1000 });
    // The agent's mount root (agent.yml, else its default) is followed in the kernel's table (MountTable, issue 23).
    expect(settings.hostMountRoot).toBeDefined();
    expect(plugin.backend['opts'].mountTable?.hostMountRoot).toBe(settings.hostMountRoot);
    expect(plugin.backend['opts'].mountTable?.table.root).toBe(path.resolve(settings.hostMountRoot ?? ''));
    const sock = settings.socketPath;
    expect(fs.statSync(sock).mode & 0o777).toBe(0o600);
    expect((await callPlugin(sock, '/Plugin.Activate')).body).toEqual({ Implements: ['VolumeDriver'] });
    expect((await callPlugin(sock, '/VolumeDriver.Create', { Name: 'web', Opts: { size: '100MiB' } })).body).toEqual({
      Err: '',
    });
    const mount = await callPlugin(sock, '/VolumeDriver.Mount', { Name: 'web', ID: 'c1' });
    expect(mount.body).toEqual({ Mountpoint: expect.stringMatching(/^\/mnt\/flocker\//), Err: '' });
    expect((await callPlugin(sock, '/VolumeDriver.List')).body).toEqual({
      Volumes: [{ Name: 'web', Mountpoint: (mount.body as { Mountpoint: string }).Mountpoint }],
      Err: '',
    });
    expect(Object.values(MountRegistry.read(path.join(stateDir, 'plugin-mounts.json')).latest?.volumes ?? {})).toEqual([
      { name: 'web', ids: ['c1'], added: { c1: expect.any(Number) } },
    ]);
    await plugin.close();
    expect(fs.existsSync(sock)).toBe(false);
    plugin = undefined;
  });

  it('the reconciler uses --driver-name when given, else the socket’s base name', async () => {
    const base = {
      controlUrl: 'http://127.0.0.1:9',
      nodeUuid: NODE,
      stateDir: dir,
      mountTimeoutMs: 5000,
      defaultSize: 1024 ** 3,
      logger,
      pollMs: 1000,
      startTimeoutMs: 100,
    };
    plugin = await startVolumePlugin({
      ...base,
      socketPath: path.join(dir, 'plugin.sock'),
      docker: new FakeDocker(),
      driverName: 'flocker',
    });
    expect(plugin.reconciler?.['opts'].driver).toBe('flocker');
    await plugin.close();
    plugin = await startVolumePlugin({ ...base, socketPath: path.join(dir, 'plugin.sock'), docker: new FakeDocker() });
    expect(plugin.reconciler?.['opts'].driver).toBe('plugin');
  });

  it('listens even while the control service is down, and recovers when it comes up', async () => {
    const store = new MemoryConfigurationStore();
    const probe = await startControlService({ port: 0, host: '127.0.0.1', store, logger });
    const port = probe.port;
    await probe.close();
    const sock = path.join(dir, 'p.sock');
    plugin = await startVolumePlugin({
      controlUrl: `http://127.0.0.1:${port}`,
      nodeUuid: NODE,
      socketPath: sock,
      stateDir: dir,
      mountTimeoutMs: 5000,
      defaultSize: 1024 ** 3,
      logger,
      pollMs: 1000,
      startTimeoutMs: 300,
    });
    const down = await callPlugin(sock, '/VolumeDriver.List');
    expect(down.status).toBe(500);
    expect(down.body).toEqual({ Err: expect.stringMatching(/^The Flocker control service cannot be reached/) });
    control = await startControlService({ port, host: '127.0.0.1', store, logger });
    agent = new FakeDatasetAgent(control.url, NODE, 'node-c', '/mnt/flocker');
    await agent.start();
    expect((await callPlugin(sock, '/VolumeDriver.Create', { Name: 'late' })).body).toEqual({ Err: '' });
    expect((await callPlugin(sock, '/VolumeDriver.List')).body).toEqual({
      Volumes: [expect.objectContaining({ Name: 'late' })],
      Err: '',
    });
    expect((await callPlugin(sock, '/VolumeDriver.Mount', { Name: 'late', ID: 'c' })).body).toEqual({
      Mountpoint: expect.stringMatching(/^\/mnt\/flocker\//),
      Err: '',
    });
  });
});

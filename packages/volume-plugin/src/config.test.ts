import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { readAgentYaml, resolveSettings, waitForNodeUuid } from './config';

const UUID = 'dddddddd-dddd-4ddd-8ddd-dddddddddddd';

describe('plugin configuration', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flocker-plugin-config-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  const yaml = (text: string) => {
    const f = path.join(dir, 'agent.yml');
    fs.writeFileSync(f, text);
    return f;
  };

  it('reads the control service address and state_dir from agent.yml', () => {
    expect(readAgentYaml(yaml('version: 1\ncontrol-service: {hostname: ctl.example, port: 4600}\nnode: {state_dir: /srv/agent}\n'))).toEqual({
      controlUrl: 'http://ctl.example:4600',
      stateDir: '/srv/agent',
    });
    expect(readAgentYaml(yaml('control-service: {hostname: "::1"}\n'))).toEqual({ controlUrl: 'http://[::1]:4523' });
  });

  it('lists every control replica of agent.yml hostnames (comma-separated, for failover)', () => {
    expect(readAgentYaml(yaml('control-service: {hostname: c1, port: 4600, hostnames: [c2, "c3:4700"]}\n'))).toEqual({
      controlUrl: 'http://c1:4600,http://c2:4600,http://c3:4700',
    });
  });

  it('explains a bad or missing agent.yml', () => {
    expect(() => readAgentYaml(path.join(dir, 'nope.yml'))).toThrow(/cannot read the agent configuration/);
    expect(() => readAgentYaml(yaml('version: 1\n'))).toThrow(/is invalid/);
  });

  it('waits for node.json to appear, bounded', async () => {
    setTimeout(() => fs.writeFileSync(path.join(dir, 'node.json'), JSON.stringify({ uuid: UUID })), 300);
    await expect(waitForNodeUuid(dir, 5_000)).resolves.toBe(UUID);
    await expect(waitForNodeUuid(path.join(dir, 'empty'), 300)).rejects.toThrow(/did not appear within 0 s; start flocker-dataset-agent first or pass --node-uuid/);
  });

  it('command-line overrides win and need no agent.yml', async () => {
    const s = await resolveSettings({ controlUrl: 'http://c:1', nodeUuid: UUID, stateDir: dir, socket: '/tmp/x.sock', mountTimeout: 30, defaultSize: '5G' });
    expect(s).toEqual({
      controlUrl: 'http://c:1',
      nodeUuid: UUID,
      stateDir: dir,
      socketPath: '/tmp/x.sock',
      mountTimeoutMs: 30_000,
      defaultSize: 5 * 1024 ** 3,
      dockerSocket: '/var/run/docker.sock',
      reconcileIntervalMs: 30_000,
      mountSafetyWindowMs: 60_000,
    });
    const d = await resolveSettings({ controlUrl: 'http://c:1', nodeUuid: UUID, agentConfig: path.join(dir, 'missing.yml') });
    expect(d).toMatchObject({ socketPath: '/run/docker/plugins/flocker.sock', mountTimeoutMs: 100_000, defaultSize: 10 * 1024 ** 3, stateDir: '/var/lib/flocker/agent' });
    await expect(resolveSettings({ controlUrl: 'http://c:1', nodeUuid: 'nope' })).rejects.toThrow(/not a UUID/);
    // The control service answers node UUIDs in lower case: --node-uuid in any case is this node (issue 17 #4).
    expect((await resolveSettings({ controlUrl: 'http://c:1', nodeUuid: UUID.toUpperCase() })).nodeUuid).toBe(UUID.toLowerCase());
    const docker = await resolveSettings({ controlUrl: 'http://c:1', nodeUuid: UUID, dockerSocket: '/run/d.sock', reconcileInterval: 0, mountSafetyWindow: 5 });
    expect(docker).toMatchObject({ dockerSocket: '/run/d.sock', reconcileIntervalMs: 0, mountSafetyWindowMs: 5_000 });
    expect(await resolveSettings({ controlUrl: 'http://c:1', nodeUuid: UUID, dockerSocket: 'none' })).toMatchObject({ dockerSocket: '' });
    await expect(resolveSettings({ controlUrl: 'http://c:1', nodeUuid: UUID, reconcileInterval: -1 })).rejects.toThrow(/--reconcile-interval -1 is not a number of seconds/);
    await expect(resolveSettings({ controlUrl: 'http://c:1', nodeUuid: UUID, defaultSize: '1M' })).rejects.toThrow(/too small/);
  });
});

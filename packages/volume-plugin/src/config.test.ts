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
    expect(
      readAgentYaml(
        yaml('version: 1\ncontrol-service: {hostname: ctl.example, port: 4600}\nnode: {state_dir: /srv/agent}\n'),
      ),
    ).toEqual({
      controlUrl: 'http://ctl.example:4600',
      stateDir: '/srv/agent',
    });
    // node.state_dir has its default whether agent.yml sets it or not (one schema for all agents).
    expect(readAgentYaml(yaml('control-service: {hostname: "::1"}\n'))).toEqual({
      controlUrl: 'http://[::1]:4523',
      stateDir: '/var/lib/flocker/agent',
    });
  });

  it('lists every control replica of agent.yml hostnames (comma-separated, for failover)', () => {
    expect(readAgentYaml(yaml('control-service: {hostname: c1, port: 4600, hostnames: [c2, "c3:4700"]}\n'))).toEqual({
      controlUrl: 'http://c1:4600,http://c2:4600,http://c3:4700',
      stateDir: '/var/lib/flocker/agent',
    });
  });

  it('explains a bad or missing agent.yml', () => {
    expect(() => readAgentYaml(path.join(dir, 'nope.yml'))).toThrow(/cannot read the agent configuration/);
    expect(() => readAgentYaml(yaml('version: 1\n'))).toThrow(/is invalid/);
  });

  it("waits for node.json as the shared node configuration does, with the plugin's error type", async () => {
    await expect(waitForNodeUuid(path.join(dir, 'empty'), 300)).rejects.toThrow(
      expect.objectContaining({ name: 'VolumePluginError', code: 'NODE_UNKNOWN' }),
    );
  });

  it('command-line overrides win and need no agent.yml', async () => {
    const s = await resolveSettings({
      controlUrl: 'http://c:1',
      nodeUuid: UUID,
      stateDir: dir,
      socket: '/tmp/x.sock',
      mountTimeout: 30,
      defaultSize: '5G',
    });
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
      idleLeaseMs: 60_000, // DEFAULT_IDLE_LEASE_SECONDS: idle leases on by default
      metrics: { host: '127.0.0.1', port: 4532 },
    });
    expect((await resolveSettings({ controlUrl: 'http://c:1', nodeUuid: UUID, metricsPort: 0 })).metrics).toBe(
      undefined,
    );
    const d = await resolveSettings({
      controlUrl: 'http://c:1',
      nodeUuid: UUID,
      agentConfig: path.join(dir, 'missing.yml'),
    });
    expect(d).toMatchObject({
      socketPath: '/run/docker/plugins/flocker.sock',
      mountTimeoutMs: 100_000,
      defaultSize: 10 * 1024 ** 3,
      stateDir: '/var/lib/flocker/agent',
    });
    await expect(resolveSettings({ controlUrl: 'http://c:1', nodeUuid: 'nope' })).rejects.toThrow(/not a UUID/);
    // The control service answers node UUIDs in lower case: --node-uuid in any case is this node (issue 17 #4).
    expect((await resolveSettings({ controlUrl: 'http://c:1', nodeUuid: UUID.toUpperCase() })).nodeUuid).toBe(
      UUID.toLowerCase(),
    );
    const docker = await resolveSettings({
      controlUrl: 'http://c:1',
      nodeUuid: UUID,
      dockerSocket: '/run/d.sock',
      reconcileInterval: 0,
      mountSafetyWindow: 5,
    });
    expect(docker).toMatchObject({ dockerSocket: '/run/d.sock', reconcileIntervalMs: 0, mountSafetyWindowMs: 5_000 });
    expect(await resolveSettings({ controlUrl: 'http://c:1', nodeUuid: UUID, dockerSocket: 'none' })).toMatchObject({
      dockerSocket: '',
    });
    await expect(resolveSettings({ controlUrl: 'http://c:1', nodeUuid: UUID, reconcileInterval: -1 })).rejects.toThrow(
      /--reconcile-interval -1 is not a number of seconds/,
    );
    await expect(resolveSettings({ controlUrl: 'http://c:1', nodeUuid: UUID, defaultSize: '1M' })).rejects.toThrow(
      /too small/,
    );
  });

  // Issue 18 #5: one agent.yml schema for all agents (the plugin's was looser and had drifted).
  describe('the agent.yml the dataset agent accepts', () => {
    const agentYml = (extra: string) =>
      yaml(
        `version: 1\ncontrol-service: {hostname: ctl, port: 4600}\ndataset: {backend: loopback, cluster_id: prod-1, root_path: /p}\n` +
          extra,
      );

    it('tolerates the agent-only keys it ignores (dataset:, agent:, node.docker_socket)', () => {
      const f = agentYml(
        'node: {state_dir: /s, docker_socket: /run/d.sock}\nagent: {self_fence_seconds: 7, concurrency: 2}\n',
      );
      expect(readAgentYaml(f)).toEqual({ controlUrl: 'http://ctl:4600', stateDir: '/s' });
    });

    it('refuses port 0 and unknown keys, as the dataset agent does', () => {
      expect(() => readAgentYaml(yaml('control-service: {hostname: c, port: 0}\n'))).toThrow(
        expect.objectContaining({ code: 'CONFIG_INVALID', message: expect.stringContaining('control-service.port:') }),
      );
      expect(() => readAgentYaml(yaml('control-service: {hostname: c, prot: 4600}\n'))).toThrow(
        expect.objectContaining({ code: 'CONFIG_INVALID', message: expect.stringContaining('control-service') }),
      );
      expect(() => readAgentYaml(yaml('version: 2\ncontrol-service: {hostname: c}\n'))).toThrow(
        expect.objectContaining({ code: 'CONFIG_INVALID', message: expect.stringContaining('version:') }),
      );
    });

    it('reports YAML that does not parse with a code (CONFIG_INVALID) and a missing file as CONFIG_NOT_FOUND', () => {
      expect(() => readAgentYaml(yaml('control-service: [1\n'))).toThrow(
        expect.objectContaining({ name: 'VolumePluginError', code: 'CONFIG_INVALID' }),
      );
      expect(() => readAgentYaml(path.join(dir, 'nope.yml'))).toThrow(
        expect.objectContaining({ code: 'CONFIG_NOT_FOUND' }),
      );
    });

    it('takes the plugin: section and node.docker_socket as defaults; flags win', async () => {
      const f = agentYml(
        'node: {docker_socket: /run/d.sock}\nplugin: {mount_timeout_seconds: 20, reconcile_interval_seconds: 0, mount_safety_window_seconds: 5, idle_lease_seconds: 7}\n',
      );
      expect(await resolveSettings({ agentConfig: f, nodeUuid: UUID })).toMatchObject({
        controlUrl: 'http://ctl:4600',
        dockerSocket: '/run/d.sock',
        mountTimeoutMs: 20_000,
        reconcileIntervalMs: 0,
        mountSafetyWindowMs: 5_000,
        idleLeaseMs: 7_000,
      });
      expect(
        await resolveSettings({
          agentConfig: f,
          nodeUuid: UUID,
          dockerSocket: 'none',
          mountTimeout: 30,
          reconcileInterval: 9,
          mountSafetyWindow: 1,
          idleLeaseSeconds: 0,
        }),
      ).toMatchObject({
        dockerSocket: '',
        mountTimeoutMs: 30_000,
        reconcileIntervalMs: 9_000,
        mountSafetyWindowMs: 1_000,
        idleLeaseMs: 0,
      });
      await expect(resolveSettings({ agentConfig: f, nodeUuid: UUID, idleLeaseSeconds: -1 })).rejects.toThrow(
        /--idle-lease-seconds -1 is not a number of seconds/,
      );
      await expect(
        resolveSettings({ agentConfig: agentYml('plugin: {mount_timeout: 20}\n'), nodeUuid: UUID }),
      ).rejects.toThrow(/plugin/);
    });

    it('an agent.yml that exists but is invalid is an error even when flags make it optional', async () => {
      await expect(
        resolveSettings({
          controlUrl: 'http://c:1',
          nodeUuid: UUID,
          agentConfig: yaml('control-service: {hostname: c, port: 0}\n'),
        }),
      ).rejects.toThrow(expect.objectContaining({ code: 'CONFIG_INVALID' }));
    });
  });
});

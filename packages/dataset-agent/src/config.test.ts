import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { clusterIdentity, controlTlsFiles, loadAgentConfig, parseAgentConfig } from './config';
import { AgentError } from './errors';

const minimal = { version: 1, 'control-service': { hostname: 'control.example' }, dataset: { backend: 'loopback' } };

// Every directory a test makes goes at the end: CI runs leave nothing in /tmp.
const made: string[] = [];
function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  made.push(dir);
  return dir;
}
afterAll(() => {
  for (const dir of made) rmSync(dir, { recursive: true, force: true });
});

function problem(doc: unknown): AgentError {
  try {
    parseAgentConfig(doc);
  } catch (e) {
    if (e instanceof AgentError) return e;
    throw e;
  }
  throw new Error('expected the configuration to be rejected');
}

describe('agent configuration', () => {
  it('fills in Flocker defaults', () => {
    const c = parseAgentConfig(minimal);
    expect(c['control-service'].port).toBe(4523);
    expect(c.dataset).toMatchObject({ backend: 'loopback', root_path: '/var/lib/flocker/loopback' });
    expect(c.node).toEqual({ state_dir: '/var/lib/flocker/agent', mount_root: '/flocker' });
    expect(c.agent.resync_interval_seconds).toBe(10);
  });

  it('keeps 2 spare volumes per size class on the loopback backend unless told (0 turns them off; issue 23)', () => {
    expect(parseAgentConfig(minimal).dataset).toMatchObject({ spares: 2 });
    expect(parseAgentConfig({ ...minimal, dataset: { backend: 'loopback', spares: 0 } }).dataset).toMatchObject({
      spares: 0,
    });
    expect(
      parseAgentConfig({ ...minimal, dataset: { backend: 'loopback', spare_sizes: [10 * 1024 ** 3] } }).dataset,
    ).toMatchObject({ spare_sizes: [10 * 1024 ** 3] });
    expect(problem({ ...minimal, dataset: { backend: 'loopback', spare_sizes: [0] } }).message).toMatch(
      /dataset\.spare_sizes/,
    );
    for (const spares of [-1, 1.5, 17, 'two']) {
      expect(problem({ ...minimal, dataset: { backend: 'loopback', spares } }).message).toMatch(/dataset\.spares/);
    }
  });

  it('accepts the extensions', () => {
    const c = parseAgentConfig({
      ...minimal,
      dataset: { backend: 'loopback', root_path: '/pool' },
      node: { state_dir: '/s', mount_root: '/m', host: '10.0.0.1', era_file: '/e' },
      agent: { resync_interval_seconds: 2, concurrency: 8 },
    });
    expect(c.node.era_file).toBe('/e');
    expect(c.agent.concurrency).toBe(8);
    expect(c.agent.backoff_max_seconds).toBe(30);
  });

  it("accepts the plugin's section and the keys added for self-fencing (issue 18 #5)", () => {
    const c = parseAgentConfig({
      ...minimal,
      dataset: { backend: 'loopback', cluster_id: 'prod-1' },
      node: { docker_socket: '/run/d.sock' },
      agent: { self_fence_seconds: 7 },
      plugin: { mount_timeout_seconds: 20, reconcile_interval_seconds: 0, mount_safety_window_seconds: 5 },
    });
    expect(c.plugin).toEqual({
      mount_timeout_seconds: 20,
      reconcile_interval_seconds: 0,
      mount_safety_window_seconds: 5,
    });
    expect(c.node).toEqual({
      state_dir: '/var/lib/flocker/agent',
      mount_root: '/flocker',
      docker_socket: '/run/d.sock',
    });
    expect(c.agent.self_fence_seconds).toBe(7);
    expect(c.dataset.cluster_id).toBe('prod-1');
  });

  it.each([
    [{ ...minimal, version: 2 }, 'version'],
    [{ ...minimal, 'control-service': { hostname: 'x', port: 'a' } }, 'control-service.port'],
    [{ ...minimal, 'control-service': {} }, 'control-service.hostname'],
    [{ ...minimal, dataset: { backend: 'zfs' } }, 'dataset.backend'],
    [{ ...minimal, dataset: { backend: 'loopback', typo: 1 } }, 'dataset'],
    [{ ...minimal, agent: { resync_interval_seconds: -1 } }, 'agent.resync_interval_seconds'],
    [{ ...minimal, extra: true }, '(top level)'],
    // Issue 18 #5: the plugin's schema already refused port 0 (nothing listens there to connect to); one rule now.
    [{ ...minimal, 'control-service': { hostname: 'x', port: 0 } }, 'control-service.port'],
    [{ ...minimal, plugin: { mount_timeout: 5 } }, 'plugin'],
  ])('names the field of a mistake: %j', (doc, field) => {
    const e = problem(doc);
    expect(e.code).toBe('CONFIG_INVALID');
    expect(e.message).toContain(`${field}:`);
  });

  it('accepts the aws and openstack backends with their own options, and names their mistakes', () => {
    const aws = parseAgentConfig({
      ...minimal,
      dataset: { backend: 'aws', region: 'us-east-1', zone: 'us-east-1a', cluster_id: 'c1' },
    });
    expect(aws.dataset).toMatchObject({ backend: 'aws', zone: 'us-east-1a' });
    const os = parseAgentConfig({
      ...minimal,
      dataset: {
        backend: 'openstack',
        region: 'RegionOne',
        auth_url: 'https://keystone.example:5000/v3',
        username: 'u',
        password: 'p',
        project_name: 'p',
        cluster_id: 'c1',
      },
    });
    expect(os.dataset).toMatchObject({ backend: 'openstack', attach_mode: 'nova' });
    const e1 = problem({ ...minimal, dataset: { backend: 'aws', region: 'us-east-1', cluster_id: 'c1' } });
    expect(e1.code).toBe('CONFIG_INVALID');
    expect(e1.message).toContain('dataset.zone:');
    const e2 = problem({
      ...minimal,
      dataset: { backend: 'aws', region: 'us-east-1', zone: 'eu-west-1a', cluster_id: 'c1' },
    });
    expect(e2.message).toContain('not in region');
    const e3 = problem({ ...minimal, dataset: { backend: 'openstack', region: 'RegionOne' } });
    expect(e3.message).toContain('dataset.cluster_id:');
  });

  it('loads YAML files and reports missing or broken ones', () => {
    const dir = tempDir('agent-config-');
    const good = join(dir, 'agent.yml');
    writeFileSync(good, 'version: 1\ncontrol-service:\n  hostname: c\n  port: 4524\ndataset:\n  backend: loopback\n');
    expect(loadAgentConfig(good)['control-service'].port).toBe(4524);
    expect(() => loadAgentConfig(join(dir, 'nope.yml'))).toThrow(expect.objectContaining({ code: 'CONFIG_NOT_FOUND' }));
    const broken = join(dir, 'broken.yml');
    writeFileSync(broken, 'version: [1\n');
    expect(() => loadAgentConfig(broken)).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID' }));
  });
});

// The TLS convention itself is tested in @flocker/node-config (nodeConfig.test.ts); here, that the agent gets its own errors.
describe('TLS to the control service', () => {
  it('is the shared convention, with AgentError', () => {
    const cs = { hostname: 'c', port: 4523 };
    expect(controlTlsFiles(cs, '/etc/flocker', () => true)).toEqual({
      ca: '/etc/flocker/cluster.crt',
      cert: '/etc/flocker/node.crt',
      key: '/etc/flocker/node.key',
    });
    expect(() => controlTlsFiles({ ...cs, ca_file: '/pki/ca.pem' }, '/etc/flocker', () => false)).toThrow(
      expect.objectContaining({ name: 'AgentError', code: 'CONFIG_INVALID' }),
    );
  });

  it('parses the new control-service keys', () => {
    const c = parseAgentConfig({
      ...minimal,
      'control-service': { hostname: 'h', ca_file: 'a', cert_file: 'b', key_file: 'c', insecure_http: false },
    });
    expect(c['control-service']).toMatchObject({ ca_file: 'a', insecure_http: false });
  });
});

describe('the cluster identity a pool carries (issue 17)', () => {
  function ca(subject: string): Buffer {
    const dir = tempDir('agent-ca-');
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:P-256',
        '-nodes',
        '-days',
        '1',
        '-subj',
        subject,
        '-keyout',
        join(dir, 'k'),
        '-out',
        join(dir, 'c'),
      ],
      { stdio: 'ignore' },
    );
    return readFileSync(join(dir, 'c'));
  }
  const loopback = parseAgentConfig(minimal).dataset;

  it("is the cluster UUID flocker-ca writes into the CA's subject (O=), else the CA's fingerprint, else none", () => {
    const uuid = '8F0C2A4E-1B2D-4C5E-8F70-9A1B2C3D4E5F';
    expect(
      clusterIdentity(loopback, ca(`/CN=flocker-test/O=${uuid}/OU=flocker-ca`), '/etc/flocker/cluster.crt'),
    ).toEqual({
      id: uuid.toLowerCase(),
      source: 'the cluster certificate /etc/flocker/cluster.crt (subject O=)',
    });
    expect(clusterIdentity(loopback, ca('/CN=some other CA/O=Example Inc')).id).toMatch(/^ca-sha256:[0-9a-f]{64}$/);
    expect(clusterIdentity(loopback, undefined).id).toBeNull();
  });

  it('dataset.cluster_id overrides it', () => {
    const c = parseAgentConfig({ ...minimal, dataset: { backend: 'loopback', cluster_id: 'prod-1' } });
    expect(clusterIdentity(c.dataset, ca('/CN=x/O=8f0c2a4e-1b2d-4c5e-8f70-9a1b2c3d4e5f')).id).toBe('prod-1');
  });
});

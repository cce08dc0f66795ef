import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  controlTlsFiles,
  controlUrl,
  loadControlCredentials,
  loadNodeConfig,
  metricsListen,
  NodeConfigError,
  parseNodeConfig,
  readConfigDocument,
} from './nodeConfig';
import { resolveNodeConnection, waitForNodeUuid } from './nodeConnection';

const UUID = 'dddddddd-dddd-4ddd-8ddd-dddddddddddd';

describe('TLS to the control service', () => {
  const cs = { hostname: 'c', port: 4523 };
  const dir = '/etc/flocker';
  const all = new Set(['/etc/flocker/cluster.crt', '/etc/flocker/node.crt', '/etc/flocker/node.key']);
  const existsIn = (files: Set<string>) => (p: string) => files.has(p);

  it('uses cluster.crt, node.crt and node.key beside agent.yml', () => {
    expect(controlTlsFiles(cs, dir, existsIn(all))).toEqual({
      ca: '/etc/flocker/cluster.crt',
      cert: '/etc/flocker/node.crt',
      key: '/etc/flocker/node.key',
    });
  });

  it('talks plain HTTP when none exists, or with insecure_http', () => {
    expect(controlTlsFiles(cs, dir, () => false)).toBeUndefined();
    expect(controlTlsFiles({ ...cs, insecure_http: true }, dir, existsIn(all))).toBeUndefined();
  });

  it('refuses a partial set instead of falling back', () => {
    expect(() => controlTlsFiles(cs, dir, existsIn(new Set(['/etc/flocker/cluster.crt'])))).toThrow(
      /node\.crt.*node\.key.*missing/,
    );
  });

  it('explicit files override; relative ones are relative to agent.yml', () => {
    const files = { ...cs, ca_file: '/pki/ca.pem', cert_file: 'me.crt', key_file: 'me.key' };
    const present = new Set(['/pki/ca.pem', '/etc/flocker/me.crt', '/etc/flocker/me.key']);
    expect(controlTlsFiles(files, dir, existsIn(present))).toEqual({
      ca: '/pki/ca.pem',
      cert: '/etc/flocker/me.crt',
      key: '/etc/flocker/me.key',
    });
    expect(() => controlTlsFiles(files, dir, () => false)).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID' }));
  });

  // Issue 18 #5: the plugin's loader said CONFIG_INVALID here, the dataset agent's IDENTITY_INVALID; one loader now.
  it('a certificate that names no node is IDENTITY_INVALID', () => {
    const d = mkdtempSync(join(tmpdir(), 'node-config-tls-'));
    try {
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
          '/CN=user-alice',
          '-keyout',
          join(d, 'k'),
          '-out',
          join(d, 'c'),
        ],
        { stdio: 'ignore' },
      );
      expect(() => loadControlCredentials({ ca: join(d, 'c'), cert: join(d, 'c'), key: join(d, 'k') })).toThrow(
        expect.objectContaining({
          code: 'IDENTITY_INVALID',
          message: expect.stringContaining('not a node certificate'),
        }),
      );
      expect(() => loadControlCredentials({ ca: join(d, 'c'), cert: join(d, 'c'), key: join(d, 'missing') })).toThrow(
        expect.objectContaining({ code: 'CONFIG_INVALID' }),
      );
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });
});

describe('the control service URL', () => {
  it('brackets IPv6 addresses and lists every replica', () => {
    expect(controlUrl({ hostname: 'c', port: 4523 }, false)).toBe('http://c:4523');
    expect(controlUrl({ hostname: '::1', port: 4523 }, true)).toBe('https://[::1]:4523');
    expect(controlUrl({ hostname: 'c1', port: 4600, hostnames: ['c2', 'c3:4700'] }, false)).toBe(
      'http://c1:4600,http://c2:4600,http://c3:4700',
    );
  });

  // The dataset agent's copy of the expression made http://[[::1]]:4523 of this.
  it('takes an already bracketed address as it is', () => {
    expect(controlUrl({ hostname: '[::1]', port: 4523 }, false)).toBe('http://[::1]:4523');
  });
});

describe('agent.yml as every agent reads it', () => {
  const minimal = { 'control-service': { hostname: 'c' } };

  it('fills in the shared defaults and needs neither version nor dataset', () => {
    expect(parseNodeConfig(minimal)).toEqual({
      'control-service': { hostname: 'c', port: 4523 },
      node: { state_dir: '/var/lib/flocker/agent', mount_root: '/flocker' },
    });
  });

  it.each([
    [{ 'control-service': { hostname: 'c', port: 0 } }, 'control-service.port'],
    [{ 'control-service': { hostname: 'c', port: 65536 } }, 'control-service.port'],
    [{ 'control-service': { hostname: 'c', typo: 1 } }, 'control-service'],
    [{ ...minimal, node: { state_dirr: '/s' } }, 'node'],
    [{ ...minimal, plugin: { reconcile_interval_seconds: -1 } }, 'plugin.reconcile_interval_seconds'],
    [{ ...minimal, version: 2 }, 'version'],
    [{ ...minimal, extra: true }, '(top level)'],
  ])('names the field of a mistake: %j', (doc, field) => {
    expect(() => parseNodeConfig(doc)).toThrow(
      expect.objectContaining({ code: 'CONFIG_INVALID', message: expect.stringContaining(`${field}:`) }),
    );
  });

  it('leaves the dataset agent its own sections, whatever they hold', () => {
    const c = parseNodeConfig({
      ...minimal,
      version: 1,
      dataset: { backend: 'aws', anything: true },
      agent: { self_fence_seconds: 7, future_key: 1 },
    });
    expect(c['control-service'].hostname).toBe('c');
  });

  it('metrics: flags, then agent.yml, then 127.0.0.1 and the default port; port 0 turns it off', () => {
    const c = parseNodeConfig({
      ...minimal,
      metrics: { address: '0.0.0.0', plugin_port: 9000, dataset_agent_port: 0 },
    });
    expect(metricsListen(c.metrics, 'plugin', 4532)).toEqual({ host: '0.0.0.0', port: 9000 });
    expect(metricsListen(c.metrics, 'dataset_agent', 4531)).toBeUndefined();
    expect(metricsListen(c.metrics, 'dataset_agent', 4531, { port: 4600 })).toEqual({ host: '0.0.0.0', port: 4600 });
    expect(metricsListen(undefined, 'container_agent', 4533)).toEqual({ host: '127.0.0.1', port: 4533 });
    expect(metricsListen(undefined, 'container_agent', 4533, { address: '10.0.0.1' })).toEqual({
      host: '10.0.0.1',
      port: 4533,
    });
    expect(() => parseNodeConfig({ ...minimal, metrics: { plugin_port: 70000 } })).toThrow(/metrics.plugin_port/);
    expect(() => parseNodeConfig({ ...minimal, metrics: { port: 1 } })).toThrow(/metrics/);
  });

  it('metrics.allowed_hosts: the names a loopback listener also answers to, for every agent (review s27 F5)', () => {
    const c = parseNodeConfig({ ...minimal, metrics: { allowed_hosts: ['node-1.example.com'] } });
    expect(metricsListen(c.metrics, 'plugin', 4532)).toEqual({
      host: '127.0.0.1',
      port: 4532,
      allowedHosts: ['node-1.example.com'],
    });
    expect(() => parseNodeConfig({ ...minimal, metrics: { allowed_hosts: [''] } })).toThrow(/allowed_hosts/);
  });

  it('metrics.check_host: "always" checks the Host on every connection, e.g. a published container port (review s28 G3)', () => {
    const c = parseNodeConfig({ ...minimal, metrics: { address: '0.0.0.0', check_host: 'always' } });
    for (const agent of ['dataset_agent', 'plugin', 'container_agent'] as const)
      expect(metricsListen(c.metrics, agent, 4531)).toEqual({ host: '0.0.0.0', port: 4531, checkHost: 'always' });
    expect(metricsListen(parseNodeConfig(minimal).metrics, 'plugin', 4532)).toEqual({ host: '127.0.0.1', port: 4532 });
    expect(() => parseNodeConfig({ ...minimal, metrics: { check_host: 'yes' } })).toThrow(/metrics.check_host/);
  });

  it('refuses a --metrics-port that is no port (yargs reads `abc` as NaN)', () => {
    for (const port of [Number.NaN, -1, 65536, 4531.5])
      expect(() => metricsListen(undefined, 'dataset_agent', 4531, { port })).toThrow(
        expect.objectContaining({
          code: 'CONFIG_INVALID',
          message: expect.stringMatching(/--metrics-port .* is not a port/),
        }),
      );
    expect(metricsListen(undefined, 'dataset_agent', 4531, { port: 65535 })).toEqual({
      host: '127.0.0.1',
      port: 65535,
    });
    expect(metricsListen(undefined, 'dataset_agent', 4531, { port: 0 })).toBeUndefined();
  });

  it('reads files: missing, unreadable YAML, valid', () => {
    const d = mkdtempSync(join(tmpdir(), 'node-config-'));
    try {
      expect(() => readConfigDocument(join(d, 'nope.yml'))).toThrow(
        expect.objectContaining({ code: 'CONFIG_NOT_FOUND' }),
      );
      writeFileSync(join(d, 'broken.yml'), 'version: [1\n');
      expect(() => readConfigDocument(join(d, 'broken.yml'))).toThrow(
        expect.objectContaining({ code: 'CONFIG_INVALID' }),
      );
      writeFileSync(join(d, 'agent.yml'), 'control-service: {hostname: c, port: 4600}\n');
      expect(loadNodeConfig(join(d, 'agent.yml'))['control-service'].port).toBe(4600);
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });
});

describe('the node the plugin and the container agent act for', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'node-config-conn-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('waits for node.json to appear, bounded', async () => {
    setTimeout(() => writeFileSync(join(dir, 'node.json'), JSON.stringify({ uuid: UUID })), 300);
    await expect(waitForNodeUuid(dir, 5_000)).resolves.toBe(UUID);
    await expect(waitForNodeUuid(join(dir, 'empty'), 300)).rejects.toThrow(
      /did not appear within 0 s; start flocker-dataset-agent first or pass --node-uuid/,
    );
    await expect(waitForNodeUuid(join(dir, 'empty'), 0)).rejects.toBeInstanceOf(NodeConfigError);
  });

  it('agent.yml and node.json, or flags', async () => {
    writeFileSync(
      join(dir, 'agent.yml'),
      `control-service: {hostname: "::1", port: 4600}\nnode: {state_dir: ${dir}, docker_socket: /run/d.sock}\n`,
    );
    writeFileSync(join(dir, 'node.json'), JSON.stringify({ uuid: UUID.toUpperCase() }));
    const c = await resolveNodeConnection({ agentConfig: join(dir, 'agent.yml') });
    expect(c).toMatchObject({ controlUrl: 'http://[::1]:4600', nodeUuid: UUID, stateDir: dir });
    expect(c.config?.node.docker_socket).toBe('/run/d.sock');
    expect(await resolveNodeConnection({ controlUrl: 'http://c:1', nodeUuid: UUID })).toEqual({
      controlUrl: 'http://c:1',
      nodeUuid: UUID,
      stateDir: '/var/lib/flocker/agent',
    });
    await expect(resolveNodeConnection({ agentConfig: join(dir, 'missing.yml') })).rejects.toThrow(
      expect.objectContaining({ code: 'CONFIG_NOT_FOUND' }),
    );
    await expect(resolveNodeConnection({ controlUrl: 'http://c:1', nodeUuid: 'nope' })).rejects.toThrow(/not a UUID/);
  });
});

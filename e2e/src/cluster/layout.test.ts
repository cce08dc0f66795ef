import {
  agentConfigYaml,
  agentResyncSeconds,
  clusterLayout,
  controlServiceFlags,
  daemonConfig,
  hostName,
} from './layout';
import { backendLine, controlView, isFault, parseFaultArgs, parseUpArgs } from './cli';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Cluster, clusterState, defaultCommands } from './Cluster';
import { ClusterStateFile } from './state';

describe('clusterLayout', () => {
  it('names and addresses hosts a, b, c on the private bridge, per slot', () => {
    const l = clusterLayout('/tmp/x', 3, 3);
    expect(l.hosts.map((h) => [h.name, h.netns, h.address, h.cgroupParent])).toEqual([
      ['a', 'fl3-a', '10.77.0.11', '/fl3-a'],
      ['b', 'fl3-b', '10.77.0.12', '/fl3-b'],
      ['c', 'fl3-c', '10.77.0.13', '/fl3-c'],
    ]);
    expect(l.switchNetns).toBe('fl3-sw');
    expect([l.rootAddress, l.controlRootAddress, l.controlUrl]).toEqual([
      '10.77.1.13',
      '10.77.1.14',
      'https://10.77.1.14:4523',
    ]);
  });

  it('gives every slot its own /30 towards the root netns, and names that fit a network interface', () => {
    const roots = new Set<string>();
    for (let slot = 0; slot < 64; slot++) {
      const l = clusterLayout('/tmp/x', slot, 26);
      roots.add(l.rootAddress);
      expect(l.rootVeth.length).toBeLessThanOrEqual(15);
      for (const h of l.hosts) expect(h.netns.length).toBeLessThanOrEqual(15);
    }
    expect(roots.size).toBe(64);
  });

  it('rejects relative dirs and out-of-range slots or host counts', () => {
    expect(() => clusterLayout('rel', 0, 1)).toThrow(RangeError);
    expect(() => clusterLayout('/tmp/x', 64, 1)).toThrow(RangeError);
    expect(() => clusterLayout('/tmp/x', 0, 0)).toThrow(RangeError);
    expect(() => clusterLayout('/tmp/x', 0, 27)).toThrow(RangeError);
    expect(() => hostName(-1)).toThrow(RangeError);
  });

  it('writes an agent.yml pointing at the control service on the bridge, and a private dockerd config', () => {
    const l = clusterLayout('/tmp/x', 0, 2);
    const b = l.hosts[1]!;
    const yml = agentConfigYaml(l, b, 1);
    expect(yml).toContain('hostname: "10.77.0.2"');
    expect(yml).toContain('root_path: "/tmp/x/pool"');
    expect(yml).toContain('era_file: "/tmp/x/hosts/b/era"');
    expect(yml).toContain('docker_socket: "/tmp/x/hosts/b/docker.sock"');
    expect(yml).toContain('resync_interval_seconds: 1');
    expect(daemonConfig(b)).toMatchObject({ 'cgroup-parent': '/fl0-b', hosts: ['unix:///tmp/x/hosts/b/docker.sock'] });
  });

  it('gives the local backend each host its own pool (agent.yml dataset: local, btrfs, the transfer port)', () => {
    const l = clusterLayout('/tmp/x', 0, 2);
    const b = l.hosts[1]!;
    expect([b.localPoolImage, b.localPool]).toEqual(['/tmp/x/hosts/b/pool.img', '/tmp/x/hosts/b/pool']);
    const yml = agentConfigYaml(l, b, 1, 'local');
    expect(yml).toContain(
      'dataset:\n  backend: local\n  engine: btrfs\n  pool: "/tmp/x/hosts/b/pool"\n  transfer_port: 4525\nnode:\n',
    );
    expect(yml).not.toContain('root_path');
    // Transfers reach b at its bridge address; the rest of the file is the loopback one.
    const loopback = agentConfigYaml(l, b, 1, 'loopback');
    expect(yml).toContain('host: "10.77.0.12"');
    expect(yml.slice(yml.indexOf('node:'))).toBe(loopback.slice(loopback.indexOf('node:')));
    // Without a backend: loopback, the same file as before the option.
    expect(agentConfigYaml(l, b, 1)).toBe(agentConfigYaml(l, b, 1, 'loopback'));
    expect(agentConfigYaml(l, b, 1)).toContain('dataset:\n  backend: loopback\n  root_path: "/tmp/x/pool"\nnode:\n');
  });

  it('keeps the agent resync well inside the node timeout', () => {
    expect(agentResyncSeconds(3)).toBe(1);
    expect(agentResyncSeconds(30)).toBe(10);
    expect(agentResyncSeconds(100)).toBe(10);
    expect(agentResyncSeconds(0.3)).toBe(0.5);
  });
});

describe('cluster.sh up arguments', () => {
  it('defaults to 3 hosts with everything', () => {
    expect(parseUpArgs([])).toEqual({
      hosts: 3,
      withDocker: true,
      withAgents: true,
      withPlugin: true,
      withContainerAgents: true,
      nodeTimeoutSeconds: 10,
    });
  });
  it('starts a container agent per host unless --no-container-agents (review T2 F3: flocker-deploy stayed pending)', () => {
    expect(parseUpArgs(['2', '--no-container-agents'])).toMatchObject({ hosts: 2, withContainerAgents: false });
  });
  it('parses N and the switches', () => {
    expect(parseUpArgs(['2', '--no-docker', '--node-timeout', '4'])).toMatchObject({
      hosts: 2,
      withDocker: false,
      nodeTimeoutSeconds: 4,
    });
    expect(() => parseUpArgs(['--bogus'])).toThrow(/unknown argument/);
    expect(() => parseUpArgs(['0'])).toThrow(/1\.\.26/);
  });
  it('takes --lease-grace S (0 allowed) and leaves it unset by default', () => {
    expect(parseUpArgs([]).leaseGraceSeconds).toBeUndefined();
    expect(parseUpArgs(['--node-timeout', '3', '--lease-grace', '1'])).toMatchObject({
      nodeTimeoutSeconds: 3,
      leaseGraceSeconds: 1,
    });
    expect(parseUpArgs(['--lease-grace', '0']).leaseGraceSeconds).toBe(0);
    expect(parseUpArgs(['--lease-grace', '0.5', '2'])).toMatchObject({ hosts: 2, leaseGraceSeconds: 0.5 });
    for (const bad of [['--lease-grace'], ['--lease-grace', '-1'], ['--lease-grace', 'x'], ['--lease-grace', '']]) {
      expect(() => parseUpArgs(bad)).toThrow(/--lease-grace needs/);
    }
  });
});

describe('cluster.sh up --backend', () => {
  it('takes loopback or local, and leaves it unset (loopback) by default', () => {
    expect(parseUpArgs([]).backend).toBeUndefined();
    expect(parseUpArgs(['2', '--backend', 'local'])).toEqual({ ...parseUpArgs(['2']), backend: 'local' });
    expect(parseUpArgs(['--backend', 'loopback']).backend).toBe('loopback');
    for (const bad of [['--backend'], ['--backend', 'zfs'], ['--backend', '']]) {
      expect(() => parseUpArgs(bad)).toThrow(/--backend needs loopback or local/);
    }
  });
  it('status names the backend', () => {
    expect(backendLine('loopback', '/tmp/x/pool')).toBe(
      'backend   loopback: one pool shared by every host, /tmp/x/pool',
    );
    expect(backendLine('local', '/tmp/x/pool')).toMatch(
      /^backend +local \(btrfs\): each host its own file system .*4525/,
    );
  });
});

describe('startCluster({ backend })', () => {
  const where = { slot: 5, baseDir: '/tmp/x', removeBaseDir: false };
  it('records backend local in cluster.json, and no backend without the option (files as before)', () => {
    const local = clusterState({ hosts: 2, withDocker: true, backend: 'local' }, where);
    expect(local).toMatchObject({ hosts: 2, withDocker: true, withPlugin: true, backend: 'local' });
    expect(ClusterStateFile.parse(JSON.parse(JSON.stringify(local)))).toEqual(local);
    const plain = clusterState({ hosts: 2, withDocker: true }, where);
    expect('backend' in plain).toBe(false);
    expect(ClusterStateFile.parse(JSON.parse(JSON.stringify(plain)))).toEqual(plain);
  });

  it('records container agents only when asked, and only with Docker and dataset agents (they need both)', () => {
    expect('withContainerAgents' in clusterState({ hosts: 2, withDocker: true }, where)).toBe(false);
    const withThem = clusterState({ hosts: 2, withDocker: true, withContainerAgents: true }, where);
    expect(withThem.withContainerAgents).toBe(true);
    expect(ClusterStateFile.parse(JSON.parse(JSON.stringify(withThem)))).toEqual(withThem);
    expect('withContainerAgents' in clusterState({ hosts: 2, withContainerAgents: true }, where)).toBe(false);
    const noAgents = { hosts: 2, withDocker: true, withAgents: false, withContainerAgents: true };
    expect('withContainerAgents' in clusterState(noAgents, where)).toBe(false);
  });

  it("writes each host's agent.yml for the backend the state names; an older cluster.json is loopback", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flocker-layout-test-'));
    try {
      const layout = clusterLayout(dir, 5, 2);
      const base = { slot: 5, baseDir: dir, removeBaseDir: false };
      const local = new Cluster(layout, clusterState({ hosts: 2, backend: 'local' }, base), defaultCommands);
      expect(local.backend).toBe('local');
      for (const h of local.hosts) h.prepare();
      for (const h of layout.hosts) {
        expect(fs.readFileSync(h.agentConfig, 'utf8')).toBe(agentConfigYaml(layout, h, 3.3, 'local'));
      }
      const older = new Cluster(layout, clusterState({ hosts: 2 }, base), defaultCommands);
      expect(older.backend).toBe('loopback');
      for (const h of older.hosts) h.prepare();
      expect(fs.readFileSync(layout.hosts[0]!.agentConfig, 'utf8')).toContain('backend: loopback');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('cluster.sh fault commands', () => {
  it('knows kill, start, poweroff, poweron, partition and heal, and nothing else', () => {
    for (const f of ['kill', 'start', 'poweroff', 'poweron', 'partition', 'heal']) expect(isFault(f)).toBe(true);
    for (const f of ['up', 'down', 'status', 'exec', 'reboot', undefined]) expect(isFault(f)).toBe(false);
  });
  it('takes exactly one host name', () => {
    expect(parseFaultArgs('kill', ['a'])).toEqual({ fault: 'kill', host: 'a' });
    expect(parseFaultArgs('partition', ['c'])).toEqual({ fault: 'partition', host: 'c' });
    expect(() => parseFaultArgs('poweroff', [])).toThrow(/needs a host name/);
    expect(() => parseFaultArgs('heal', ['a', 'b'])).toThrow(/one host/);
    expect(() => parseFaultArgs('kill', ['host-a'])).toThrow(/not a host name/);
    expect(() => parseFaultArgs('kill', ['A'])).toThrow(/not a host name/);
  });
});

describe('cluster.sh status', () => {
  it('shows how the control service sees each host', () => {
    expect(controlView(undefined)).toBe('control: unknown');
    expect(controlView({ alive: true })).toBe('control: alive');
    expect(controlView({ alive: false, dead_since: '2026-12-03T22:00:00Z' })).toBe(
      'control: DEAD since 2026-12-03T22:00:00Z',
    );
    expect(
      controlView({ alive: false, fencing: { state: 'fenced', since: '2026-12-03T22:00:01Z', reason: 'no contact' } }),
    ).toBe('control: DEAD, self-fenced since 2026-12-03T22:00:01Z');
    expect(controlView({ alive: true, fencing: { state: 'recovered', since: 'x', reason: 'y' } })).toBe(
      'control: alive',
    );
  });
});

describe('control service flags', () => {
  const base = { port: 4523, dataDir: '/x/control/data', nodeTimeoutSeconds: 3, tlsDir: '/x/pki' };
  it('passes the node timeout, and the lease grace only when set', () => {
    expect(controlServiceFlags(base)).toEqual([
      '--port',
      '4523',
      '--host',
      '0.0.0.0',
      '--data-dir',
      '/x/control/data',
      '--node-timeout',
      '3',
      '--tls-dir',
      '/x/pki',
    ]);
    const withGrace = controlServiceFlags({ ...base, leaseGraceSeconds: 1 });
    expect(withGrace.slice(withGrace.indexOf('--lease-grace'), withGrace.indexOf('--lease-grace') + 2)).toEqual([
      '--lease-grace',
      '1',
    ]);
    expect(controlServiceFlags({ ...base, leaseGraceSeconds: 0 })).toContain('--lease-grace');
  });
});

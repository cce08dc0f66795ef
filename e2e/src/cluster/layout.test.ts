import {
  agentConfigYaml,
  agentResyncSeconds,
  clusterLayout,
  controlServiceFlags,
  daemonConfig,
  hostName,
} from './layout';
import { controlView, isFault, parseFaultArgs, parseUpArgs } from './cli';

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
      nodeTimeoutSeconds: 10,
    });
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

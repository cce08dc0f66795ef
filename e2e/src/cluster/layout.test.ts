import { agentConfigYaml, agentResyncSeconds, clusterLayout, daemonConfig, hostName } from './layout';
import { parseUpArgs } from './cli';

describe('clusterLayout', () => {
  it('names and addresses hosts a, b, c on the private bridge, per slot', () => {
    const l = clusterLayout('/tmp/x', 3, 3);
    expect(l.hosts.map((h) => [h.name, h.netns, h.address, h.cgroupParent])).toEqual([
      ['a', 'fl3-a', '10.77.0.11', '/fl3-a'],
      ['b', 'fl3-b', '10.77.0.12', '/fl3-b'],
      ['c', 'fl3-c', '10.77.0.13', '/fl3-c'],
    ]);
    expect(l.switchNetns).toBe('fl3-sw');
    expect([l.rootAddress, l.controlRootAddress, l.controlUrl]).toEqual(['10.77.1.13', '10.77.1.14', 'https://10.77.1.14:4523']);
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
    expect(parseUpArgs([])).toEqual({ hosts: 3, withDocker: true, withAgents: true, withPlugin: true, nodeTimeoutSeconds: 10 });
  });
  it('parses N and the switches', () => {
    expect(parseUpArgs(['2', '--no-docker', '--node-timeout', '4'])).toMatchObject({ hosts: 2, withDocker: false, nodeTimeoutSeconds: 4 });
    expect(() => parseUpArgs(['--bogus'])).toThrow(/unknown argument/);
    expect(() => parseUpArgs(['0'])).toThrow(/1\.\.26/);
  });
});

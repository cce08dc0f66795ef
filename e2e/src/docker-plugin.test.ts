/**
 * The Flocker Docker volume plugin with a real Docker Engine: control service, dataset
 * agent (loopback pool), plugin and a private dockerd on this machine. Needs root.
 */
import { TINY_IMAGE, until, type FlockerDockerStack } from './docker';
import { dockerStackForSuite } from './docker/suite';

jest.setTimeout(120_000);

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;

describe('flocker Docker volume plugin with real Docker', () => {
  let stack: FlockerDockerStack;
  let drv: string;
  const docker = (...args: string[]) => stack.docker(args);
  const dockerFails = async (...args: string[]) => {
    const r = await stack.docker(args, { check: false });
    expect(r.code).not.toBe(0);
    return r.stderr;
  };
  const runWith = (vol: string, script: string, extra: string[] = []) => stack.runWith(vol, script, extra);
  const startWith = (name: string, vol: string, script: string, extra: string[] = []) =>
    stack.startWith(name, vol, script, extra);
  const leases = async () => stack.client.listLeases();
  /** The plugin answers Unmount first and releases the lease right after. */
  const noLeases = () => until('the lease to be released', async () => (await leases()).length === 0, 5_000, 20);

  // These tests count leases (taken at the first Mount, let go of after the last Unmount): idle leases off.
  dockerStackForSuite(
    (s) => {
      stack = s;
      drv = s.driver;
    },
    { pluginArgs: ['--idle-lease-seconds', '0'] },
  );

  it('docker volume create -o size, inspect, ls, rm', async () => {
    await docker('volume', 'create', '-d', drv, '-o', 'size=200MiB', '-o', 'profile=silver', 'v-create');
    const d = await stack.dataset('v-create');
    expect(d).toMatchObject({
      maximum_size: 200 * MiB,
      primary: stack.nodeUuid,
      metadata: { 'clusterhq:flocker:profile': 'silver' },
    });
    const [info] = JSON.parse((await docker('volume', 'inspect', 'v-create')).stdout);
    expect(info).toMatchObject({
      Name: 'v-create',
      Driver: drv,
      Scope: 'global',
      Status: { dataset_id: d?.dataset_id, size: '200 MiB', node: 'e2e-host' },
    });
    expect((await docker('volume', 'ls', '--format', '{{.Driver}} {{.Name}}')).stdout).toContain(`${drv} v-create`);
    // Creating it again is harmless.
    await docker('volume', 'create', '-d', drv, 'v-create');
    expect((await stack.client.listDatasets()).filter((x) => x.metadata.name === 'v-create')).toHaveLength(1);
    await docker('volume', 'rm', 'v-create');
    expect(await stack.dataset('v-create')).toBeUndefined();
    expect((await docker('volume', 'ls', '-q')).stdout).not.toContain('v-create');
  });

  it('docker run -v name:/data writes; a second container reads it back', async () => {
    await runWith('v-run', 'echo persisted > /data/hello');
    expect(await runWith('v-run', 'cat /data/hello; grep " /data " /proc/mounts')).toMatch(
      /^persisted\n\/dev\/loop\d+ \/data ext4/,
    );
    expect((await stack.dataset('v-run'))?.maximum_size).toBe(10 * GiB); // the default size
    await noLeases(); // nothing uses it any more
  });

  it('--mount type=volume with volume-driver and volume-opt=size', async () => {
    const out = await docker(
      'run',
      '--rm',
      '--network',
      'none',
      '--mount',
      `type=volume,src=v-mount,dst=/data,volume-driver=${drv},volume-opt=size=128MiB`,
      TINY_IMAGE,
      'sh',
      '-c',
      'df -k /data | tail -1',
    );
    expect(out.stdout).toMatch(/\/data/);
    expect((await stack.dataset('v-mount'))?.maximum_size).toBe(128 * MiB);
  });

  it('two containers share a volume at once; --volumes-from; the lease goes with the last one', async () => {
    await startWith('share1', 'v-share', 'echo one > /data/one; exec sleep 600');
    await startWith('share2', 'v-share', 'exec sleep 600');
    await until(
      'share1 to write',
      async () => (await stack.docker(['exec', 'share2', 'cat', '/data/one'], { check: false })).stdout === 'one\n',
      10_000,
    );
    expect(
      (await docker('run', '--rm', '--network', 'none', '--volumes-from', 'share1', TINY_IMAGE, 'cat', '/data/one'))
        .stdout,
    ).toBe('one\n');
    const d = await stack.dataset('v-share');
    expect(await leases()).toEqual([
      { dataset_id: d?.dataset_id, node_uuid: stack.nodeUuid, expires: null, holders: ['docker'] },
    ]);
    await docker('rm', '-f', 'share1');
    expect(await leases()).toHaveLength(1);
    expect((await docker('exec', 'share2', 'cat', '/data/one')).stdout).toBe('one\n');
    await docker('rm', '-f', 'share2');
    await noLeases();
  });

  it('docker restart keeps the data and the count right', async () => {
    await startWith('restarter', 'v-restart', 'date >> /data/starts; exec sleep 600');
    await docker('restart', '-t', '1', 'restarter');
    await until(
      'two starts',
      async () => (await docker('exec', 'restarter', 'cat', '/data/starts')).stdout.trim().split('\n').length === 2,
      10_000,
    );
    expect(await leases()).toHaveLength(1);
    await docker('rm', '-f', 'restarter');
    await noLeases();
  });

  it('a restart-always container comes back with its volume after dockerd restarts', async () => {
    await startWith('always', 'v-always', 'echo x >> /data/boots; exec sleep 600', [
      '--restart',
      'always',
      '--stop-timeout',
      '1',
    ]);
    await until(
      'first boot',
      async () => (await stack.docker(['exec', 'always', 'cat', '/data/boots'], { check: false })).stdout === 'x\n',
      10_000,
    );
    const t0 = Date.now();
    await stack.dockerd.restart();
    await until(
      'the container to run again',
      async () => (await docker('inspect', '-f', '{{.State.Running}}', 'always')).stdout.trim() === 'true',
      60_000,
      100,
    );
    expect(Date.now() - t0).toBeLessThan(15_000); // no plugin-lookup stall
    await until(
      'second boot',
      async () => (await stack.docker(['exec', 'always', 'cat', '/data/boots'], { check: false })).stdout === 'x\nx\n',
      10_000,
    );
    expect(await leases()).toHaveLength(1);
    await docker('rm', '-f', 'always');
    await noLeases();
  });

  it('a plugin restart while a container runs leaves its data alone; the later unmount still releases', async () => {
    await startWith('survivor', 'v-plugin', 'echo before > /data/f; exec sleep 600');
    await until(
      'the write',
      async () => (await stack.docker(['exec', 'survivor', 'cat', '/data/f'], { check: false })).stdout === 'before\n',
      10_000,
    );
    await stack.killPlugin();
    await docker('exec', 'survivor', 'sh', '-c', 'echo during >> /data/f');
    await stack.startPlugin();
    expect((await docker('exec', 'survivor', 'cat', '/data/f')).stdout).toBe('before\nduring\n');
    expect(await leases()).toHaveLength(1);
    // A second container while the first still runs, after the restart.
    expect(await runWith('v-plugin', 'cat /data/f')).toBe('before\nduring\n');
    expect(await leases()).toHaveLength(1);
    await docker('rm', '-f', 'survivor');
    await noLeases();
  });

  it('bad input gives a clear error and creates nothing', async () => {
    const before = (await stack.client.listDatasets()).length;
    expect(await dockerFails('volume', 'create', '-d', drv, '-o', 'size=10M', 'v-bad')).toMatch(
      /size "10M" is too small: at least 64 MiB/,
    );
    expect(await dockerFails('volume', 'create', '-d', drv, '-o', 'size=lots', 'v-bad')).toMatch(
      /size "lots" is not understood/,
    );
    expect(await dockerFails('volume', 'create', '-d', drv, '-o', 'colour=red', 'v-bad')).toMatch(
      /unknown volume option "colour"/,
    );
    expect(await dockerFails('volume', 'create', '-d', drv, 'a')).toMatch(/not a valid volume name|invalid/i);
    expect(
      await dockerFails(
        'run',
        '--rm',
        '--network',
        'none',
        '--mount',
        `type=volume,src=v-bad,dst=/data,volume-driver=${drv},volume-opt=size=1K`,
        TINY_IMAGE,
        'true',
      ),
    ).toMatch(/too small/);
    expect((await stack.client.listDatasets()).length).toBe(before);
    expect((await docker('volume', 'ls', '-q')).stdout).not.toContain('v-bad');
  });

  it('docker volume rm of an in-use volume is refused, here and on another host', async () => {
    await startWith('user', 'v-busy', 'exec sleep 600');
    expect(await dockerFails('volume', 'rm', 'v-busy')).toMatch(/in use/);
    await docker('rm', '-f', 'user');
    // Another host's container holds it (its plugin took the lease).
    const other = '0b0b0b0b-0b0b-4b0b-8b0b-0b0b0b0b0b0b';
    await (
      await stack.clientAsNode(other)
    ).reportNodeState({
      uuid: other,
      era: 'e',
      host: 'other-host',
      instance_id: 'i',
      backend: 'loopback',
      manifestations: [],
      errors: [],
    });
    const d = await stack.dataset('v-busy');
    await stack.client.acquireLease({ dataset_id: d!.dataset_id, node_uuid: other, expires: null });
    expect(await dockerFails('volume', 'rm', 'v-busy')).toMatch(
      /volume v-busy is in use by a container on host other-host/,
    );
    expect(
      await dockerFails(
        'run',
        '--rm',
        '--network',
        'none',
        '-v',
        'v-busy:/data',
        '--volume-driver',
        drv,
        TINY_IMAGE,
        'true',
      ),
    ).toMatch(/volume v-busy is in use by a container on host other-host/);
    await stack.client.releaseLease(d!.dataset_id);
    await docker('volume', 'rm', 'v-busy');
    expect(await stack.dataset('v-busy')).toBeUndefined();
  });
});

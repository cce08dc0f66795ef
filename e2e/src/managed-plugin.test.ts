/**
 * The Flocker volume plugin as a managed Docker plugin (v2) on a real dockerd: the rootfs
 * and config.json of packages/volume-plugin/managed/build.sh, `docker plugin create / set /
 * enable / disable / upgrade`, with the control service and dataset agent on this machine.
 *
 * A managed plugin with host networking lives in dockerd's network namespace, so the private
 * dockerd runs in a netns with a veth to the root one: the control service and a local
 * registry (Debian's docker-registry: `docker plugin upgrade` pulls) listen on the root side.
 * The agent's mount root is a shared mount, as on a systemd host, so the plugin sees the
 * agent's mounts (config.json mount "mountroot", rslave). Needs root.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { exec, until } from './docker';
import { ChildService } from './docker/FlockerDockerStack';
import { ManagedPluginBed } from './testing/managedPluginBed';

// The first and the upgrade test wait for build.sh's builds (minutes on a loaded host: 120 s failed at load ~21).
jest.setTimeout(360_000);

// Not 5000: a docker-registry package service may hold *:5000.
const REGISTRY = `10.78.${process.pid % 250}.1:${35000 + (process.pid % 250)}`;
const PLUGIN = 'flocker/flocker:v1';

describe('flocker as a managed Docker plugin (v2)', () => {
  const bed = new ManagedPluginBed({
    tag: 'fmp',
    subnet: 78,
    plugin: PLUGIN,
    host: 'e2e-managed',
    dockerdArgs: ['--insecure-registry', REGISTRY],
  });
  const { root, mountRoot } = bed;
  const docker = (...args: string[]) => bed.docker(...args);
  const dockerFails = async (...args: string[]) => {
    const r = await bed.dockerd.docker(args, { check: false });
    expect(r.code).not.toBe(0);
    return r.stderr;
  };
  const run = (vol: string, script: string, extra: string[] = []) => bed.run(vol, script, extra);
  const build = (ref: string, out: string) => bed.build(ref, out);
  const configure = () => bed.configure();
  const dataset = (name: string) => bed.dataset(name);

  /** build.sh's two builds (v1 for the first test, v2 for the upgrade), started beside the bed: they need no daemon. */
  let builds: { v1: ReturnType<typeof build>; v2: ReturnType<typeof build> };
  const V2 = `${REGISTRY}/flocker/flocker:v2`;

  beforeAll(async () => {
    // One after the other: one build beside the bed's start, not two.
    const v1 = build(PLUGIN, path.join(root, 'build1'));
    builds = { v1, v2: v1.then(() => build(V2, path.join(root, 'build2'))) };
    // Awaited by their tests (a failure is theirs); no unhandled rejection meanwhile.
    for (const b of Object.values(builds)) b.catch(() => undefined);
    await bed.start();
    const regConfig = path.join(root, 'registry.yml');
    fs.writeFileSync(
      regConfig,
      `version: 0.1\nstorage: {filesystem: {rootdirectory: ${path.join(root, 'registry')}}}\nhttp: {addr: "${REGISTRY}"}\n`,
    );
    bed
      .own(new ChildService('registry', ['docker-registry', 'serve', regConfig], path.join(root, 'registry.log')))
      .start();
  }, 180_000);

  afterAll(async () => {
    await Promise.allSettled(Object.values(builds ?? {})); // not writing under the root close removes
    await bed.close();
  }, 240_000);

  afterEach(() => bed.reportIfFailed());

  it('build.sh makes the rootfs; docker plugin create, set (mounts, env) and enable', async () => {
    await builds.v1;
    await docker('plugin', 'create', PLUGIN, path.join(root, 'build1'));
    await configure();
    await docker('plugin', 'enable', PLUGIN);
    const [info] = JSON.parse((await docker('plugin', 'inspect', PLUGIN)).stdout) as Array<{
      Enabled: boolean;
      Config: { Interface: { Types: string[] }; PropagatedMount: string };
    }>;
    expect(info).toMatchObject({
      Enabled: true,
      Config: { Interface: { Types: ['docker.volumedriver/1.0'] }, PropagatedMount: '/mnt/flocker' },
    });
  });

  it('docker run -v x:/data --volume-driver=flocker/flocker:v1 writes; a second container reads it back', async () => {
    await run('mp-data', 'echo persisted > /data/hello', ['--rm']);
    expect((await run('mp-data', 'cat /data/hello; grep " /data " /proc/mounts', ['--rm'])).stdout).toMatch(
      /^persisted\n\/dev\/loop\d+ \/data ext4/,
    );
    const d = await dataset('mp-data');
    expect(d?.primary).toBeDefined();
    // The agent's mount on the host holds the data the containers wrote.
    expect(fs.readFileSync(path.join(mountRoot, d?.dataset_id ?? '', 'hello'), 'utf8')).toBe('persisted\n');
    const [vol] = JSON.parse((await docker('volume', 'inspect', 'mp-data')).stdout) as Array<{ Driver: string }>;
    expect(vol?.Driver).toBe(PLUGIN);
  });

  it('docker plugin disable refuses while a container uses a volume', async () => {
    await run('mp-busy', 'echo busy > /data/b; exec sleep 600', ['-d', '--name', 'mp-busy']);
    expect(await dockerFails('plugin', 'disable', PLUGIN)).toMatch(/in use/);
    expect((await docker('plugin', 'inspect', '-f', '{{.Enabled}}', PLUGIN)).stdout.trim()).toBe('true');
    expect((await docker('exec', 'mp-busy', 'cat', '/data/b')).stdout).toBe('busy\n');
    await docker('rm', '-f', 'mp-busy');
  });

  it('docker plugin upgrade to a new tag keeps the volumes and their data', async () => {
    const v2 = V2;
    await builds.v2;
    await until(
      'the registry',
      async () => (await exec(['curl', '-fsS', `http://${REGISTRY}/v2/`], { check: false })).code === 0,
      30_000,
      100,
    );
    await docker('plugin', 'create', v2, path.join(root, 'build2'));
    await docker('plugin', 'push', v2);
    await docker('plugin', 'rm', v2);
    // No container uses a volume now; existing volumes still hold the plugin, hence -f.
    await docker('plugin', 'disable', '-f', PLUGIN);
    // A different repository than the plugin was created as: the CLI would ask (stdin) without --skip-remote-check.
    await docker('plugin', 'upgrade', '--grant-all-permissions', '--skip-remote-check', PLUGIN, v2);
    await configure();
    await docker('plugin', 'enable', PLUGIN);
    // The plugin keeps its name (its volumes' driver) and runs the new build's config and rootfs.
    const [info] = JSON.parse((await docker('plugin', 'inspect', PLUGIN)).stdout) as Array<{
      Name: string;
      Enabled: boolean;
      Config: { Description: string };
    }>;
    expect(info).toMatchObject({ Name: PLUGIN, Enabled: true });
    expect(info?.Config.Description).toContain('plugin v2:');
    expect((await docker('volume', 'ls', '--format', '{{.Driver}} {{.Name}}')).stdout).toContain(`${PLUGIN} mp-data`);
    expect((await run('mp-data', 'cat /data/hello', ['--rm'])).stdout).toBe('persisted\n');
    expect((await run('mp-busy', 'cat /data/b', ['--rm'])).stdout).toBe('busy\n');
  });
});

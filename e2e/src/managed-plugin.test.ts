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
import * as os from 'node:os';
import * as path from 'node:path';
import { FlockerClient } from '@flocker/api';
import { createLogger, startControlService, type ControlService } from '@flocker/control-api';
import { ClusterPki } from './cluster/pki';
import { buildTinyRootfsTar, cleanupUnder, DockerDaemon, exec, TINY_IMAGE, until } from './docker';
import { ChildService, packageMain } from './docker/FlockerDockerStack';
import { removeTree } from './removeTree';

jest.setTimeout(120_000);

const BUILD = path.resolve(__dirname, '../../packages/volume-plugin/managed/build.sh');
const slot = process.pid % 250;
const NETNS = `fmp${process.pid}`;
const VETH = `fmp${process.pid}`.slice(0, 15);
const ROOT_IP = `10.78.${slot}.1`;
const NS_IP = `10.78.${slot}.2`;
// Not 5000: a docker-registry package service may hold *:5000.
const REGISTRY = `${ROOT_IP}:${35000 + slot}`;
const PLUGIN = 'flocker/flocker:v1';

describe('flocker as a managed Docker plugin (v2)', () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'fmp-'));
  const etc = path.join(root, 'etc');
  const stateDir = path.join(root, 'state');
  const mountRoot = path.join(root, 'mnt');
  const dockerd = new DockerDaemon(path.join(root, 'd'), `/fmp-${process.pid}`, {
    netns: NETNS,
    extraArgs: ['--insecure-registry', REGISTRY],
  });
  let control: ControlService | undefined;
  let client: FlockerClient;
  let agent: ChildService | undefined;
  let registry: ChildService | undefined;
  const docker = (...args: string[]) => dockerd.docker(args, { timeoutMs: 120_000 });
  const dockerFails = async (...args: string[]) => {
    const r = await dockerd.docker(args, { check: false });
    expect(r.code).not.toBe(0);
    return r.stderr;
  };
  const run = (vol: string, script: string, extra: string[] = []) =>
    docker(
      'run',
      '--network',
      'none',
      ...extra,
      '-v',
      `${vol}:/data`,
      '--volume-driver',
      PLUGIN,
      TINY_IMAGE,
      'sh',
      '-c',
      script,
    );
  const build = (ref: string, out: string) =>
    exec([BUILD, '--no-compile', '--no-create', '--out', out, ref], { timeoutMs: 120_000 });
  /** This host's paths and the control service, as `docker plugin set` (an upgrade resets them to config.json's). */
  const configure = () =>
    docker(
      'plugin',
      'set',
      PLUGIN,
      `config.source=${etc}`,
      `state.source=${stateDir}`,
      `mountroot.source=${mountRoot}`,
      `docker.source=${dockerd.socket}`,
      // agent.yml names this host's paths; in the plugin the state dir is where the state mount is.
      'FLOCKER_STATE_DIR=/var/lib/flocker',
      `FLOCKER_CONTROL_URL=https://${ROOT_IP}:${control?.port}`,
      'FLOCKER_CA_FILE=/etc/flocker/cluster.crt',
      'FLOCKER_CERT_FILE=/etc/flocker/node.crt',
      'FLOCKER_KEY_FILE=/etc/flocker/node.key',
    );
  const dataset = async (name: string) =>
    (await client.listDatasets()).find((d) => !d.deleted && d.metadata.name === name);

  beforeAll(async () => {
    for (const d of [etc, stateDir, mountRoot]) fs.mkdirSync(d, { recursive: true });
    // The agent's mount root shared, so its later mounts reach the plugin's rslave view of it.
    await exec(['mount', '--bind', mountRoot, mountRoot]);
    await exec(['mount', '--make-shared', mountRoot]);
    await exec(['ip', 'netns', 'add', NETNS]);
    await exec(['ip', 'link', 'add', VETH, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', NETNS]);
    await exec(['ip', 'addr', 'add', `${ROOT_IP}/30`, 'dev', VETH]);
    await exec(['ip', 'link', 'set', VETH, 'up']);
    await exec(['ip', '-n', NETNS, 'addr', 'add', `${NS_IP}/30`, 'dev', 'eth0']);
    await exec(['ip', '-n', NETNS, 'link', 'set', 'eth0', 'up']);
    await exec(['ip', '-n', NETNS, 'link', 'set', 'lo', 'up']);

    const pki = await ClusterPki.create(path.join(root, 'pki'), ['127.0.0.1', ROOT_IP]);
    control = await startControlService({
      port: 0,
      host: ROOT_IP,
      dataDir: path.join(root, 'control'),
      logger: createLogger('error'),
      tls: pki.serverCredentials(),
    });
    client = new FlockerClient({ baseUrl: control.url, dispatcher: await pki.userDispatcher('admin') });
    await pki.installNode(etc);
    fs.writeFileSync(
      path.join(etc, 'agent.yml'),
      [
        'version: 1',
        `control-service: {hostname: ${ROOT_IP}, port: ${control.port}}`,
        `dataset: {backend: loopback, root_path: ${path.join(root, 'pool')}}`,
        `node: {state_dir: ${stateDir}, mount_root: ${mountRoot}, host: e2e-managed, docker_socket: ${dockerd.socket}}`,
        '',
      ].join('\n'),
    );
    agent = new ChildService(
      'agent',
      [process.execPath, packageMain('@flocker/dataset-agent'), '--config', path.join(etc, 'agent.yml')],
      path.join(root, 'agent.log'),
    );
    agent.start();
    const regConfig = path.join(root, 'registry.yml');
    fs.writeFileSync(
      regConfig,
      `version: 0.1\nstorage: {filesystem: {rootdirectory: ${path.join(root, 'registry')}}}\nhttp: {addr: "${REGISTRY}"}\n`,
    );
    registry = new ChildService('registry', ['docker-registry', 'serve', regConfig], path.join(root, 'registry.log'));
    registry.start();
    await until('node.json', () => fs.existsSync(path.join(stateDir, 'node.json')), 30_000, 100);
    await dockerd.start();
    await docker('import', await buildTinyRootfsTar(root), TINY_IMAGE);
  }, 180_000);

  afterAll(async () => {
    if (dockerd.pid() !== undefined) {
      const ids = (await dockerd.docker(['ps', '-aq'], { check: false })).stdout.split('\n').filter(Boolean);
      if (ids.length > 0) await dockerd.docker(['rm', '-f', ...ids], { check: false });
      for (const p of (await dockerd.docker(['plugin', 'ls', '-q'], { check: false })).stdout
        .split('\n')
        .filter(Boolean))
        await dockerd.docker(['plugin', 'rm', '-f', p], { check: false });
    }
    await dockerd.stop().catch(() => undefined);
    await registry?.stop();
    await agent?.stop();
    await control?.close();
    await cleanupUnder(root);
    await exec(['umount', '-l', mountRoot], { check: false });
    await exec(['ip', 'link', 'del', VETH], { check: false });
    await exec(['ip', 'netns', 'del', NETNS], { check: false });
    for (const ctl of fs.existsSync('/sys/fs/cgroup') ? fs.readdirSync('/sys/fs/cgroup') : []) {
      const dir = path.join('/sys/fs/cgroup', ctl, `fmp-${process.pid}`);
      if (fs.existsSync(dir))
        await exec(['find', dir, '-depth', '-type', 'd', '-exec', 'rmdir', '{}', ';'], { check: false });
    }
    removeTree(root);
  }, 120_000);

  afterEach(() => {
    const state = expect.getState();
    if (state.assertionCalls !== state.numPassingAsserts) {
      const tail = (f: string) => (fs.existsSync(f) ? fs.readFileSync(f, 'utf8').slice(-3000) : '');
      process.stderr.write(
        `---- agent\n${tail(path.join(root, 'agent.log'))}\n---- dockerd\n${dockerd.log().slice(-6000)}\n`,
      );
    }
  });

  it('build.sh makes the rootfs; docker plugin create, set (mounts, env) and enable', async () => {
    await build(PLUGIN, path.join(root, 'build1'));
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
    const v2 = `${REGISTRY}/flocker/flocker:v2`;
    await build(v2, path.join(root, 'build2'));
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

/**
 * The set-up of the managed Docker plugin (v2) e2e tests: a private dockerd in a netns with a veth to the root
 * one, where the control service (TLS) listens, and the dataset agent on this machine with its mount root a
 * shared mount (as on a systemd host), so the plugin's rslave view of it sees the agent's mounts. Needs root.
 *
 * Names come from `tag` and the pid: the netns and veth `<tag><pid>`, the temp directory `<tag>-…`, dockerd's
 * cgroup parent `/<tag>-<pid>`; the veth's /30 is 10.<subnet>.<pid % 250>.0.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { FlockerClient } from '@flocker/api';
import { createLogger, startControlService, type ControlService } from '@flocker/control-api';
import { ClusterPki } from '../cluster/pki';
import { buildTinyRootfsTar, cleanupUnder, DockerDaemon, exec, TINY_IMAGE, until } from '../docker';
import { ChildService, packageMain } from '../docker/FlockerDockerStack';
import { removeTree } from '../removeTree';

const BUILD = path.resolve(__dirname, '../../../packages/volume-plugin/managed/build.sh');

export interface ManagedPluginBedOptions {
  readonly tag: string;
  readonly subnet: number;
  /** The plugin's reference (its volumes' driver). */
  readonly plugin: string;
  /** The agent's node host name. */
  readonly host: string;
  readonly dockerdArgs?: readonly string[];
  /** agent.yml `plugin.idle_lease_seconds` (default: the plugin's, 60); 0 for a test that counts leases. */
  readonly idleLeaseSeconds?: number;
}

export class ManagedPluginBed {
  readonly root: string;
  readonly etc: string;
  readonly stateDir: string;
  readonly mountRoot: string;
  readonly rootIp: string;
  readonly nsIp: string;
  readonly dockerd: DockerDaemon;
  readonly plugin: string;
  control: ControlService | undefined;
  client!: FlockerClient;
  agent: ChildService | undefined;
  private readonly netns: string;
  private readonly veth: string;
  private readonly cgroupParent: string;
  /** Services a test added (own), stopped by close before the agent. */
  private readonly services: ChildService[] = [];

  constructor(private readonly o: ManagedPluginBedOptions) {
    const slot = process.pid % 250;
    this.netns = `${o.tag}${process.pid}`;
    this.veth = `${o.tag}${process.pid}`.slice(0, 15);
    this.rootIp = `10.${o.subnet}.${slot}.1`;
    this.nsIp = `10.${o.subnet}.${slot}.2`;
    this.plugin = o.plugin;
    this.root = fs.mkdtempSync(path.join(os.tmpdir(), `${o.tag}-`));
    this.etc = path.join(this.root, 'etc');
    this.stateDir = path.join(this.root, 'state');
    this.mountRoot = path.join(this.root, 'mnt');
    this.cgroupParent = `/${o.tag}-${process.pid}`;
    this.dockerd = new DockerDaemon(path.join(this.root, 'd'), this.cgroupParent, {
      netns: this.netns,
      ...(o.dockerdArgs !== undefined ? { extraArgs: o.dockerdArgs } : {}),
    });
  }

  docker(...args: string[]) {
    return this.dockerd.docker(args, { timeoutMs: 120_000 });
  }

  /** `docker run` of the tiny image with volume `vol` of the plugin on /data, running `sh -c script`. */
  run(vol: string, script: string, extra: string[] = []) {
    return this.docker(
      'run',
      '--network',
      'none',
      ...extra,
      '-v',
      `${vol}:/data`,
      '--volume-driver',
      this.plugin,
      TINY_IMAGE,
      'sh',
      '-c',
      script,
    );
  }

  /** The live dataset named `name`, if any. */
  async dataset(name: string) {
    return (await this.client.listDatasets()).find((d) => !d.deleted && d.metadata.name === name);
  }

  /** build.sh's rootfs and config.json of plugin `ref` in `out`. */
  build(ref: string, out: string) {
    return exec([BUILD, '--no-compile', '--no-create', '--out', out, ref], { timeoutMs: 120_000 });
  }

  /** This host's paths and the control service, as `docker plugin set` (an upgrade resets them to config.json's). */
  configure() {
    return this.docker(
      'plugin',
      'set',
      this.plugin,
      `config.source=${this.etc}`,
      `state.source=${this.stateDir}`,
      `mountroot.source=${this.mountRoot}`,
      `docker.source=${this.dockerd.socket}`,
      // agent.yml names this host's paths; in the plugin the state dir is where the state mount is.
      'FLOCKER_STATE_DIR=/var/lib/flocker',
      `FLOCKER_CONTROL_URL=https://${this.rootIp}:${this.control?.port}`,
      'FLOCKER_CA_FILE=/etc/flocker/cluster.crt',
      'FLOCKER_CERT_FILE=/etc/flocker/node.crt',
      'FLOCKER_KEY_FILE=/etc/flocker/node.key',
    );
  }

  /** The shared mount root, the netns and veth, the control service, the agent (registered), dockerd with the tiny image. */
  async start(): Promise<void> {
    for (const d of [this.etc, this.stateDir, this.mountRoot]) fs.mkdirSync(d, { recursive: true });
    // The agent's mount root shared, so its later mounts reach the plugin's rslave view of it.
    await exec(['mount', '--bind', this.mountRoot, this.mountRoot]);
    await exec(['mount', '--make-shared', this.mountRoot]);
    await exec(['ip', 'netns', 'add', this.netns]);
    await exec(['ip', 'link', 'add', this.veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', this.netns]);
    await exec(['ip', 'addr', 'add', `${this.rootIp}/30`, 'dev', this.veth]);
    await exec(['ip', 'link', 'set', this.veth, 'up']);
    await exec(['ip', '-n', this.netns, 'addr', 'add', `${this.nsIp}/30`, 'dev', 'eth0']);
    await exec(['ip', '-n', this.netns, 'link', 'set', 'eth0', 'up']);
    await exec(['ip', '-n', this.netns, 'link', 'set', 'lo', 'up']);
    const pki = await ClusterPki.create(path.join(this.root, 'pki'), ['127.0.0.1', this.rootIp]);
    const control = await startControlService({
      port: 0,
      host: this.rootIp,
      dataDir: path.join(this.root, 'control'),
      logger: createLogger('error'),
      tls: pki.serverCredentials(),
    });
    this.control = control;
    this.client = new FlockerClient({ baseUrl: control.url, dispatcher: await pki.userDispatcher('admin') });
    await pki.installNode(this.etc);
    fs.writeFileSync(
      path.join(this.etc, 'agent.yml'),
      [
        'version: 1',
        `control-service: {hostname: ${this.rootIp}, port: ${control.port}}`,
        `dataset: {backend: loopback, root_path: ${path.join(this.root, 'pool')}}`,
        `node: {state_dir: ${this.stateDir}, mount_root: ${this.mountRoot}, host: ${this.o.host}, docker_socket: ${this.dockerd.socket}}`,
        ...(this.o.idleLeaseSeconds !== undefined ? [`plugin: {idle_lease_seconds: ${this.o.idleLeaseSeconds}}`] : []),
        '',
      ].join('\n'),
    );
    this.agent = new ChildService(
      'agent',
      [process.execPath, packageMain('@flocker/dataset-agent'), '--config', path.join(this.etc, 'agent.yml')],
      path.join(this.root, 'agent.log'),
    );
    this.agent.start();
    // dockerd and the tiny image's tar need nothing of the agent's: made while it registers (the agent was
    // started first, as before, so it still meets a dockerd that is not up yet).
    const tar = buildTinyRootfsTar(this.root);
    tar.catch(() => undefined); // awaited below; no unhandled rejection meanwhile
    await Promise.all([
      // (120 s: the agent's start shares the host with dockerd's and with a build.sh a test may run meanwhile.)
      until('node.json', () => fs.existsSync(path.join(this.stateDir, 'node.json')), 120_000, 100),
      this.dockerd.start(),
    ]);
    await this.docker('import', await tar, TINY_IMAGE);
  }

  /** A service of the test's (started by it), stopped by close. */
  own(service: ChildService): ChildService {
    this.services.push(service);
    return service;
  }

  /**
   * The plugin built into `<root>/<dir>` (or `built`, a build of it into that directory already under way, e.g.
   * started beside start()), created, configured and enabled.
   */
  async installPlugin(dir = 'build', built?: Promise<unknown>): Promise<void> {
    await (built ?? this.build(this.plugin, path.join(this.root, dir)));
    await this.docker('plugin', 'create', this.plugin, path.join(this.root, dir));
    await this.configure();
    await this.docker('plugin', 'enable', this.plugin);
  }

  /** On a failed test: the agent's and dockerd's last lines to stderr (call from afterEach). */
  reportIfFailed(): void {
    const state = expect.getState();
    if (state.assertionCalls !== state.numPassingAsserts) {
      const tail = (f: string) => (fs.existsSync(f) ? fs.readFileSync(f, 'utf8').slice(-3000) : '');
      process.stderr.write(
        `---- agent\n${tail(path.join(this.root, 'agent.log'))}\n---- dockerd\n${this.dockerd.log().slice(-6000)}\n`,
      );
    }
  }

  /** Containers and plugins removed, dockerd, the services and the control service stopped, everything undone. */
  async close(): Promise<void> {
    const { dockerd } = this;
    if (dockerd.pid() !== undefined) {
      const ids = (await dockerd.docker(['ps', '-aq'], { check: false })).stdout.split('\n').filter(Boolean);
      if (ids.length > 0) await dockerd.docker(['rm', '-f', ...ids], { check: false });
      for (const p of (await dockerd.docker(['plugin', 'ls', '-q'], { check: false })).stdout
        .split('\n')
        .filter(Boolean))
        await dockerd.docker(['plugin', 'rm', '-f', p], { check: false });
    }
    await dockerd.stop().catch(() => undefined);
    for (const s of this.services) await s.stop();
    await this.agent?.stop();
    await this.control?.close();
    await cleanupUnder(this.root);
    await exec(['umount', '-l', this.mountRoot], { check: false });
    await exec(['ip', 'link', 'del', this.veth], { check: false });
    await exec(['ip', 'netns', 'del', this.netns], { check: false });
    for (const ctl of fs.existsSync('/sys/fs/cgroup') ? fs.readdirSync('/sys/fs/cgroup') : []) {
      const dir = path.join('/sys/fs/cgroup', ctl, this.cgroupParent);
      if (fs.existsSync(dir))
        await exec(['find', dir, '-depth', '-type', 'd', '-exec', 'rmdir', '{}', ';'], { check: false });
    }
    removeTree(this.root);
  }
}

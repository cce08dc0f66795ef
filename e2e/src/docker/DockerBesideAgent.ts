/**
 * Docker beside a dataset agent that some other harness runs (the Kubernetes harness's node
 * agents): a private dockerd and the Flocker Docker plugin reading that agent's configuration,
 * so `docker volume ls` and `docker run -v` on that node use the cluster's datasets
 * ("one cluster, two orchestrators"). Stops everything it started in close().
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { callPlugin } from '@flocker/volume-plugin/testing';
import { DockerDaemon } from './DockerDaemon';
import { exec, until, type ExecResult } from './exec';
import { ChildService, TINY_IMAGE, packageMain } from './FlockerDockerStack';
import { buildTinyRootfsTar } from './tinyImage';
import { removeTree } from '../removeTree';

export class DockerBesideAgent {
  readonly socketPath: string;
  readonly dockerd: DockerDaemon;
  private readonly plugin: ChildService;

  private constructor(
    readonly driver: string,
    readonly root: string,
    agentConfig: string,
  ) {
    this.socketPath = `/run/docker/plugins/${driver}.sock`;
    this.dockerd = new DockerDaemon(path.join(root, 'd'), `/${driver}`);
    this.plugin = new ChildService(
      'plugin',
      [
        process.execPath,
        packageMain('@flocker/volume-plugin'),
        '--agent-config',
        agentConfig,
        '--socket',
        this.socketPath,
        '--docker-socket',
        this.dockerd.socket,
      ],
      path.join(root, 'plugin.log'),
    );
  }

  /** `root` must be a fresh directory with a short path (Unix socket paths are limited to 108 bytes). */
  static async start(driver: string, root: string, agentConfig: string): Promise<DockerBesideAgent> {
    fs.mkdirSync(root, { recursive: true });
    const d = new DockerBesideAgent(driver, root, agentConfig);
    try {
      d.plugin.start();
      await until(
        'the plugin to answer',
        async () =>
          fs.existsSync(d.socketPath) &&
          (await callPlugin(d.socketPath, '/Plugin.Activate').catch(() => undefined))?.status === 200,
        60_000,
        50,
      );
      // The plugin before dockerd, or dockerd stalls restoring plugin volumes.
      await d.dockerd.start();
      await d.docker(['import', await buildTinyRootfsTar(root), TINY_IMAGE]);
    } catch (err) {
      await d.close();
      throw err;
    }
    return d;
  }

  docker(args: readonly string[], opts: { check?: boolean; timeoutMs?: number } = {}): Promise<ExecResult> {
    return this.dockerd.docker(args, opts);
  }

  /** Runs a throw-away container of the tiny image (no network) with Flocker volume `vol` at /data. */
  async runWith(vol: string, script: string): Promise<string> {
    const args = ['run', '--rm', '--network', 'none', '-v', `${vol}:/data`, '--volume-driver', this.driver];
    return (await this.docker([...args, TINY_IMAGE, 'sh', '-c', script], { timeoutMs: 120_000 })).stdout;
  }

  logs(): string {
    return `---- plugin\n${this.plugin.log().slice(-4000)}\n---- dockerd\n${this.dockerd.log().slice(-3000)}`;
  }

  /** Removes its containers, stops dockerd and the plugin, removes its files and cgroups. */
  async close(): Promise<void> {
    if (this.dockerd.pid() !== undefined) {
      const ids = (await this.docker(['ps', '-aq'], { check: false })).stdout.split('\n').filter(Boolean);
      if (ids.length > 0) await this.docker(['rm', '-f', ...ids], { check: false });
    }
    await this.dockerd.stop().catch(() => undefined);
    await this.plugin.stop().catch(() => undefined);
    fs.rmSync(this.socketPath, { force: true });
    for (const ctl of fs.existsSync('/sys/fs/cgroup') ? fs.readdirSync('/sys/fs/cgroup') : []) {
      const dir = path.join('/sys/fs/cgroup', ctl, this.driver);
      if (fs.existsSync(dir))
        await exec(['find', dir, '-depth', '-type', 'd', '-exec', 'rmdir', '{}', ';'], { check: false });
    }
    removeTree(this.root);
  }
}

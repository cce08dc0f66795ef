/**
 * The plugin reconciles its mount IDs and leases with the containers a real dockerd
 * runs (issue 16): Docker sends no Unmount when dockerd is SIGKILLed under a running
 * container, nor when the plugin is down as a container stops. Needs root.
 *
 * The stack's plugin is replaced by one pointed at the stack's private dockerd
 * (--docker-socket) with short periods, so the test takes seconds, not minutes.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { callPlugin } from '@flocker/volume-plugin/testing';
import { FlockerDockerStack, TINY_IMAGE, sleep, until } from './docker';
import { isAlive } from './docker/DockerDaemon';

jest.setTimeout(240_000);

const SAFETY_WINDOW_S = 3;

describe('the plugin reconciles with a real dockerd', () => {
  let stack: FlockerDockerStack;
  let plugin: ChildProcess | undefined;
  let logFile: string;
  const docker = (...args: string[]) => stack.docker(args);
  const leaseOf = async (name: string) => {
    const d = await stack.dataset(name);
    return (await stack.client.listLeases()).find((l) => l.dataset_id === d?.dataset_id);
  };
  const pluginLog = () => fs.readFileSync(logFile, 'utf8');
  const logLines = () =>
    pluginLog()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  const releasedByReconcile = (vol: string) =>
    logLines().some(
      (l) => l.volume === vol && String(l.message).startsWith('no container on this host uses the volume any more'),
    );
  /** Unmount calls Docker made to this plugin for `vol` (answered or not). */
  const unmountsOf = (vol: string) =>
    logLines().filter(
      (l) => l.call === '/VolumeDriver.Unmount' && (l.request as { Name?: string } | undefined)?.Name === vol,
    ).length;

  async function startPlugin(): Promise<void> {
    const log = fs.openSync(logFile, 'a');
    const main = path.join(path.dirname(require.resolve('@flocker/volume-plugin/package.json')), 'dist', 'main.js');
    plugin = spawn(
      process.execPath,
      [
        main,
        '--agent-config',
        stack.agentConfig,
        '--socket',
        stack.socketPath,
        '--mount-timeout',
        '60',
        '--docker-socket',
        stack.dockerd.socket,
        '--reconcile-interval',
        '2',
        '--mount-safety-window',
        String(SAFETY_WINDOW_S),
      ],
      { stdio: ['ignore', log, log] },
    );
    fs.closeSync(log);
    await until(
      'the plugin to answer',
      async () => (await callPlugin(stack.socketPath, '/Plugin.Activate').catch(() => undefined))?.status === 200,
      30_000,
      50,
    );
  }

  async function killPlugin(): Promise<void> {
    const p = plugin;
    plugin = undefined;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise<void>((r) => p.once('exit', () => r()));
    p.kill('SIGKILL');
    await exited;
  }

  /** A container using `vol` that runs until stopped; returns once the plugin holds the lease, past the safety window. */
  async function runHolding(name: string, vol: string): Promise<void> {
    await docker(
      'run',
      '-d',
      '--name',
      name,
      '--network',
      'none',
      '-v',
      `${vol}:/data`,
      '--volume-driver',
      stack.driver,
      TINY_IMAGE,
      'sh',
      '-c',
      'echo hi > /data/f; exec sleep 600',
    );
    expect((await leaseOf(vol))?.node_uuid).toBe(stack.nodeUuid);
    await sleep(SAFETY_WINDOW_S * 1000 + 500);
    expect((await leaseOf(vol))?.node_uuid).toBe(stack.nodeUuid); // a periodic reconcile meanwhile kept it: the container runs
  }

  /**
   * dockerd's own containerd dies with it (parent-death signal) but can stay a zombie a
   * while here (PID 1 reaps lazily); a dockerd started meanwhile takes the zombie's
   * pidfile for a live containerd and times out. On a real host containerd is its own
   * service and survives. Forget the dead one's pidfile so dockerd starts a new one
   * (the container's shim survives and the new containerd finds it).
   */
  async function forgetDeadContainerd(): Promise<void> {
    const pidfile = path.join(stack.dockerd.dir, 'exec', 'containerd', 'containerd.pid');
    const pid = Number(fs.existsSync(pidfile) ? fs.readFileSync(pidfile, 'utf8').trim() : NaN);
    if (!Number.isInteger(pid)) return;
    const running = () => {
      try {
        return !/^\d+ \(.*\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
      } catch {
        return false;
      }
    };
    await until("dockerd's containerd to die", () => !running(), 30_000, 50);
    fs.rmSync(pidfile, { force: true });
  }

  beforeAll(async () => {
    stack = await FlockerDockerStack.start();
    logFile = path.join(stack.root, 'plugin-reconcile.log');
    await stack.killPlugin();
    await startPlugin();
  }, 180_000);

  afterAll(async () => {
    await stack?.close();
    await killPlugin();
  }, 120_000);

  afterEach(() => {
    const state = expect.getState();
    if (state.assertionCalls !== state.numPassingAsserts)
      process.stderr.write(`${stack.logs()}\n---- reconciling plugin\n${pluginLog().slice(-6000)}\n`);
  });

  it('dockerd SIGKILLed under a running container: after its restart the lease is released and docker volume rm works', async () => {
    await runHolding('rc-killed', 'v-killed');
    const unmountsBefore = unmountsOf('v-killed'); // the copy-up one of docker run
    const pid = stack.dockerd.pid();
    expect(pid).toBeDefined();
    process.kill(pid ?? -1, 'SIGKILL');
    await until('dockerd to die', () => !isAlive(pid ?? -1), 30_000);
    await forgetDeadContainerd();
    await stack.dockerd.start().catch((err: unknown) => {
      process.stderr.write(`---- dockerd\n${stack.dockerd.log().slice(-4000)}\n`);
      throw err;
    });
    const back = Date.now();
    // The restarted dockerd does not run the container any more.
    expect((await docker('inspect', '-f', '{{.State.Status}}', 'rc-killed')).stdout.trim()).not.toBe('running');
    await until('the lease to be released', async () => (await leaseOf('v-killed')) === undefined, 20_000, 100);
    const releasedAfterMs = Date.now() - back;
    await docker('rm', 'rc-killed');
    await docker('volume', 'rm', 'v-killed');
    expect(await stack.dataset('v-killed')).toBeUndefined();
    expect(releasedAfterMs).toBeLessThan(20_000);
    // The reconcile let it go: Docker sent no Unmount for it.
    expect(releasedByReconcile('v-killed')).toBe(true);
    expect(unmountsOf('v-killed')).toBe(unmountsBefore);
  });

  it('plugin down while the container stops: the restarted plugin releases the lease', async () => {
    await runHolding('rc-stopped', 'v-stopped');
    const unmountsBefore = unmountsOf('v-stopped');
    await killPlugin();
    await docker('kill', 'rc-stopped');
    await until(
      'the container to stop',
      async () => (await docker('inspect', '-f', '{{.State.Status}}', 'rc-stopped')).stdout.trim() === 'exited',
      30_000,
      100,
    );
    expect((await leaseOf('v-stopped'))?.node_uuid).toBe(stack.nodeUuid); // nobody let it go
    await startPlugin();
    const started = Date.now();
    await until('the lease to be released', async () => (await leaseOf('v-stopped')) === undefined, 20_000, 100);
    expect(Date.now() - started).toBeLessThan(20_000);
    expect(releasedByReconcile('v-stopped')).toBe(true);
    expect(unmountsOf('v-stopped')).toBe(unmountsBefore);
    await docker('rm', 'rc-stopped');
    await docker('volume', 'rm', 'v-stopped');
    expect(await stack.dataset('v-stopped')).toBeUndefined();
  });
});

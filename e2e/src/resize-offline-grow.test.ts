/**
 * Review U6 finding 2, with real Docker on a loopback pool: an ext4 volume grown while mounted, where the agent may
 * not grow it online (no CAP_SYS_RESOURCE, as on this machine). Before, the agent's own mount stayed as long as the
 * volume stayed on its node, so the file system grew only at a move. Now the agent grows it offline (unmount,
 * e2fsck + resize2fs, mount) once no container uses it (no lease on it), and never while one does. Needs root.
 * Session 22 (TN F3, review R1 F6): meanwhile the grow is reported pending (the node's grow_pending, the dataset
 * state, `flocker volumes resize`/`show`/`status`), and an idle lease taken after the resize does not hold it back.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { REPO_ROOT } from './cluster';
import { until, type FlockerDockerStack } from './docker';
import { dockerStackForSuite } from './docker/suite';

jest.setTimeout(240_000);

const MiB = 1024 ** 2;
const CLI = path.join(REPO_ROOT, 'packages/cli/dist/main.js');

describe('an ext4 volume grown while mounted, the agent without online resize', () => {
  let stack: FlockerDockerStack;
  dockerStackForSuite((s) => (stack = s));

  /** Total KiB of the file system at /data, in a throw-away container on this host. */
  async function dfKiB(vol: string): Promise<number> {
    const out = await stack.runWith(vol, 'df -k /data');
    return Number(out.trim().split('\n')[1]?.trim().split(/\s+/)[1]);
  }

  /** Mount IDs of the agent's mount of the dataset in this (the host's) mount namespace. */
  function agentMounts(datasetId: string): string[] {
    const at = path.join(stack.root, 'mnt', datasetId);
    return fs
      .readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .filter((l) => l.split(' ')[4] === at)
      .map((l) => l.split(' ')[0] ?? '');
  }

  /** The `flocker` CLI against this stack's control service, as admin. */
  async function flocker(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
    const env = { ...process.env, ...(await stack.pki.cliEnv()), FLOCKER_CONTROL_URL: stack.control.url };
    const p = spawn(process.execPath, [CLI, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    p.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const code = await new Promise<number | null>((resolve) => p.on('close', resolve));
    return { code, stdout, stderr };
  }

  /** The dataset's grow_pending in /v1/state/datasets (undefined: none). */
  async function growPending(datasetId: string): Promise<unknown> {
    return (await stack.client.listDatasetState()).find((x) => x.dataset_id === datasetId)?.grow_pending;
  }

  /** The node's last_seen (this stack's one agent) in the control service's whole snapshot. */
  async function lastSeen(): Promise<string | undefined> {
    return (await stack.client.waitForCluster(undefined, 0)).nodes[0]?.last_seen;
  }

  it('unused: `df` in the next container on the same host shows the new size, the data kept', async () => {
    await stack.docker(['volume', 'create', '-d', stack.driver, '-o', 'size=64MiB', 'grow-idle']);
    await stack.runWith('grow-idle', 'echo kept > /data/kept; sync');
    const before = await dfKiB('grow-idle');
    expect(before).toBeLessThan(64 * 1024);
    const d = await stack.dataset('grow-idle');
    await stack.client.updateDataset(d!.dataset_id, { maximum_size: 128 * MiB });
    // The plugin keeps an idle volume's lease (the default), and lets go of it once the volume is resized; the agent
    // then grows it. Not polled with containers: each would take the lease again at the new size and keep it idle.
    await until('the idle lease let go of', async () => (await stack.client.listLeases()).length === 0, 60_000, 200);
    await until(
      'the file system grown offline',
      () => /file system grown offline/.test(stack.agent?.log() ?? ''),
      60_000,
      200,
    );
    expect(await dfKiB('grow-idle')).toBeGreaterThan(100 * 1024);
    expect(await stack.runWith('grow-idle', 'cat /data/kept')).toBe('kept\n');
  });

  it('in use: never unmounted under the container (it grows once the container is gone)', async () => {
    await stack.docker(['volume', 'create', '-d', stack.driver, '-o', 'size=64MiB', 'grow-busy']);
    await stack.startWith('busy', 'grow-busy', 'echo kept > /data/kept; sync; exec sleep 600');
    let busyId = '';
    try {
      const d = (await stack.dataset('grow-busy'))!;
      busyId = d.dataset_id;
      await until('the agent mount', async () => agentMounts(d.dataset_id).length === 1, 30_000, 200);
      const mountId = agentMounts(d.dataset_id)[0];
      // The CLI waits for the node, and says the grow is pending (exit 0), never "is 128 MiB".
      const resize = await flocker(['volumes', 'resize', 'grow-busy', '128MiB', '--timeout', '120']);
      expect(resize).toMatchObject({ code: 0 });
      expect(resize.stdout).toMatch(/pending: grows when the volume is unmounted \(in use by docker on /);
      expect(resize.stdout).not.toMatch(/ is 128 MiB/);
      await until(
        'the agent to say it waits for the container',
        async () => /grows when no container uses the volume/.test(stack.agent?.log() ?? ''),
        60_000,
        200,
      );
      expect(await growPending(d.dataset_id)).toEqual({ reason: 'online_resize_refused' });
      const show = await flocker(['volumes', 'show', 'grow-busy']);
      expect(show.stdout).toMatch(/Grow: +pending: grows when the volume is unmounted/);
      expect((await flocker(['volumes', 'list'])).stdout).toMatch(/grow-busy .*mounted \(grow pending\)/);
      const status = await flocker(['status']);
      expect(status).toMatchObject({ code: 1 });
      expect(status.stdout).toMatch(/grow-busy: mounted, but the grow to 128 MiB is pending/);
      // The agent's later looks keep it: awaited as a report newer than the ones above (last_seen moves with each;
      // an unchanged one goes out at the next resync, 10 s), not a fixed sleep. The grow is still pending then.
      const seen = await lastSeen();
      await until('a later report of the agent', async () => (await lastSeen()) !== seen, 60_000, 200);
      expect(await growPending(d.dataset_id)).toEqual({ reason: 'online_resize_refused' });
      // The same mount (never taken off and put back), and the container's volume still there and writable.
      expect(agentMounts(d.dataset_id)).toEqual([mountId]);
      const out = await stack.docker([
        'exec',
        'busy',
        'sh',
        '-c',
        'cat /data/kept; echo more > /data/more; sync; df -k /data',
      ]);
      expect(out.stdout).toMatch(/^kept\n/);
      expect(Number(out.stdout.trim().split('\n')[2]?.trim().split(/\s+/)[1])).toBeLessThan(64 * 1024);
    } finally {
      await stack.docker(['rm', '-f', 'busy'], { check: false });
    }
    await until('grown once the container is gone', async () => (await dfKiB('grow-busy')) > 100 * 1024, 60_000, 500);
    // The pending grow's end: gone from the state and from `volumes show`.
    await until('grow_pending gone', async () => (await growPending(busyId)) === undefined, 60_000, 200);
    expect((await flocker(['volumes', 'show', 'grow-busy'])).stdout).not.toMatch(/Grow:/);
    expect(await stack.runWith('grow-busy', 'cat /data/kept /data/more')).toBe('kept\nmore\n');
  });

  it('a lease taken again right after the resize (before the grow) is not kept idle: the grow proceeds at once', async () => {
    await stack.docker(['volume', 'create', '-d', stack.driver, '-o', 'size=64MiB', 'grow-again']);
    await stack.startWith('again', 'grow-again', 'echo kept > /data/kept; sync; exec sleep 600');
    const d = (await stack.dataset('grow-again'))!;
    try {
      await stack.client.updateDataset(d.dataset_id, { maximum_size: 128 * MiB });
      await until('the grow pending', async () => (await growPending(d.dataset_id)) !== undefined, 60_000, 200);
    } catch (e) {
      await stack.docker(['rm', '-f', 'again'], { check: false });
      throw e;
    }
    // The agent held still (SIGSTOP, a few seconds) so that the next container surely takes the lease again before
    // the grow: its lease is taken at the new size, and idle after it, it used to be kept for the idle time (60 s by
    // default) with the grow waiting. Its node's grow_pending now has the plugin let go of it at once.
    const pid = stack.agent.pid!;
    process.kill(pid, 'SIGSTOP');
    try {
      await stack.docker(['rm', '-f', 'again'], { check: false });
      expect(await stack.runWith('grow-again', 'cat /data/kept')).toBe('kept\n');
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    await until('grow_pending gone', async () => (await growPending(d.dataset_id)) === undefined, 50_000, 200);
    expect(await dfKiB('grow-again')).toBeGreaterThan(100 * 1024);
  });
});

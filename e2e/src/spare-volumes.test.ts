/**
 * Spare volumes (issue 23) with a real dockerd, agent and loopback pool: a new Flocker volume in
 * `docker run` claims a pre-formatted, never-written spare (no truncate or mkfs on its path), the
 * volume is fresh and empty, spares never show in the API or `docker volume ls`, and a kill -9
 * of the agent during a refill or right after a claim converges at its restart: no spare claimed
 * twice, no make left half-done, the pool full again of spares that prove never written, and no
 * loop device leaked or doubled (spares are pre-attached: one device each, handed out by the claim).
 * Needs root (a private dockerd, see FlockerDockerStack).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { exec, until, type FlockerDockerStack } from './docker';
import { ChildService, packageMain } from './docker/FlockerDockerStack';
import { dockerStackForSuite } from './docker/suite';

jest.setTimeout(180_000);

const GiB = 1024 ** 3;
const SIZE = 10 * GiB;
const ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

describe('spare volumes with a real dockerd (issue 23)', () => {
  let stack: FlockerDockerStack;
  const sparesDir = () => path.join(stack.root, 'pool', 'spares');
  const volumesDir = () => path.join(stack.root, 'pool', 'volumes');
  const names = (dir: string) => (fs.existsSync(dir) ? fs.readdirSync(dir) : []);
  /** Ids of the complete spares of the plugin's default size (10 GiB: the class a new Docker volume claims from). */
  const spares = () =>
    names(sparesDir())
      .filter((n) => n.endsWith('.img') && ID.test(n.slice(0, -4)))
      .filter((n) => fs.statSync(path.join(sparesDir(), n), { throwIfNoEntry: false })?.size === SIZE)
      .map((n) => n.slice(0, -4));
  /** Ids of every complete spare. */
  const allSpares = () =>
    names(sparesDir())
      .filter((n) => n.endsWith('.img') && ID.test(n.slice(0, -4)))
      .map((n) => n.slice(0, -4));
  const making = () => names(sparesDir()).filter((n) => n.startsWith('.making-'));
  const poolFull = (what: string) =>
    until(what, async () => spares().length === 2 && making().length === 0, 30_000, 20);
  /** The agent, (re)started as the stack starts it, with extra environment. */
  const startAgent = (env: NodeJS.ProcessEnv = {}) => {
    stack.agent = new ChildService(
      'agent',
      [process.execPath, packageMain('@flocker/dataset-agent'), '--config', stack.agentConfig],
      path.join(stack.root, 'agent.log'),
      { ...process.env, ...env },
    );
    stack.agent.start();
  };
  /** The loop devices of the pool's files: backing file (relative to the pool, " (deleted)" kept) → devices. */
  const poolLoops = async () => {
    const out = (await exec(['losetup', '--list', '--noheadings', '--raw', '--output', 'NAME,BACK-FILE'])).stdout;
    const byFile = new Map<string, string[]>();
    const pool = path.join(stack.root, 'pool') + '/';
    for (const line of out.split('\n')) {
      const m = /^(\/dev\/loop\d+) (.*)$/.exec(line.trim());
      const file = m?.[2]?.replace(/\\x20/g, ' ');
      if (m === null || file === undefined || !file.startsWith(pool)) continue;
      byFile.set(file.slice(pool.length), [...(byFile.get(file.slice(pool.length)) ?? []), m[1]!]);
    }
    return byFile;
  };
  /**
   * No loop device leaked or doubled (pre-attached spares): each spare has its one device, each volume
   * recorded as attached its one, and nothing else in the pool has one (no removed spare, no half-made one).
   */
  const loopsAreTidy = async () => {
    const expected = new Map<string, number>();
    for (const id of allSpares()) expected.set(`spares/${id}.img`, 1);
    for (const n of names(volumesDir()).filter((n) => n.endsWith('.json') && ID.test(n.slice(0, -5)))) {
      const r = JSON.parse(fs.readFileSync(path.join(volumesDir(), n), 'utf8')) as { attached_to: string | null };
      if (r.attached_to !== null) expected.set(`volumes/${n.slice(0, -5)}.img`, 1);
    }
    const found = new Map([...(await poolLoops())].map(([f, devices]) => [f, devices.length]));
    expect(Object.fromEntries(found)).toEqual(Object.fromEntries(expected));
  };
  /** Every spare left proves never mounted (dumpe2fs -h) and is no volume of the pool; loop devices as loopsAreTidy. */
  const sparesAreFresh = async () => {
    await loopsAreTidy();
    const volumes = new Set(names(volumesDir()).map((n) => n.replace(/\.(img|json)$/, '')));
    for (const id of allSpares()) {
      expect(volumes.has(id)).toBe(false);
      const out = (await exec(['dumpe2fs', '-h', path.join(sparesDir(), `${id}.img`)])).stdout;
      expect(out).toMatch(/Mount count:\s+0\n/);
      expect(out).toMatch(/Last mount time:\s+n\/a\n/);
    }
  };
  /** Spares are no datasets: not in the API's configuration, state or node reports, nor in `docker volume ls`. */
  const sparesInvisible = async () => {
    const ids = new Set(allSpares());
    const cluster = await stack.client.waitForCluster(undefined, 0);
    const seen = [
      ...(await stack.client.listDatasets()).map((d) => d.dataset_id),
      ...cluster.nodes.flatMap((n) => n.manifestations.map((m) => m.blockdevice_id)),
      ...cluster.nodes.flatMap((n) => (n.volumes ?? []).map((v) => v.blockdevice_id)),
    ];
    expect(seen.filter((id) => ids.has(id))).toEqual([]);
    const ls = (await stack.docker(['volume', 'ls', '--format', '{{.Name}}'])).stdout.split('\n').filter(Boolean);
    expect(ls.filter((n) => ids.has(n))).toEqual([]);
    // This suite's volumes: dockerd also lists those of other plugins whose sockets are in /run/docker/plugins
    // (another test's or bench's, on a shared machine).
    return ls.filter((n) => /^(sp\d+|warm)$/.test(n));
  };
  const blockdeviceOf = async (name: string) => {
    const d = await stack.dataset(name);
    const cluster = await stack.client.waitForCluster(undefined, 0);
    return cluster.nodes.flatMap((n) => n.manifestations).find((m) => m.dataset_id === d?.dataset_id)?.blockdevice_id;
  };

  dockerStackForSuite((s) => (stack = s));

  it('docker run with a new volume claims a spare: the volume is empty and fresh, the pool refills, spares are invisible', async () => {
    await until('2 spares of the default size (1 GiB) at start', async () => allSpares().length === 2, 30_000, 20);
    // The first volume of the plugin's size (10 GiB) is made as before, and teaches the pool that class.
    await stack.docker(['volume', 'create', '-d', stack.driver, 'warm']);
    await poolFull('2 spares of the plugin default size');
    await sparesAreFresh();
    const before = new Set(spares());
    expect(await stack.runWith('sp1', 'ls -A /data; echo hello > /data/f; cat /data/f')).toBe('lost+found\nhello\n');
    const claimed = await blockdeviceOf('sp1');
    expect(before.has(claimed!)).toBe(true);
    expect(spares()).not.toContain(claimed);
    expect(stack.agent.log()).toMatch(/volume claimed from a spare/);
    // The claimed volume holds a file system mounted once: this run's.
    await poolFull('the pool to refill');
    await sparesAreFresh();
    expect(await sparesInvisible()).toEqual(['sp1', 'warm']);
  });

  it('kill -9 of the agent during a refill: the restart removes the half-made spare and fills the pool again', async () => {
    await poolFull('a full pool');
    // A claim (docker volume create makes the dataset, the agent claims and mounts it), then its refill.
    await stack.docker(['volume', 'create', '-d', stack.driver, 'sp2']);
    await until('a refill to start', async () => making().length > 0, 30_000, 1);
    await stack.agent.stop('SIGKILL');
    const left = making();
    startAgent();
    await poolFull('the restarted agent to tidy and refill');
    for (const f of left) expect(names(sparesDir())).not.toContain(f);
    await sparesAreFresh();
    expect(await stack.runWith('sp2', 'ls -A /data')).toBe('lost+found\n');
    expect(await sparesInvisible()).toEqual(['sp1', 'sp2', 'warm']);
  });

  it('kill -9 of the agent right after a claim: the restart attaches and mounts the claimed volume; no spare is claimed twice', async () => {
    await poolFull('a full pool');
    const before = new Set(spares());
    await stack.agent.stop('SIGTERM');
    startAgent({ FLOCKER_AGENT_CRASH_AFTER: 'create:1' });
    await stack.docker(['volume', 'create', '-d', stack.driver, 'sp3']);
    await until(
      'the agent to crash after its claim',
      async () => stack.agent.pid !== undefined && !alive(stack.agent.pid),
      30_000,
      20,
    );
    const d = await stack.dataset('sp3');
    const records = names(volumesDir()).filter((n) => n.endsWith('.json'));
    const claimed = records
      .map(
        (n) =>
          JSON.parse(fs.readFileSync(path.join(volumesDir(), n), 'utf8')) as {
            blockdevice_id: string;
            dataset_id: string;
          },
      )
      .filter((r) => r.dataset_id === d?.dataset_id);
    expect(claimed).toHaveLength(1);
    expect(before.has(claimed[0]!.blockdevice_id)).toBe(true);
    // Claimed attached, on the spare's own loop device (pre-attached at the make): one device, no other.
    const loops = await poolLoops();
    expect(loops.get(`volumes/${claimed[0]!.blockdevice_id}.img`)).toHaveLength(1);
    startAgent();
    expect(await stack.runWith('sp3', 'ls -A /data')).toBe('lost+found\n');
    expect(await blockdeviceOf('sp3')).toBe(claimed[0]!.blockdevice_id);
    expect((await poolLoops()).get(`volumes/${claimed[0]!.blockdevice_id}.img`)).toEqual(
      loops.get(`volumes/${claimed[0]!.blockdevice_id}.img`),
    );
    await poolFull('the pool to refill');
    await sparesAreFresh();
    // Every volume of the pool has its record, and one dataset each.
    const vols = names(volumesDir());
    const images = vols.filter((n) => n.endsWith('.img')).map((n) => n.slice(0, -4));
    const byDataset = new Map<string, number>();
    for (const id of images) {
      const r = JSON.parse(fs.readFileSync(path.join(volumesDir(), `${id}.json`), 'utf8')) as { dataset_id: string };
      byDataset.set(r.dataset_id, (byDataset.get(r.dataset_id) ?? 0) + 1);
    }
    expect([...byDataset.values()]).toEqual([1, 1, 1, 1]);
    expect(await sparesInvisible()).toEqual(['sp1', 'sp2', 'sp3', 'warm']);
  });

  it('spares whose loop devices were let go while the agent was stopped (./dev down, a reboot, losetup -D) get one again at its start: the next claim is pre-attached, one device each', async () => {
    await poolFull('a full pool');
    await loopsAreTidy();
    await stack.agent.stop('SIGTERM');
    // As `./dev down` (or an operator's losetup -D) leaves them: the spares' devices detached, the volumes' kept.
    for (const [file, devices] of await poolLoops())
      if (file.startsWith('spares/')) for (const d of devices) await exec(['losetup', '-d', d]);
    expect([...(await poolLoops()).keys()].filter((f) => f.startsWith('spares/'))).toEqual([]);
    const before = new Set(spares());
    startAgent();
    await until(
      'every spare bound to a loop device again',
      async () => {
        const loops = await poolLoops();
        return allSpares().every((id) => loops.has(`spares/${id}.img`));
      },
      30_000,
      20,
    );
    await loopsAreTidy();
    expect(await stack.runWith('sp4', 'ls -A /data')).toBe('lost+found\n');
    const claimed = await blockdeviceOf('sp4');
    expect(before.has(claimed!)).toBe(true);
    const claims = stack.agent
      .log()
      .split('\n')
      .filter((l) => l.includes('volume claimed from a spare') && l.includes(claimed!))
      .map((l) => JSON.parse(l) as { device?: string; preAttached?: boolean });
    expect(claims).toEqual([expect.objectContaining({ preAttached: true })]);
    await poolFull('the pool to refill');
    await sparesAreFresh();
    expect(await sparesInvisible()).toEqual(['sp1', 'sp2', 'sp3', 'sp4', 'warm']);
  });
});

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * The real `flocker` binary against a real control service and real dataset
 * agents on two simulated hosts (loop devices, ext4, mounts).
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { isMountedOn, readFileOn, REPO_ROOT, startCluster, writeFileOn, type Cluster } from './cluster';

jest.setTimeout(240_000);

const CLI = join(REPO_ROOT, 'packages/cli/dist/main.js');

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

let cluster: Cluster;

function flocker(args: string[], env: Record<string, string> = {}): Promise<Result> {
  return follow(args, env).closed;
}

/**
 * A long-running command (events, --watch) that the test ends itself once it has seen what it waits for, so a
 * slow machine only makes the test slower, never cuts the feed short.
 */
function follow(
  args: string[],
  env: Record<string, string> = {},
): {
  stdout: () => string;
  waitFor: (what: string, pred: (stdout: string) => boolean, ms?: number) => Promise<void>;
  end: () => Promise<Result>;
  /** Once the command exited by itself (or was ended). */
  closed: Promise<Result>;
} {
  const p = spawn(process.execPath, [CLI, ...args], {
    env: { ...process.env, ...cluster.cliEnv(), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  p.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  p.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const closed = new Promise<Result>((resolve) => p.on('close', (code) => resolve({ code, stdout, stderr })));
  return {
    closed,
    stdout: () => stdout,
    waitFor: async (what, pred, ms = 60_000) => {
      const deadline = Date.now() + ms;
      while (!pred(stdout)) {
        if (Date.now() > deadline || p.exitCode !== null) {
          throw new Error(`flocker ${args.join(' ')}: no ${what} after ${ms} ms; stdout ${stdout}; stderr ${stderr}`);
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    end: () => {
      if (p.exitCode === null) p.kill('SIGTERM');
      return closed;
    },
  };
}

async function ok(args: string[]): Promise<string> {
  const r = await flocker(args);
  if (r.code !== 0) throw new Error(`flocker ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return r.stdout;
}

beforeAll(async () => {
  cluster = await startCluster({ hosts: 2, withDocker: false });
});

afterAll(async () => {
  await cluster?.stop();
});

describe('flocker CLI against a real cluster', () => {
  it('lists the nodes that reported, as a table and as JSON', async () => {
    const [a, b] = cluster.hosts;
    const table = await ok(['nodes', 'list']);
    expect(table.split('\n')[0]).toMatch(/^NODE\s+HOST\s+ALIVE/);
    expect(table).toContain(a!.layout.address);
    const nodes = JSON.parse(await ok(['nodes', 'list', '--json'])) as Array<{ host: string; alive: boolean }>;
    expect(nodes.map((n) => n.host).sort()).toEqual([a!.layout.address, b!.layout.address].sort());
    expect(nodes.every((n) => n.alive)).toBe(true);
  });

  it('creates, shows, moves, leases and destroys a volume, waiting for each to converge', async () => {
    const [a, b] = cluster.hosts;
    const created = await flocker(['volumes', 'create', 'clidata', '--size', '128MiB', '--node', a!.layout.address]);
    expect(created.code).toBe(0);
    const path = /at (\S+)$/m.exec(created.stdout)?.[1];
    expect(path).toBeDefined();
    expect(await isMountedOn(a!, path!)).toBe(true);

    const list = await ok(['volumes', 'list']);
    expect(list).toMatch(/clidata\s+\S+\s+128 MiB\s+10\.77\.0\.\d+\s+mounted/);

    const again = await flocker(['volumes', 'create', 'clidata', '--size', '128MiB', '--node', a!.layout.address]);
    expect(again.code).toBe(4);
    expect(again.stderr).toMatch(/already exists/);

    await writeFileOn(a!, join(path!, 'hello.txt'), 'written on a');
    const moved = await flocker(['volumes', 'move', 'clidata', b!.layout.address]);
    expect(moved.code).toBe(0);
    const pathB = /at (\S+)$/m.exec(moved.stdout)?.[1];
    expect(await readFileOn(b!, join(pathB!, 'hello.txt'))).toBe('written on a');

    await ok(['leases', 'acquire', 'clidata']);
    const leases = JSON.parse(await ok(['leases', 'list', '--json'])) as Array<{ expires: number | null }>;
    expect(leases).toHaveLength(1);
    const refused = await flocker(['volumes', 'move', 'clidata', a!.layout.address, '--no-wait']);
    expect(refused.code).toBe(4);
    expect(refused.stderr).toMatch(/lease/i);
    // A lease held by a live node means a container there uses the volume (issue 17):
    // release and destroy are refused, naming the host, unless --force (with a warning).
    const inUse = await flocker(['leases', 'release', 'clidata']);
    expect(inUse.code).toBe(4);
    expect(inUse.stderr).toContain(`clidata is in use on ${b!.layout.address}`);
    const destroyInUse = await flocker(['volumes', 'destroy', 'clidata', '--no-wait']);
    expect(destroyInUse.code).toBe(4);
    expect(destroyInUse.stderr).toContain(`in use on ${b!.layout.address}`);
    expect(JSON.parse(await ok(['leases', 'list', '--json']))).toHaveLength(1);
    const forced = await flocker(['leases', 'release', 'clidata', '--force']);
    expect(forced.code).toBe(0);
    expect(forced.stderr).toMatch(/warning: .*in use on/);

    // Grow it while mounted (issue 20); never shrink it.
    const shrink = await flocker(['volumes', 'resize', 'clidata', '64MiB']);
    expect(shrink.code).toBe(2);
    expect(shrink.stderr).toMatch(/clidata is 128 MiB; volumes do not shrink \(asked for 64 MiB\)/);
    const grown = await flocker(['volumes', 'resize', 'clidata', '192MiB']);
    expect(grown.code).toBe(0);
    expect(grown.stdout).toContain(`clidata is 192 MiB on ${b!.layout.address}`);
    const shown = JSON.parse(await ok(['volumes', 'show', 'clidata', '--json'])) as {
      state: string;
      maximum_size: number;
    };
    expect(shown).toMatchObject({ state: 'mounted', maximum_size: 192 * 1024 * 1024 });
    const status = JSON.parse(await ok(['status', '--json'])) as { volumes_converged: number; volumes: number };
    expect(status.volumes_converged).toBe(status.volumes);

    // A delete stuck on a busy mount (a process in it on b) shows its reason everywhere, not "converged"/"no volume".
    const holder = await b!.exec(['sh', '-c', `cd ${pathB!} && { sleep 300 </dev/null >/dev/null 2>&1 & echo $!; }`]);
    const holderPid = Number(holder.stdout.trim());
    try {
      const stuck = await flocker(['volumes', 'destroy', 'clidata', '--timeout', '8']);
      expect(stuck.code).toBe(5);
      expect(stuck.stderr).toMatch(/timed out after 8s while .*failed on .*\(DEVICE_BUSY\)/);
      const stuckStatus = await flocker(['status']);
      expect(stuckStatus.code).toBe(1);
      expect(stuckStatus.stdout).toMatch(/clidata: deleting — .*\(DEVICE_BUSY\)/);
      const stuckShow = await flocker(['volumes', 'show', 'clidata']);
      expect(stuckShow.code).toBe(0);
      expect(stuckShow.stdout).toMatch(/State: +deleting — .*\(DEVICE_BUSY\)/);
    } finally {
      process.kill(holderPid, 'SIGKILL');
    }
    // Destroying it again waits until it is gone. The agent may finish the pending delete
    // first (the holder is gone): then the name no longer resolves, which is the same outcome.
    const retry = await flocker(['volumes', 'destroy', 'clidata']);
    if (retry.code !== 0) {
      expect(retry.code).toBe(3);
      expect(retry.stderr).toMatch(/no volume named or with id "clidata"/);
    }
    const after = JSON.parse(await ok(['volumes', 'list', '--json'])) as unknown[];
    expect(after).toEqual([]);
  });

  it('gives clear errors with exit codes scripts can rely on', async () => {
    const small = await flocker([
      'volumes',
      'create',
      'tiny',
      '--size',
      '1K',
      '--node',
      cluster.hosts[0]!.layout.address,
    ]);
    expect(small.code).toBe(2);
    expect(small.stderr).toMatch(/too small/);
    const missing = await flocker(['volumes', 'show', 'no-such-volume']);
    expect(missing.code).toBe(3);
    const unreachable = await flocker(['volumes', 'list'], { FLOCKER_CONTROL_URL: 'http://127.0.0.1:9' });
    expect(unreachable.code).toBe(6);
    expect(unreachable.stderr).toMatch(/control service/);
    const usage = await flocker(['volumes', 'frobnicate']);
    expect(usage.code).toBe(2);
    // The empty name matches nothing; names follow the Docker plugin's rule (issue 17).
    expect((await flocker(['volumes', 'show', ''])).code).toBe(2);
    expect((await flocker(['volumes', 'destroy', '', '--no-wait'])).code).toBe(2);
    const badName = await flocker(['volumes', 'create', 'bad name!', '--node', cluster.hosts[0]!.layout.address]);
    expect(badName.code).toBe(2);
    expect(badName.stderr).toMatch(/not a valid volume name/);
    expect(JSON.parse(await ok(['volumes', 'list', '--json']))).toEqual([]);
  });

  it('output that composes (issue 21): one volume shape, -o/-q, filters, describe, version, events, completion', async () => {
    const [a, b] = cluster.hosts;
    // Follows the feed through everything below (which takes about 20 s here).
    const events = follow(['events', '--json']);
    const created = JSON.parse(
      await ok(['volumes', 'create', 'shape-b', '--size', '128MiB', '--node', b!.layout.address, '--json']),
    ) as Record<string, unknown>;
    await ok([
      'volumes',
      'create',
      'shape-a',
      '--size',
      '128MiB',
      '--node',
      a!.layout.address,
      '--metadata',
      'owner=alice',
    ]);
    expect(created).toMatchObject({ name: 'shape-b', node: b!.layout.address, state: 'mounted' });
    const listed = JSON.parse(await ok(['volumes', 'list', '--json'])) as Array<Record<string, unknown>>;
    expect(Object.keys(created).sort()).toEqual(Object.keys(listed[0]!).sort());
    // Sorted by name (created b first), filters, -q, -o name.
    expect((await ok(['volumes', 'list', '-o', 'name'])).trim()).toBe('shape-a\nshape-b');
    expect((await ok(['volumes', 'list', '-o', 'name', '--sort', 'created'])).trim()).toBe('shape-b\nshape-a');
    expect((await ok(['volumes', 'list', '-o', 'name', '--node', a!.layout.address])).trim()).toBe('shape-a');
    expect((await ok(['volumes', 'list', '-o', 'name', '--label', 'owner=alice'])).trim()).toBe('shape-a');
    expect((await ok(['volumes', 'list', '-q', '*-b'])).trim()).toBe(created.dataset_id);
    expect(await ok(['volumes', 'list', '-o', 'yaml'])).toMatch(/name: shape-a/);

    await ok(['leases', 'acquire', 'shape-a']);
    expect(await ok(['leases', 'list'])).toMatch(
      new RegExp(`shape-a\\s+\\S+\\s+${a!.layout.address.replace(/\./g, '\\.')}`),
    );
    const described = await ok(['describe', 'volume', 'shape-a']);
    expect(described).toMatch(new RegExp(`^Lease: +held by ${a!.layout.address.replace(/\./g, '\\.')}`, 'm'));
    expect(described).toMatch(/^ {2}owner=alice$/m);
    expect(described).toMatch(/^Last error: +none$/m);
    await ok(['leases', 'release', 'shape-a', '--force']);

    const version = JSON.parse(await ok(['version', '--json'])) as { client: string; server: { flocker: string } };
    expect(version.server.flocker).toMatch(/\S/);
    expect(version.client).toMatch(/^\d+\.\d+/);

    const completion = await ok(['--get-yargs-completions', 'volumes', 'show', 'shape-']);
    expect(completion.trim().split('\n')).toEqual(['shape-a', 'shape-b']);
    const nodeNames = await ok(['--get-yargs-completions', 'volumes', 'move', 'shape-a', '']);
    expect(nodeNames.trim().split('\n').sort()).toEqual([a!.layout.address, b!.layout.address].sort());

    const destroyed = JSON.parse(await ok(['volumes', 'destroy', 'shape-b', '--json'])) as Record<string, unknown>;
    expect(destroyed).toMatchObject({ name: 'shape-b', state: 'deleted', deleted: true });
    await ok(['volumes', 'destroy', 'shape-a']);
    await events.waitFor('deleted event for shape-a', (out) =>
      out.split('\n').some((l) => /"kind":"deleted"/.test(l) && l.includes('shape-a')),
    );
    const feed = (await events.end()).stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { kind: string; message: string });
    expect(feed.map((e) => e.kind)).toEqual(
      expect.arrayContaining(['created', 'mounted', 'lease-acquired', 'deleted']),
    );
    expect(feed.find((e) => e.kind === 'mounted')?.message).toMatch(/Volume shape-\w mounted on /);
  });

  it('disk usage per volume (issue 21): the agent measures used bytes; the API, the CLI JSON, -o wide and describe show them grow', async () => {
    const [a] = cluster.hosts;
    const MiB = 1024 * 1024;
    const created = JSON.parse(
      await ok(['volumes', 'create', 'usage', '--size', '256MiB', '--node', a!.layout.address, '--json']),
    ) as { dataset_id: string; path: string };
    const usedNow = async (): Promise<number | null> => {
      const [v] = JSON.parse(await ok(['volumes', 'list', 'usage', '--json'])) as Array<{ used_bytes: number | null }>;
      return v!.used_bytes;
    };
    const until = async (check: (used: number | null) => boolean): Promise<number> => {
      const deadline = Date.now() + 30_000;
      for (;;) {
        const used = await usedNow();
        if (check(used)) return used!;
        if (Date.now() > deadline) throw new Error(`used_bytes stayed ${used}`);
        await new Promise((r) => setTimeout(r, 500));
      }
    };
    const before = await until((u) => u !== null);
    expect(before).toBeLessThan(64 * MiB); // an empty ext4 file system's own blocks
    await a!.exec([
      'dd',
      'if=/dev/urandom',
      `of=${created.path}/blob`,
      'bs=1M',
      'count=48',
      'conv=fsync',
      'status=none',
    ]);
    const t0 = Date.now();
    const after = await until((u) => u !== null && u >= before + 48 * MiB);
    // Measured at most every 5 s, reported at the next report: seen well within 30 s.
    console.log(`used_bytes grew ${before} -> ${after} in ${Date.now() - t0} ms after the write`);
    const state = (await cluster.client.listDatasetState()).find((d) => d.dataset_id === created.dataset_id);
    expect(state?.used_bytes).toBeGreaterThanOrEqual(before + 48 * MiB);
    const wide = (await ok(['volumes', 'list', 'usage', '-o', 'wide'])).split('\n');
    expect(wide[0]).toMatch(/\bUSED\b/);
    expect(wide[1]).toMatch(/\b(4[89]|5\d)(\.\d+)? MiB\b/);
    expect(await ok(['describe', 'volume', 'usage'])).toMatch(/^Used: +\d+(\.\d+)? MiB of 256 MiB \(\d+%\)$/m);
    await ok(['volumes', 'destroy', 'usage']);
  });

  it('--watch on nodes, leases, snapshots and containers lists (issue 21): the list, then a line per change', async () => {
    const [a] = cluster.hosts;
    await ok(['volumes', 'create', 'watched', '--size', '128MiB', '--node', a!.layout.address, '--no-wait']);
    const lines = (r: Result) => r.stdout.trim().split('\n');
    const leases = follow(['leases', 'list', '--watch', '--json']);
    const snapshots = follow(['snapshots', 'list', '--watch', '-o', 'name']);
    // Nodes report every second or so; only a change of what the columns say prints again.
    const nodes = flocker(['nodes', 'list', '--watch', '--json', '--timeout', '5']);
    const containers = flocker(['containers', 'list', '--watch', '--json', '--timeout', '5']);
    // Both watches have printed their first list (started at the same time; the leases one says when).
    await leases.waitFor('first list', (out) => out.includes('\n'));
    await new Promise((r) => setTimeout(r, 500));
    await ok(['leases', 'acquire', 'watched']);
    await ok(['snapshots', 'create', 'watched', '--name', 'watched-snap', '--no-wait']);
    await new Promise((r) => setTimeout(r, 1500));
    await ok(['leases', 'release', 'watched', '--force']);
    await leases.waitFor('third list', (out) => out.split('\n').filter((l) => l.trim() !== '').length >= 3);
    await snapshots.waitFor('watched-snap', (out) => /^watched-snap$/m.test(out));

    const nodeLines = lines(await nodes);
    expect(nodeLines).toHaveLength(1);
    expect((JSON.parse(nodeLines[0]!) as unknown[]).length).toBe(2);
    expect(lines(await containers)).toEqual(['[]']);
    const leaseLines = lines(await leases.end()).map((l) =>
      (JSON.parse(l) as Array<{ name: string }>).map((x) => x.name),
    );
    expect(leaseLines).toEqual([[], ['watched'], []]);
    const snapshotsOut = await snapshots.end();
    expect(snapshotsOut.stderr).toBe('');
    expect(snapshotsOut.stdout).toMatch(/^\n?watched-snap$/m);
    expect(snapshotsOut.stdout.startsWith('watched-snap')).toBe(false); // printed again, not only once at the start
    await ok(['volumes', 'destroy', 'watched']);
  });
});

/**
 * The `flocker` CLI (the real binary, as a user runs it) on local storage (issue 24): a control service over
 * mutual TLS and two real dataset agents with `dataset: {backend: local, engine: btrfs}`, each on its own btrfs
 * file system on its own loop device. What a new user met in session 15: a move off a dead node waited until its
 * timeout (now exit 1 at once, saying what to do), the replica opt-in could not be set with the CLI (now
 * `--accept-replica-loss`, whose wait the refusal shown before the opt-in must not end: seen live, exit 1 although
 * the replica was promoted), and snapshots of a local volume stayed "requested" for ever (now refused). Needs root.
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomInt } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import winston from 'winston';
import { FlockerClient } from '@flocker/api';
import { startControlService, type ControlService } from '@flocker/control-api';
import { makeBtrfsLoopPool, type BtrfsLoopPool } from '@flocker/storage-drivers/testing';
import { REPO_ROOT } from './cluster/Cluster';
import { ClusterPki } from './cluster/pki';
import { killProcessGroups } from './cluster/processes';
import { waitFor } from './cluster/run';
import { removeTree } from './removeTree';

jest.setTimeout(180_000);

const AGENT_MAIN = path.join(REPO_ROOT, 'packages/dataset-agent/dist/main.js');
const CLI_MAIN = path.join(REPO_ROOT, 'packages/cli/dist/main.js');
const MiB = 1024 * 1024;

interface Node {
  readonly name: string;
  readonly uuid: string;
  readonly address: string;
  readonly pool: BtrfsLoopPool;
  readonly mountRoot: string;
  readonly config: string;
  child?: ChildProcess;
  readonly groups: number[];
  log: string;
}

describe('flocker on local storage (two btrfs agents)', () => {
  let dir: string;
  let control: ControlService;
  let admin: FlockerClient;
  let cliEnv: Record<string, string>;
  const nodes: Node[] = [];
  const transferPort = randomInt(30_000, 40_000);

  const start = (n: Node): void => {
    n.log = '';
    const child = spawn(process.execPath, [AGENT_MAIN, '--config', n.config], {
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    if (child.pid !== undefined) n.groups.push(child.pid);
    child.stdout?.on('data', (c: Buffer) => (n.log += c.toString()));
    child.stderr?.on('data', (c: Buffer) => (n.log += c.toString()));
    n.child = child;
  };
  const logs = (): string => nodes.map((n) => `--- ${n.name}\n${n.log.split('\n').slice(-15).join('\n')}`).join('\n');

  /** `flocker <args>` as a user runs it: its exit code, stdout, stderr and how long it took. */
  const flocker = (args: string[]): Promise<{ code: number; out: string; err: string; ms: number }> =>
    new Promise((resolve) => {
      const t0 = Date.now();
      execFile(process.execPath, [CLI_MAIN, ...args], { env: { ...process.env, ...cliEnv } }, (e, out, err) => {
        const code = e === null ? 0 : typeof e.code === 'number' ? e.code : -1;
        resolve({ code, out, err, ms: Date.now() - t0 });
      });
    });

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flocker-e2e-cli-local-'));
    const pki = await ClusterPki.create(path.join(dir, 'pki'), ['127.0.0.1']);
    control = await startControlService({
      port: 0,
      host: '127.0.0.1',
      dataDir: path.join(dir, 'control'),
      logger: winston.createLogger({ silent: true }),
      nodeTimeoutSeconds: 4,
      tls: pki.serverCredentials(),
    });
    admin = new FlockerClient({ baseUrl: control.url, dispatcher: await pki.userDispatcher('admin') });
    cliEnv = { ...(await pki.cliEnv('admin')), FLOCKER_CONTROL_URL: control.url };
    for (const [name, address] of [
      ['a', '127.0.0.2'],
      ['b', '127.0.0.3'],
    ] as const) {
      const configDir = path.join(dir, name);
      fs.mkdirSync(configDir, { recursive: true, mode: 0o700 });
      const uuid = await pki.installNode(configDir);
      const pool = makeBtrfsLoopPool(dir, `${name}-pool`, 512 * MiB);
      const mountRoot = path.join(configDir, 'mnt');
      const config = path.join(configDir, 'agent.yml');
      fs.writeFileSync(
        config,
        [
          'version: 1',
          `control-service: {hostname: 127.0.0.1, port: ${control.port}}`,
          `dataset: {backend: local, engine: btrfs, pool: ${pool.pool}, transfer_port: ${transferPort}}`,
          `node: {state_dir: ${path.join(configDir, 'state')}, mount_root: ${mountRoot}, host: ${address}}`,
          'agent: {resync_interval_seconds: 1, backoff_initial_seconds: 0.2, backoff_max_seconds: 2}',
          '',
        ].join('\n'),
      );
      const node: Node = { name, uuid, address, pool, mountRoot, config, log: '', groups: [] };
      nodes.push(node);
      start(node);
    }
    await waitFor('both agents to report', async () => ((await admin.listNodes()).length === 2 ? true : undefined), {
      timeoutMs: 30_000,
      intervalMs: 100,
      context: logs,
    });
  });

  afterAll(async () => {
    const survivors = await killProcessGroups(nodes.flatMap((n) => n.groups));
    await control?.close();
    for (const n of nodes) n.pool.destroy();
    if (dir !== undefined) removeTree(dir);
    if (survivors.length > 0) throw new Error(`agent processes still alive after SIGKILL: ${survivors.join(' ')}`);
  });

  it('a move off a dead node fails at once saying what to do; --accept-replica-loss then takes the replica; snapshots are refused', async () => {
    const [a, b] = nodes as [Node, Node];
    const created = await flocker([
      'volumes',
      'create',
      'rep',
      '--size',
      '128M',
      '--node',
      a.address,
      '--metadata',
      'clusterhq:flocker:replicas=1',
      '--metadata',
      'clusterhq:flocker:replica-interval=2',
    ]);
    expect(created).toMatchObject({ code: 0 });
    const pathA = path.join(a.mountRoot, (await admin.listDatasets())[0]!.dataset_id);
    fs.writeFileSync(path.join(pathA, 'one'), 'written before the replica\n');
    execFileSync('sync', ['-f', path.join(pathA, 'one')]);
    const written = Date.now();

    // Snapshots of a local volume: refused before anything is asked.
    const snap = await flocker(['snapshots', 'create', 'rep', '--json']);
    expect(snap.code).toBe(1);
    expect(snap.err).toContain('NOT_ON_LOCAL_STORAGE');
    expect(await admin.listSnapshots()).toEqual([]);

    // A replica on b newer than the write, as show says it.
    await waitFor(
      'a replica on b taken after the write',
      async () => {
        const s = await admin.waitForCluster(undefined, 0);
        const r = s.nodes.find((n) => n.uuid === a.uuid)?.replicas?.[0];
        return r?.node_uuid === b.uuid && r.taken_at !== null && Date.parse(r.taken_at) > written ? true : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 200, context: logs },
    );
    const shown = await flocker(['volumes', 'show', 'rep']);
    expect(shown.out).toMatch(/^Replica: +replica on 127\.0\.0\.3, \d+ s old$/m);

    // a's agent dies (its copy stays, out of reach): a move to b is refused by b, and the CLI says so at once.
    a.child?.kill('SIGKILL');
    await waitFor(
      'a declared dead',
      async () =>
        (await admin.waitForCluster(undefined, 0)).nodes.find((n) => n.uuid === a.uuid)?.alive === false
          ? true
          : undefined,
      { timeoutMs: 30_000, intervalMs: 200, context: logs },
    );
    const refused = await flocker(['volumes', 'move', 'rep', b.address, '--timeout', '90']);
    console.log(`flocker volumes move off the dead node (${refused.ms} ms, exit ${refused.code}):\n${refused.err}`);
    expect(refused.code).toBe(1);
    expect(refused.ms).toBeLessThan(45_000);
    expect(refused.err).toMatch(/which is dead/);
    expect(refused.err).toMatch(/goes on by itself if 127\.0\.0\.2 comes back/);
    expect(refused.err).toMatch(/replica on 127\.0\.0\.3, .* old: .*--accept-replica-loss/);

    // The opt-in: b's refusal (shown before it saw the opt-in) does not end the wait; the replica is mounted.
    const taken = await flocker(['volumes', 'move', 'rep', b.address, '--accept-replica-loss', '--timeout', '90']);
    console.log(`flocker volumes move --accept-replica-loss (${taken.ms} ms, exit ${taken.code}):\n${taken.err}`);
    expect(taken.code).toBe(0);
    expect(taken.out).toContain(`rep is mounted on ${b.address}`);
    const pathB = path.join(b.mountRoot, (await admin.listDatasets())[0]!.dataset_id);
    expect(fs.readFileSync(path.join(pathB, 'one'), 'utf8')).toBe('written before the replica\n');
  });
});

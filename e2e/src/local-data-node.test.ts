/**
 * Local storage (issue 24), trust under a control service restart: the service keeps node states in
 * memory, so after its restart a holder that has not reported again is shown nowhere. A move asked
 * then must not make an empty copy on the new primary (which the holder, once back, would take for
 * the live copy and retire its own for): the move records the old primary as the data-node marker
 * in its own commit and the new primary refuses until a holder shows. Two real btrfs agents: the
 * holder's agent stopped (SIGSTOP) across the restart, or killed before it (a dead holder the
 * restarted service forgot); once it continues or is back, the move completes with every byte.
 * Needs root.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomInt } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import winston from 'winston';
import { FlockerClient, METADATA_DATA_NODE_KEY } from '@flocker/api';
import { startControlService, type ControlService } from '@flocker/control-api';
import { makeBtrfsLoopPool, type BtrfsLoopPool } from '@flocker/storage-drivers/testing';
import { ClusterPki } from './cluster/pki';
import { killProcessGroups } from './cluster/processes';
import { REPO_ROOT } from './cluster/Cluster';
import { waitFor } from './cluster/run';
import { removeTree } from './removeTree';

jest.setTimeout(180_000);

const AGENT_MAIN = path.join(REPO_ROOT, 'packages/dataset-agent/dist/main.js');
const silent = winston.createLogger({ silent: true });
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

function sha256(file: string): string {
  return execFileSync('sha256sum', [file], { encoding: 'utf8' }).split(' ')[0] ?? '';
}

describe('a local dataset moved after a control service restart, its holder not reported again', () => {
  let dir: string;
  let pki: ClusterPki;
  let control: ControlService | undefined;
  let admin: FlockerClient;
  const nodes: Node[] = [];
  const transferPort = randomInt(20_000, 30_000);
  let stopped: number | undefined;

  const startControl = async (port: number): Promise<void> => {
    control = await startControlService({
      port,
      host: '127.0.0.1',
      dataDir: path.join(dir, 'control'),
      logger: silent,
      nodeTimeoutSeconds: 5,
      tls: pki.serverCredentials(),
    });
    admin = new FlockerClient({ baseUrl: control.url, dispatcher: await pki.userDispatcher('admin') });
  };

  const start = (n: Node): void => {
    const child = spawn(process.execPath, [AGENT_MAIN, '--config', n.config], {
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    if (child.pid !== undefined) n.groups.push(child.pid);
    child.stdout?.on('data', (c: Buffer) => (n.log += c.toString()));
    child.stderr?.on('data', (c: Buffer) => (n.log += c.toString()));
    n.child = child;
  };
  const logs = (): string => nodes.map((n) => `--- ${n.name}\n${n.log.split('\n').slice(-20).join('\n')}`).join('\n');

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flocker-e2e-local-data-node-'));
    pki = await ClusterPki.create(path.join(dir, 'pki'), ['127.0.0.1']);
    await startControl(0);
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
          `control-service: {hostname: 127.0.0.1, port: ${control?.port}}`,
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
    if (stopped !== undefined) process.kill(-stopped, 'SIGCONT');
    const survivors = await killProcessGroups(nodes.flatMap((n) => n.groups));
    await control?.close();
    for (const n of nodes) n.pool.destroy();
    if (dir !== undefined) removeTree(dir);
    if (survivors.length > 0) throw new Error(`agent processes still alive after SIGKILL: ${survivors.join(' ')}`);
  });

  const mountedAt = async (datasetId: string, node: Node): Promise<string | undefined> => {
    const state = (await admin.listDatasetState()).find((d) => d.dataset_id === datasetId);
    return state?.primary === node.uuid && state.path !== undefined ? state.path : undefined;
  };
  const reportOf = async (node: Node) =>
    (await admin.waitForCluster(undefined, 0)).nodes.find((n) => n.uuid === node.uuid);
  /** The kinds of the local actions a node's agent logged for the dataset. */
  const actionsOn = (node: Node, id: string): string[] =>
    node.log
      .split('\n')
      .filter((l) => l.startsWith('{') && l.includes('"local action"') && l.includes(id))
      .map((l) => (JSON.parse(l) as { kind?: string }).kind ?? '');
  const liveCopyOn = (node: Node, id: string): boolean =>
    fs.existsSync(path.join(node.pool.pool, 'flocker', 'datasets', id));

  it('B refuses (no empty copy) until A reports again; then the move completes with every byte', async () => {
    const [a, b] = nodes as [Node, Node];
    const { dataset_id: id } = await admin.createDataset({
      primary: a.uuid,
      maximum_size: 256 * MiB,
      metadata: { name: 'data-node-e2e' },
    });
    const pathA = await waitFor('mounted on A', () => mountedAt(id, a), {
      timeoutMs: 30_000,
      intervalMs: 100,
      context: logs,
    });
    execFileSync('dd', ['if=/dev/urandom', `of=${pathA}/data`, 'bs=1M', 'count=32', 'conv=fsync', 'status=none']);
    const expected = sha256(path.join(pathA, 'data'));

    // A's agent stopped (its whole process group), then the control service restarted on its directory and port:
    // the configuration kept, every node state forgotten.
    const groupA = a.groups.at(-1) as number;
    process.kill(-groupA, 'SIGSTOP');
    stopped = groupA;
    const port = control?.port as number;
    await control?.close();
    control = undefined;
    await startControl(port);
    await waitFor(
      'B to report to the restarted service',
      async () => ((await reportOf(b)) !== undefined ? true : undefined),
      {
        timeoutMs: 30_000,
        intervalMs: 200,
        context: logs,
      },
    );
    expect(await reportOf(a)).toBeUndefined();

    // The move, asked while no report shows A holding the copy: the marker names A, in the move's own commit.
    const moved = await admin.updateDataset(id, { primary: b.uuid });
    expect(moved.metadata[METADATA_DATA_NODE_KEY]).toBe(a.uuid);
    const refusal = await waitFor(
      "B's refusal",
      async () => (await reportOf(b))?.errors.find((e) => e.dataset_id === id && e.action === 'refuse'),
      { timeoutMs: 30_000, intervalMs: 200, context: logs },
    );
    expect(refusal).toMatchObject({ code: 'SOURCE_UNREACHABLE' });
    expect(refusal.message).toContain(`may be on node ${a.uuid}`);
    // A few of B's turns more: still no copy made there.
    await new Promise((r) => setTimeout(r, 3_000));
    expect(liveCopyOn(b, id)).toBe(false);
    expect(actionsOn(b, id)).not.toContain('create');

    // A continues: it reports its copy, pushes it to B; B mounts it with every byte; A lets go of its own.
    process.kill(-groupA, 'SIGCONT');
    stopped = undefined;
    const pathB = await waitFor('moved to B and mounted there', () => mountedAt(id, b), {
      timeoutMs: 90_000,
      intervalMs: 200,
      context: logs,
    });
    expect(sha256(path.join(pathB, 'data'))).toBe(expected);
    await waitFor(
      'A to let go of its copy',
      async () => ((await reportOf(a))?.manifestations.some((m) => m.dataset_id === id) === false ? true : undefined),
      { timeoutMs: 30_000, intervalMs: 200, context: logs },
    );
    expect(sha256(path.join(pathB, 'data'))).toBe(expected);
    expect((await reportOf(b))?.errors.filter((e) => e.dataset_id === id)).toEqual([]);
  });
  it('the holder dead (killed) and forgotten by a restarted service: the move to A refuses naming it; back, the move completes', async () => {
    const [a, b] = nodes as [Node, Node];
    const { dataset_id: id } = await admin.createDataset({
      primary: b.uuid,
      maximum_size: 256 * MiB,
      metadata: { name: 'data-node-e2e-dead' },
    });
    const pathB = await waitFor('mounted on B', () => mountedAt(id, b), {
      timeoutMs: 30_000,
      intervalMs: 100,
      context: logs,
    });
    execFileSync('dd', ['if=/dev/urandom', `of=${pathB}/data`, 'bs=1M', 'count=16', 'conv=fsync', 'status=none']);
    const expected = sha256(path.join(pathB, 'data'));

    const killed = b.child;
    killed?.kill('SIGKILL');
    if (killed !== undefined && killed.exitCode === null && killed.signalCode === null)
      await new Promise((r) => killed.once('exit', r));
    const port = control?.port as number;
    await control?.close();
    control = undefined;
    await startControl(port);
    await waitFor(
      'A to report to the restarted service',
      async () => ((await reportOf(a)) !== undefined ? true : undefined),
      {
        timeoutMs: 30_000,
        intervalMs: 200,
        context: logs,
      },
    );

    const moved = await admin.updateDataset(id, { primary: a.uuid });
    expect(moved.metadata[METADATA_DATA_NODE_KEY]).toBe(b.uuid);
    const refusal = await waitFor(
      "A's refusal",
      async () => (await reportOf(a))?.errors.find((e) => e.dataset_id === id && e.action === 'refuse'),
      { timeoutMs: 30_000, intervalMs: 200, context: logs },
    );
    expect(refusal).toMatchObject({ code: 'SOURCE_UNREACHABLE' });
    expect(refusal.message).toContain(`may be on node ${b.uuid}`);
    expect(liveCopyOn(a, id)).toBe(false);
    expect(actionsOn(a, id)).not.toContain('create');

    start(b);
    const pathA = await waitFor('moved to A and mounted there', () => mountedAt(id, a), {
      timeoutMs: 90_000,
      intervalMs: 200,
      context: logs,
    });
    expect(sha256(path.join(pathA, 'data'))).toBe(expected);
  });
});

/**
 * A move while the container keeps running, through Docker (issue 24; U's item 5 of session 15): a control
 * service over mutual TLS, two real local btrfs agents (a, b; each pool on its own loop device), a private dockerd
 * and the Flocker Docker plugin on a. A container on a writes to its volume (a 64 MiB file with its sha256, then a
 * numbered line every 20 ms, each echoed to its log after it is appended) and so holds the volume's lease.
 * `flocker volumes move V b` is refused (exit 4) saying to add --when-released; with it the move is accepted while
 * the container runs: phase 1 copies (progress in a's report), then waits for the release, the container still
 * writing; `docker stop` releases it; the move finishes; b has every line the container logged (consecutive, none
 * missing) and the 64 MiB file intact; the lease is gone. Needs root.
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomInt } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import winston from 'winston';
import { FlockerClient, type LocalMove, METADATA_DATA_NODE_KEY } from '@flocker/api';
import { startControlService, type ControlService } from '@flocker/control-api';
import { makeBtrfsLoopPool, type BtrfsLoopPool } from '@flocker/storage-drivers/testing';
import { REPO_ROOT } from './cluster/Cluster';
import { ClusterPki } from './cluster/pki';
import { killProcessGroups } from './cluster/processes';
import { waitFor } from './cluster/run';
import { DockerBesideAgent, TINY_IMAGE } from './docker';
import { removeTree } from './removeTree';

jest.setTimeout(300_000);

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

describe('a local move while the container keeps running (Docker, --when-released)', () => {
  let dir: string;
  let control: ControlService;
  let admin: FlockerClient;
  let docker: DockerBesideAgent | undefined;
  let cliEnv: Record<string, string>;
  const nodes: Node[] = [];
  const transferPort = randomInt(30_000, 40_000);
  const driver = `flocker-wr-${process.pid}`;

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
  const logs = (): string =>
    nodes.map((n) => `--- ${n.name}\n${n.log.split('\n').slice(-15).join('\n')}`).join('\n') +
    (docker !== undefined ? `\n${docker.logs()}` : '');

  const flocker = (args: string[]): Promise<{ code: number; out: string; err: string; ms: number }> =>
    new Promise((resolve) => {
      const t0 = Date.now();
      execFile(process.execPath, [CLI_MAIN, ...args], { env: { ...process.env, ...cliEnv } }, (e, out, err) => {
        const code = e === null ? 0 : typeof e.code === 'number' ? e.code : -1;
        resolve({ code, out, err, ms: Date.now() - t0 });
      });
    });

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flocker-e2e-when-released-'));
    const pki = await ClusterPki.create(path.join(dir, 'pki'), ['127.0.0.1']);
    control = await startControlService({
      port: 0,
      host: '127.0.0.1',
      dataDir: path.join(dir, 'control'),
      logger: winston.createLogger({ silent: true }),
      nodeTimeoutSeconds: 6,
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
    // Docker and the plugin on a, as this node (its agent.yml and certificates). A short root: socket paths.
    docker = await DockerBesideAgent.start(driver, fs.mkdtempSync('/tmp/fwr-'), (nodes[0] as Node).config);
  });

  afterAll(async () => {
    await docker?.close();
    const survivors = await killProcessGroups(nodes.flatMap((n) => n.groups));
    await control?.close();
    for (const n of nodes) n.pool.destroy();
    if (dir !== undefined) removeTree(dir);
    if (survivors.length > 0) throw new Error(`agent processes still alive after SIGKILL: ${survivors.join(' ')}`);
  });

  it('copies while the container writes, finishes once it stops; b has every line it logged; the lease is gone', async () => {
    const [a, b] = nodes as [Node, Node];
    const d = docker as DockerBesideAgent;
    expect(await flocker(['volumes', 'create', 'wr', '--size', '256M', '--node', a.address])).toMatchObject({
      code: 0,
    });
    const id = (await admin.listDatasets())[0]!.dataset_id;

    // The container: 64 MiB and its sha256, then a numbered line every 20 ms, logged after it is appended.
    const script =
      'dd if=/dev/urandom of=/data/bulk bs=1M count=64 2>/dev/null && sha256sum /data/bulk > /data/bulk.sha256 && ' +
      'i=0; while :; do echo line-$i >> /data/log; echo $i; i=$((i+1)); usleep 20000; done';
    const run = await d.docker(
      ['run', '-d', '--network', 'none', '-v', 'wr:/data', '--volume-driver', driver, TINY_IMAGE, 'sh', '-c', script],
      { timeoutMs: 120_000 },
    );
    const container = run.stdout.trim();
    const lastLogged = async (): Promise<number> => {
      const out = (await d.docker(['logs', '--tail', '1', container])).stdout.trim();
      return out === '' ? -1 : Number(out);
    };
    await waitFor('the container to write lines', async () => ((await lastLogged()) >= 20 ? true : undefined), {
      timeoutMs: 60_000,
      intervalMs: 200,
      context: logs,
    });
    const lease = (await admin.listLeases()).find((l) => l.dataset_id === id);
    expect(lease).toMatchObject({ node_uuid: a.uuid, holders: ['docker'] });

    // Without the opt-in: refused (the lease), saying to add it; nothing changed.
    const plain = await flocker(['volumes', 'move', 'wr', b.address]);
    expect(plain.code).toBe(4);
    expect(plain.err).toContain('--when-released');
    expect((await admin.getDataset(id)).primary).toBe(a.uuid);

    // With it: accepted while the container runs; the CLI waits (in the background here).
    const t0 = Date.now();
    const moving = flocker(['volumes', 'move', 'wr', b.address, '--when-released', '--timeout', '240']);
    const seen: LocalMove[] = [];
    await waitFor(
      "a's move to wait for the release",
      async () => {
        const m = (await admin.waitForCluster(undefined, 0)).nodes
          .find((n) => n.uuid === a.uuid)
          ?.moves?.find((x) => x.dataset_id === id);
        if (m !== undefined) seen.push(m);
        return m?.phase === 'waitingForRelease' ? true : undefined;
      },
      { timeoutMs: 120_000, intervalMs: 100, context: logs },
    );
    expect((await admin.getDataset(id)).primary).toBe(b.uuid);
    expect((await admin.getDataset(id)).metadata[METADATA_DATA_NODE_KEY]).toBe(a.uuid);
    const phase1 = seen.filter((m) => m.phase === 'copying' || m.phase === 'waitingForRelease');
    expect(phase1.length).toBeGreaterThan(0);
    expect(Math.max(...seen.map((m) => m.bytes_sent))).toBeGreaterThan(0);
    // Still running and writing while the move waits for it.
    const before = await lastLogged();
    await new Promise((r) => setTimeout(r, 1500));
    expect(await lastLogged()).toBeGreaterThan(before);
    expect((await d.docker(['inspect', '-f', '{{.State.Running}}', container])).stdout.trim()).toBe('true');
    // The move is not done while it is in use: b has not mounted it.
    expect(
      (await admin.listDatasetState({ datasetId: id })).find((s) => s.dataset_id === id && s.primary === b.uuid)?.path,
    ).toBeUndefined();
    // a's host mount stays while a holds the lease (a Docker Mount answered from it just before the
    // move committed binds the copy, not the bare directory under it); it goes after the release.
    const hostMountA = ` ${path.join(a.mountRoot, id)} `;
    expect(fs.readFileSync('/proc/self/mountinfo', 'utf8')).toContain(hostMountA);

    // The container stops: the release.
    await d.docker(['stop', '-t', '1', container], { timeoutMs: 60_000 });
    const stoppedAt = Date.now();
    const last = await lastLogged();
    const done = await moving;
    console.log(
      `move --when-released: ${done.ms} ms in all, ${Date.now() - stoppedAt} ms after docker stop; ` +
        `phases seen: ${[...new Set(seen.map((m) => m.phase))].join(', ')}; ` +
        `max bytes sent ${Math.max(...seen.map((m) => m.bytes_sent))}; last line logged ${last}\n${done.err}`,
    );
    expect(done).toMatchObject({ code: 0 });
    expect(done.out).toContain(`wr is mounted on ${b.address}`);
    expect(fs.readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain(hostMountA);
    expect(Date.now() - t0).toBeGreaterThan(1500);

    // Every line the container logged is on b, in order, none missing; the 64 MiB file intact.
    const pathB = path.join(b.mountRoot, id);
    const lines = fs.readFileSync(path.join(pathB, 'log'), 'utf8').split('\n').filter(Boolean);
    expect(lines.length).toBeGreaterThanOrEqual(last + 1);
    lines.forEach((l, i) => expect(l).toBe(`line-${i}`));
    const sum = fs.readFileSync(path.join(pathB, 'bulk.sha256'), 'utf8').split(/\s+/)[0];
    const check = execFileSync('sha256sum', [path.join(pathB, 'bulk')], { encoding: 'utf8' });
    expect(check.split(/\s+/)[0]).toBe(sum);
    expect(fs.statSync(path.join(pathB, 'bulk')).size).toBe(64 * MiB);

    // The lease is gone (the plugin's Unmount released it); a is no longer moving it.
    await waitFor(
      'the lease to be released',
      async () => ((await admin.listLeases()).some((l) => l.dataset_id === id) ? undefined : true),
      { timeoutMs: 30_000, intervalMs: 200, context: logs },
    );
    // The move is over: the data-node marker (it named a, the old node) goes once b alone holds the data.
    await waitFor(
      'the data-node marker to go',
      async () => ((await admin.getDataset(id)).metadata[METADATA_DATA_NODE_KEY] === undefined ? true : undefined),
      { timeoutMs: 30_000, intervalMs: 200, context: logs },
    );
    await d.docker(['rm', container]);
  });

  it('a new container on a while the move waits for the release: moved back (the move cancelled), the live data, nothing lost', async () => {
    const [a, b] = nodes as [Node, Node];
    const d = docker as DockerBesideAgent;
    expect(await flocker(['volumes', 'create', 'wr2', '--size', '128M', '--node', a.address])).toMatchObject({
      code: 0,
    });
    const id = (await admin.listDatasets()).find((x) => x.metadata['name'] === 'wr2')!.dataset_id;
    const script = 'i=0; while :; do echo line-$i >> /data/log; echo $i; i=$((i+1)); usleep 20000; done';
    const first = (
      await d.docker(
        [
          'run',
          '-d',
          '--network',
          'none',
          '-v',
          'wr2:/data',
          '--volume-driver',
          driver,
          TINY_IMAGE,
          'sh',
          '-c',
          script,
        ],
        { timeoutMs: 120_000 },
      )
    ).stdout.trim();
    await waitFor(
      'the first container to write',
      async () =>
        Number((await d.docker(['logs', '--tail', '1', first])).stdout.trim() || -1) >= 10 ? true : undefined,
      { timeoutMs: 60_000, intervalMs: 200, context: logs },
    );
    expect(await flocker(['volumes', 'move', 'wr2', b.address, '--when-released', '--no-wait'])).toMatchObject({
      code: 0,
    });
    await waitFor(
      "a's move to wait for the release",
      async () =>
        (await admin.waitForCluster(undefined, 0)).nodes
          .find((n) => n.uuid === a.uuid)
          ?.moves?.some((m) => m.dataset_id === id && m.phase === 'waitingForRelease') === true
          ? true
          : undefined,
      { timeoutMs: 120_000, intervalMs: 100, context: logs },
    );
    // A second container on a: it must see the live data (the first container's lines), never an empty directory.
    const seen = await d.runWith('wr2', 'wc -l < /data/log; echo second > /data/second');
    const count = Number(seen.trim());
    console.log(`second container on a during the pending move saw ${count} lines`);
    expect(count).toBeGreaterThan(10);
    // The plugin sees this node is no longer the primary and moves the volume back (the move is cancelled before its
    // promote); it never answers from the mount the agent let go of for the move (an empty directory: seen before the
    // plugin looked at the primary). Once the first container stops, a keeps it mounted with everything both wrote.
    expect((await admin.getDataset(id)).primary).toBe(a.uuid);
    // Recorded (session 17): `flocker events` shows the move cancelled and where the volume was used again.
    const events = await flocker(['events', '--since', '10m', '--timeout', '1']);
    expect(events.out.split('\n').find((l) => l.includes('move-cancelled'))).toContain(
      `Move of volume wr2 (dataset ${id}) to host ${b.address} (node ${b.uuid}) cancelled: used again on host ${a.address} (node ${a.uuid})`,
    );
    await d.docker(['stop', '-t', '1', first], { timeoutMs: 60_000 });
    const where = await waitFor(
      'a to hold the volume, mounted, no move under way',
      async () => {
        const s = await admin.waitForCluster(undefined, 0);
        const m = s.nodes.find((x) => x.uuid === a.uuid)?.manifestations.find((x) => x.dataset_id === id);
        const moving = s.nodes.some((x) => (x.moves ?? []).some((y) => y.dataset_id === id));
        return m?.status === 'mounted' && !moving ? a : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 200, context: logs },
    );
    const at = path.join(where.mountRoot, id);
    expect(fs.readFileSync(path.join(at, 'second'), 'utf8')).toBe('second\n');
    const lines = fs.readFileSync(path.join(at, 'log'), 'utf8').split('\n').filter(Boolean);
    expect(lines.length).toBeGreaterThan(count);
    lines.forEach((l, i) => expect(l).toBe(`line-${i}`));
    await d.docker(['rm', first]);
  });
});

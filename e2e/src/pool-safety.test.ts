/**
 * End to end (issue 17 #2, #3): real dataset agents on the loopback backend.
 * An agent whose valid agent.yml names the wrong (empty) pool refuses to start
 * instead of creating empty volumes for existing datasets; one corrupt volume
 * record is an error on its dataset while everything else goes on.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { FlockerClient } from '@flocker/api';
import { startControlService, type ControlService } from '@flocker/control-api';
import { LoopbackDriver, parseMountInfo } from '@flocker/storage-drivers';
import { waitFor as waitUntil } from './cluster/run';
import { removeTree } from './removeTree';

jest.setTimeout(180_000);

const AGENT_MAIN = join(resolve(__dirname, '../..'), 'packages/dataset-agent/dist/main.js');
const MiB = 1024 * 1024;

interface AgentProc {
  readonly proc: ChildProcess;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

let dir: string;
let control: ControlService;
let client: FlockerClient;
const agents = new Set<AgentProc>();

function startAgent(name: string, pool: string): AgentProc {
  mkdirSync(join(dir, name), { recursive: true });
  writeFileSync(join(dir, name, 'era'), `era-${name}\n`);
  const config = join(dir, `${name}.yml`);
  writeFileSync(
    config,
    [
      'version: 1',
      `control-service: {hostname: 127.0.0.1, port: ${control.port}}`,
      `dataset: {backend: loopback, root_path: ${join(dir, pool)}}`,
      `node: {state_dir: ${join(dir, name, 'state')}, mount_root: ${join(dir, name, 'mnt')}, era_file: ${join(dir, name, 'era')}}`,
      'agent: {resync_interval_seconds: 1, default_dataset_size: 67108864, backoff_initial_seconds: 0.2, backoff_max_seconds: 1}',
      '',
    ].join('\n'),
  );
  const log = createWriteStream(join(dir, `${name}.log`), { flags: 'a' });
  const proc = spawn(process.execPath, [AGENT_MAIN, '--config', config], { stdio: ['ignore', 'pipe', 'pipe'] });
  proc.stdout?.pipe(log);
  proc.stderr?.pipe(log);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) => proc.on('exit', (code, signal) => res({ code, signal })));
  const a = { proc, exited };
  agents.add(a);
  void exited.then(() => agents.delete(a));
  return a;
}

function nodeUuid(name: string): string {
  return (JSON.parse(readFileSync(join(dir, name, 'state', 'node.json'), 'utf8')) as { uuid: string }).uuid;
}

function logs(): string {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.log'))
    .map((f) => `--- ${f}\n${readFileSync(join(dir, f), 'utf8').split('\n').slice(-15).join('\n')}`)
    .join('\n');
}

function waitFor<T>(what: string, probe: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 30_000): Promise<T> {
  return waitUntil(what, probe, { timeoutMs, intervalMs: 50, context: logs });
}

function mountsUnder(root: string): { device: string; mountPoint: string }[] {
  return parseMountInfo(readFileSync('/proc/self/mountinfo', 'utf8')).filter((m) => m.mountPoint.startsWith(root + '/'));
}

async function waitMountedOn(name: string, datasetId: string): Promise<string> {
  const path = join(dir, name, 'mnt', datasetId);
  await waitFor(`${datasetId} mounted on ${name}`, async () => (await client.listDatasetState()).some((s) => s.dataset_id === datasetId && s.path === path));
  return path;
}

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'flocker-pool-safety-e2e-'));
  control = await startControlService({ port: 0, host: '127.0.0.1', dataDir: join(dir, 'control'), nodeTimeoutSeconds: 60, logLevel: 'error' });
  client = new FlockerClient({ baseUrl: control.url });
});

afterEach(async () => {
  for (const a of [...agents]) {
    a.proc.kill('SIGKILL');
    await a.exited;
  }
  await control.close();
  for (const m of mountsUnder(dir).reverse()) execFileSync('umount', ['-l', m.mountPoint]);
  for (const pool of ['pool', 'empty-pool']) {
    const volumesDir = join(dir, pool, 'volumes');
    if (!existsSync(volumesDir)) continue;
    for (const f of readdirSync(volumesDir).filter((f) => f.endsWith('.img'))) {
      const out = execFileSync('losetup', ['-j', join(volumesDir, f)], { encoding: 'utf8' });
      for (const line of out.split('\n').filter((l) => l.includes(':'))) execFileSync('losetup', ['-d', line.split(':')[0]!]);
    }
  }
  removeTree(dir);
});

describe('pool safety with real agents (issue 17)', () => {
  it('an agent on the wrong, empty pool refuses to start; a corrupt record is an error on its dataset while the rest goes on', async () => {
    startAgent('a', 'pool');
    startAgent('b', 'pool');
    await waitFor('nodes a and b', async () => {
      const known = new Set((await client.listNodes()).map((n) => n.uuid));
      return ['a', 'b'].every((n) => existsSync(join(dir, n, 'state', 'node.json')) && known.has(nodeUuid(n)));
    });
    const d1 = (await client.createDataset({ primary: nodeUuid('a'), maximum_size: 64 * MiB, metadata: { name: 'precious' } })).dataset_id;
    const onA = await waitMountedOn('a', d1);
    writeFileSync(join(onA, 'data.txt'), 'still here\n');
    expect(JSON.parse(readFileSync(join(dir, 'pool', 'pool.json'), 'utf8'))).toMatchObject({ version: 1, cluster_id: null });

    // Host C: a valid agent.yml whose root_path names an empty pool.
    const c = startAgent('c', 'empty-pool');
    const exit = await c.exited;
    expect(exit.code).toBe(2);
    expect(readFileSync(join(dir, 'c.log'), 'utf8')).toMatch(/empty-pool is not initialised.*POOL_MISSING_VOLUMES/s);
    expect(existsSync(join(dir, 'empty-pool', 'pool.json'))).toBe(false);
    expect(existsSync(join(dir, 'empty-pool', 'volumes')) ? readdirSync(join(dir, 'empty-pool', 'volumes')) : []).toEqual([]);

    // echo '{"truncated' > pool/volumes/<id>.json
    const [volume] = (await new LoopbackDriver({ rootPath: join(dir, 'pool'), instanceId: 'e2e-observer' }).listVolumes()).filter((v) => v.datasetId === d1);
    const record = join(dir, 'pool', 'volumes', `${volume!.blockdeviceId}.json`);
    const good = readFileSync(record, 'utf8');
    writeFileSync(record, '{"truncated\n');
    // Reported as an error on that dataset...
    await waitFor('CORRUPT_RECORD reported on the dataset', async () =>
      (await client.waitForCluster(undefined, 0)).nodes.some((n) => n.errors.some((e) => e.code === 'CORRUPT_RECORD' && e.dataset_id === d1)),
    );
    // ...while everything else goes on: a new dataset converges on b, both nodes stay alive.
    const d2 = (await client.createDataset({ primary: nodeUuid('b'), maximum_size: 64 * MiB, metadata: { name: 'other' } })).dataset_id;
    await waitMountedOn('b', d2);
    expect((await client.listNodes()).map((n) => n.uuid).sort()).toEqual([nodeUuid('a'), nodeUuid('b')].sort());
    // No second volume for d1, and its mount (and data) stay where they were.
    expect(readdirSync(join(dir, 'pool', 'volumes')).filter((f) => f.endsWith('.json'))).toHaveLength(2);
    expect(readFileSync(join(onA, 'data.txt'), 'utf8')).toBe('still here\n');
    expect(mountsUnder(dir).filter((m) => m.mountPoint === onA)).toHaveLength(1);

    // Repaired: the error goes.
    writeFileSync(record, good);
    await waitFor('no error left', async () => (await client.waitForCluster(undefined, 0)).nodes.every((n) => n.errors.length === 0));
  });
});

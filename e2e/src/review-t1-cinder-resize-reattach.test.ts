/**
 * Review T1 (session 18): `flocker volumes resize` of a mounted, unleased volume on Cinder with
 * `extend_attached: reattach` (the setting for Cinder backends that cannot grow in-use volumes, as this
 * project's own Cinder tests use) never happens. The agent calls the driver's resize while the volume is
 * mounted; the driver's reattach path detaches first, which is refused (DEVICE_BUSY "… unmount it before
 * detaching") every 2 s, for ever; the dataset stays at its old size and nothing tells the user why. Expected:
 * the volume grows (the agent takes the mount off for the grow while no lease holds it, as it does for an
 * offline ext4 grow) and the data stays; while a lease is on it (a container), it waits, said in the log, no
 * detach tried (FX14: the lease phase, the file system size and no DEVICE_BUSY added).
 * A real Cinder (scripts/cinder.sh: NFS driver, noauth; root; first run installs it) and a real dataset agent.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { LocalAgentBed } from './localAgents';

jest.setTimeout(15 * 60 * 1000);

const GiB = 1024 * 1024 * 1024;
const PROJECT = 'f10cce7a5e7d4c8b9f1a2b3c4d5e6f70';
const SCRIPT = resolve(__dirname, '../../scripts/cinder.sh');
const run = promisify(execFile);

let cinderEnv: NodeJS.ProcessEnv;
let cinderUrl: string;
let bed: LocalAgentBed;

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const address = server.address();
  await new Promise((r) => server.close(r));
  if (address === null || typeof address === 'string') throw new Error('no free port');
  return address.port;
}

async function cinder(cmd: string): Promise<string> {
  const r = await run(SCRIPT, [cmd], { env: cinderEnv, maxBuffer: 16 * 1024 * 1024, timeout: 14 * 60 * 1000 });
  return r.stdout.trim();
}

beforeAll(async () => {
  cinderEnv = {
    ...process.env,
    CINDER_STATE: mkdtempSync(join(tmpdir(), 'flocker-cinder-t1-')),
    CINDER_PORT: String(await freePort()),
    KEYSTONE_PORT: String(await freePort()),
    CINDER_AUTH: 'noauth',
  };
  cinderUrl = (await cinder('start')).split('\n').pop() ?? '';
  bed = await LocalAgentBed.start('flocker-t1-cinder-resize-');
});

afterAll(async () => {
  await bed?.close();
  await cinder('purge');
});

it('a mounted, unleased volume grows with extend_attached: reattach', async () => {
  const node = join(bed.dir, 'a');
  const dataset = {
    backend: 'openstack',
    auth_plugin: 'noauth',
    cinder_url: cinderUrl,
    project_id: PROJECT,
    cluster_id: '5d0f3c56-4a8e-4bde-9a31-7c1c8f0b2e44',
    instance_id: 'flocker-t1-host-a',
    attach_mode: 'cinder',
    extend_attached: 'reattach',
    connector: { ip: '127.0.0.1' },
    operation_timeout_seconds: 60,
  };
  writeFileSync(
    bed.configPath('a'),
    [
      'version: 1',
      `control-service: {hostname: 127.0.0.1, port: ${bed.control.port}}`,
      `dataset: ${JSON.stringify(dataset)}`,
      `node: {state_dir: ${join(node, 'state')}, mount_root: ${join(node, 'mnt')}, era_file: ${join(node, 'era')}}`,
      'agent: {resync_interval_seconds: 2, backoff_initial_seconds: 0.2, backoff_max_seconds: 2}',
      'metrics: {dataset_agent_port: 0}',
      '',
    ].join('\n'),
  );
  bed.startAgent('a');
  await bed.waitFor('agent a known', async () => (await bed.client.listNodes()).length === 1);
  const created = await bed.client.createDataset({
    metadata: { name: 't1-grow' },
    maximum_size: GiB,
    primary: bed.nodeUuid('a'),
  });
  const id = created.dataset_id;
  const mounted = await bed.waitFor('mounted', async () => (await bed.client.datasetState(id))?.path, 120_000);
  writeFileSync(join(mounted, 'keep'), 'kept');
  await run('sync');

  // In use (a lease, as a container's): the grow waits, said once in the log, no detach tried under it.
  await bed.client.acquireLease({ dataset_id: id, node_uuid: bed.nodeUuid('a'), expires: null });
  await bed.client.updateDataset(id, { maximum_size: 2 * GiB });
  await bed.waitFor(
    'the grow said to wait for the lease',
    async () => bed.logs().includes('volume grow pending'),
    30_000,
  );
  await new Promise((r) => setTimeout(r, 6000));
  expect((await bed.client.datasetState(id))?.maximum_size).toBe(GiB);
  expect(readFileSync(join(mounted, 'keep'), 'utf8')).toBe('kept');
  expect(bed.logs()).not.toContain('DEVICE_BUSY');
  await bed.client.releaseLease(id);
  const grown = await bed.waitFor(
    'grown to 2 GiB and mounted',
    async () => {
      const s = await bed.client.datasetState(id);
      return s?.maximum_size === 2 * GiB && s.path !== undefined ? s.path : undefined;
    },
    90_000,
  );
  expect(readFileSync(join(grown, 'keep'), 'utf8')).toBe('kept');
  // The file system grew with the volume (not only the Cinder record).
  const df = await run('df', ['-B1', '--output=size', grown]);
  expect(Number(df.stdout.trim().split('\n').pop())).toBeGreaterThan(1.5 * GiB);
  expect(bed.logs()).not.toContain('DEVICE_BUSY');

  await bed.client.deleteDataset(id);
  await bed.waitFor('destroyed', async () => (await bed.client.datasetState(id)) === undefined, 120_000);
});

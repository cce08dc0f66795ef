/**
 * End to end: the control service (in process) and real dataset agents
 * (spawned `flocker-dataset-agent` processes) on the loopback backend, with
 * real loop devices, ext4 and mounts, all under a temp directory.
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type DatasetState, type FlockerClient } from '@flocker/api';
import { LoopbackDriver } from '@flocker/storage-drivers';
import { AGENT_MAIN, LocalAgentBed, mountsUnder, type AgentProc } from './localAgents';

jest.setTimeout(180_000);

const MiB = 1024 * 1024;

let bed: LocalAgentBed;
let dir: string;
let client: FlockerClient;

const writeAgentConfig = (name: string, resyncSeconds = 2): void => bed.writeAgentConfig(name, { resyncSeconds });
const startAgent = (name: string, env: Record<string, string> = {}): AgentProc => bed.startAgent(name, env);
const nodeUuid = (name: string): string => bed.nodeUuid(name);
const logs = (): string => bed.logs();
function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 30_000,
): Promise<T> {
  return bed.waitFor(what, probe, timeoutMs);
}

async function stopAgent(a: AgentProc): Promise<void> {
  if (a.proc.exitCode === null && a.proc.signalCode === null) a.proc.kill('SIGTERM');
  await a.exited;
}

function mountPath(name: string, datasetId: string): string {
  return join(dir, name, 'mnt', datasetId);
}

async function stateOf(datasetId: string): Promise<DatasetState | undefined> {
  return (await client.listDatasetState()).find((s) => s.dataset_id === datasetId);
}

/** Waits until the state API says the dataset is mounted on `name`, and checks the kernel agrees. */
async function waitMountedOn(name: string, datasetId: string): Promise<string> {
  const uuid = nodeUuid(name);
  const path = mountPath(name, datasetId);
  await waitFor(`${datasetId} mounted on ${name}`, async () => {
    const s = await stateOf(datasetId);
    return s?.primary === uuid && s.path === path;
  });
  expect(mountsUnder(dir).filter((m) => m.mountPoint === path)).toHaveLength(1);
  return path;
}

async function poolVolumes(datasetId?: string) {
  const all = await new LoopbackDriver({ rootPath: join(dir, 'pool'), instanceId: 'e2e-observer' }).listVolumes();
  return datasetId === undefined ? all : all.filter((v) => v.datasetId === datasetId);
}

/** Safety invariants that must hold at any quiet moment: one volume per dataset, no double mount or attach. */
async function expectNoDuplicates(): Promise<void> {
  const volumes = await poolVolumes();
  const perDataset = new Map<string, number>();
  for (const v of volumes) perDataset.set(v.datasetId, (perDataset.get(v.datasetId) ?? 0) + 1);
  for (const n of perDataset.values()) expect(n).toBe(1);
  const devices = mountsUnder(dir).map((m) => m.device);
  expect(new Set(devices).size).toBe(devices.length);
  for (const v of volumes) {
    const loops = execFileSync('losetup', ['-j', join(dir, 'pool', 'volumes', `${v.blockdeviceId}.img`)], {
      encoding: 'utf8',
    }).trim();
    expect(loops.split('\n').filter((l) => l.length > 0).length).toBeLessThanOrEqual(1);
  }
}

beforeEach(async () => {
  bed = await LocalAgentBed.start('flocker-agent-e2e-');
  ({ dir, client } = bed);
});

// Every agent, mount and loop device of this test, then the directory.
afterEach(() => bed.close());

async function waitNodesKnown(names: string[]): Promise<void> {
  await waitFor('nodes to report', async () => {
    const known = new Set((await client.listNodes()).map((n) => n.uuid));
    return names.every((n) => existsSync(join(dir, n, 'state', 'node.json')) && known.has(nodeUuid(n)));
  });
}

describe('flocker-dataset-agent with the loopback backend', () => {
  it('creates and mounts a dataset, moves it to another node and back with its data, and destroys it on delete', async () => {
    startAgent('a');
    startAgent('b');
    await waitNodesKnown(['a', 'b']);
    const a = nodeUuid('a');
    const b = nodeUuid('b');

    const created = await client.createDataset({ primary: a, maximum_size: 64 * MiB, metadata: { name: 'e2e' } });
    const id = created.dataset_id;
    const onA = await waitMountedOn('a', id);
    writeFileSync(join(onA, 'hello.txt'), 'written on a\n');
    const [volume] = await poolVolumes(id);
    expect(volume?.size).toBe(64 * MiB);

    await client.updateDataset(id, { primary: b });
    const onB = await waitMountedOn('b', id);
    expect(readFileSync(join(onB, 'hello.txt'), 'utf8')).toBe('written on a\n');
    expect(mountsUnder(join(dir, 'a'))).toHaveLength(0);
    writeFileSync(join(onB, 'second.txt'), 'written on b\n');

    await client.updateDataset(id, { primary: a });
    await waitMountedOn('a', id);
    expect(readFileSync(join(onA, 'hello.txt'), 'utf8')).toBe('written on a\n');
    expect(readFileSync(join(onA, 'second.txt'), 'utf8')).toBe('written on b\n');
    await expectNoDuplicates();

    // maximum_size grew: the volume and its filesystem grow, online.
    await client.updateDataset(id, { maximum_size: 128 * MiB });
    await waitFor('the volume to grow', async () => (await poolVolumes(id))[0]?.size === 128 * MiB);
    // Online growth needs CAP_SYS_RESOURCE; without it the filesystem grows at its next mount, so move it.
    await client.updateDataset(id, { primary: b });
    await waitMountedOn('b', id);
    await waitFor('the filesystem to grow', () => {
      const out = execFileSync('df', ['-B1', '--output=size', onB], { encoding: 'utf8' });
      return Number(out.split('\n')[1]) > 100 * MiB;
    });
    expect(readFileSync(join(onB, 'second.txt'), 'utf8')).toBe('written on b\n');

    await client.deleteDataset(id);
    await waitFor(
      'the backing file to be gone',
      () => !existsSync(join(dir, 'pool', 'volumes', `${volume!.blockdeviceId}.img`)),
    );
    await waitFor('the state to drop the dataset', async () => (await stateOf(id)) === undefined);
    expect(mountsUnder(dir)).toHaveLength(0);
    // No empty mount point is left behind on either node (issue 21).
    expect(existsSync(onA)).toBe(false);
    expect(existsSync(onB)).toBe(false);
  });

  it('converges after being killed right after each kind of action, losing no data', async () => {
    const b = startAgent('b');
    let a = startAgent('a');
    await waitNodesKnown(['a', 'b']);
    const uuidA = nodeUuid('a');
    const uuidB = nodeUuid('b');

    /** Restarts `a` with the crash hook, runs `trigger`, waits for the SIGKILL, restarts it normally. */
    async function crashAfter(kind: string, trigger: () => Promise<void>): Promise<void> {
      await stopAgent(a);
      a = startAgent('a', { FLOCKER_AGENT_CRASH_AFTER: `${kind}:1` });
      await trigger();
      const exit = await Promise.race([a.exited, new Promise<null>((r) => setTimeout(() => r(null), 30_000))]);
      if (exit === null) throw new Error(`agent did not crash after ${kind}\n${logs()}`);
      expect(exit.signal).toBe('SIGKILL');
      a = startAgent('a');
    }

    // Crashes on the way up: each dataset still ends mounted on a, with one volume, and keeps data written afterwards.
    const onA: Record<string, string> = {};
    for (const kind of ['create', 'attach', 'format', 'mount']) {
      let id = '';
      await crashAfter(kind, async () => {
        // A size no spare volume has (issue 23: the agent keeps spares of its default 64 MiB, and learns each size asked
        // for): only a made volume is formatted, and attached by an attach step (a spare is claimed attached).
        const size = kind === 'format' ? 96 * MiB : kind === 'attach' ? 80 * MiB : 64 * MiB;
        id = (await client.createDataset({ primary: uuidA, maximum_size: size, metadata: { name: kind } })).dataset_id;
      });
      const path = await waitMountedOn('a', id);
      writeFileSync(join(path, 'data.txt'), `dataset crashed after ${kind}\n`);
      onA[kind] = id;
      expect(await poolVolumes(id)).toHaveLength(1);
    }
    await expectNoDuplicates();

    // Crashes on the way out: the dataset still arrives on b with its data.
    for (const [kind, source] of [
      ['unmount', 'create'],
      ['detach', 'attach'],
    ] as const) {
      const id = onA[source]!;
      await crashAfter(kind, async () => {
        await client.updateDataset(id, { primary: uuidB });
      });
      const path = await waitMountedOn('b', id);
      expect(readFileSync(join(path, 'data.txt'), 'utf8')).toBe(`dataset crashed after ${source}\n`);
    }
    await expectNoDuplicates();

    // Crash right after growing: the volume keeps its new size, stays mounted, keeps its data.
    const grown = onA['mount']!;
    await crashAfter('resize', async () => {
      await client.updateDataset(grown, { maximum_size: 128 * MiB });
    });
    await waitFor('the grown volume', async () => (await poolVolumes(grown))[0]?.size === 128 * MiB);
    await waitMountedOn('a', grown);
    expect(readFileSync(join(mountPath('a', grown), 'data.txt'), 'utf8')).toBe('dataset crashed after mount\n');

    // Crash right after destroying: nothing comes back.
    const doomed = onA['format']!;
    const [doomedVolume] = await poolVolumes(doomed);
    await crashAfter('destroy', async () => {
      await client.deleteDataset(doomed);
    });
    await waitFor('the deleted dataset to leave the state', async () => (await stateOf(doomed)) === undefined);
    expect(existsSync(join(dir, 'pool', 'volumes', `${doomedVolume!.blockdeviceId}.img`))).toBe(false);

    // The survivor on a is untouched.
    expect(readFileSync(join(mountPath('a', onA['mount']!), 'data.txt'), 'utf8')).toBe('dataset crashed after mount\n');
    await expectNoDuplicates();
    // SIGTERM: finish, exit 0.
    a.proc.kill('SIGTERM');
    expect((await a.exited).code).toBe(0);
    await stopAgent(b);
  });

  it('moves a dataset away from a node declared dead, with its data and attributes', async () => {
    // A control service that declares a node dead after 3 s of silence; agents report every second.
    ({ client } = await bed.replaceControl('control2', 3));
    writeAgentConfig('a', 1);
    writeAgentConfig('b', 1);
    const a = startAgent('a');
    startAgent('b');
    await waitNodesKnown(['a', 'b']);
    const id = (
      await client.createDataset({ primary: nodeUuid('a'), maximum_size: 64 * MiB, metadata: { name: 'survivor' } })
    ).dataset_id;
    const onA = await waitMountedOn('a', id);
    writeFileSync(join(onA, 'precious.txt'), 'still here\n');
    execFileSync('sync', ['-f', join(onA, 'precious.txt')]);

    // The node freezes: its agent dies and its mount stays behind, as on a hung host.
    a.proc.kill('SIGKILL');
    await a.exited;
    await waitFor(
      'node a to be declared dead',
      async () => !(await client.listNodes()).some((n) => n.uuid === nodeUuid('a')),
    );
    await client.updateDataset(id, { primary: nodeUuid('b') });
    const onB = await waitMountedOn('b', id);
    expect(readFileSync(join(onB, 'precious.txt'), 'utf8')).toBe('still here\n');
    const config = (await client.listDatasets()).find((d) => d.dataset_id === id);
    expect(config).toMatchObject({ maximum_size: 64 * MiB, metadata: { name: 'survivor' }, primary: nodeUuid('b') });
    expect(await poolVolumes(id)).toHaveLength(1);
  });

  it('exits with code 2 and names the field when the configuration is wrong', async () => {
    const bad = join(dir, 'bad.yml');
    writeFileSync(bad, 'version: 1\ncontrol-service: {hostname: 127.0.0.1, port: "x"}\ndataset: {backend: aws}\n');
    const out = await new Promise<{ code: number | null; stderr: string }>((res) => {
      const p = spawn(process.execPath, [AGENT_MAIN, '--config', bad], { stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      p.on('exit', (code) => res({ code, stderr }));
    });
    expect(out.code).toBe(2);
    expect(out.stderr).toContain('control-service.port');
  });
});

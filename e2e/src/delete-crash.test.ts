/**
 * End to end (review of 03016a2): a deletion's worker starts on the configuration change itself (no full look first).
 * Real agents on the loopback backend: an agent killed (SIGKILL) right after the deletion's unmount, or right after
 * its destroy, converges once restarted (the backing file gone, nothing mounted, no loop device left, the state without
 * the dataset); and a dataset deleted and re-created under the same name at once, round after round, leaves the new
 * one mounted with one volume and the old ones destroyed.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { DatasetState, FlockerClient } from '@flocker/api';
import { LoopbackDriver } from '@flocker/storage-drivers';
import { LocalAgentBed, mountsUnder, type AgentProc } from './localAgents';

jest.setTimeout(180_000);

const MiB = 1024 * 1024;

let bed: LocalAgentBed;
let dir: string;
let client: FlockerClient;

beforeEach(async () => {
  bed = await LocalAgentBed.start('flocker-delete-crash-');
  ({ dir, client } = bed);
});

afterEach(() => bed.close());

function waitFor<T>(what: string, probe: () => Promise<T | undefined | false> | T | undefined | false): Promise<T> {
  return bed.waitFor(what, probe, 30_000);
}

async function stateOf(datasetId: string): Promise<DatasetState | undefined> {
  return (await client.listDatasetState()).find((s) => s.dataset_id === datasetId);
}

async function poolVolumes(datasetId?: string) {
  const all = await new LoopbackDriver({ rootPath: join(dir, 'pool'), instanceId: 'e2e-observer' }).listVolumes();
  return datasetId === undefined ? all : all.filter((v) => v.datasetId === datasetId);
}

function loopsOf(blockdeviceId: string): string[] {
  const out = execFileSync('losetup', ['-j', join(dir, 'pool', 'volumes', `${blockdeviceId}.img`)], {
    encoding: 'utf8',
  });
  return out.split('\n').filter((l) => l.trim().length > 0);
}

async function waitMounted(datasetId: string): Promise<string> {
  const uuid = bed.nodeUuid('a');
  const path = join(dir, 'a', 'mnt', datasetId);
  await waitFor(`${datasetId} mounted`, async () => {
    const s = await stateOf(datasetId);
    return s?.primary === uuid && s.path === path;
  });
  return path;
}

async function waitGone(datasetId: string, blockdeviceId: string): Promise<void> {
  await waitFor('the backing file to be gone', () => !existsSync(join(dir, 'pool', 'volumes', `${blockdeviceId}.img`)));
  await waitFor('the state to drop the dataset', async () => (await stateOf(datasetId)) === undefined);
  expect(mountsUnder(dir).filter((m) => m.mountPoint.endsWith(datasetId))).toEqual([]);
  expect(loopsOf(blockdeviceId)).toEqual([]);
}

describe('a deletion started on the change itself, on real agents', () => {
  for (const kind of ['unmount', 'destroy']) {
    it(`an agent killed right after the deletion's ${kind}, restarted: the deletion completes`, async () => {
      let a: AgentProc = bed.startAgent('a');
      await waitFor('node a to report', async () =>
        (await client.listNodes()).some(
          (n) => existsSync(join(dir, 'a', 'state', 'node.json')) && n.uuid === bed.nodeUuid('a'),
        ),
      );
      const { dataset_id: id } = await client.createDataset({
        primary: bed.nodeUuid('a'),
        maximum_size: 64 * MiB,
        metadata: { name: 'doomed' },
      });
      writeFileSync(join(await waitMounted(id), 'data.txt'), 'x\n');
      const [volume] = await poolVolumes(id);
      // The agent restarted with the crash hook; it looks once at start, then the deletion comes as a change.
      a.proc.kill('SIGTERM');
      await a.exited;
      a = bed.startAgent('a', { FLOCKER_AGENT_CRASH_AFTER: `${kind}:1` });
      // Its first report, not a fixed wait: the dataset shows mounted at once (the killed process's report), and
      // the new process may not even have started yet (1-6 s under load). Its look at start comes before that report
      // (a liveness-only report goes first only if the look outlasts a self-fencing heartbeat: seconds, not here).
      await bed.reported(a);
      await waitMounted(id);
      await client.deleteDataset(id);
      const exit = await Promise.race([a.exited, new Promise<null>((r) => setTimeout(() => r(null), 30_000))]);
      if (exit === null) throw new Error(`agent did not crash after ${kind}\n${bed.logs()}`);
      expect(exit.signal).toBe('SIGKILL');
      bed.startAgent('a');
      await waitGone(id, volume!.blockdeviceId);
      expect(await poolVolumes()).toEqual([]);
    });
  }

  it('deleted and re-created under the same name at once, 5 rounds: the newest mounted, one volume, the others gone', async () => {
    bed.startAgent('a');
    await waitFor('node a to report', async () =>
      (await client.listNodes()).some(
        (n) => existsSync(join(dir, 'a', 'state', 'node.json')) && n.uuid === bed.nodeUuid('a'),
      ),
    );
    const primary = bed.nodeUuid('a');
    let current = (await client.createDataset({ primary, maximum_size: 64 * MiB, metadata: { name: 'same' } }))
      .dataset_id;
    await waitMounted(current);
    const old: string[] = [];
    for (let round = 0; round < 5; round++) {
      await client.deleteDataset(current);
      old.push(current);
      current = (await client.createDataset({ primary, maximum_size: 64 * MiB, metadata: { name: 'same' } }))
        .dataset_id;
      if (round % 2 === 1) await waitMounted(current);
    }
    const path = await waitMounted(current);
    await waitFor('the old volumes to be gone', async () => (await poolVolumes()).length === 1);
    expect((await poolVolumes()).map((v) => v.datasetId)).toEqual([current]);
    for (const id of old) expect(await stateOf(id)).toBeUndefined();
    expect(mountsUnder(dir).map((m) => m.mountPoint)).toEqual([path]);
  });
});

/**
 * End to end on the XtremIO backend (issue 25): two real dataset agents (spawned processes, the
 * LocalAgentBed of localAgents.ts) as two hosts, each with its own initiator IQN, by-id directory
 * and iscsiadm stand-in, against the XtremIO simulator process. A dataset is created, mounted,
 * written on a, moved to b (unmap from a's initiator group, map to b's, the stand-in's "rescan"
 * gives b a loop device behind wwn-0x<naa>), read on b, and deleted (the array's volume goes). The array's
 * refusal of the first creates shows in the node's state with the array's own message.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type DatasetState } from '@flocker/api';
import { XtremioDriver } from '@flocker/storage-drivers';
import { startSimulatedArray, type SimulatedArray } from '@flocker/storage-drivers/testing';
import { LocalAgentBed } from './localAgents';

jest.setTimeout(180_000);

const MiB = 1024 * 1024;

let bed: LocalAgentBed;
let array: SimulatedArray;

beforeAll(async () => {
  bed = await LocalAgentBed.start('flocker-e2e-xio-');
  array = await startSimulatedArray('e2e');
});

afterAll(async () => {
  await bed.close();
  await array.cleanup();
});

/** agent.yml of one host: the XtremIO section (JSON is YAML) and the node's own paths. */
async function writeConfig(name: string): Promise<void> {
  const dataset = await array.host(name);
  const node = join(bed.dir, name);
  writeFileSync(
    bed.configPath(name),
    [
      'version: 1',
      `control-service: {hostname: 127.0.0.1, port: ${bed.control.port}}`,
      `dataset: ${JSON.stringify(dataset)}`,
      `node: {state_dir: ${join(node, 'state')}, mount_root: ${join(node, 'mnt')}, era_file: ${join(node, 'era')}}`,
      'agent: {resync_interval_seconds: 1, default_dataset_size: 67108864, backoff_initial_seconds: 0.2, backoff_max_seconds: 2}',
      '',
    ].join('\n'),
  );
}

async function stateOf(datasetId: string): Promise<DatasetState | undefined> {
  return (await bed.client.listDatasetState()).find((s) => s.dataset_id === datasetId);
}

async function waitMountedOn(name: string, datasetId: string): Promise<string> {
  const uuid = bed.nodeUuid(name);
  const path = join(bed.dir, name, 'mnt', datasetId);
  await bed.waitFor(
    `${datasetId} mounted on ${name}`,
    async () => {
      const s = await stateOf(datasetId);
      return s?.primary === uuid && s.path === path;
    },
    60_000,
  );
  return path;
}

describe('dataset agents on XtremIO (simulator)', () => {
  it('creates a dataset on one host (the array refusals shown in the node state until it succeeds), moves it with its data to another, and destroys its volume on delete', async () => {
    await writeConfig('a');
    await writeConfig('b');
    bed.startAgent('a');
    bed.startAgent('b');
    await bed.waitFor('nodes to report', async () => {
      const known = new Set((await bed.client.listNodes()).map((n) => n.uuid));
      return ['a', 'b'].every((n) => existsSync(join(bed.dir, n, 'state', 'node.json')) && known.has(bed.nodeUuid(n)));
    });
    const observer = new XtremioDriver(await array.host('observer'));
    const volumesOf = async (id: string) => (await observer.listVolumes()).filter((v) => v.datasetId === id);

    // The array refuses the first creates: its message shows in the node's state, then the agent's retry succeeds.
    await array.fault({ op: 'POST volumes', kind: 'error', message: 'too_many_objs', times: 2 });
    const id = (
      await bed.client.createDataset({ primary: bed.nodeUuid('a'), maximum_size: 64 * MiB, metadata: { name: 'xio' } })
    ).dataset_id;
    const error = await bed.waitFor('the array message in the node state', async () => {
      const cluster = await bed.client.waitForCluster(undefined, 0);
      return cluster.nodes.find((n) => n.uuid === bed.nodeUuid('a'))?.errors.find((e) => e.dataset_id === id);
    });
    expect(error.message).toMatch(/XtremIO answered HTTP 400: too_many_objs/);
    const onA = await waitMountedOn('a', id);
    writeFileSync(join(onA, 'hello.txt'), 'written on a\n');
    execFileSync('sync', ['-f', join(onA, 'hello.txt')]);
    const [volume] = await volumesOf(id);
    expect(volume?.attachedTo).toBe('iqn.1993-08.org.debian:01:a');

    await bed.client.updateDataset(id, { primary: bed.nodeUuid('b') });
    const onB = await waitMountedOn('b', id);
    expect(readFileSync(join(onB, 'hello.txt'), 'utf8')).toBe('written on a\n');
    expect((await volumesOf(id)).map((v) => v.attachedTo)).toEqual(['iqn.1993-08.org.debian:01:b']);

    await bed.client.deleteDataset(id);
    await bed.waitFor(
      'the volume to be destroyed on the array',
      async () => (await volumesOf(id)).length === 0,
      60_000,
    );
    await observer.close();
  });
});

/**
 * End to end (issue 17 #2, #3): real dataset agents on the loopback backend.
 * An agent whose valid agent.yml names the wrong (empty) pool refuses to start
 * instead of creating empty volumes for existing datasets; one corrupt volume
 * record is an error on its dataset while everything else goes on.
 */
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FlockerClient } from '@flocker/api';
import { LoopbackDriver } from '@flocker/storage-drivers';
import { LocalAgentBed, mountsUnder, type AgentProc } from './localAgents';

jest.setTimeout(180_000);

const MiB = 1024 * 1024;

let bed: LocalAgentBed;
let dir: string;
let client: FlockerClient;

/** Agent `name` on the pool `<dir>/<pool>`, resyncing every second. */
function startAgent(name: string, pool: string): AgentProc {
  bed.writeAgentConfig(name, { pool, resyncSeconds: 1, backoffMaxSeconds: 1 });
  return bed.startAgent(name);
}

const nodeUuid = (name: string): string => bed.nodeUuid(name);

function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 30_000,
): Promise<T> {
  return bed.waitFor(what, probe, timeoutMs, 50);
}

async function waitMountedOn(name: string, datasetId: string): Promise<string> {
  const path = join(dir, name, 'mnt', datasetId);
  await waitFor(`${datasetId} mounted on ${name}`, async () =>
    (await client.listDatasetState()).some((s) => s.dataset_id === datasetId && s.path === path),
  );
  return path;
}

beforeEach(async () => {
  bed = await LocalAgentBed.start('flocker-pool-safety-e2e-');
  ({ dir, client } = bed);
});

// Every agent, mount and loop device of both pools, then the directory.
afterEach(() => bed.close());

describe('pool safety with real agents (issue 17)', () => {
  it('an agent on the wrong, empty pool refuses to start; a corrupt record is an error on its dataset while the rest goes on', async () => {
    startAgent('a', 'pool');
    startAgent('b', 'pool');
    await waitFor('nodes a and b', async () => {
      const known = new Set((await client.listNodes()).map((n) => n.uuid));
      return ['a', 'b'].every((n) => existsSync(join(dir, n, 'state', 'node.json')) && known.has(nodeUuid(n)));
    });
    const d1 = (
      await client.createDataset({ primary: nodeUuid('a'), maximum_size: 64 * MiB, metadata: { name: 'precious' } })
    ).dataset_id;
    const onA = await waitMountedOn('a', d1);
    writeFileSync(join(onA, 'data.txt'), 'still here\n');
    expect(JSON.parse(readFileSync(join(dir, 'pool', 'pool.json'), 'utf8'))).toMatchObject({
      version: 1,
      cluster_id: null,
    });

    // Host C: a valid agent.yml whose root_path names an empty pool.
    const c = startAgent('c', 'empty-pool');
    const exit = await c.exited;
    expect(exit.code).toBe(2);
    expect(readFileSync(join(dir, 'c.log'), 'utf8')).toMatch(/empty-pool is not initialised.*POOL_MISSING_VOLUMES/s);
    expect(existsSync(join(dir, 'empty-pool', 'pool.json'))).toBe(false);
    expect(
      existsSync(join(dir, 'empty-pool', 'volumes')) ? readdirSync(join(dir, 'empty-pool', 'volumes')) : [],
    ).toEqual([]);

    // echo '{"truncated' > pool/volumes/<id>.json
    const [volume] = (
      await new LoopbackDriver({ rootPath: join(dir, 'pool'), instanceId: 'e2e-observer' }).listVolumes()
    ).filter((v) => v.datasetId === d1);
    const record = join(dir, 'pool', 'volumes', `${volume!.blockdeviceId}.json`);
    const good = readFileSync(record, 'utf8');
    writeFileSync(record, '{"truncated\n');
    // Reported as an error on that dataset...
    await waitFor('CORRUPT_RECORD reported on the dataset', async () =>
      (await client.waitForCluster(undefined, 0)).nodes.some((n) =>
        n.errors.some((e) => e.code === 'CORRUPT_RECORD' && e.dataset_id === d1),
      ),
    );
    // ...while everything else goes on: a new dataset converges on b, both nodes stay alive.
    const d2 = (
      await client.createDataset({ primary: nodeUuid('b'), maximum_size: 64 * MiB, metadata: { name: 'other' } })
    ).dataset_id;
    await waitMountedOn('b', d2);
    expect((await client.listNodes()).map((n) => n.uuid).sort()).toEqual([nodeUuid('a'), nodeUuid('b')].sort());
    // No second volume for d1, and its mount (and data) stay where they were.
    expect(readdirSync(join(dir, 'pool', 'volumes')).filter((f) => f.endsWith('.json'))).toHaveLength(2);
    expect(readFileSync(join(onA, 'data.txt'), 'utf8')).toBe('still here\n');
    expect(mountsUnder(dir).filter((m) => m.mountPoint === onA)).toHaveLength(1);

    // Repaired: the error goes.
    writeFileSync(record, good);
    await waitFor('no error left', async () =>
      (await client.waitForCluster(undefined, 0)).nodes.every((n) => n.errors.length === 0),
    );
  });
});

/**
 * Issue 17 #9: a volume name re-used after its dataset was deleted under a running
 * container. Docker sends no Unmount for a volume deleted under it, so the old dataset's
 * mount ID stays in the registry; the new volume of the same name must not have its
 * Unmounts filed against the old dataset (its lease would be kept forever and
 * `docker volume rm` refused). Against a real control service (in-process) with a fake
 * agent and a fake dockerd.
 */
import * as path from 'node:path';
import type { FlockerClient } from '@flocker/api';
import type { DockerContainer } from './DockerView';
import { type FlockerVolumeBackend, unmountTarget } from './FlockerVolumeBackend';
import { MountRegistry } from './MountRegistry';
import { BackendTestBed, HOST_A, NODE_A } from './testing';

const WINDOW = 60_000;

describe('a volume name re-used after its dataset was deleted under a container (issue 17 #9)', () => {
  let bed: BackendTestBed;
  let client: FlockerClient;
  let dir: string;
  let skew = 0;
  const now = () => Date.now() + skew;

  const backend = (): Promise<FlockerVolumeBackend> =>
    bed.backend(NODE_A, { registryFile: path.join(dir, 'plugin-mounts.json'), mountSafetyWindowMs: WINDOW, now });

  const registryOf = (b: FlockerVolumeBackend): MountRegistry => b['registry'];
  const live = async (name: string) =>
    (await client.listDatasets()).find((d) => d.metadata.name === name && !d.deleted)!;
  const running = (id: string, name: string): DockerContainer => ({
    id,
    state: 'running',
    createdMs: now() - 3_600_000,
    mounts: [{ type: 'volume', name, driver: 'flocker', source: '' }],
  });

  /**
   * `docker run -d --name c -v r1:/data …; flocker leases release r1; flocker volumes destroy r1 --no-wait; docker rm -f c`
   * (no Unmount: Docker does not send one for a volume deleted under it). Returns the old dataset's id.
   */
  async function deletedUnderContainer(b: FlockerVolumeBackend): Promise<string> {
    await b.create({ Name: 'r1' });
    await b.mount({ Name: 'r1', ID: 'c-copy-up' });
    await b.unmount({ Name: 'r1', ID: 'c-copy-up' });
    await b.mount({ Name: 'r1', ID: 'c' });
    const old = (await live('r1')).dataset_id;
    await client.releaseLease(old);
    await client.deleteDataset(old);
    // Seconds pass before the next docker run: the plugin's long-poll has the deletion by then.
    await b.watcher.waitFor(
      (s) => (s.datasets.some((d) => d.dataset_id === old && d.deleted) ? true : undefined),
      5_000,
    );
    return old;
  }

  /** `docker run --rm -v r1:/data … true`: Get, Create, copy-up Mount/Unmount, Mount, Unmount at exit. */
  async function runOnce(b: FlockerVolumeBackend, tag: string): Promise<void> {
    await b.get({ Name: 'r1' }).catch(() => undefined);
    await b.create({ Name: 'r1' });
    await b.mount({ Name: 'r1', ID: `${tag}-copy-up` });
    await b.unmount({ Name: 'r1', ID: `${tag}-copy-up` });
    await b.mount({ Name: 'r1', ID: tag });
    await b.unmount({ Name: 'r1', ID: tag });
    await b.settled();
  }

  beforeEach(async () => {
    skew = 0;
    bed = await BackendTestBed.start('flocker-reused-name-', [HOST_A]);
    ({ client, dir } = bed);
  });

  afterEach(() => bed.close());

  it('the new volume of the same name is let go at its last Unmount, and docker volume rm removes it', async () => {
    const b = await backend();
    const old = await deletedUnderContainer(b);
    await runOnce(b, 'run');
    const fresh = await live('r1');
    expect(fresh.dataset_id).not.toBe(old);
    expect(await client.listLeases()).toEqual([]);
    await expect(b.remove({ Name: 'r1' })).resolves.toBeUndefined();
    expect((await client.listDatasets()).filter((d) => d.metadata.name === 'r1' && !d.deleted)).toEqual([]);
  });

  it('the entry of the deleted dataset is dropped once the snapshot shows it deleted (and on disk)', async () => {
    const b = await backend();
    await deletedUnderContainer(b);
    await b.settled();
    expect(registryOf(b).entries()).toEqual([]);
    expect(MountRegistry.read(path.join(dir, 'plugin-mounts.json')).latest?.volumes).toEqual({});
  });

  it('the reconcile with Docker drops an entry of a deleted dataset even while a container uses the name', async () => {
    const b = await backend();
    const old = await deletedUnderContainer(b);
    // The new r1 is in use by a running container.
    await b.create({ Name: 'r1' });
    await b.mount({ Name: 'r1', ID: 'web' });
    const fresh = (await live('r1')).dataset_id;
    await b.settled();
    // An entry of the deleted dataset no snapshot has been checked against yet (say, loaded or
    // written just before the deletion was seen); all IDs get past the safety window.
    await registryOf(b).add(old, 'r1', 'c');
    skew += WINDOW + 1_000;
    const outcomes = await b.reconcileWithDocker([running('web', 'r1')], 'flocker');
    expect(outcomes).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ datasetId: old, result: 'dropped' }),
        expect.objectContaining({ datasetId: fresh, result: 'kept' }),
      ]),
    );
    expect(registryOf(b).entries()).toEqual([{ datasetId: fresh, name: 'r1', ids: ['web'] }]);
    // The container exits: its Unmount lets the new volume go.
    await b.unmount({ Name: 'r1', ID: 'web' });
    await b.settled();
    expect(await client.listLeases()).toEqual([]);
    await expect(b.remove({ Name: 'r1' })).resolves.toBeUndefined();
  });
});

describe('unmountTarget: which dataset an Unmount by name is for', () => {
  const OLD = '11111111-1111-4111-8111-111111111111';
  const NEW = '22222222-2222-4222-8222-222222222222';
  const OTHER = '33333333-3333-4333-8333-333333333333';
  const entries = [
    { datasetId: OLD, name: 'r1', ids: ['c', 'shared'] },
    { datasetId: NEW, name: 'r1', ids: ['run', 'shared'] },
    { datasetId: OTHER, name: 'r2', ids: ['x'] },
  ];

  it("the new volume's Unmount goes to the current dataset, though a stale entry of the name comes first", () => {
    expect(unmountTarget(entries, 'r1', 'run', NEW)).toBe(NEW);
    expect(unmountTarget(entries, 'r1', 'shared', NEW)).toBe(NEW);
  });

  it("a late Unmount of the old volume's container goes to the old entry", () => {
    expect(unmountTarget(entries, 'r1', 'c', NEW)).toBe(OLD);
    expect(unmountTarget(entries, 'r1', 'c', undefined)).toBe(OLD);
  });

  it('an unknown ID goes to the current dataset (its lease is let go if nothing holds it), else nowhere', () => {
    expect(unmountTarget(entries, 'r1', 'unknown', NEW)).toBe(NEW);
    expect(unmountTarget(entries, 'r1', 'unknown', undefined)).toBeUndefined();
    // Another volume's entry holding the ID is not this name's.
    expect(unmountTarget(entries, 'r1', 'x', undefined)).toBeUndefined();
  });
});

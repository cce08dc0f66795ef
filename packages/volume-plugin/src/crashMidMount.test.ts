/**
 * Review T5 (session 19), finding F9: the plugin killed -9 during a Mount, after the lease was taken and before the
 * Mount was recorded, left the lease held by `docker` on this node with no registry entry explaining it; neither the
 * start reconcile nor the Docker reconcile (both iterate the registry) ever let it go. Now the Mount's ID is recorded
 * as pending before anything of the Mount's effects, so a restart sees it. Real control service (in-process), fake
 * agent, a client that "dies" at a chosen call (the disk image of that instant is what the restarted plugin loads).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { FlockerClient } from '@flocker/api';
import type { DockerContainer } from './DockerView';
import type { ControlClient, FlockerVolumeBackend } from './FlockerVolumeBackend';
import { MountRegistry } from './MountRegistry';
import { HOST_A, NODE_A } from './testing';
import { useClockedBed } from './testing/clockedBed';

const WINDOW = 60_000;

/**
 * A client that dies (every later call fails, nothing more reaches the control service) at the armed call: before
 * sending it ('before') or right after its answer ('after'); `image()` runs at that instant (copy the registry).
 */
function dyingClient(real: FlockerClient, image: () => void) {
  let dead = false;
  let armed: { call: 'acquireLease'; when: 'before' | 'after' } | undefined;
  const die = (): never => {
    image();
    dead = true;
    throw new Error('killed -9');
  };
  const alive =
    <A extends unknown[], R>(f: (...a: A) => Promise<R>) =>
    async (...a: A): Promise<R> => {
      if (dead) throw new Error('killed -9');
      return f(...a);
    };
  const client: ControlClient = {
    createDataset: alive((...a: Parameters<FlockerClient['createDataset']>) => real.createDataset(...a)),
    updateDataset: alive((...a: Parameters<FlockerClient['updateDataset']>) => real.updateDataset(...a)),
    deleteDataset: alive((...a: Parameters<FlockerClient['deleteDataset']>) => real.deleteDataset(...a)),
    releaseLease: alive((...a: Parameters<FlockerClient['releaseLease']>) => real.releaseLease(...a)),
    waitForCluster: alive((...a: Parameters<FlockerClient['waitForCluster']>) => real.waitForCluster(...a)),
    acquireLease: alive(async (...a: Parameters<FlockerClient['acquireLease']>) => {
      if (armed?.when === 'before') die();
      const lease = await real.acquireLease(...a);
      if (armed?.when === 'after') die();
      return lease;
    }),
  };
  return { client, arm: (when: 'before' | 'after') => (armed = { call: 'acquireLease', when }) };
}

describe('the plugin killed during a Mount converges at its restart', () => {
  const t = useClockedBed('plugin-crash-mid-mount-', [HOST_A], NODE_A, WINDOW);
  const container = (state: string, name = 'vol1'): DockerContainer => ({
    id: 'c1',
    state,
    createdMs: t.now() - 3_600_000,
    mounts: [{ type: 'volume', name, driver: 'flocker', source: '' }],
  });
  const leases = async () => (await t.client.listLeases()).map((l) => ({ node: l.node_uuid, holders: l.holders }));

  /** A plugin whose client dies at the armed call; `restart()` starts a new plugin on the registry as it was then. */
  async function dyingPlugin(): Promise<{
    first: FlockerVolumeBackend;
    arm: (when: 'before' | 'after') => void;
    restart: () => Promise<FlockerVolumeBackend>;
  }> {
    const file = path.join(t.bed.dir, 'first', 'plugin-mounts.json');
    const image = path.join(t.bed.dir, 'image', 'plugin-mounts.json');
    const { client, arm } = dyingClient(t.client, () => {
      fs.mkdirSync(path.dirname(image), { recursive: true });
      MountRegistry.slots(file).forEach((slot, i) => {
        if (fs.existsSync(slot)) fs.copyFileSync(slot, MountRegistry.slots(image)[i]!);
      });
    });
    const opts = { mountSafetyWindowMs: WINDOW, now: t.now };
    const first = await t.bed.backend(NODE_A, { ...opts, client, registryFile: file });
    return { first, arm, restart: () => t.bed.backend(NODE_A, { ...opts, registryFile: image }) };
  }

  it('killed right after the lease was taken: no container uses the volume, the lease goes at the restart', async () => {
    const { first, arm, restart } = await dyingPlugin();
    await first.create({ Name: 'vol1' });
    arm('after');
    await expect(first.mount({ Name: 'vol1', ID: 'm1' })).rejects.toThrow('killed -9');
    expect(await leases()).toEqual([{ node: NODE_A, holders: ['docker'] }]);
    const second = await restart();
    // The Mount was never answered: no container got the volume from it. Before the fix the registry showed nothing
    // and the lease stayed for good (the Docker reconcile below did not release it either).
    expect(await leases()).toEqual([]);
    expect(second['registry'].entries()).toEqual([]);
    t.skew += WINDOW + 1_000;
    expect(await second.reconcileWithDocker([], 'flocker')).toEqual([]);
    expect(await leases()).toEqual([]);
  });

  it('killed before its lease request went out: no lease is taken at the restart', async () => {
    const { first, arm, restart } = await dyingPlugin();
    await first.create({ Name: 'vol1' });
    arm('before');
    await expect(first.mount({ Name: 'vol1', ID: 'm1' })).rejects.toThrow('killed -9');
    const second = await restart();
    expect(await leases()).toEqual([]);
    expect(second['registry'].entries()).toEqual([]);
  });

  it('killed during the Mount of a second container while the first runs: the lease stays for the running one', async () => {
    const { first, arm, restart } = await dyingPlugin();
    await first.create({ Name: 'vol1' });
    await first.mount({ Name: 'vol1', ID: 'm1' });
    const datasetId = first['registry'].entries()[0]!.datasetId;
    // The agent stops showing the volume mounted (a failing remount, say): the next Mount waits under the lease.
    t.bed.agents[0]!.failing.set(datasetId, 'stuck');
    await t.bed.agents[0]!.poke();
    await first.watcher.waitFor((s) => (s.nodes[0]?.manifestations.length === 0 ? true : undefined), 5_000);
    arm('after');
    await expect(first.mount({ Name: 'vol1', ID: 'm2' })).rejects.toThrow('killed -9');
    t.bed.agents[0]!.failing.delete(datasetId);
    await t.bed.agents[0]!.poke();
    const second = await restart();
    expect(second['registry'].entries()).toEqual([{ datasetId, name: 'vol1', ids: ['m1'] }]);
    expect(await leases()).toEqual([{ node: NODE_A, holders: ['docker'] }]);
    t.skew += WINDOW + 1_000;
    expect(await second.reconcileWithDocker([container('running')], 'flocker')).toEqual([
      expect.objectContaining({ volume: 'vol1', result: 'kept', detail: 'in use by c1' }),
    ]);
    expect(await leases()).toEqual([{ node: NODE_A, holders: ['docker'] }]);
    // Its container stops: Docker's Unmount lets the volume go as usual.
    await second.unmount({ Name: 'vol1', ID: 'm1' });
    await second.settled();
    expect(await leases()).toEqual([]);
  });

  it("Docker's retry of the cut Mount in the restarted plugin gets the volume and keeps its lease", async () => {
    const { first, arm, restart } = await dyingPlugin();
    await first.create({ Name: 'vol1' });
    arm('after');
    await expect(first.mount({ Name: 'vol1', ID: 'm1' })).rejects.toThrow('killed -9');
    const second = await restart();
    const { Mountpoint } = await second.mount({ Name: 'vol1', ID: 'm1' });
    expect(Mountpoint).toMatch(/^\/flocker-a\//);
    expect(await leases()).toEqual([{ node: NODE_A, holders: ['docker'] }]);
    // This process's own answered Mount: kept while its container is created/running.
    expect(await second.reconcileWithDocker([container('running')], 'flocker')).toEqual([
      expect.objectContaining({ volume: 'vol1', result: 'kept' }),
    ]);
    expect(await leases()).toEqual([{ node: NODE_A, holders: ['docker'] }]);
  });

  it('a docker lease of this node no entry explains (left by a plugin from before the fix): the Docker reconcile releases it once no container uses the volume', async () => {
    const b = await t.backend();
    for (const name of ['vol1', 'vol2', 'vol3']) await b.create({ Name: name });
    const idOf = async (name: string) =>
      (await t.client.listDatasets()).find((d) => d.metadata.name === name)!.dataset_id;
    const [id1, id2, id3] = [await idOf('vol1'), await idOf('vol2'), await idOf('vol3')];
    await t.client.acquireLease({ dataset_id: id1, node_uuid: NODE_A, expires: null, holder: 'docker' });
    await t.client.acquireLease({ dataset_id: id2, node_uuid: NODE_A, expires: null, holder: 'docker' });
    // Taken by hand (no holder named): never the plugin's to release.
    await t.client.acquireLease({ dataset_id: id3, node_uuid: NODE_A, expires: null });
    await b.watcher.waitFor((s) => (s.leases.length === 3 ? true : undefined), 5_000);
    expect(await b.reconcileWithDocker([container('running', 'vol2')], 'flocker')).toEqual([
      expect.objectContaining({ volume: 'vol1', result: 'released' }),
      expect.objectContaining({ volume: 'vol2', result: 'kept', detail: 'in use by c1' }),
    ]);
    const left = (await t.client.listLeases()).map((l) => [l.dataset_id, l.holders ?? 'unnamed']);
    expect(left.sort()).toEqual(
      [
        [id2, ['docker']],
        [id3, 'unnamed'],
      ].sort(),
    );
    expect(b['registry'].entries()).toEqual([]);
  });

  it('a Mount that fails in the process leaves no mount ID behind', async () => {
    const b = await t.backend();
    await b.create({ Name: 'vol1' });
    const datasetId = (await t.client.listDatasets())[0]!.dataset_id;
    t.bed.agents[0]!.failing.set(datasetId, 'stuck');
    await t.bed.agents[0]!.poke();
    const quick = await t.bed.backend(NODE_A, {
      mountSafetyWindowMs: WINDOW,
      now: t.now,
      mountTimeoutMs: 300,
      registryFile: path.join(t.bed.dir, 'quick', 'plugin-mounts.json'),
    });
    await expect(quick.mount({ Name: 'vol1', ID: 'm1' })).rejects.toThrow(/Timed out/);
    expect(quick['registry'].entries()).toEqual([]);
    expect(await leases()).toEqual([]);
  });
});

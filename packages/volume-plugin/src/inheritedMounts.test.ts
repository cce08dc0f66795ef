/**
 * Review F (session 17), finding 2: the plugin SIGKILLed while a container used a volume; the container then exited
 * (Docker's Unmount went nowhere) and the plugin was started again. Its start reconcile kept the lease for the
 * 60 s mount-safety window (a young mount ID counts as in use), so another host was refused for about a minute.
 * A mount ID recorded by the previous plugin process was answered before this process started: the window's race
 * (a container between its Mount's answer and "running") applies to it only while some stopped container mounting
 * the volume has not finished since that Mount. Real control service (in-process), fake agents, a test clock.
 */
import { inheritedSettled } from './DockerReconciler';
import type { DockerContainer } from './DockerView';
import { finishedMsOf } from './DockerView';
import type { FlockerVolumeBackend } from './FlockerVolumeBackend';
import { HOST_A, NODE_A } from './testing';
import { useClockedBed } from './testing/clockedBed';

const WINDOW = 60_000;

describe('inheritedSettled', () => {
  it('settled only when every stopped container mounting the volume finished after the newest inherited Mount', () => {
    expect(inheritedSettled([1_000], [])).toBe(true);
    expect(inheritedSettled([1_000, 2_000], [{ finishedMs: 2_000 }, { finishedMs: 5_000 }])).toBe(true);
    // One finished before a Mount: it may be mid-start for that Mount (docker start of an exited container).
    expect(inheritedSettled([1_000, 2_000], [{ finishedMs: 1_500 }])).toBe(false);
    // Never ran ("created", any age) or unknown: may be mid-start.
    expect(inheritedSettled([1_000], [{ finishedMs: 0 }])).toBe(false);
    expect(inheritedSettled([1_000], [{ finishedMs: undefined }])).toBe(false);
    // No inherited IDs: nothing to settle.
    expect(inheritedSettled([], [])).toBe(false);
  });

  it('reads Docker’s FinishedAt, its zero time as never ran', () => {
    expect(finishedMsOf('0001-01-01T00:00:00Z')).toBe(0);
    expect(finishedMsOf('2026-12-06T01:21:05.123456789Z')).toBe(Date.parse('2026-12-06T01:21:05.123Z'));
    expect(finishedMsOf('not a time')).toBeUndefined();
  });
});

describe('a plugin restarted after a crash decides the previous process’s mount IDs by Docker’s list', () => {
  const t = useClockedBed('plugin-inherited-', [HOST_A], NODE_A, WINDOW);
  const { now, backend } = t;
  const writer = (state: string, createdMs = now() - 3_600_000): DockerContainer => ({
    id: 'writer',
    state,
    createdMs,
    mounts: [{ type: 'volume', name: 'vol1', driver: 'flocker', source: '' }],
  });
  const finished = (ms: number | undefined) => async (): Promise<number | undefined> => ms;

  /** vol1 mounted (m1) by a plugin that is then gone (kill -9: nothing but the registry file survives); started again. */
  async function crashedAndRestarted(): Promise<{ a: FlockerVolumeBackend; mountedAt: number }> {
    const first = await backend();
    await first.create({ Name: 'vol1' });
    await first.mount({ Name: 'vol1', ID: 'm1' });
    const mountedAt = first['registry'].mountedAt((await t.client.listDatasets())[0]!.dataset_id).get('m1')!;
    await first.close();
    t.skew += 2_000;
    return { a: await backend(), mountedAt };
  }

  const leases = async () => (await t.client.listLeases()).map((l) => l.node_uuid);

  it('released at start when the container that used it has exited since its Mount (within the window)', async () => {
    const { a, mountedAt } = await crashedAndRestarted();
    expect(await a.reconcileWithDocker([writer('exited')], 'flocker', [], finished(mountedAt + 1_000))).toEqual([
      expect.objectContaining({ volume: 'vol1', result: 'released' }),
    ]);
    expect(await leases()).toEqual([]);
    expect(a['registry'].entries()).toEqual([]);
  });

  it('released at start when no container mounts it any more (docker run --rm)', async () => {
    const { a } = await crashedAndRestarted();
    expect(await a.reconcileWithDocker([], 'flocker', [], finished(undefined))).toEqual([
      expect.objectContaining({ volume: 'vol1', result: 'released' }),
    ]);
    expect(await leases()).toEqual([]);
  });

  it('kept while a stopped container may be mid-start for that Mount: finished before it, never ran, or unknown', async () => {
    const { a, mountedAt } = await crashedAndRestarted();
    // docker start of an exited container: still "exited" while Docker finishes the start the old process answered.
    for (const [c, f] of [
      [writer('exited'), mountedAt - 10_000],
      [writer('created'), 0], // docker create long ago, docker start now
      [writer('exited'), undefined], // inspect failed
    ] as const) {
      expect(await a.reconcileWithDocker([c], 'flocker', [], finished(f))).toEqual([
        expect.objectContaining({ volume: 'vol1', result: 'kept', detail: 'young mount IDs m1' }),
      ]);
    }
    // Without a way to inspect: the window, as before.
    expect(await a.reconcileWithDocker([writer('exited')], 'flocker')).toEqual([
      expect.objectContaining({ result: 'kept', detail: 'young mount IDs m1' }),
    ]);
    expect(await leases()).toEqual([NODE_A]);
    // After the window the list decides, as before.
    t.skew += WINDOW;
    expect(await a.reconcileWithDocker([writer('exited')], 'flocker', [], finished(mountedAt - 10_000))).toEqual([
      expect.objectContaining({ result: 'released' }),
    ]);
  });

  it('kept while a container runs with it', async () => {
    const { a, mountedAt } = await crashedAndRestarted();
    expect(await a.reconcileWithDocker([writer('running')], 'flocker', [], finished(mountedAt + 1))).toEqual([
      expect.objectContaining({ result: 'kept', detail: 'in use by writer' }),
    ]);
    expect(await leases()).toEqual([NODE_A]);
  });

  it('a Mount this process answered keeps the window, even if Docker retries an inherited ID here', async () => {
    const { a, mountedAt } = await crashedAndRestarted();
    // Docker retries a Mount the old process recorded but never answered: now answered by this process.
    await a.mount({ Name: 'vol1', ID: 'm1' });
    await a.mount({ Name: 'vol1', ID: 'm2' });
    expect(await a.reconcileWithDocker([writer('exited')], 'flocker', [], finished(mountedAt + 60_000))).toEqual([
      expect.objectContaining({ result: 'kept', detail: 'young mount IDs m1, m2' }),
    ]);
    expect(await leases()).toEqual([NODE_A]);
  });
});

/**
 * Issue 16 in the plugin: mount IDs Docker never unmounts are reconciled with the
 * containers dockerd runs, and a Mount waits out a lease held by a dead host. Against a
 * real control service (in-process) with fake agents, a fake dockerd and a test clock.
 */
import * as path from 'node:path';
import { type ClusterSnapshot, type FlockerClient } from '@flocker/api';
import { DockerReconciler, driverNameOf } from './DockerReconciler';
import type { DockerContainer } from './DockerView';
import { type FlockerVolumeBackend, leaseVerdict, type ControlClient } from './FlockerVolumeBackend';
import { MountRegistry } from './MountRegistry';
import { BackendTestBed, FakeDocker, HOST_A, HOST_B, NODE_A, NODE_B, silentLogger as logger } from './testing';

const WINDOW = 60_000;

describe('plugin failover: reconcile with Docker, wait out a dead holder', () => {
  let bed: BackendTestBed;
  let client: FlockerClient;
  let dir: string;
  /** Test clock: real time plus a skew the test moves forward. */
  let skew = 0;
  const now = () => Date.now() + skew;

  const backendFor = (
    node: string,
    extra: { client?: ControlClient; mountTimeoutMs?: number } = {},
  ): Promise<FlockerVolumeBackend> => bed.backend(node, { ...extra, mountSafetyWindowMs: WINDOW, now });

  function reconcilerFor(b: FlockerVolumeBackend, docker: FakeDocker, driver = 'flocker'): DockerReconciler {
    const r = new DockerReconciler({ docker, target: b, driver, logger, intervalMs: 0 });
    r.start();
    bed.closeFirst(r);
    return r;
  }

  const datasetOf = async (name: string) => (await client.listDatasets()).find((d) => d.metadata.name === name)!;
  const using = (
    id: string,
    state: string,
    name: string,
    createdMs = now() - 3_600_000,
    driver = 'flocker',
  ): DockerContainer => ({
    id,
    state,
    createdMs,
    mounts: [{ type: 'volume', name, driver, source: '' }],
  });

  beforeEach(async () => {
    skew = 0;
    bed = await BackendTestBed.start('flocker-failover-', [HOST_A, HOST_B]);
    ({ client, dir } = bed);
  });

  afterEach(() => bed.close());

  describe('reconcile with Docker', () => {
    it('a stale count is released after a dockerd restart that killed the container (no Unmount)', async () => {
      const a = await backendFor(NODE_A);
      const docker = new FakeDocker();
      docker.list = [using('web', 'running', 'vol1')];
      const r = reconcilerFor(a, docker);
      await a.create({ Name: 'vol1' });
      await a.mount({ Name: 'vol1', ID: 'm1' });
      skew += WINDOW + 1_000;
      await r.run('check');
      expect(await client.listLeases()).toHaveLength(1); // running: kept
      docker.down(); // dockerd SIGKILLed
      expect(await r.run('while down')).toBe(false);
      docker.up([{ ...using('web', 'exited', 'vol1') }]); // the restarted dockerd killed it and sent no Unmount
      await r.run('settle');
      expect(await client.listLeases()).toEqual([]);
      expect(a['registry'].entries()).toEqual([]);
      expect(MountRegistry.read(path.join(dir, NODE_A, 'plugin-mounts.json')).latest?.volumes).toEqual({});
      // And the volume can be removed (docker volume rm).
      await a.remove({ Name: 'vol1' });
      expect((await datasetOf('vol1')).deleted).toBe(true);
    });

    it('a plugin restart with a registry naming a container that no longer runs releases it', async () => {
      const first = await backendFor(NODE_A);
      await first.create({ Name: 'vol1' });
      await first.create({ Name: 'vol2' });
      await first.mount({ Name: 'vol1', ID: 'gone' });
      await first.mount({ Name: 'vol2', ID: 'kept' });
      await first.close(); // plugin down; meanwhile the container of vol1 stopped (its Unmount went nowhere)
      skew += WINDOW + 1_000;
      const a = await backendFor(NODE_A);
      const docker = new FakeDocker();
      docker.list = [using('c-vol1', 'exited', 'vol1'), using('c-vol2', 'running', 'vol2')];
      const r = reconcilerFor(a, docker);
      await r.run('settle');
      const vol2 = await datasetOf('vol2');
      expect(await client.listLeases()).toEqual([
        { dataset_id: vol2.dataset_id, node_uuid: NODE_A, expires: null, holders: ['docker'] },
      ]);
      expect(a['registry'].entries()).toEqual([{ datasetId: vol2.dataset_id, name: 'vol2', ids: ['kept'] }]);
    });

    it('a Mount in flight (created container, young mount ID) is never released', async () => {
      const a = await backendFor(NODE_A);
      const docker = new FakeDocker();
      const r = reconcilerFor(a, docker);
      await a.create({ Name: 'vol1' });
      // The list is taken while nothing uses the volume yet, and decided after the Mount answered.
      docker.list = [];
      const mounting = a.mount({ Name: 'vol1', ID: 'young' });
      const reconciling = r.run('racing the mount');
      await mounting;
      await reconciling;
      // Decided now on a list taken before the Mount: the young ID keeps it.
      expect(await a.reconcileWithDocker([], 'flocker')).toEqual([
        expect.objectContaining({ volume: 'vol1', result: 'kept', detail: 'young mount IDs young' }),
      ]);
      await r.run('again');
      expect(await client.listLeases()).toHaveLength(1);
      // Docker mounted before starting: the container is "created" a while, its ID young.
      docker.list = [using('starting', 'created', 'vol1', now())];
      skew += WINDOW / 2;
      await r.run('created');
      expect(await client.listLeases()).toHaveLength(1);
      expect(a['registry'].count((await datasetOf('vol1')).dataset_id)).toBe(1);
      // Past the window, a container still "created" (never started) does not hold it.
      skew += WINDOW;
      await r.run('stuck in created');
      expect(await client.listLeases()).toEqual([]);
    });

    it('nothing is released while Docker cannot be reached', async () => {
      const a = await backendFor(NODE_A);
      const docker = new FakeDocker();
      docker.reachable = false;
      const r = reconcilerFor(a, docker);
      await a.create({ Name: 'vol1' });
      await a.mount({ Name: 'vol1', ID: 'm1' });
      skew += 10 * WINDOW;
      expect(await r.run('unreachable')).toBe(false);
      expect(await r.run('still unreachable')).toBe(false);
      expect(await client.listLeases()).toHaveLength(1);
      expect(a['registry'].entries()).toHaveLength(1);
      // Once it answers (with the container running) the mount stays too.
      docker.up([using('web', 'running', 'vol1')]);
      await r.run('settle');
      expect(await client.listLeases()).toHaveLength(1);
    });

    it('Unmount after a reconcile released the volume is harmless, and a new Mount takes it again', async () => {
      const a = await backendFor(NODE_A);
      const docker = new FakeDocker();
      const r = reconcilerFor(a, docker);
      await a.create({ Name: 'vol1' });
      await a.mount({ Name: 'vol1', ID: 'm1' });
      skew += WINDOW + 1;
      await r.run('settle');
      expect(await client.listLeases()).toEqual([]);
      await a.unmount({ Name: 'vol1', ID: 'm1' }); // Docker's late Unmount
      await a.settled();
      await a.mount({ Name: 'vol1', ID: 'm2' });
      expect(await client.listLeases()).toHaveLength(1);
    });
  });

  describe('reconcile when Docker knows the plugin by another name than its socket', () => {
    // The socket is /run/flocker/plugin.sock (driver name "plugin" by default), yet Docker
    // knows the plugin as "flocker" (a spec file /etc/docker/plugins/flocker.spec) or
    // "flocker:latest" (a managed plugin); Docker shows an empty Source for plugin volumes.
    const SOCKET_DRIVER = driverNameOf('/run/flocker/plugin.sock');

    /** Host A's backend, reconciled as `driver`, with vol1 mounted (m1) by the running container "web" (driver "flocker" in Docker's eyes). */
    async function webUsingVol1(
      driver: string,
    ): Promise<{ a: FlockerVolumeBackend; docker: FakeDocker; r: DockerReconciler }> {
      const a = await backendFor(NODE_A);
      const docker = new FakeDocker();
      docker.list = [using('web', 'running', 'vol1', undefined, 'flocker')];
      const r = reconcilerFor(a, docker, driver);
      await a.create({ Name: 'vol1' });
      await a.mount({ Name: 'vol1', ID: 'm1' });
      return { a, docker, r };
    }

    it('never releases a running container’s lease, whether or not Docker lists the volume', async () => {
      const { a, docker, r } = await webUsingVol1(SOCKET_DRIVER);
      const vol1 = await datasetOf('vol1');
      skew += 3 * WINDOW;
      // Docker's volume list names our volume's driver: "flocker" is learned as ours.
      docker.volumeList = [
        { name: 'vol1', driver: 'flocker' },
        { name: 'scratch', driver: 'local' },
      ];
      expect(await r.run('spec file')).toBe(true);
      expect(await a.reconcileWithDocker(docker.list, SOCKET_DRIVER, docker.volumeList)).toEqual([
        expect.objectContaining({ volume: 'vol1', result: 'kept', detail: 'in use by web' }),
      ]);
      // Docker lists no volume (a partial answer): no container shows our volumes under our
      // names, but one mounts "vol1": cannot tell, kept.
      docker.volumeList = [];
      expect(await r.run('no volume list')).toBe(true);
      expect(await a.reconcileWithDocker(docker.list, SOCKET_DRIVER, [])).toEqual([
        expect.objectContaining({ volume: 'vol1', result: 'kept', detail: 'cannot tell: mounted by name by web' }),
      ]);
      // A managed plugin.
      docker.list = [using('web', 'running', 'vol1', undefined, 'flocker:latest')];
      docker.volumeList = [{ name: 'vol1', driver: 'flocker:latest' }];
      skew += 3 * WINDOW;
      expect(await r.run('managed plugin')).toBe(true);
      expect(await client.listLeases()).toEqual([
        { dataset_id: vol1.dataset_id, node_uuid: NODE_A, expires: null, holders: ['docker'] },
      ]);
      expect(a['registry'].entries()).toEqual([{ datasetId: vol1.dataset_id, name: 'vol1', ids: ['m1'] }]);
    });

    it('--driver-name alone (Docker lists no volume) recognises the running container', async () => {
      const { a, docker, r } = await webUsingVol1('flocker');
      skew += 3 * WINDOW;
      expect(await a.reconcileWithDocker(docker.list, 'flocker', [])).toEqual([
        expect.objectContaining({ volume: 'vol1', result: 'kept', detail: 'in use by web' }),
      ]);
      await r.run('settle');
      expect(await client.listLeases()).toHaveLength(1);
    });

    it('the stale case is still released when Docker lists the volume under its name and no running container uses it', async () => {
      const a = await backendFor(NODE_A);
      const docker = new FakeDocker();
      docker.list = [using('web', 'running', 'vol1', undefined, 'flocker')];
      docker.volumeList = [
        { name: 'vol1', driver: 'flocker' },
        { name: 'vol2', driver: 'flocker' },
      ];
      const r = reconcilerFor(a, docker, SOCKET_DRIVER);
      await a.create({ Name: 'vol1' });
      await a.create({ Name: 'vol2' });
      await a.mount({ Name: 'vol1', ID: 'm1' });
      await a.mount({ Name: 'vol2', ID: 'm2' });
      skew += WINDOW + 1_000;
      await r.run('both mounted, one used');
      const vol1 = await datasetOf('vol1');
      // vol2: no container mounts it at all: released; vol1 in use: kept.
      expect(await client.listLeases()).toEqual([
        { dataset_id: vol1.dataset_id, node_uuid: NODE_A, expires: null, holders: ['docker'] },
      ]);
      // dockerd restarted and killed the container, no Unmount: its container is listed exited.
      docker.down();
      docker.up([using('web', 'exited', 'vol1', undefined, 'flocker')]);
      await r.run('settle');
      expect(await client.listLeases()).toEqual([]);
      expect(a['registry'].entries()).toEqual([]);
    });

    it('a dockerd restart that forgot every container releases the volume even with an unknown driver name', async () => {
      const { docker, r } = await webUsingVol1(SOCKET_DRIVER);
      skew += WINDOW + 1_000;
      await r.run('kept: cannot tell');
      expect(await client.listLeases()).toHaveLength(1);
      docker.down();
      docker.up([]); // no container at all uses a volume of that name
      await r.run('settle');
      expect(await client.listLeases()).toEqual([]);
    });
  });

  describe('Mount on a volume leased by another host', () => {
    /**
     * The control client of host A, seeing host B as the test says (dead since
     * `deadSince`, lease pinned): the rest of the snapshot is the real one.
     */
    function seeing(view: { dead?: string; pinned?: boolean; grace?: number }): ControlClient {
      const adjust = (s: ClusterSnapshot): ClusterSnapshot => ({
        ...s,
        node_timeout_seconds: 30,
        ...(view.grace !== undefined ? { lease_grace_seconds: view.grace } : {}),
        nodes: s.nodes.map((n) => (n.uuid === NODE_B && view.dead ? { ...n, alive: false, dead_since: view.dead } : n)),
        leases: s.leases.map((l) => (view.pinned ? { ...l, pinned: true } : l)),
      });
      return {
        createDataset: (...x) => client.createDataset(...x),
        updateDataset: (...x) => client.updateDataset(...x),
        deleteDataset: (...x) => client.deleteDataset(...x),
        acquireLease: (...x) => client.acquireLease(...x),
        releaseLease: (...x) => client.releaseLease(...x),
        waitForCluster: async (...x) => adjust(await client.waitForCluster(...x)),
      };
    }

    async function leasedByB(): Promise<string> {
      const b = await backendFor(NODE_B);
      await b.create({ Name: 'vol1' });
      await b.mount({ Name: 'vol1', ID: 'on-b' });
      return (await datasetOf('vol1')).dataset_id;
    }

    it('waits while the holder is dead, then takes the lease as soon as the control service releases it', async () => {
      const datasetId = await leasedByB();
      const deadSince = new Date(Date.now() - 2_000).toISOString();
      const a = await backendFor(NODE_A, { client: seeing({ dead: deadSince, grace: 5 }) });
      let answered = false;
      const mounting = a.mount({ Name: 'vol1', ID: 'on-a' }).finally(() => (answered = true));
      await new Promise((r) => setTimeout(r, 500));
      expect(answered).toBe(false); // waiting, not failed
      const released = Date.now();
      await client.releaseLease(datasetId); // what the control service does after the lease grace
      await expect(mounting).resolves.toEqual({ Mountpoint: `/flocker-a/${datasetId}` });
      expect(Date.now() - released).toBeLessThan(2_000);
      expect(await client.listLeases()).toEqual([
        { dataset_id: datasetId, node_uuid: NODE_A, expires: null, holders: ['docker'] },
      ]);
      expect((await datasetOf('vol1')).primary).toBe(NODE_A);
    });

    it('stops waiting and fails when the dead holder comes back', async () => {
      await leasedByB();
      const view: { dead?: string; grace: number } = { dead: new Date().toISOString(), grace: 3600 };
      const a = await backendFor(NODE_A, { client: seeing(view) });
      const mounting = a.mount({ Name: 'vol1', ID: 'on-a' });
      const failed = expect(mounting).rejects.toThrow(
        'volume vol1 is in use by a container on host host-b (by docker). Stop that container first',
      );
      await new Promise((r) => setTimeout(r, 300));
      delete view.dead; // host B reports again
      await client.createDataset({ primary: NODE_B, metadata: { name: 'bump' } }); // any change wakes the long-poll
      await failed;
    });

    it('gives up at the mount timeout saying who holds it, since when, and when it is released', async () => {
      await leasedByB();
      const deadSince = '2026-01-01T10:00:00.000Z';
      const a = await backendFor(NODE_A, { client: seeing({ dead: deadSince, grace: 3600 }), mountTimeoutMs: 700 });
      await expect(a.mount({ Name: 'vol1', ID: 'on-a' })).rejects.toThrow(
        'volume vol1 is held by host host-b, which has been unreachable since 2026-01-01T10:00:00.000Z; ' +
          'the control service releases it at 2026-01-01T11:00:00.000Z (lease grace 3600 s). Gave up waiting after 1 s',
      );
      expect((await client.listLeases())[0]?.node_uuid).toBe(NODE_B);
    });

    it('fails fast while the holder is alive', async () => {
      await leasedByB();
      const a = await backendFor(NODE_A, { client: seeing({ grace: 5 }) });
      const started = Date.now();
      await expect(a.mount({ Name: 'vol1', ID: 'on-a' })).rejects.toThrow(
        'volume vol1 is in use by a container on host host-b (by docker). Stop that container first; ' +
          'if that host is down, the control service declares it dead after 30 s without a report and releases its leases 5 s later.',
      );
      // Fast: waiting, it would fail at the 5 s mount timeout (half of it leaves a loaded host room).
      expect(Date.now() - started).toBeLessThan(2_500);
    });

    it('fails fast on a pinned lease, even of a dead host, naming the command that releases it', async () => {
      await leasedByB();
      const a = await backendFor(NODE_A, {
        client: seeing({ dead: new Date().toISOString(), pinned: true, grace: 5 }),
      });
      const started = Date.now();
      await expect(a.mount({ Name: 'vol1', ID: 'on-a' })).rejects.toThrow(
        /an admin pinned it there.*flocker leases release vol1/,
      );
      // Fast: waiting, it would fail at the 5 s mount timeout.
      expect(Date.now() - started).toBeLessThan(2_500);
    });

    it('fails fast on a dead holder when the control service does not release leases (no lease grace)', () => {
      const s: ClusterSnapshot = {
        generation: '1',
        configuration_tag: 't',
        datasets: [],
        leases: [{ dataset_id: 'd', node_uuid: NODE_B, expires: null }],
        nodes: [
          {
            uuid: NODE_B,
            era: 'e',
            host: 'host-b',
            instance_id: 'i',
            backend: 'fake',
            manifestations: [],
            errors: [],
            alive: false,
            last_seen: '2026-01-01T00:00:00.000Z',
          },
        ],
      };
      expect(leaseVerdict(s, 'd', NODE_A, 'v')).toMatchObject({
        kind: 'fail',
        message: expect.stringMatching(/does not release the leases of dead hosts.*flocker leases release v/),
      });
      expect(leaseVerdict({ ...s, lease_grace_seconds: 5 }, 'd', NODE_A, 'v')).toMatchObject({
        kind: 'wait',
        releaseAt: '2026-01-01T00:00:05.000Z',
      });
      expect(leaseVerdict({ ...s, leases: [] }, 'd', NODE_A, 'v')).toEqual({ kind: 'free' });
    });
  });
});

/**
 * Review U6 1b: the control service released this node's lease while its agent was down, and the
 * pod here still uses the volume. The node service takes its `csi` share again while nobody else
 * took the volume, and never takes it from another node (it reports that instead).
 */
import { FlockerApiError, type ClusterSnapshot, type Lease, type NodeState } from '@flocker/api';
import { leaseRecovery, type ControlClient, type CsiDriver } from './CsiDriver';
import { fakeNode, oneDatasetWorld, quietDriver, type World } from './csiTestSupport';
import type { MountInfoEntry } from './mapping';

const ME = '11111111-1111-4111-8111-111111111111';
const OTHER = '22222222-2222-4222-8222-222222222222';
const ID = '33333333-3333-4333-8333-333333333333';
const AGENT_PATH = `/flocker/${ID}`;
const CAP = { mount: {}, access_mode: { mode: 'SINGLE_NODE_WRITER' } };
const STAGE = { volume_id: ID, staging_target_path: '/tmp/never-used-staging', volume_capability: CAP };
const TARGET = `/var/lib/kubelet/pods/p1/volumes/kubernetes.io~csi/pvc-1/mount`;

function node(uuid: string, extra: Partial<NodeState> = {}): NodeState {
  return fakeNode(uuid, uuid === ME ? 'me' : 'other', {
    manifestations:
      uuid === ME ? [{ dataset_id: ID, blockdevice_id: 'b', size: 1, status: 'mounted', path: AGENT_PATH }] : [],
    ...extra,
  });
}

function world(): World {
  return oneDatasetWorld(ID, ME, [node(ME), node(OTHER)]);
}

function snap(w: World): ClusterSnapshot {
  return { generation: '1', configuration_tag: 't', datasets: w.datasets, leases: w.leases, nodes: w.nodes };
}

function client(w: World): ControlClient {
  const unused = (): Promise<never> => Promise.reject(new Error('unused'));
  return {
    version: async () => ({ flocker: 'test' }),
    listDatasets: async () => w.datasets,
    createDataset: unused,
    deleteDataset: unused,
    createSnapshot: unused,
    deleteSnapshot: unused,
    updateDataset: unused,
    listLeases: async () => w.leases,
    acquireLease: async (req) => {
      const held = w.leases.find((l) => l.dataset_id === req.dataset_id);
      if (held && held.node_uuid !== req.node_uuid) throw new FlockerApiError(409, 'LEASE_HELD', 'leased');
      w.calls.push(`lease ${req.holder ?? ''}`);
      if (!held) {
        const l: Lease = { dataset_id: req.dataset_id, node_uuid: req.node_uuid, expires: null, holders: ['csi'] };
        w.leases.push(l);
        return l;
      }
      held.holders = [...new Set([...(held.holders ?? []), 'csi'])];
      return held;
    },
    releaseLease: async (id) => {
      w.calls.push('release csi');
      const l = w.leases.find((x) => x.dataset_id === id);
      if (!l) throw new FlockerApiError(404, 'LEASE_NOT_FOUND', 'no lease');
      w.leases = w.leases.filter((x) => x.dataset_id !== id);
      return { ...l, remains: false };
    },
    // A long-poll that sees no change returns after a short wait, as the server would after timeout_ms.
    waitForCluster: async (since) => {
      if (since !== undefined) await new Promise((r) => setTimeout(r, 5));
      return snap(w);
    },
  };
}

function driver(w: World, mounts: MountInfoEntry[]): CsiDriver {
  return quietDriver(client(w), ME, mounts);
}

const agentMount: MountInfoEntry = { device: '7:1', root: '/', mountPoint: AGENT_PATH, options: ['rw'] };
const podMount: MountInfoEntry = { device: '7:1', root: '/', mountPoint: TARGET, options: ['rw'] };

async function health(d: CsiDriver): Promise<unknown[]> {
  const res = (await d.nodeGetVolumeHealth({ volume_id: ID })) as { volume_health: { health_statuses: unknown[] } };
  return res.volume_health.health_statuses;
}

describe('leaseRecovery', () => {
  it('retake only with no lease, this node the primary and its agent alive; lost when another node has it; never a steal', () => {
    const w = world();
    expect(leaseRecovery(snap(w), ID, ME)).toEqual({ kind: 'retake' });
    w.leases = [{ dataset_id: ID, node_uuid: ME, expires: null, holders: ['docker'] }];
    expect(leaseRecovery(snap(w), ID, ME)).toEqual({ kind: 'retake' });
    w.leases = [{ dataset_id: ID, node_uuid: ME, expires: null, holders: ['csi'] }];
    expect(leaseRecovery(snap(w), ID, ME)).toEqual({ kind: 'held' });
    w.leases = [];
    w.nodes = [node(ME, { alive: false }), node(OTHER)];
    expect(leaseRecovery(snap(w), ID, ME)).toEqual({ kind: 'agent-down' });
    w.nodes = [node(ME), node(OTHER)];
    w.leases = [{ dataset_id: ID, node_uuid: OTHER, expires: null, holders: ['csi'] }];
    expect(leaseRecovery(snap(w), ID, ME)).toMatchObject({
      kind: 'lost',
      message: expect.stringMatching(`node other \\(node id ${OTHER}\\) holds its lease now`),
    });
    w.leases = [];
    w.datasets[0]!.primary = OTHER;
    expect(leaseRecovery(snap(w), ID, ME)).toMatchObject({
      kind: 'lost',
      message: expect.stringMatching(/primary is node other/),
    });
    w.datasets[0]!.deleted = true;
    expect(leaseRecovery(snap(w), ID, ME)).toEqual({ kind: 'gone' });
  });

  it('a move waiting for this node to let go (when_released: the primary is the target, our csi share still holds the lease) is held, not lost (review FR 2)', () => {
    const w = world();
    w.datasets[0]!.primary = OTHER;
    w.leases = [{ dataset_id: ID, node_uuid: ME, expires: null, holders: ['csi'] }];
    expect(leaseRecovery(snap(w), ID, ME)).toEqual({ kind: 'held' });
  });
});

describe('CsiDriver.recoverLeases', () => {
  it('takes the csi share again for a volume staged here once the lease is gone (agent back), and never from another node', async () => {
    const w = world();
    const d = driver(w, [agentMount]);
    await d.nodeStageVolume(STAGE);
    expect(d.stagedVolumes()).toEqual([ID]);
    // The control service released it (the agent was dead longer than T+G) while the agent was down: left alone.
    w.leases = [];
    w.nodes = [node(ME, { alive: false }), node(OTHER)];
    w.calls = [];
    await d.recoverLeases(snap(w));
    expect(w.calls).toEqual([]);
    // The agent is back: taken again.
    w.nodes = [node(ME), node(OTHER)];
    await d.recoverLeases(snap(w));
    expect(w.calls).toEqual(['lease csi']);
    expect(w.leases).toEqual([{ dataset_id: ID, node_uuid: ME, expires: null, holders: ['csi'] }]);
    expect(await health(d)).toEqual([]);
    // Another node took it meanwhile: reported (health), not taken.
    w.leases = [{ dataset_id: ID, node_uuid: OTHER, expires: null, holders: ['csi'] }];
    w.datasets[0]!.primary = OTHER;
    w.calls = [];
    await d.recoverLeases(snap(w));
    expect(w.calls).toEqual([]);
    expect(await health(d)).toEqual([
      expect.objectContaining({
        status: 'INACCESSIBLE',
        reason: 'LEASE_LOST',
        message: expect.stringMatching(/delete them/),
      }),
    ]);
  });

  it('an unstage forgets the volume: its lease is never taken again after it', async () => {
    const w = world();
    const d = driver(w, [agentMount]);
    await d.nodeStageVolume(STAGE);
    await d.nodeUnstageVolume({ volume_id: ID, staging_target_path: STAGE.staging_target_path });
    expect(w.leases).toEqual([]);
    w.calls = [];
    await d.recoverLeases(snap(w));
    expect(w.calls).toEqual([]);
    expect(d.stagedVolumes()).toEqual([]);
  });

  it('a snapshot taken before an unstage does not bring the lease back (decided again on a fresh one under the volume key)', async () => {
    const w = world();
    const d = driver(w, [agentMount]);
    await d.nodeStageVolume(STAGE);
    const before = snap({ ...w, leases: [] });
    await d.nodeUnstageVolume({ volume_id: ID, staging_target_path: STAGE.staging_target_path });
    w.calls = [];
    await d.recoverLeases(before);
    expect(w.calls).toEqual([]);
  });

  it('at start finds the volumes staged here: its csi share holds the lease, or a kubelet publish target binds it (not a Docker mount)', async () => {
    const w = world();
    const d = driver(w, [agentMount, podMount]);
    await d.findStaged();
    expect(d.stagedVolumes()).toEqual([ID]);
    const dockerOnly = driver(w, [agentMount, { ...podMount, mountPoint: '/var/lib/docker/overlay2/x/merged/data' }]);
    await dockerOnly.findStaged();
    expect(dockerOnly.stagedVolumes()).toEqual([]);
    w.leases = [{ dataset_id: ID, node_uuid: ME, expires: null, holders: ['csi'] }];
    const byLease = driver(w, []);
    await byLease.findStaged();
    expect(byLease.stagedVolumes()).toEqual([ID]);
  });

  it('a plugin started while its agent is down (no manifestation reported) finds a kubelet-bound volume once the agent reports, and takes its lease (review FR 4)', async () => {
    const w = world();
    w.nodes = [node(ME, { alive: false, manifestations: [] }), node(OTHER)];
    const d = driver(w, [agentMount, podMount]);
    await d.findStaged();
    expect(d.stagedVolumes()).toEqual([]);
    await d.recoverLeases(snap(w));
    expect(w.calls).toEqual([]);
    // The agent is back and reports its mount: the next pass finds the volume and takes its share again.
    w.nodes = [node(ME), node(OTHER)];
    await d.findStaged();
    await d.recoverLeases(snap(w));
    expect(d.stagedVolumes()).toEqual([ID]);
    expect(w.calls).toEqual(['lease csi']);
  });

  it('reads the mounts only for a volume newly mounted here, and never takes the lease of one no kubelet target binds', async () => {
    const w = world();
    w.nodes = [node(ME, { alive: false, manifestations: [] }), node(OTHER)];
    let reads = 0;
    const dockerMount: MountInfoEntry = { ...podMount, mountPoint: '/var/lib/docker/overlay2/x/merged/data' };
    const d = quietDriver(client(w), ME, [], {
      mounter: {
        mounts: async () => {
          reads++;
          return [agentMount, dockerMount];
        },
        bind: async () => undefined,
        unmount: async () => undefined,
      },
    });
    await d.findStaged();
    await d.findStaged();
    expect(reads).toBe(0);
    w.nodes = [node(ME), node(OTHER)];
    for (let i = 0; i < 3; i++) {
      await d.findStaged();
      await d.recoverLeases(snap(w));
    }
    expect(reads).toBe(1);
    expect(d.stagedVolumes()).toEqual([]);
    expect(w.calls).toEqual([]);
    // Mounted again elsewhere (the agent moved it back, another path): looked at once more.
    w.nodes = [
      node(ME, {
        manifestations: [{ dataset_id: ID, blockdevice_id: 'b', size: 1, status: 'mounted', path: `${AGENT_PATH}-2` }],
      }),
      node(OTHER),
    ];
    await d.findStaged();
    await d.findStaged();
    expect(reads).toBe(2);
  });

  it('a deleted volume the agent still reports mounted here is read once, not on every pass', async () => {
    const w = world();
    w.datasets[0]!.deleted = true;
    let reads = 0;
    const d = quietDriver(client(w), ME, [], {
      mounter: {
        mounts: async () => {
          reads++;
          return [agentMount, podMount];
        },
        bind: async () => undefined,
        unmount: async () => undefined,
      },
    });
    for (let i = 0; i < 3; i++) await d.findStaged();
    expect(reads).toBe(1);
    expect(d.stagedVolumes()).toEqual([]);
  });

  /** A mounter whose next read (findStaged's) waits for `open()` and returns the mounts as they were when it began. */
  function gatedMounter(initial: MountInfoEntry[]) {
    const m = { current: initial, open: (): void => undefined, gateNext: false };
    const mounter = {
      mounts: async (): Promise<MountInfoEntry[]> => {
        const then = m.current;
        if (m.gateNext) {
          m.gateNext = false;
          await new Promise<void>((r) => (m.open = r));
        }
        return then;
      },
      bind: async (): Promise<void> => undefined,
      unmount: async (path: string): Promise<void> => {
        m.current = m.current.filter((x) => x.mountPoint !== path);
      },
    };
    return { m, mounter };
  }

  it('a NodeUnstage and a DeleteVolume arriving while findStaged reads the mounts succeed, never ABORTED (csi-sanity and the provisioner do not retry)', async () => {
    const w = world();
    const { m, mounter } = gatedMounter([agentMount]);
    const c: ControlClient = {
      ...client(w),
      deleteDataset: async (id) => {
        w.calls.push(`delete ${id}`);
        w.datasets = w.datasets.map((x) => (x.dataset_id === id ? { ...x, deleted: true } : x));
        return w.datasets.find((x) => x.dataset_id === id)!;
      },
    };
    const d = quietDriver(c, ME, [], { mounter });
    m.gateNext = true;
    const finding = d.findStaged();
    await new Promise((r) => setImmediate(r));
    await expect(
      d.nodeUnstageVolume({ volume_id: ID, staging_target_path: STAGE.staging_target_path }),
    ).resolves.toEqual({});
    await expect(d.deleteVolume({ volume_id: ID })).resolves.toEqual({});
    m.open();
    await finding;
    expect(d.stagedVolumes()).toEqual([]);
    expect(w.calls).toEqual([`delete ${ID}`]);
  });

  it('an unpublish and unstage while findStaged reads the mounts succeed, and its read (taken before them, still showing the pod) never brings the lease back', async () => {
    const w = world();
    const { m, mounter } = gatedMounter([agentMount, podMount]);
    const d = quietDriver(client(w), ME, [], { mounter });
    m.gateNext = true;
    const finding = d.findStaged();
    await new Promise((r) => setImmediate(r));
    await expect(d.nodeUnpublishVolume({ volume_id: ID, target_path: TARGET })).resolves.toEqual({});
    await expect(
      d.nodeUnstageVolume({ volume_id: ID, staging_target_path: STAGE.staging_target_path }),
    ).resolves.toEqual({});
    m.open();
    await finding;
    expect(d.stagedVolumes()).toEqual([]);
    for (let i = 0; i < 2; i++) {
      await d.findStaged();
      await d.recoverLeases(snap(w));
    }
    expect(d.stagedVolumes()).toEqual([]);
    expect(w.calls).toEqual([]);
  });

  it('a volume a CSI call touched while findStaged read is read again on the next pass (still kubelet-bound: found, lease taken)', async () => {
    const w = world();
    const { m, mounter } = gatedMounter([agentMount, podMount]);
    const d = quietDriver(client(w), ME, [], { mounter });
    m.gateNext = true;
    const finding = d.findStaged();
    await new Promise((r) => setImmediate(r));
    // Another pod's target, already gone: succeeds, and the volume's pod mount stays.
    const other = TARGET.replace('/p1/', '/p2/');
    await expect(d.nodeUnpublishVolume({ volume_id: ID, target_path: other })).resolves.toEqual({});
    m.open();
    await finding;
    expect(d.stagedVolumes()).toEqual([]);
    await d.findStaged();
    await d.recoverLeases(snap(w));
    expect(d.stagedVolumes()).toEqual([ID]);
    expect(w.calls).toEqual(['lease csi']);
  });

  it('watchLeases started while the agent is down takes the lease once the agent reports the volume mounted (review FR 4)', async () => {
    const w = world();
    w.nodes = [node(ME, { alive: false, manifestations: [] }), node(OTHER)];
    const d = driver(w, [agentMount, podMount]);
    const watch = d.watchLeases();
    await new Promise((r) => setTimeout(r, 50));
    expect(w.leases).toEqual([]);
    w.nodes = [node(ME), node(OTHER)];
    for (let i = 0; i < 100 && w.leases.length === 0; i++) await new Promise((r) => setTimeout(r, 5));
    watch.stop();
    await watch.done;
    expect(w.leases).toEqual([{ dataset_id: ID, node_uuid: ME, expires: null, holders: ['csi'] }]);
  });

  it('watchLeases finds and keeps the lease, and stops', async () => {
    const w = world();
    const d = driver(w, [agentMount, podMount]);
    const watch = d.watchLeases();
    for (let i = 0; i < 100 && w.leases.length === 0; i++) await new Promise((r) => setTimeout(r, 5));
    watch.stop();
    await watch.done;
    expect(w.leases).toEqual([{ dataset_id: ID, node_uuid: ME, expires: null, holders: ['csi'] }]);
  });
});

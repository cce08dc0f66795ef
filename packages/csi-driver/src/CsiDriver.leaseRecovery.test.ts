/**
 * Review U6 1b: the control service released this node's lease while its agent was down, and the
 * pod here still uses the volume. The node service takes its `csi` share again while nobody else
 * took the volume, and never takes it from another node (it reports that instead).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FlockerApiError, type ClusterSnapshot, type Lease, type NodeState } from '@flocker/api';
import { leaseRecovery, leaseUse, type ControlClient, type CsiDriver } from './CsiDriver';
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
  it('takes the csi share again for a volume staged and used here once the lease is gone (agent back), and never from another node', async () => {
    const w = world();
    const d = driver(w, [agentMount, podMount]);
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

/**
 * Review T7 (TK-1, TK-2): a lease share of this node no pod here uses is let go. TK-1: the plugin killed mid-stage
 * (lease taken, never answered) kept that share for ever once restarted, and took it back after an operator's
 * flocker leases release --force; TK-2: the kubelet killed mid-stage never unstages what it lost track of.
 */
describe('leaseUse', () => {
  it('published with any other mount of the agent mount; unpublished with none, or nothing here while another node is the primary; else unknown', () => {
    const w = world();
    const s = snap(w);
    expect(leaseUse(s, ID, ME, [agentMount, podMount])).toBe('published');
    expect(leaseUse(s, ID, ME, [agentMount])).toBe('unpublished');
    // Any other mount of it in this namespace counts as use (not only a kubelet target): never let go. (A Docker
    // container's binds are in its own namespace, not here: its plugin's `docker` share keeps the lease.)
    const otherMount = { ...podMount, mountPoint: '/mnt/someone-else/data' };
    expect(leaseUse(s, ID, ME, [agentMount, otherMount])).toBe('published');
    expect(leaseUse(s, ID, ME, [agentMount, { ...podMount, device: '7:2' }])).toBe('unpublished');
    // The agent reports it mounted but this namespace does not show the mount: not decided.
    expect(leaseUse(s, ID, ME, [podMount])).toBe('unknown');
    // Not reported here: unpublished only while another node is the primary and this node's agent is alive.
    w.nodes = [node(ME, { manifestations: [] }), node(OTHER)];
    expect(leaseUse(snap(w), ID, ME, [])).toBe('unknown');
    w.datasets[0]!.primary = OTHER;
    expect(leaseUse(snap(w), ID, ME, [])).toBe('unpublished');
    w.nodes = [node(ME, { manifestations: [], alive: false }), node(OTHER)];
    expect(leaseUse(snap(w), ID, ME, [])).toBe('unknown');
    // An agent not alive, its last report (kept by the control service) mounted, the mount there: not decided either
    // (review FRK-1: the control service's dead-node failover, after the lease grace, is what lets go of it).
    w.nodes = [node(ME, { alive: false }), node(OTHER)];
    expect(leaseUse(snap(w), ID, ME, [agentMount])).toBe('unknown');
    w.datasets[0]!.primary = ME;
    expect(leaseUse(snap(w), ID, ME, [agentMount])).toBe('unknown');
    w.datasets[0]!.primary = OTHER;
    w.nodes = [
      node(ME, { manifestations: [{ dataset_id: ID, blockdevice_id: 'b', size: 1, status: 'attached' }] }),
      node(OTHER),
    ];
    expect(leaseUse(snap(w), ID, ME, [])).toBe('unknown');
    w.datasets[0]!.deleted = true;
    expect(leaseUse(snap(w), ID, ME, [agentMount])).toBe('unknown');
  });
});

describe('CsiDriver: a lease share no pod on this node uses is released (review T7)', () => {
  const ours = (): Lease => ({ dataset_id: ID, node_uuid: ME, expires: null, holders: ['csi'] });

  /** One watch pass as watchLeases makes it. */
  async function pass(d: CsiDriver, w: World, now?: number): Promise<void> {
    await d.findStaged(snap(w));
    await d.recoverLeases(snap(w));
    await d.releaseUnused(snap(w), now);
  }

  it('TK-1: a share held since before the plugin started (a stage cut short by a crash) is released at once when no pod here uses it', async () => {
    const w = world();
    w.leases = [ours()];
    const d = quietDriver(client(w), ME, [agentMount], { unusedReleaseMs: 3_600_000 });
    await pass(d, w);
    expect(w.leases).toEqual([]);
    expect(w.calls).toEqual(['release csi']);
    expect(d.stagedVolumes()).toEqual([]);
    // Never taken again.
    for (let i = 0; i < 2; i++) await pass(d, w);
    expect(w.calls).toEqual(['release csi']);
  });

  it('TK-1: killed before the move (another node still the primary, nothing here): released at once too', async () => {
    const w = world();
    w.datasets[0]!.primary = OTHER;
    w.nodes = [node(ME, { manifestations: [] }), node(OTHER)];
    w.leases = [ours()];
    const d = quietDriver(client(w), ME, [], { unusedReleaseMs: 3_600_000 });
    await pass(d, w);
    expect(w.leases).toEqual([]);
  });

  it('a share whose agent is not alive is never released, however long, even if its last report says mounted and unused (review FRK-1)', async () => {
    const w = world();
    // The control service keeps a dead agent's last report: mounted; the node (and its kernel mount) is up.
    w.nodes = [node(ME, { alive: false }), node(OTHER)];
    w.leases = [ours()];
    const d = quietDriver(client(w), ME, [agentMount], { unusedReleaseMs: 60_000 });
    const t0 = Date.now();
    for (const dt of [0, 65_000, 3_600_000]) await pass(d, w, t0 + dt);
    expect(w.leases).toEqual([ours()]);
    expect(w.calls).toEqual([]);
    // Its agent back and still no pod here: released after the grace period from then, not at once.
    w.nodes = [node(ME), node(OTHER)];
    await pass(d, w, t0 + 3_610_000);
    expect(w.leases).toEqual([ours()]);
    await pass(d, w, t0 + 3_675_000);
    expect(w.leases).toEqual([]);
  });

  it('a share held since before the start that a pod here uses is kept; one the agent has not reported mounted yet is left for later', async () => {
    const w = world();
    w.leases = [ours()];
    const d = quietDriver(client(w), ME, [agentMount, podMount], { unusedReleaseMs: 0 });
    for (let i = 0; i < 2; i++) await pass(d, w);
    expect(w.leases).toEqual([ours()]);
    expect(d.stagedVolumes()).toEqual([ID]);
    w.nodes = [node(ME, { manifestations: [] }), node(OTHER)];
    const early = quietDriver(client(w), ME, [], { unusedReleaseMs: 0 });
    await pass(early, w);
    expect(w.leases).toEqual([ours()]);
    expect(w.calls).toEqual([]);
  });

  it("TK-1: an operator's forced release of a volume staged here that no pod here uses is not taken back (only a used one is)", async () => {
    const w = world();
    const d = quietDriver(client(w), ME, [agentMount], { unusedReleaseMs: 3_600_000 });
    await d.nodeStageVolume(STAGE);
    w.leases = [];
    w.calls = [];
    for (let i = 0; i < 3; i++) await pass(d, w);
    expect(w.calls).toEqual([]);
    expect(w.leases).toEqual([]);
    expect(d.stagedVolumes()).toEqual([]);
  });

  it('TK-2: a volume staged by this plugin and never published keeps its share for the grace period, then it is released; a published one never is', async () => {
    const w = world();
    const d = quietDriver(client(w), ME, [agentMount], { unusedReleaseMs: 60_000 });
    await d.nodeStageVolume(STAGE);
    const t0 = Date.now();
    await pass(d, w, t0);
    await pass(d, w, t0 + 59_000);
    expect(w.leases).toEqual([ours()]);
    expect(d.stagedVolumes()).toEqual([ID]);
    // Released at the first pass from the grace period on (the mount table is read at most every 5 s).
    await pass(d, w, t0 + 65_000);
    expect(w.leases).toEqual([]);
    expect(d.stagedVolumes()).toEqual([]);

    const w2 = world();
    const used = quietDriver(client(w2), ME, [agentMount, podMount], { unusedReleaseMs: 60_000 });
    await used.nodeStageVolume(STAGE);
    for (const dt of [0, 60_000, 120_000, 3_600_000]) await pass(used, w2, t0 + dt);
    expect(w2.leases).toEqual([ours()]);
  });

  it('TK-2: the grace period starts again once a pod here has used the volume', async () => {
    const w = world();
    const mounts = [agentMount];
    const d = quietDriver(client(w), ME, [], {
      unusedReleaseMs: 60_000,
      mounter: { mounts: async () => mounts, bind: async () => undefined, unmount: async () => undefined },
    });
    await d.nodeStageVolume(STAGE);
    const t0 = Date.now();
    await pass(d, w, t0);
    mounts.push(podMount);
    await pass(d, w, t0 + 30_000);
    mounts.pop();
    await pass(d, w, t0 + 60_000);
    await pass(d, w, t0 + 89_000);
    expect(w.leases).toEqual([ours()]);
    await pass(d, w, t0 + 120_000);
    expect(w.leases).toEqual([]);
  });

  it('the grace period of a new stage starts at that stage, not at an earlier stage of the same volume no pass saw end (review FRK-2)', async () => {
    const w = world();
    const d = quietDriver(client(w), ME, [agentMount], { unusedReleaseMs: 60_000 });
    const t0 = Date.now();
    await d.nodeStageVolume(STAGE);
    await pass(d, w, t0); // seen unused once (between stage and publish)
    // The pod ran and went, the kubelet unstaged, a new pod here staged it again: no pass saw the gap.
    await d.nodeUnstageVolume(STAGE);
    await d.nodeStageVolume(STAGE);
    // The first pass after it: 61 s after the first stage, 0 s after this one (its publish is on its way).
    await pass(d, w, t0 + 61_000);
    expect(w.leases).toEqual([ours()]);
    await pass(d, w, t0 + 126_000);
    expect(w.leases).toEqual([]);
  });

  it('a NodeStageVolume of a volume staged here already (a restarted kubelet staging again) starts the grace period again (review FRK-2)', async () => {
    const w = world();
    const d = quietDriver(client(w), ME, [agentMount], { unusedReleaseMs: 60_000 });
    const t0 = Date.now();
    await d.nodeStageVolume(STAGE);
    await pass(d, w, t0);
    w.calls = [];
    await d.nodeStageVolume(STAGE); // held, primary here, mounted: answered at once
    expect(w.calls).toEqual([]);
    await pass(d, w, t0 + 61_000);
    expect(w.leases).toEqual([ours()]);
    await pass(d, w, t0 + 126_000);
    expect(w.leases).toEqual([]);
  });

  it("unusedReleaseMs 'never' (flocker-csi --unused-release-after 0) releases nothing so, and a forced release is still not taken back for an unused volume (review FRK-6)", async () => {
    const w = world();
    w.leases = [ours()];
    const d = quietDriver(client(w), ME, [agentMount], { unusedReleaseMs: 'never' });
    const t0 = Date.now();
    for (const dt of [0, 65_000, 3_600_000]) await pass(d, w, t0 + dt);
    expect(w.leases).toEqual([ours()]);
    expect(w.calls).toEqual([]);
    w.leases = [];
    await pass(d, w, t0 + 3_700_000);
    expect(w.calls).toEqual([]);
  });

  it('a CSI call on a volume whose share the lease watch is releasing waits for it, never ABORTED (a DeleteVolume in --mode all: review FRK-7)', async () => {
    const w = world();
    w.leases = [ours()];
    const base = client(w);
    let entered!: () => void;
    const inRelease = new Promise<void>((r) => (entered = r));
    let letGo!: () => void;
    const gate = new Promise<void>((r) => (letGo = r));
    const c: ControlClient = {
      ...base,
      releaseLease: async (id, options) => {
        entered();
        await gate;
        return base.releaseLease(id, options);
      },
      deleteDataset: async (id) => {
        w.calls.push('delete');
        const d = w.datasets.find((x) => x.dataset_id === id)!;
        d.deleted = true;
        return d;
      },
    };
    const d = quietDriver(c, ME, [agentMount], { mode: 'all', unusedReleaseMs: 3_600_000 });
    const sweep = pass(d, w); // held since before the start, unused: released at once
    await inRelease;
    const deleted = d.deleteVolume({ volume_id: ID }).then(
      () => 'deleted',
      (e: unknown) => `refused: ${String(e)}`,
    );
    letGo();
    await sweep;
    expect(await deleted).toBe('deleted');
    expect(w.calls).toEqual(['release csi', 'delete']);
  });

  it('a stage that failed and could not release its share (control service unreachable) has it released later, once unused', async () => {
    const w = world();
    w.datasets[0]!.primary = OTHER;
    w.nodes = [node(ME, { manifestations: [] }), node(OTHER)];
    const base = client(w);
    let down = true;
    const c: ControlClient = {
      ...base,
      updateDataset: () => Promise.reject(new Error('connection refused')),
      listLeases: () => (down ? Promise.reject(new Error('connection refused')) : base.listLeases()),
    };
    const d = quietDriver(c, ME, [], { unusedReleaseMs: 60_000 });
    await pass(d, w); // the plugin's first pass, at its start
    await expect(d.nodeStageVolume(STAGE)).rejects.toThrow(/connection refused/);
    expect(w.leases).toEqual([ours()]);
    down = false;
    const t0 = Date.now();
    await pass(d, w, t0);
    expect(w.leases).toEqual([ours()]);
    await pass(d, w, t0 + 65_000);
    expect(w.leases).toEqual([]);
  });

  it('publish after the share was released stages again when the kubelet staged it (its staging directory exists); FAILED_PRECONDITION otherwise', async () => {
    const w = world();
    const staging = mkdtempSync(join(tmpdir(), 'csi-restage-'));
    const binds: string[] = [];
    const d = quietDriver(client(w), ME, [], {
      unusedReleaseMs: 0,
      mounter: {
        mounts: async () => [agentMount],
        bind: async (src, dst) => void binds.push(`${src} -> ${dst}`),
        unmount: async () => undefined,
      },
    });
    const target = join(staging, 'target');
    try {
      await d.nodeStageVolume({ ...STAGE, staging_target_path: staging });
      await pass(d, w);
      expect(w.leases).toEqual([]);
      await expect(
        d.nodePublishVolume({ ...STAGE, staging_target_path: '/tmp/never-used-staging', target_path: target }),
      ).rejects.toMatchObject({ message: expect.stringMatching(/is not staged on this node/) });
      expect(binds).toEqual([]);
      await d.nodePublishVolume({ ...STAGE, staging_target_path: staging, target_path: target });
      expect(w.leases).toEqual([ours()]);
      expect(binds).toEqual([`${AGENT_PATH} -> ${target}`]);
    } finally {
      rmSync(staging, { recursive: true, force: true });
    }
  });

  it('publish never stages again while another node holds the lease', async () => {
    const w = world();
    const staging = mkdtempSync(join(tmpdir(), 'csi-restage-'));
    try {
      w.leases = [{ dataset_id: ID, node_uuid: OTHER, expires: null, holders: ['csi'] }];
      const d = quietDriver(client(w), ME, [agentMount]);
      await expect(
        d.nodePublishVolume({ ...STAGE, staging_target_path: staging, target_path: join(staging, 'target') }),
      ).rejects.toMatchObject({ message: expect.stringMatching(/in use on node other/) });
      expect(w.leases).toEqual([{ dataset_id: ID, node_uuid: OTHER, expires: null, holders: ['csi'] }]);
    } finally {
      rmSync(staging, { recursive: true, force: true });
    }
  });
});

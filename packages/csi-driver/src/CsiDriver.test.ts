/** NodeStageVolume's failure paths against a fake control service: the codes and the reasons a CO sees. */
import {
  FlockerApiError,
  type ClusterSnapshot,
  type DatasetConfiguration,
  type Lease,
  type NodeState,
} from '@flocker/api';
import { status } from '@grpc/grpc-js';
import winston from 'winston';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { clusterVolumeHealth, CsiDriver, volumeHealth, waitReason, type ControlClient } from './CsiDriver';
import { fakeNode, oneDatasetWorld, quietDriver, type World } from './csiTestSupport';
import { MiB, type MountInfoEntry } from './mapping';

const ME = '11111111-1111-4111-8111-111111111111';
const OTHER = '22222222-2222-4222-8222-222222222222';
const ID = '33333333-3333-4333-8333-333333333333';
const CAP = { mount: {}, access_mode: { mode: 'SINGLE_NODE_WRITER' } };
const STAGE = { volume_id: ID, staging_target_path: '/tmp/never-used-staging', volume_capability: CAP };

function node(uuid: string, extra: Partial<NodeState> = {}): NodeState {
  return fakeNode(uuid, uuid === ME ? 'me' : 'other', extra);
}

function world(): World {
  return oneDatasetWorld(ID, OTHER, [node(ME), node(OTHER)]);
}

function client(w: World): ControlClient {
  const snap = (generation: string): ClusterSnapshot => ({
    generation,
    configuration_tag: 't',
    datasets: w.datasets,
    leases: w.leases,
    nodes: w.nodes,
  });
  return {
    version: async () => ({ flocker: 'test' }),
    listDatasets: async () => w.datasets,
    createDataset: () => Promise.reject(new Error('unused')),
    deleteDataset: () => Promise.reject(new Error('unused')),
    createSnapshot: () => Promise.reject(new Error('unused')),
    deleteSnapshot: () => Promise.reject(new Error('unused')),
    updateDataset: async (id, req) => {
      const d = w.datasets.find((x) => x.dataset_id === id) as DatasetConfiguration;
      if (req.primary !== undefined) {
        w.calls.push(`move ${req.primary}`);
        d.primary = req.primary;
      }
      if (req.maximum_size !== undefined) {
        w.calls.push(`resize ${req.maximum_size}`);
        d.maximum_size = req.maximum_size;
      }
      return d;
    },
    listLeases: async () => w.leases,
    // The control service's lease rules: the node's lease shared by holders, ended with the last one.
    acquireLease: async (req) => {
      const held = w.leases.find((l) => l.dataset_id === req.dataset_id);
      if (held && held.node_uuid !== req.node_uuid)
        throw new FlockerApiError(409, 'LEASE_HELD', 'leased by another node');
      w.calls.push('lease');
      const named = req.holder === undefined ? {} : { holders: [req.holder] };
      if (!held) {
        const l: Lease = { dataset_id: req.dataset_id, node_uuid: req.node_uuid, expires: null, ...named };
        w.leases.push(l);
        return l;
      }
      if (req.holder !== undefined && held.holders === undefined) Object.assign(held, named, { unnamed_holder: true });
      else if (req.holder !== undefined && !held.holders?.includes(req.holder))
        held.holders = [...(held.holders ?? []), req.holder];
      return held;
    },
    releaseLease: async (id, options = {}) => {
      w.calls.push(options.holder === undefined ? 'release' : `release ${options.holder}`);
      const l = w.leases.find((x) => x.dataset_id === id);
      if (!l) throw new FlockerApiError(404, 'LEASE_NOT_FOUND', 'no lease');
      const { holder } = options;
      if (holder !== undefined) {
        if (!l.holders?.includes(holder)) return { ...l, remains: true };
        const holders = l.holders.filter((h) => h !== holder);
        if (holders.length > 0 || l.unnamed_holder === true) {
          if (holders.length > 0) l.holders = holders;
          else {
            delete l.holders;
            delete l.unnamed_holder;
          }
          return { ...l, remains: true };
        }
      }
      w.leases = w.leases.filter((x) => x.dataset_id !== id);
      return holder === undefined ? l : { ...l, remains: false };
    },
    // A long-poll that sees no change: returns after a short wait, as the server would after timeout_ms.
    waitForCluster: async (since, timeoutMs = 0) => {
      if (since !== undefined) await new Promise((r) => setTimeout(r, Math.min(timeoutMs, 20)));
      return snap(since ?? '1');
    },
  };
}

function driver(w: World, mounts: MountInfoEntry[] = []): CsiDriver {
  return quietDriver(client(w), ME, mounts);
}

/** STAGE staged at a fresh temporary staging path (removed after). */
async function stageInTempDir(d: CsiDriver): Promise<void> {
  const staging = mkdtempSync(join(tmpdir(), 'csi-stage-'));
  try {
    await d.nodeStageVolume({ ...STAGE, staging_target_path: staging });
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
}

async function failure(p: Promise<unknown>): Promise<{ code: number; message: string }> {
  try {
    await p;
  } catch (err) {
    return err as { code: number; message: string };
  }
  throw new Error('expected a failure');
}

describe('NodeStageVolume', () => {
  it('is FAILED_PRECONDITION, naming the holder, while another node holds the lease; nothing is moved', async () => {
    const w = world();
    w.leases.push({ dataset_id: ID, node_uuid: OTHER, expires: null, holders: ['csi'] });
    const err = await failure(driver(w).nodeStageVolume(STAGE));
    expect(err.code).toBe(status.FAILED_PRECONDITION);
    expect(err.message).toMatch(
      /in use on node other \(node id 2{8}-2{4}-4222-8222-2{12}\) \(it holds the lease; used there by csi\): unstage it there first$/,
    );
    expect(w.calls).toEqual([]);
    // Its Docker plugin's share, and a lease that names no holder (taken before holders): what to do about them.
    w.leases = [{ dataset_id: ID, node_uuid: OTHER, expires: null, holders: ['docker'] }];
    expect((await failure(driver(w).nodeStageVolume(STAGE))).message).toMatch(
      /\(it holds the lease; used there by docker\): stop the Docker containers using it there$/,
    );
    w.leases = [{ dataset_id: ID, node_uuid: OTHER, expires: null }];
    expect((await failure(driver(w).nodeStageVolume(STAGE))).message).toMatch(
      /\(it holds the lease; it names no holder: once nothing there uses the volume, flocker leases release ends it\)/,
    );
    expect(w.calls).toEqual([]);
  });

  it("takes the lease, moves the dataset here, and after its bound is DEADLINE_EXCEEDED with the agent's reason; the lease is let go again", async () => {
    const w = world();
    w.nodes = [
      node(ME, {
        errors: [
          {
            dataset_id: ID,
            action: 'attach',
            code: 'ATTACH_FAILED',
            message: 'loop device busy',
            attempts: 3,
            since: new Date().toISOString(),
          },
        ],
      }),
      node(OTHER),
    ];
    const started = Date.now();
    const err = await failure(driver(w).nodeStageVolume(STAGE));
    expect(err.code).toBe(status.DEADLINE_EXCEEDED);
    expect(err.message).toMatch(/the dataset agent reports: loop device busy \(ATTACH_FAILED\)/);
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(w.calls).toEqual(['lease', `move ${ME}`, 'release csi']);
    expect(w.leases).toEqual([]);
  });

  it('is NOT_FOUND for an unknown or deleted volume and for an id that is not a dataset id', async () => {
    const w = world();
    expect((await failure(driver(w).nodeStageVolume({ ...STAGE, volume_id: 'fake-vol-id' }))).code).toBe(
      status.NOT_FOUND,
    );
    (w.datasets[0] as DatasetConfiguration).deleted = true;
    expect((await failure(driver(w).nodeStageVolume(STAGE))).code).toBe(status.NOT_FOUND);
  });

  it('is INVALID_ARGUMENT for MULTI_NODE and block capabilities', async () => {
    const w = world();
    const multi = { ...STAGE, volume_capability: { mount: {}, access_mode: { mode: 'MULTI_NODE_MULTI_WRITER' } } };
    const block = { ...STAGE, volume_capability: { block: {}, access_mode: { mode: 'SINGLE_NODE_WRITER' } } };
    expect((await failure(driver(w).nodeStageVolume(multi))).code).toBe(status.INVALID_ARGUMENT);
    expect((await failure(driver(w).nodeStageVolume(block))).code).toBe(status.INVALID_ARGUMENT);
  });

  it('a second call on a volume while one is in flight is ABORTED', async () => {
    const w = world();
    const d = driver(w);
    const first = d.nodeStageVolume(STAGE).catch(() => undefined);
    const second = await failure(d.nodeStageVolume(STAGE));
    expect(second.code).toBe(status.ABORTED);
    await first;
  });
});

describe("NodeStageVolume and a dead node's lease", () => {
  it('waits (long-poll) for the control service to release the lease of a node declared dead, then stages', async () => {
    const w = world();
    w.leases.push({ dataset_id: ID, node_uuid: OTHER, expires: null });
    w.nodes = [node(ME), node(OTHER, { alive: false, dead_since: new Date().toISOString() })];
    const c = client(w);
    let polls = 0;
    const wait = c.waitForCluster;
    // The snapshot carries the lease grace; the third long-poll shows the lease released, the next the dataset mounted here.
    c.waitForCluster = async (since, t) => {
      const s = { ...(await wait(since, t)), lease_grace_seconds: 5 };
      if (since !== undefined && ++polls === 3) w.leases = w.leases.filter((l) => l.node_uuid !== OTHER);
      if (since !== undefined && polls >= 5)
        w.nodes = [
          node(ME, {
            manifestations: [{ dataset_id: ID, blockdevice_id: 'b', size: 1, status: 'mounted', path: '/agent/path' }],
          }),
        ];
      return { ...s, leases: w.leases, nodes: w.nodes };
    };
    const mounts: MountInfoEntry[] = [{ device: '7:1', root: '/', mountPoint: '/agent/path', options: ['rw'] }];
    const binds: string[] = [];
    const d = new CsiDriver({
      client: c,
      logger: winston.createLogger({ silent: true }),
      mode: 'node',
      nodeId: ME,
      mounter: {
        mounts: async () => mounts,
        bind: async (src, dst) => void binds.push(`${src} -> ${dst}`),
        unmount: async () => undefined,
      },
      version: 'test',
      defaultSize: 64 * MiB,
      stageTimeoutMs: 5_000,
      pollMs: 20,
    });
    await stageInTempDir(d);
    expect(w.calls).toEqual(['lease', `move ${ME}`]);
    // Nothing is mounted at the staging path (see the next describe).
    expect(binds).toEqual([]);
  });

  it('this node held dead (NODE_DEAD): waits for it to show alive, then takes the lease (not a request every 50 ms)', async () => {
    // Session 27: the control service grants no lease to a node it holds dead.
    const w = world();
    w.nodes = [node(ME, { alive: false, dead_since: new Date().toISOString() }), node(OTHER)];
    const c = client(w);
    const acquire = c.acquireLease;
    let refused = 0;
    c.acquireLease = async (req) => {
      if (w.nodes.find((n) => n.uuid === ME)?.alive !== true) {
        refused += 1;
        throw new FlockerApiError(409, 'NODE_DEAD', `Node ${ME} was declared dead.`);
      }
      return acquire(req);
    };
    // Alive again 1.2 s on; then mounted here once moved.
    const back = Date.now() + 1_200;
    const wait = c.waitForCluster;
    c.waitForCluster = async (since, t) => {
      const s = await wait(since, t);
      if (Date.now() >= back)
        w.nodes = [
          node(ME, {
            manifestations:
              w.datasets[0]?.primary === ME
                ? [{ dataset_id: ID, blockdevice_id: 'b', size: 1, status: 'mounted', path: '/agent/path' }]
                : [],
          }),
          node(OTHER),
        ];
      return { ...s, nodes: w.nodes };
    };
    const mounts: MountInfoEntry[] = [{ device: '7:1', root: '/', mountPoint: '/agent/path', options: ['rw'] }];
    const d = new CsiDriver({
      client: c,
      logger: winston.createLogger({ silent: true }),
      mode: 'node',
      nodeId: ME,
      mounter: { mounts: async () => mounts, bind: async () => undefined, unmount: async () => undefined },
      version: 'test',
      defaultSize: 64 * MiB,
      stageTimeoutMs: 10_000,
      pollMs: 20,
    });
    await stageInTempDir(d);
    expect(w.calls).toEqual(['lease', `move ${ME}`]);
    // One refusal per NODE_DEAD_RETRY_MS (500 ms) at most while dead: 3 in 1.2 s (the free lease's 50-ms retry asked 14 times).
    expect(refused).toBeLessThanOrEqual(3);
  });

  it('NODE_DEAD while the snapshot shows this node alive: DEADLINE_EXCEEDED at the deadline, not asks with no pause (review s27 F6)', async () => {
    const w = world();
    const c = client(w);
    let refused = 0;
    c.acquireLease = async () => {
      refused += 1;
      throw new FlockerApiError(409, 'NODE_DEAD', `Node ${ME} was declared dead.`);
    };
    const d = new CsiDriver({
      client: c,
      logger: winston.createLogger({ silent: true }),
      mode: 'node',
      nodeId: ME,
      mounter: { mounts: async () => [], bind: async () => undefined, unmount: async () => undefined },
      version: 'test',
      defaultSize: 64 * MiB,
      stageTimeoutMs: 1_200,
      pollMs: 20,
    });
    const t = Date.now();
    const outcome = await Promise.race([
      failure(d.nodeStageVolume(STAGE)),
      new Promise<'still asking'>((r) => setTimeout(() => r('still asking'), 8_000).unref()),
    ]);
    expect(outcome).toMatchObject({ code: status.DEADLINE_EXCEEDED });
    expect(Date.now() - t).toBeLessThan(8_000);
    // One ask per NODE_DEAD_RETRY_MS (500 ms) at most within the 1.2 s.
    expect(refused).toBeLessThanOrEqual(4);
  });

  it('fails at once on a pinned lease and on a dead holder when the control service releases nothing', async () => {
    const w = world();
    w.nodes = [node(ME), node(OTHER, { alive: false, dead_since: new Date().toISOString() })];
    w.leases.push({ dataset_id: ID, node_uuid: OTHER, expires: null, pinned: true });
    expect(await failure(driver(w).nodeStageVolume(STAGE))).toMatchObject({
      code: status.FAILED_PRECONDITION,
      message: expect.stringMatching(/pinned/),
    });
    w.leases = [{ dataset_id: ID, node_uuid: OTHER, expires: null }];
    expect(await failure(driver(w).nodeStageVolume(STAGE))).toMatchObject({
      code: status.FAILED_PRECONDITION,
      message: expect.stringMatching(/does not release/),
    });
  });
});

/**
 * Found on a real kubelet: before unstaging, it lists the other mounts of the staging path's
 * device (GetDeviceMountRefs) and refuses while any lies outside its plugins dir ("still
 * mounted by other references [<the agent's mount>]"), so a staging bind of the agent's mount
 * kept the volume on its node forever. The staging path is therefore never a mount: the
 * volume is staged when this node holds its lease and the agent has it mounted, and publish
 * binds the agent's mount onto the target.
 */
describe('stage and publish against a kubelet', () => {
  const AGENT_PATH = '/flocker/33333333-3333-4333-8333-333333333333';
  function stagedWorld(): World {
    const w = world();
    w.datasets[0]!.primary = ME;
    w.nodes = [
      node(ME, {
        manifestations: [{ dataset_id: ID, blockdevice_id: 'b', size: 1, status: 'mounted', path: AGENT_PATH }],
      }),
      node(OTHER),
    ];
    return w;
  }
  function recordingDriver(w: World, mounts: MountInfoEntry[]): { d: CsiDriver; binds: string[] } {
    const binds: string[] = [];
    const d = new CsiDriver({
      client: client(w),
      logger: winston.createLogger({ silent: true }),
      mode: 'node',
      nodeId: ME,
      mounter: {
        mounts: async () => mounts,
        bind: async (src, dst, ro) => void binds.push(`${src} -> ${dst}${ro ? ' ro' : ''}`),
        unmount: async () => undefined,
      },
      version: 'test',
      defaultSize: 64 * MiB,
      stageTimeoutMs: 150,
      pollMs: 20,
    });
    return { d, binds };
  }
  const agentMount: MountInfoEntry = { device: '7:1', root: '/', mountPoint: AGENT_PATH, options: ['rw'] };

  it('stage takes the lease and mounts nothing at the staging path; publish binds the agent mount onto the target', async () => {
    const w = stagedWorld();
    const { d, binds } = recordingDriver(w, [agentMount]);
    await d.nodeStageVolume(STAGE);
    expect(w.calls).toEqual(['lease']);
    expect(binds).toEqual([]);
    const target = join(mkdtempSync(join(tmpdir(), 'csi-pub-')), 'mount');
    try {
      await d.nodePublishVolume({
        volume_id: ID,
        staging_target_path: STAGE.staging_target_path,
        target_path: target,
        volume_capability: CAP,
        readonly: true,
      });
    } finally {
      rmSync(join(target, '..'), { recursive: true, force: true });
    }
    expect(binds).toEqual([`${AGENT_PATH} -> ${target} ro`]);
  });

  it('publish is FAILED_PRECONDITION when this node does not hold the lease or the agent has not mounted it, NOT_FOUND for an unknown volume', async () => {
    const publish = {
      volume_id: ID,
      staging_target_path: STAGE.staging_target_path,
      target_path: '/tmp/never-used-target',
      volume_capability: CAP,
    };
    const w = stagedWorld();
    expect(await failure(recordingDriver(w, [agentMount]).d.nodePublishVolume(publish))).toMatchObject({
      code: status.FAILED_PRECONDITION,
    });
    w.leases.push({ dataset_id: ID, node_uuid: ME, expires: null });
    expect(await failure(recordingDriver(w, []).d.nodePublishVolume(publish))).toMatchObject({
      code: status.FAILED_PRECONDITION,
    });
    expect(
      await failure(recordingDriver(w, [agentMount]).d.nodePublishVolume({ ...publish, volume_id: OTHER })),
    ).toMatchObject({ code: status.NOT_FOUND });
  });

  it('unstage releases the lease', async () => {
    const w = stagedWorld();
    w.leases.push({ dataset_id: ID, node_uuid: ME, expires: null, holders: ['csi'] });
    await recordingDriver(w, [agentMount]).d.nodeUnstageVolume({
      volume_id: ID,
      staging_target_path: STAGE.staging_target_path,
    });
    expect(w.leases).toEqual([]);
  });

  describe('a stale "mounted" (session 9/10: a move away and straight back, the report from before the agent acted on it)', () => {
    const publish = {
      volume_id: ID,
      staging_target_path: STAGE.staging_target_path,
      target_path: '/tmp/never-used-target',
      volume_capability: CAP,
    };

    it("publish binds nothing while the kernel does not show the agent's mount, though the agent reports it mounted", async () => {
      const w = stagedWorld();
      w.leases.push({ dataset_id: ID, node_uuid: ME, expires: null, holders: ['csi'] });
      const { d, binds } = recordingDriver(w, []);
      expect(await failure(d.nodePublishVolume(publish))).toMatchObject({
        code: status.FAILED_PRECONDITION,
        message: expect.stringMatching(/is not staged on this node/),
      });
      expect(binds).toEqual([]);
    });

    it('stage waits for the kernel to show the mount (the agent mounts again), then is staged; the old stage failed at once', async () => {
      const w = stagedWorld();
      const mounts: MountInfoEntry[] = [];
      const binds: string[] = [];
      const d = new CsiDriver({
        client: client(w),
        logger: winston.createLogger({ silent: true }),
        mode: 'node',
        nodeId: ME,
        mounter: {
          mounts: async () => [...mounts],
          bind: async (a, b) => void binds.push(`${a} -> ${b}`),
          unmount: async () => undefined,
        },
        version: 'test',
        defaultSize: 64 * MiB,
        stageTimeoutMs: 5_000,
        pollMs: 20,
      });
      let staged = false;
      const stage = d.nodeStageVolume(STAGE).then(() => (staged = true));
      await new Promise((r) => setTimeout(r, 150));
      // Before: INTERNAL "the agent reports ... mounted but this mount namespace does not show it", lease let go.
      expect(staged).toBe(false);
      expect(w.leases).toEqual([{ dataset_id: ID, node_uuid: ME, expires: null, holders: ['csi'] }]);
      mounts.push(agentMount);
      await stage;
      expect(w.calls).toEqual(['lease']);
      expect(binds).toEqual([]);
    });

    it("stage is INTERNAL at its deadline when the kernel never shows it (a mount namespace that does not see the agent's mounts); the lease is let go", async () => {
      const w = stagedWorld();
      const err = await failure(recordingDriver(w, []).d.nodeStageVolume(STAGE));
      expect(err).toMatchObject({
        code: status.INTERNAL,
        message: expect.stringMatching(/reports \/flocker\/\S+ mounted but this mount namespace does not show it/),
      });
      expect(w.calls).toEqual(['lease', 'release csi']);
      expect(w.leases).toEqual([]);
    });
  });

  describe("the node's lease shared with the Docker plugin (holder docker) on the same node", () => {
    const unstage = { volume_id: ID, staging_target_path: STAGE.staging_target_path };
    const publish = {
      volume_id: ID,
      staging_target_path: STAGE.staging_target_path,
      target_path: '/tmp/never-used-target',
      volume_capability: CAP,
    };

    it('unstage lets go of only the CSI share: a Docker container still using the volume keeps the lease here', async () => {
      const w = stagedWorld();
      w.leases.push({ dataset_id: ID, node_uuid: ME, expires: null, holders: ['docker', 'csi'] });
      await recordingDriver(w, [agentMount]).d.nodeUnstageVolume(unstage);
      expect(w.calls).toEqual(['release csi']);
      expect(w.leases).toEqual([{ dataset_id: ID, node_uuid: ME, expires: null, holders: ['docker'] }]);
      // Unstaged again (the kubelet retries): the Docker share stays.
      await recordingDriver(w, [agentMount]).d.nodeUnstageVolume(unstage);
      expect(w.leases).toEqual([{ dataset_id: ID, node_uuid: ME, expires: null, holders: ['docker'] }]);
    });

    it("stage while the Docker plugin holds the node's lease adds the CSI share (the Docker share alone is not staged)", async () => {
      const w = stagedWorld();
      w.leases.push({ dataset_id: ID, node_uuid: ME, expires: null, holders: ['docker'] });
      const { d } = recordingDriver(w, [agentMount]);
      expect(await failure(d.nodePublishVolume(publish))).toMatchObject({ code: status.FAILED_PRECONDITION });
      await d.nodeStageVolume(STAGE);
      expect(w.calls).toEqual(['lease']);
      expect(w.leases).toEqual([{ dataset_id: ID, node_uuid: ME, expires: null, holders: ['docker', 'csi'] }]);
      // Staged: a second stage writes nothing.
      await d.nodeStageVolume(STAGE);
      expect(w.calls).toEqual(['lease']);
    });

    it('a failed stage lets go of only its own share', async () => {
      const w = stagedWorld();
      w.nodes = [node(ME), node(OTHER)]; // the agent here never reports it mounted
      w.leases.push({ dataset_id: ID, node_uuid: ME, expires: null, holders: ['docker'] });
      expect((await failure(recordingDriver(w, []).d.nodeStageVolume(STAGE))).code).toBe(status.DEADLINE_EXCEEDED);
      expect(w.calls).toEqual(['lease', 'release csi']);
      expect(w.leases).toEqual([{ dataset_id: ID, node_uuid: ME, expires: null, holders: ['docker'] }]);
    });
  });
});

describe('NodeStageVolume while another live node is letting go (a rescheduled pod)', () => {
  function handoverDriver(w: World, c: ControlClient, handoverWaitMs: number): CsiDriver {
    return new CsiDriver({
      client: c,
      logger: winston.createLogger({ silent: true }),
      mode: 'node',
      nodeId: ME,
      mounter: {
        mounts: async () => [{ device: '7:1', root: '/', mountPoint: '/agent/path', options: ['rw'] }],
        bind: async () => undefined,
        unmount: async () => undefined,
      },
      version: 'test',
      defaultSize: 64 * MiB,
      stageTimeoutMs: 5_000,
      pollMs: 20,
      handoverWaitMs,
    });
  }

  it('waits (long-poll) within --handover-wait for the live holder to release the lease, then stages', async () => {
    const w = world();
    w.leases.push({ dataset_id: ID, node_uuid: OTHER, expires: null });
    const c = client(w);
    const wait = c.waitForCluster;
    let polls = 0;
    // The old node unstages on the third long-poll; the agent here then reports the volume mounted.
    c.waitForCluster = async (since, t) => {
      const s = await wait(since, t);
      if (since !== undefined && ++polls === 3) w.leases = [];
      if (w.calls.includes(`move ${ME}`))
        w.nodes = [
          node(ME, {
            manifestations: [{ dataset_id: ID, blockdevice_id: 'b', size: 1, status: 'mounted', path: '/agent/path' }],
          }),
          node(OTHER),
        ];
      return { ...s, leases: w.leases, nodes: w.nodes };
    };
    await handoverDriver(w, c, 2_000).nodeStageVolume(STAGE);
    expect(w.calls).toEqual(['lease', `move ${ME}`]);
    expect(polls).toBeGreaterThanOrEqual(3);
  });

  it('is FAILED_PRECONDITION naming the holder once the wait is over; nothing is moved', async () => {
    const w = world();
    w.leases.push({ dataset_id: ID, node_uuid: OTHER, expires: null, holders: ['csi'] });
    const started = Date.now();
    const err = await failure(handoverDriver(w, client(w), 200).nodeStageVolume(STAGE));
    expect(Date.now() - started).toBeGreaterThanOrEqual(190);
    expect(err).toMatchObject({
      code: status.FAILED_PRECONDITION,
      message: expect.stringMatching(
        /in use on node other \(node id 2{8}-2{4}-4222-8222-2{12}\) \(it holds the lease; used there by csi\)/,
      ),
    });
    expect(w.calls).toEqual([]);
  });
});

describe('ControllerExpandVolume', () => {
  const expand = (required: number, limit = 0) => ({
    volume_id: ID,
    capacity_range: { required_bytes: String(required), limit_bytes: String(limit) },
  });
  it('grows the dataset to the required bytes, waits for the agent to report it, and needs no node expansion', async () => {
    const w = world();
    w.nodes = [
      node(ME),
      node(OTHER, {
        manifestations: [{ dataset_id: ID, blockdevice_id: 'b', size: 64 * MiB, status: 'mounted', path: '/p' }],
      }),
    ];
    const c = client(w);
    const wait = c.waitForCluster;
    let polls = 0;
    c.waitForCluster = async (since, t) => {
      if (since !== undefined && ++polls === 2)
        w.nodes = [
          node(ME),
          node(OTHER, {
            manifestations: [{ dataset_id: ID, blockdevice_id: 'b', size: 128 * MiB, status: 'mounted', path: '/p' }],
          }),
        ];
      return wait(since, t);
    };
    const d = new CsiDriver({
      client: c,
      logger: winston.createLogger({ silent: true }),
      mode: 'controller',
      mounter: { mounts: async () => [], bind: async () => undefined, unmount: async () => undefined },
      version: 't',
      defaultSize: 64 * MiB,
      stageTimeoutMs: 2_000,
      pollMs: 20,
    });
    expect(await d.controllerExpandVolume(expand(128 * MiB))).toEqual({
      capacity_bytes: 128 * MiB,
      node_expansion_required: false,
    });
    expect(w.calls).toEqual([`resize ${128 * MiB}`]);
    expect(polls).toBeGreaterThanOrEqual(2);
    // Again: already that size, nothing changes (idempotent); a smaller request keeps the size.
    expect(await d.controllerExpandVolume(expand(128 * MiB))).toEqual({
      capacity_bytes: 128 * MiB,
      node_expansion_required: false,
    });
    expect(await d.controllerExpandVolume(expand(64 * MiB))).toEqual({
      capacity_bytes: 128 * MiB,
      node_expansion_required: false,
    });
    expect(w.calls).toEqual([`resize ${128 * MiB}`]);
  });
  it('INVALID_ARGUMENT without a range or id, NOT_FOUND for an unknown volume, OUT_OF_RANGE below the current size', async () => {
    const w = world();
    const d = driver(w);
    expect((await failure(d.controllerExpandVolume({ volume_id: ID }))).code).toBe(status.INVALID_ARGUMENT);
    expect((await failure(d.controllerExpandVolume({ capacity_range: { required_bytes: '1' } }))).code).toBe(
      status.INVALID_ARGUMENT,
    );
    expect((await failure(d.controllerExpandVolume({ ...expand(MiB), volume_id: 'fake' }))).code).toBe(
      status.NOT_FOUND,
    );
    expect((await failure(d.controllerExpandVolume(expand(0, 32 * MiB)))).code).toBe(status.OUT_OF_RANGE);
    expect(w.calls).toEqual([]);
  });
});

describe('controller volume health', () => {
  it('healthy: no entries; errors of any agent: DEGRADED; primary down: INACCESSIBLE; listed per volume', async () => {
    const w = world();
    const d = new CsiDriver({
      client: client(w),
      logger: winston.createLogger({ silent: true }),
      mode: 'controller',
      mounter: { mounts: async () => [], bind: async () => undefined, unmount: async () => undefined },
      version: 't',
      defaultSize: 64 * MiB,
      stageTimeoutMs: 100,
    });
    expect(await d.controllerGetVolumeHealth({ volume_id: ID })).toEqual({
      volume_health: { volume_id: ID, health_statuses: [] },
    });
    const error = {
      dataset_id: ID,
      action: 'attach',
      code: 'ATTACH_FAILED',
      message: 'busy',
      attempts: 1,
      since: '2026-01-01T00:00:00Z',
    };
    const snap = (nodes: NodeState[]): ClusterSnapshot => ({
      generation: '1',
      configuration_tag: 't',
      datasets: w.datasets,
      leases: [],
      nodes,
    });
    expect(clusterVolumeHealth(snap([node(ME, { errors: [error] }), node(OTHER)]), ID)).toEqual([
      { status: 'DEGRADED', reason: 'ATTACH_FAILED', message: expect.stringMatching(/on me reports: busy/) },
    ]);
    expect(
      clusterVolumeHealth(snap([node(ME), node(OTHER, { alive: false, dead_since: '2026-01-01T00:00:00Z' })]), ID),
    ).toEqual([
      {
        status: 'INACCESSIBLE',
        reason: 'PRIMARY_NODE_DOWN',
        message: 'its node other is unreachable since 2026-01-01T00:00:00Z',
      },
    ]);
    expect(await d.controllerListVolumeHealth({})).toEqual({
      entries: [{ volume_id: ID, health_statuses: [] }],
      next_token: '',
    });
    expect((await failure(d.controllerGetVolumeHealth({}))).code).toBe(status.INVALID_ARGUMENT);
    expect((await failure(d.controllerGetVolumeHealth({ volume_id: 'fake' }))).code).toBe(status.NOT_FOUND);
    expect((await failure(d.controllerListVolumeHealth({ starting_token: 'bad' }))).code).toBe(status.ABORTED);
  });
});

describe('waitReason', () => {
  const snap = (nodes: NodeState[], primary = ME): ClusterSnapshot => ({
    generation: '1',
    configuration_tag: 't',
    datasets: [{ dataset_id: ID, primary, maximum_size: null, metadata: {}, deleted: false }],
    leases: [],
    nodes,
  });
  it('says whether the agent is missing, dead, failing, still moving or just not done', () => {
    expect(waitReason(snap([]), ME, ID)).toMatch(/has not reported/);
    expect(waitReason(snap([node(ME, { alive: false })]), ME, ID)).toMatch(/stopped reporting/);
    expect(waitReason(snap([node(ME)], OTHER), ME, ID)).toMatch(/still being moved/);
    expect(waitReason(snap([node(ME)]), ME, ID)).toMatch(/not mounted it yet/);
  });
  it("adds the error the node it moves from reports (review U6 1b: still in use there), naming that node's id", () => {
    const busy = {
      dataset_id: ID,
      action: 'detach',
      code: 'DEVICE_BUSY',
      message: 'loop device /dev/loop0 is in use',
      attempts: 3,
      since: '2026-01-01T00:00:00Z',
    };
    expect(waitReason(snap([node(ME), node(OTHER, { errors: [busy] })]), ME, ID)).toBe(
      `the dataset agent has not mounted it yet; the dataset agent on node other (node id ${OTHER}) reports: loop device /dev/loop0 is in use (DEVICE_BUSY)`,
    );
    expect(waitReason(snap([node(ME), node(OTHER, { errors: [busy] })], OTHER), ME, ID)).toMatch(
      /still being moved to this node; the dataset agent on node other .* \(DEVICE_BUSY\)$/,
    );
  });
});

describe('NodeGetVolumeStats', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'csi-stats-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  function mountedHere(w: World): MountInfoEntry[] {
    const agentPath = join(dir, 'agent');
    (w.datasets[0] as DatasetConfiguration).primary = ME;
    w.nodes = [
      node(ME, {
        manifestations: [{ dataset_id: ID, blockdevice_id: 'b', size: 64 * MiB, status: 'mounted', path: agentPath }],
      }),
    ];
    return [
      { device: '7:1', root: '/', mountPoint: agentPath, options: ['rw'] },
      { device: '7:1', root: '/', mountPoint: dir, options: ['rw'] },
    ];
  }

  it('reports bytes and inodes of the path', async () => {
    const w = world();
    const res = (await driver(w, mountedHere(w)).nodeGetVolumeStats({ volume_id: ID, volume_path: dir })) as {
      usage: { unit: string; total: number; used: number; available: number }[];
    };
    expect(res.usage.map((u) => u.unit)).toEqual(['BYTES', 'INODES']);
    for (const u of res.usage) {
      expect(u.total).toBeGreaterThan(0);
      expect(u.used + u.available).toBeLessThanOrEqual(u.total);
    }
  });

  it("is NOT_FOUND for a path that is not the volume's mount, or that does not exist", async () => {
    const w = world();
    const mounts = mountedHere(w).slice(0, 1);
    expect((await failure(driver(w, mounts).nodeGetVolumeStats({ volume_id: ID, volume_path: dir }))).code).toBe(
      status.NOT_FOUND,
    );
    expect(
      (await failure(driver(w, mounts).nodeGetVolumeStats({ volume_id: ID, volume_path: join(dir, 'nope') }))).code,
    ).toBe(status.NOT_FOUND);
  });
});

describe('NodeGetVolumeHealth', () => {
  it("is healthy (no entries), DEGRADED with the agent's error, INACCESSIBLE when the agent stopped reporting", async () => {
    const w = world();
    const res = (await driver(w).nodeGetVolumeHealth({ volume_id: ID })) as {
      volume_health: { volume_id: string; health_statuses: unknown[] };
    };
    expect(res.volume_health).toEqual({ volume_id: ID, health_statuses: [] });
    const error = {
      dataset_id: ID,
      action: 'resize',
      code: 'RESIZE_FAILED',
      message: 'resize2fs failed',
      attempts: 2,
      since: '2026-01-01T00:00:00Z',
    };
    const snap = (n: NodeState): ClusterSnapshot => ({
      generation: '1',
      configuration_tag: 't',
      datasets: w.datasets,
      leases: [],
      nodes: [n],
    });
    expect(volumeHealth(snap(node(ME, { errors: [error] })), ME, ID)).toEqual([
      { status: 'DEGRADED', reason: 'RESIZE_FAILED', message: expect.stringMatching(/resize2fs failed/) },
    ]);
    expect(volumeHealth(snap(node(ME, { alive: false })), ME, ID)).toEqual([
      { status: 'INACCESSIBLE', reason: 'AGENT_NOT_REPORTING', message: expect.stringMatching(/stopped reporting/) },
    ]);
  });
  it('is INVALID_ARGUMENT without a volume id and NOT_FOUND for an unknown volume', async () => {
    const w = world();
    expect((await failure(driver(w).nodeGetVolumeHealth({}))).code).toBe(status.INVALID_ARGUMENT);
    expect((await failure(driver(w).nodeGetVolumeHealth({ volume_id: 'fake-vol-id' }))).code).toBe(status.NOT_FOUND);
  });
});

import { randomUUID } from 'node:crypto';
import { ManualClock } from '@flocker/runtime/testing';
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ClusterSnapshot } from '@flocker/api';
import { LoopbackDriver } from '@flocker/storage-drivers';
import winston from 'winston';
import { isAgentError } from './errors';
import {
  checkPoolAtStart,
  createRefusal,
  fetchSnapshotPatiently,
  poolVerdict,
  reportedVolumes,
  type ClusterIdentity,
  type PoolFacts,
} from './poolSafety';

const MiB = 1024 * 1024;
const NODE_A = '11111111-1111-4111-8111-111111111111';
const NODE_C = '33333333-3333-4333-8333-333333333333';
const DS = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
const DS2 = 'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb';
const GONE = 'cccccccc-cccc-4ccc-8ccc-cccccccccccc';
const silent = winston.createLogger({ silent: true });
const cluster1: ClusterIdentity = { id: 'cluster-1', source: 'test' };

function node(uuid: string, backend: string, volumes: Array<[string, string]>): ClusterSnapshot['nodes'][number] {
  return {
    uuid,
    era: 'e',
    host: 'h',
    instance_id: uuid,
    backend,
    manifestations: [],
    volumes: volumes.map(([blockdevice_id, dataset_id]) => ({
      blockdevice_id,
      dataset_id,
      size: 64 * MiB,
      attached_to: null,
    })),
    errors: [],
    alive: true,
    last_seen: new Date().toISOString(),
  };
}

function snapshot(nodes: ClusterSnapshot['nodes']): ClusterSnapshot {
  const d = (dataset_id: string, deleted: boolean) => ({
    dataset_id,
    primary: NODE_A,
    maximum_size: 64 * MiB,
    metadata: {},
    deleted,
  });
  return {
    generation: '1',
    configuration_tag: 't',
    datasets: [d(DS, false), d(DS2, false), d(GONE, true)],
    leases: [],
    nodes,
  };
}

describe('reportedVolumes', () => {
  it('lists the volumes nodes of this backend report for datasets that exist, once each', () => {
    const snap = snapshot([
      node(NODE_A, 'loopback', [
        ['v1', DS],
        ['v-gone', GONE],
      ]),
      node(NODE_C, 'loopback', [
        ['v1', DS],
        ['v2', DS2],
      ]),
      node('44444444-4444-4444-8444-444444444444', 'aws', [['vol-x', DS]]),
    ]);
    expect(reportedVolumes(snap, 'loopback')).toEqual([
      { blockdeviceId: 'v1', datasetId: DS, reportedBy: NODE_A },
      { blockdeviceId: 'v2', datasetId: DS2, reportedBy: NODE_C },
    ]);
  });
});

describe('poolVerdict (start-up)', () => {
  const base: PoolFacts = {
    identity: { clusterId: 'cluster-1', created: 't' },
    cluster: cluster1,
    poolIds: new Set(['v1']),
    where: 'pool /p',
    backend: 'loopback',
  };
  const reported = [{ blockdeviceId: 'v1', datasetId: DS, reportedBy: NODE_A }];
  it.each<[string, Partial<PoolFacts>, string]>([
    ['a pool of this cluster with volumes: go, without asking anyone', {}, 'ok'],
    [
      'a pool of another cluster: refuse',
      { identity: { clusterId: 'cluster-2', created: 't' } },
      'POOL_OF_ANOTHER_CLUSTER',
    ],
    [
      'a pool claimed without identity, agent with one: refuse',
      { identity: { clusterId: null, created: 't' } },
      'POOL_OF_ANOTHER_CLUSTER',
    ],
    ['an unclaimed pool: ask the control service first', { identity: null }, 'needSnapshot'],
    ['an empty pool of this cluster: ask first', { poolIds: new Set() }, 'needSnapshot'],
    [
      'an unclaimed empty pool while volumes are reported elsewhere: refuse (the wrong root_path)',
      { identity: null, poolIds: new Set(), reported },
      'POOL_MISSING_VOLUMES',
    ],
    [
      'an empty claimed pool while volumes are reported: refuse',
      { poolIds: new Set(), reported },
      'POOL_MISSING_VOLUMES',
    ],
    [
      'an unclaimed pool that has every reported volume (an older pool): claim it',
      { identity: null, reported },
      'claim',
    ],
    [
      'an unclaimed empty pool of a new cluster: claim it',
      { identity: null, poolIds: new Set(), reported: [] },
      'claim',
    ],
    [
      'a backend without pool identity, empty, volumes reported: refuse',
      { identity: undefined, poolIds: new Set(), reported },
      'POOL_MISSING_VOLUMES',
    ],
    ['a backend without pool identity with volumes: go', { identity: undefined }, 'ok'],
  ])('%s', (_name, over, expected) => {
    const v = poolVerdict({ ...base, ...over });
    const got = v.kind === 'refuse' ? v.code : v.kind === 'ok' ? (v.claim ? 'claim' : 'ok') : v.kind;
    expect(got).toBe(expected);
  });

  it('says what is wrong and what to do', () => {
    const v = poolVerdict({ ...base, identity: null, poolIds: new Set(), reported });
    expect(v).toMatchObject({
      kind: 'refuse',
      message: expect.stringMatching(/pool \/p is not initialised.*volume v1 of dataset a+.*root_path/s),
    });
    const w = poolVerdict({ ...base, identity: { clusterId: 'cluster-2', created: 't' } });
    expect(w).toMatchObject({
      kind: 'refuse',
      message: expect.stringMatching(/belongs to cluster cluster-2.*in cluster cluster-1.*root_path/s),
    });
  });
});

describe('createRefusal (never a second volume for a dataset)', () => {
  const volume = { blockdeviceId: 'v-other', datasetId: DS2, size: MiB, attachedTo: null };
  const problem = { code: 'CORRUPT_RECORD' as const, blockdeviceId: 'v-bad', message: 'record is not valid JSON' };
  it.each<[string, Parameters<typeof createRefusal>[1], Parameters<typeof createRefusal>[2], string | undefined]>([
    ['nothing known of the dataset: create', { volumes: [volume], problems: [] }, [], undefined],
    ['its record is unreadable', { volumes: [], problems: [{ ...problem, datasetId: DS }] }, [], 'CORRUPT_RECORD'],
    ['a record nobody can attribute may be its', { volumes: [], problems: [problem] }, [], 'CORRUPT_RECORD'],
    [
      "another dataset's unreadable record does not matter",
      { volumes: [], problems: [{ ...problem, datasetId: DS2 }] },
      [],
      undefined,
    ],
    [
      'a node reports a volume of it that this pool lacks',
      { volumes: [volume], problems: [] },
      [{ blockdeviceId: 'v1', datasetId: DS, reportedBy: NODE_C }],
      'VOLUME_ELSEWHERE',
    ],
  ])('%s', (_name, listing, reported, code) => {
    expect(createRefusal(DS, listing, reported, 'pool /p')?.code).toBe(code);
  });
});

/** Manual time for the wait for other nodes' reports. */
function seams(): { nodeUuid: string; clock: ManualClock; slept: () => number } {
  const clock = new ManualClock(0);
  // The check's only timer is its sleep: let each one pass at once, counting the time.
  clock.sleep = async (ms) => void (await clock.advance(ms));
  return { nodeUuid: NODE_C, clock, slept: () => clock.now() };
}

/** Makes real loopback pools in temporary directories, removed after the enclosing describe block. */
function tempPools(): () => Promise<LoopbackDriver> {
  const roots: string[] = [];
  afterAll(async () => {
    for (const r of roots) await fs.rm(r, { recursive: true, force: true });
  });
  return async () => {
    const root = await fs.mkdtemp(join(tmpdir(), 'flocker-pool-check-'));
    roots.push(root);
    return new LoopbackDriver({ rootPath: root, instanceId: randomUUID() });
  };
}

describe('checkPoolAtStart with real pools', () => {
  const pool = tempPools();
  async function refusal(p: Promise<void>): Promise<string> {
    try {
      await p;
    } catch (e) {
      if (isAgentError(e)) return e.code;
      throw e;
    }
    return 'started';
  }

  it('host C pointed at an empty pool while host A reports volumes of existing datasets: refuses, creating nothing', async () => {
    const real = await pool();
    const v = await real.createVolume(DS, 64 * MiB);
    const snap = snapshot([node(NODE_A, 'loopback', [[v.blockdeviceId, DS]])]);
    const wrong = await pool();
    let asked = 0;
    const check = checkPoolAtStart({
      driver: wrong,
      cluster: cluster1,
      where: `pool ${wrong.rootPath}`,
      fetchSnapshot: async () => (asked++, snap),
      logger: silent,
      ...seams(),
    });
    expect(await refusal(check)).toBe('POOL_MISSING_VOLUMES');
    expect(asked).toBe(1);
    expect(await wrong.poolIdentity()).toBeNull(); // not claimed
    expect(await wrong.listVolumes()).toEqual([]);
    // The real pool (unclaimed, from before pool identities) has the volume: claimed.
    expect(
      await refusal(
        checkPoolAtStart({
          driver: real,
          cluster: cluster1,
          where: 'real',
          fetchSnapshot: async () => snap,
          logger: silent,
          ...seams(),
        }),
      ),
    ).toBe('started');
    expect(await real.poolIdentity()).toMatchObject({ clusterId: 'cluster-1' });
  });

  it("refuses another cluster's pool without asking the control service; claims a new cluster's empty pool", async () => {
    const p = await pool();
    const noSnapshot = async (): Promise<ClusterSnapshot> => {
      throw new Error('not needed');
    };
    expect(
      await refusal(
        checkPoolAtStart({
          driver: p,
          cluster: cluster1,
          where: 'p',
          fetchSnapshot: async () => snapshot([]),
          logger: silent,
          ...seams(),
        }),
      ),
    ).toBe('started');
    const json: unknown = JSON.parse(await fs.readFile(join(p.rootPath, 'pool.json'), 'utf8'));
    expect(json).toMatchObject({ version: 1, cluster_id: 'cluster-1' });
    await p.createVolume(DS, 64 * MiB);
    expect(
      await refusal(
        checkPoolAtStart({
          driver: p,
          cluster: cluster1,
          where: 'p',
          fetchSnapshot: noSnapshot,
          logger: silent,
          ...seams(),
        }),
      ),
    ).toBe('started');
    const other = checkPoolAtStart({
      driver: p,
      cluster: { id: 'cluster-2', source: 'test' },
      where: 'p',
      fetchSnapshot: noSnapshot,
      logger: silent,
      ...seams(),
    });
    expect(await refusal(other)).toBe('POOL_OF_ANOTHER_CLUSTER');
  });

  it('a pool with only an unreadable record is not empty', async () => {
    const p = await pool();
    const v = await p.createVolume(DS, 64 * MiB);
    await p.claimPool('cluster-1');
    await fs.writeFile(join(p.volumesPath, `${v.blockdeviceId}.json`), '{"truncated');
    const check = checkPoolAtStart({
      driver: p,
      cluster: cluster1,
      where: 'p',
      fetchSnapshot: async () => snapshot([node(NODE_A, 'loopback', [[v.blockdeviceId, DS]])]),
      logger: silent,
      ...seams(),
    });
    expect(await refusal(check)).toBe('started');
  });
});

describe('checkPoolAtStart right after a control service restart (no report yet)', () => {
  const pool = tempPools();

  it('waits for the other nodes to report before using an empty pool, and then refuses it', async () => {
    const wrong = await pool();
    const reporting = snapshot([node(NODE_A, 'loopback', [['v1', DS]])]);
    let asked = 0;
    const s = seams();
    const check = checkPoolAtStart({
      driver: wrong,
      cluster: cluster1,
      where: 'p',
      fetchSnapshot: async () => (++asked < 4 ? snapshot([]) : reporting),
      logger: silent,
      ...s,
    });
    await expect(check).rejects.toMatchObject({ code: 'POOL_MISSING_VOLUMES' });
    expect(asked).toBe(4);
    expect(await wrong.poolIdentity()).toBeNull();
  });

  it('goes on after the node timeout when no other node reports (a one-node cluster), and not before', async () => {
    const p = await pool();
    const s = seams();
    const alone = { ...snapshot([]), node_timeout_seconds: 10 };
    await checkPoolAtStart({
      driver: p,
      cluster: cluster1,
      where: 'p',
      fetchSnapshot: async () => alone,
      logger: silent,
      ...s,
    });
    expect(s.slept()).toBe(10_000);
    expect(await p.poolIdentity()).toMatchObject({ clusterId: 'cluster-1' });
    // Claimed (if empty): no more waiting at a restart.
    const again = seams();
    await checkPoolAtStart({
      driver: p,
      cluster: cluster1,
      where: 'p',
      fetchSnapshot: async () => alone,
      logger: silent,
      ...again,
    });
    expect(again.slept()).toBe(0);
  });

  it('an unclaimed pool (from before pool identities) that has a volume of every dataset is claimed without waiting', async () => {
    const p = await pool();
    await p.createVolume(DS, 64 * MiB);
    await p.createVolume(DS2, 64 * MiB);
    const s = seams();
    await checkPoolAtStart({
      driver: p,
      cluster: cluster1,
      where: 'p',
      fetchSnapshot: async () => snapshot([]),
      logger: silent,
      ...s,
    });
    expect(s.slept()).toBe(0);
    expect(await p.poolIdentity()).toMatchObject({ clusterId: 'cluster-1' });
  });
});

describe('fetchSnapshotPatiently', () => {
  it('retries with growing pauses until the control service answers', async () => {
    const pauses: number[] = [];
    let calls = 0;
    const snap = snapshot([]);
    const got = await fetchSnapshotPatiently(
      async () => {
        if (++calls < 4) throw new Error('ECONNREFUSED');
        return snap;
      },
      silent,
      { sleep: async (ms) => void pauses.push(ms) },
      100,
      300,
    );
    expect(got).toBe(snap);
    expect(pauses).toEqual([100, 200, 300]);
  });
});

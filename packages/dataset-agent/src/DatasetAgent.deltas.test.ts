/**
 * The agent following its node's view by deltas (issue 23) against a control service in memory
 * that answers views and deltas as the real one does (testing/ViewControl), by long-polls or over
 * a watch (testing/WatchControl): the same decisions as following whole snapshots, a whole view
 * again after the service restarts, long-poll deltas from a service without the watch, and whole
 * snapshots from a service that refuses deltas.
 */
import { FlockerApiError, type ClusterAnswer, type NodeState } from '@flocker/api';
import type { PoolListing, VolumeProblem } from '@flocker/storage-drivers';
import { ManualClock } from '@flocker/runtime/testing';
import { DatasetAgent, type ControlChannel } from './DatasetAgent';
import { TEST_NODE, testAgentOptions } from './testing/agentOptions';
import { FakeDriver, FakeHost } from './testing/fakes';
import { ViewControl } from './testing/ViewControl';
import { WatchControl } from './testing/WatchControl';

const ME = TEST_NODE;
const OTHER = '22222222-2222-4222-8222-222222222222';
const MiB = 1024 * 1024;
const dsId = (i: number): string => `aaaaaaaa-aaaa-4aaa-8aaa-${String(i).padStart(12, '0')}`;

/** Another live node, holding nothing (it never acts: volumes it is primary of stay as they are). */
const other: NodeState = {
  uuid: OTHER,
  era: 'era-o',
  host: '10.0.0.2',
  instance_id: 'i-other',
  backend: 'fake',
  manifestations: [],
  errors: [],
  alive: true,
  last_seen: '2026-01-01T00:00:00.000Z',
};

interface World {
  readonly driver: FakeDriver;
  readonly host: FakeHost;
  readonly control: ViewControl;
  /** The watch in front of `control` (a world following over a watch). */
  readonly watch: WatchControl | undefined;
  readonly agent: DatasetAgent;
  readonly clock: ManualClock;
}

/**
 * An agent on its own fakes; `deltas: false` gives it a channel without waitForClusterDelta (whole
 * snapshots), `'watch'` one with the watch too (WatchControl).
 */
function world(
  deltas: boolean | 'watch',
  {
    channel,
    pollWaitMs,
    driver = new FakeDriver(),
  }: { channel?: (c: ViewControl) => ControlChannel; pollWaitMs?: number; driver?: FakeDriver } = {},
): World {
  const host = new FakeHost();
  const clock = new ManualClock();
  const control = new ViewControl(clock, pollWaitMs ?? 200);
  const wholeOnly: ControlChannel = {
    reportNodeState: (r) => control.reportNodeState(r),
    waitForCluster: (since, t) => control.waitForCluster(since, t),
  };
  const watch = deltas === 'watch' ? new WatchControl(control) : undefined;
  const agent = new DatasetAgent(
    testAgentOptions({
      driver,
      hostOps: host,
      control: channel !== undefined ? channel(control) : (watch ?? (deltas ? control : wholeOnly)),
      clock,
      ...(pollWaitMs !== undefined ? { pollWaitMs } : {}),
    }),
  );
  control.setNodes([other]);
  return { driver, host, control, watch, agent, clock };
}

/** The agent's own long-polls of deltas (the watch's inner reads wait longer, refetches not at all). */
function deltaPolls(w: World): number {
  return w.control.deltaRequests.filter((r) => r.timeoutMs === 200).length;
}

/** What the agent made of the pool and the host: the converged state compared. */
function outcome(w: World): unknown {
  return {
    volumes: [...w.driver.volumes.values()].map((v) => `${v.datasetId} ${v.attachedTo ?? '-'} ${v.size}`).sort(),
    mounts: w.host.mounts.map((m) => m.mountPoint).sort(),
    manifestations: (w.control.last()?.manifestations ?? []).map((m) => `${m.dataset_id} ${m.status}`).sort(),
  };
}

function dataset(i: number, primary: string, extra: { deleted?: boolean; maximum_size?: number } = {}) {
  return { dataset_id: dsId(i), primary, maximum_size: 64 * MiB, metadata: {}, deleted: false, ...extra };
}

/** A small deterministic PRNG (mulberry32): the same changes for both agents, and for every run. */
function prng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('DatasetAgent following its node view by deltas', () => {
  it('converges, moves away and back and deletes with delta polls only (after the first whole view)', async () => {
    const w = world(true);
    w.agent.start();
    w.control.setDatasets([dataset(1, ME)]);
    await w.clock.advanceUntil(() => w.control.last()?.manifestations[0]?.status === 'mounted', 5000, 5);
    w.control.setDatasets([dataset(1, OTHER)]);
    await w.clock.advanceUntil(() => [...w.driver.volumes.values()][0]?.attachedTo === null, 5000, 5);
    w.control.setDatasets([dataset(1, ME)]);
    await w.clock.advanceUntil(() => w.control.last()?.manifestations[0]?.status === 'mounted', 5000, 5);
    w.control.setDatasets([dataset(1, ME, { deleted: true })]);
    await w.clock.advanceUntil(() => w.driver.volumes.size === 0, 5000, 5);
    await w.agent.stop();
    expect(w.host.mounts).toEqual([]);
    expect(w.control.answered.whole).toBe(0);
    // One whole view to start with; every later answer a delta.
    expect(w.control.answered.view).toBe(1);
    expect(w.control.answered.delta).toBeGreaterThan(5);
  });

  it('makes the same decisions as following whole snapshots, by long-polls and over a watch, across random changes, cut watches and a restart of the service', async () => {
    for (const seed of [1, 2, 3]) {
      const random = prng(seed);
      const byDeltas = world(true);
      const byWatch = world('watch');
      // What it knows comes from the watch (and the reads after a cut): no refetch to make up for a lost line.
      byWatch.watch!.tagReports = false;
      const byWhole = world(false);
      const worlds = [byDeltas, byWatch, byWhole];
      for (const w of worlds) w.agent.start();
      const state = new Map<number, ReturnType<typeof dataset>>();
      for (let step = 0; step < 30; step++) {
        const i = 1 + Math.floor(random() * 6);
        const d = state.get(i);
        const r = random();
        if (d === undefined || d.deleted) state.set(i, dataset(i, r < 0.7 ? ME : OTHER));
        else if (r < 0.45) state.set(i, { ...d, primary: d.primary === ME ? OTHER : ME });
        else if (r < 0.7) state.set(i, { ...d, deleted: true });
        else if (r < 0.85) state.set(i, { ...d, maximum_size: (d.maximum_size ?? 64 * MiB) + 64 * MiB });
        const restart = step === 15;
        // The watch's connection lost just before a change: the change must still arrive.
        const cut = step === 7 || step === 22;
        for (const w of worlds) {
          if (restart) (w.watch ?? w.control).restart();
          if (cut) w.watch?.drop();
          w.control.setDatasets([...state.values()]);
          await w.clock.advance(1000);
        }
        const expected = { seed, step, ...(outcome(byWhole) as object) };
        expect({ seed, step, ...(outcome(byDeltas) as object) }).toEqual(expected);
        expect({ seed, step, watch: true, ...(outcome(byWatch) as object) }).toEqual({ ...expected, watch: true });
      }
      for (const w of worlds) await w.agent.stop();
      expect(byDeltas.control.answered.whole).toBe(0);
      expect(byDeltas.control.answered.delta).toBeGreaterThan(30);
      // The first poll, and the first after the restart (its `since` unknown there): whole views.
      expect(byDeltas.control.answered.view).toBeGreaterThanOrEqual(2);
      expect(byWhole.control.answered.delta + byWhole.control.answered.view).toBe(0);
      // Over the watch: lines, not long-polls; the first watch and the one after the restart: whole views.
      expect(byWatch.control.answered.whole).toBe(0);
      expect(deltaPolls(byWatch)).toBe(0);
      expect(byWatch.watch?.lines.delta).toBeGreaterThan(30);
      expect(byWatch.watch?.lines.view).toBe(2);
      // Each cut watch was watched again from the generation held (3 cuts: 2 drops and the restart).
      expect(byWatch.watch?.watches.length).toBe(4);
      expect(byWatch.watch?.watches.slice(1).every((x) => x.since !== undefined)).toBe(true);
    }
  }, 60_000);

  it('over a watch: converges, moves away and back and deletes with the lines of one watch, no long-poll', async () => {
    const w = world('watch');
    // No refetch on a report's answer: every change reaches the agent as a line of the watch.
    w.watch!.tagReports = false;
    w.agent.start();
    w.control.setDatasets([dataset(1, ME)]);
    await w.clock.advanceUntil(() => w.control.last()?.manifestations[0]?.status === 'mounted', 5000, 5);
    w.control.setDatasets([dataset(1, OTHER)]);
    await w.clock.advanceUntil(() => [...w.driver.volumes.values()][0]?.attachedTo === null, 5000, 5);
    w.control.setDatasets([dataset(1, ME)]);
    await w.clock.advanceUntil(() => w.control.last()?.manifestations[0]?.status === 'mounted', 5000, 5);
    w.control.setDatasets([dataset(1, ME, { deleted: true })]);
    await w.clock.advanceUntil(() => w.driver.volumes.size === 0, 5000, 5);
    await w.agent.stop();
    expect(w.host.mounts).toEqual([]);
    expect(w.control.answered.whole).toBe(0);
    expect(deltaPolls(w)).toBe(0);
    expect(w.control.deltaRequests).toHaveLength(w.watch?.innerReads ?? -1);
    expect(w.watch?.watches).toHaveLength(1);
    expect(w.watch?.lines.view).toBe(1);
    expect(w.watch?.lines.delta).toBeGreaterThan(5);
  });

  it('over a watch: a cut watch (the service away a while) is watched again and a change made meanwhile is taken', async () => {
    const w = world('watch');
    w.agent.start();
    w.control.setDatasets([dataset(1, ME)]);
    await w.clock.advanceUntil(() => w.control.last()?.manifestations[0]?.status === 'mounted', 5000, 5);
    w.watch!.down = true;
    await w.clock.advance(300);
    // Configured while the agent could not hear of it.
    w.control.setDatasets([dataset(1, ME), dataset(2, ME)]);
    w.watch!.down = false;
    await w.clock.advanceUntil(() => w.control.last()?.manifestations.length === 2, 5000, 5);
    await w.agent.stop();
    const watches = w.watch?.watches ?? [];
    expect(watches.length).toBeGreaterThan(1);
    expect(watches.slice(1).every((x) => x.since !== undefined)).toBe(true);
    expect(deltaPolls(w)).toBe(0);
    expect(outcome(w)).toMatchObject({ mounts: [`/flocker/${dsId(1)}`, `/flocker/${dsId(2)}`] });
  });

  it('from a service without the watch (404): long-poll deltas; after it goes away and comes back upgraded, the watch', async () => {
    const w = world('watch');
    const watch = w.watch!;
    watch.refuse = true;
    w.agent.start();
    w.control.setDatasets([dataset(1, ME)]);
    await w.clock.advanceUntil(() => w.control.last()?.manifestations[0]?.status === 'mounted', 5000, 5);
    expect(watch.watches).toHaveLength(1);
    expect(deltaPolls(w)).toBeGreaterThan(0);
    expect(w.control.answered.whole).toBe(0);
    watch.down = true;
    await w.clock.advance(300);
    watch.refuse = false;
    watch.down = false;
    await w.clock.advanceUntil(() => watch.lines.view > 0, 5000, 5);
    const polls = deltaPolls(w);
    w.control.setDatasets([dataset(1, ME), dataset(2, ME)]);
    await w.clock.advanceUntil(() => w.control.last()?.manifestations.length === 2, 5000, 5);
    await w.clock.advance(500);
    expect(watch.lines.delta).toBeGreaterThan(0);
    expect(deltaPolls(w)).toBe(polls);
    await w.agent.stop();
  });

  it('after a restart of the service (a since it does not know) reads the whole view and follows deltas again', async () => {
    const w = world(true);
    w.agent.start();
    w.control.setDatasets([dataset(1, ME)]);
    await w.clock.advanceUntil(() => w.control.last()?.manifestations[0]?.status === 'mounted', 5000, 5);
    const views = w.control.answered.view;
    w.control.restart();
    await w.clock.advance(500);
    expect(w.control.answered.view).toBe(views + 1);
    const deltas = w.control.answered.delta;
    // A change after the restart arrives as a delta on the new generations.
    w.control.setDatasets([dataset(1, ME), dataset(2, ME)]);
    await w.clock.advanceUntil(() => w.control.last()?.manifestations.length === 2, 5000, 5);
    expect(w.control.answered.delta).toBeGreaterThan(deltas);
    await w.agent.stop();
    expect(outcome(w)).toMatchObject({ mounts: [`/flocker/${dsId(1)}`, `/flocker/${dsId(2)}`] });
  });

  it('a change outside its view (a new configuration tag in a report answer) is caught up by a delta, not a whole view', async () => {
    // Polls held as long as the agent waits (200 ms in tests): only a change of its view answers one.
    const w = world(true, { pollWaitMs: 60_000 });
    w.agent.start();
    w.control.setDatasets([dataset(1, ME)]);
    await w.clock.advanceUntil(() => w.control.last()?.manifestations[0]?.status === 'mounted', 5000, 5);
    const views = w.control.answered.view;
    const asked = w.control.deltaRequests.length;
    // OTHER's new dataset is not in this node's view: its poll is not woken, but the tag moves.
    w.control.setDatasets([dataset(1, ME), dataset(2, OTHER)]);
    await w.clock.advance(1000);
    const refetches = w.control.deltaRequests.slice(asked).filter((r) => r.timeoutMs === 0);
    expect(refetches.length).toBeGreaterThan(0);
    expect(refetches.every((r) => r.since !== undefined)).toBe(true);
    expect(w.control.answered.view).toBe(views);
    // Still in contact on the current configuration: a new dataset of its own is taken at once.
    w.control.setDatasets([dataset(1, ME), dataset(2, OTHER), dataset(3, ME)]);
    await w.clock.advanceUntil(() => w.control.last()?.manifestations.length === 2, 5000, 5);
    await w.agent.stop();
  });

  it('follows whole snapshots from a service that refuses deltas (400: an older version), and asks again after it restarts', async () => {
    let refuse = true;
    let down = false;
    const asked: string[] = [];
    const w = world(true, {
      channel: (c) => ({
        reportNodeState: (r) => c.reportNodeState(r),
        waitForCluster: (since, t) => {
          asked.push('whole');
          return down
            ? Promise.reject(new FlockerApiError(0, 'CONTROL_SERVICE_UNREACHABLE', 'down'))
            : c.waitForCluster(since, t);
        },
        waitForClusterDelta: (since, t, node): Promise<ClusterAnswer> => {
          asked.push('delta');
          if (down) return Promise.reject(new FlockerApiError(0, 'CONTROL_SERVICE_UNREACHABLE', 'down'));
          if (refuse) return Promise.reject(new FlockerApiError(400, 'INVALID_INPUT', 'unknown query parameter delta'));
          return c.waitForClusterDelta(since, t, node);
        },
      }),
    });
    w.agent.start();
    w.control.setDatasets([dataset(1, ME)]);
    await w.clock.advanceUntil(() => w.control.last()?.manifestations[0]?.status === 'mounted', 5000, 5);
    expect(asked[0]).toBe('delta');
    expect(asked.filter((a) => a === 'delta')).toHaveLength(1);
    expect(w.control.answered.whole).toBeGreaterThan(1);
    // The service goes away and comes back upgraded: deltas are asked for again.
    down = true;
    await w.clock.advance(300);
    refuse = false;
    down = false;
    const deltas = w.control.answered.delta;
    w.control.setDatasets([dataset(1, ME), dataset(2, ME)]);
    await w.clock.advanceUntil(() => w.control.last()?.manifestations.length === 2, 5000, 5);
    await w.clock.advance(500);
    expect(w.control.answered.delta).toBeGreaterThan(deltas);
    await w.agent.stop();
  });
});

const DEAD = '33333333-3333-4333-8333-333333333333';
const THIRD = '44444444-4444-4444-8444-444444444444';

/** A node declared dead that reported nothing of the datasets (killed before its report). */
const dead: NodeState = {
  ...other,
  uuid: DEAD,
  host: '10.0.0.3',
  instance_id: 'i-dead',
  alive: false,
  dead_since: '2026-01-01T00:00:30.000Z',
};

/** A pool whose records can go bad: listVolumes leaves them out, listPool reports them (as the loopback driver does). */
class PoolWithProblems extends FakeDriver {
  readonly bad = new Set<string>();
  override async listVolumes() {
    return (await super.listVolumes()).filter((v) => !this.bad.has(v.blockdeviceId));
  }
  async listPool(): Promise<PoolListing> {
    const problems: VolumeProblem[] = [...this.bad].map((id) => ({
      code: 'CORRUPT_RECORD',
      blockdeviceId: id,
      message: `record ${id}.json is not valid JSON`,
    }));
    return { volumes: await this.listVolumes(), problems };
  }
}

/** A volume put in the pool by another host (`attachedTo`: its instance, or null). */
function volumeOf(w: World, blockdeviceId: string, datasetId: string, attachedTo: string | null): void {
  w.driver.volumes.set(blockdeviceId, { blockdeviceId, datasetId, size: 64 * MiB, attachedTo });
}

describe("what a node's view cannot explain is looked up in the whole cluster (issue 23)", () => {
  it('fails over a volume attached to a dead instance that no node of the view reports, as with whole snapshots', async () => {
    for (const deltas of [true, false]) {
      const w = world(deltas);
      w.control.setNodes([other, dead]);
      volumeOf(w, 'vol-1', dsId(1), 'i-dead');
      w.agent.start();
      w.control.setDatasets([dataset(1, ME)]);
      await w.clock.advanceUntil(() => w.control.last()?.manifestations[0]?.status === 'mounted', 5000, 5);
      expect({ deltas, attached: w.driver.volumes.get('vol-1')?.attachedTo }).toEqual({ deltas, attached: 'i-me' });
      // One whole look (following the view); none again while nothing new is unexplained.
      await w.clock.advance(2000);
      expect(w.control.answered.whole).toBe(deltas ? 1 : w.control.answered.whole);
      await w.agent.stop();
    }
  });

  it("destroys the volume of a deleted dataset whose primary is dead and that nobody holds: in this node's view as its caretaker, as with whole snapshots", async () => {
    for (const deltas of [true, false]) {
      const w = world(deltas);
      w.control.setNodes([other, dead]);
      volumeOf(w, 'vol-2', dsId(2), null);
      w.agent.start();
      w.control.setDatasets([dataset(2, DEAD, { deleted: true })]);
      // The agent reports the volume: the only live node reporting it, it takes care of it.
      await w.clock.advanceUntil(() => w.driver.volumes.size === 0, 5000, 5);
      if (deltas) expect(w.control.answered.whole).toBe(0);
      await w.agent.stop();
    }
  });

  it('from a control service without caretakers, the same once the volume stayed unattached 30 s (one whole look)', async () => {
    const w = world(true);
    w.control.caretakers = false;
    w.control.setNodes([other, dead]);
    volumeOf(w, 'vol-2', dsId(2), null);
    w.agent.start();
    w.control.setDatasets([dataset(2, DEAD, { deleted: true })]);
    const ms = await w.clock.advanceUntil(() => w.driver.volumes.size === 0, 60_000, 50);
    expect(ms).toBeGreaterThanOrEqual(30_000);
    expect(w.control.answered.whole).toBe(1);
    await w.agent.stop();
  });

  it('leaves alone (no look) an unattached volume of a live primary outside the view: a move in progress', async () => {
    const w = world(true);
    volumeOf(w, 'vol-3', dsId(3), null);
    w.agent.start();
    w.control.setDatasets([dataset(3, OTHER)]);
    await w.clock.advance(20_000);
    expect(w.control.answered.whole).toBe(0);
    expect(w.driver.volumes.has('vol-3')).toBe(true);
    await w.agent.stop();
  });

  it('does not create a volume of a dataset that a node outside the view reports in another pool (VOLUME_ELSEWHERE), as with whole snapshots', async () => {
    for (const deltas of [true, false]) {
      const w = world(deltas);
      w.control.setNodes([
        other,
        {
          ...other,
          uuid: THIRD,
          instance_id: 'i-third',
          volumes: [{ blockdevice_id: 'vol-elsewhere', dataset_id: dsId(6), size: 64 * MiB, attached_to: null }],
        },
      ]);
      w.agent.start();
      w.control.setDatasets([dataset(6, ME)]);
      await w.clock.advanceUntil(
        () => (w.control.last()?.errors ?? []).some((e) => e.code === 'VOLUME_ELSEWHERE'),
        5000,
        5,
      );
      expect({ deltas, volumes: w.driver.volumes.size }).toEqual({ deltas, volumes: 0 });
      if (deltas) expect(w.control.answered.whole).toBe(0);
      await w.agent.stop();
    }
  });

  it('counts a lease held here on a dataset whose primary is elsewhere (flocker_leases), as with whole snapshots', async () => {
    for (const deltas of [true, false]) {
      const w = world(deltas);
      w.agent.start();
      w.control.setDatasets([dataset(7, OTHER)]);
      w.control.setLeases([{ dataset_id: dsId(7), node_uuid: ME, expires: null }]);
      await w.clock.advanceUntil(() => w.agent.leasesHere() === 1, 5000, 5);
      w.control.setLeases([]);
      await w.clock.advanceUntil(() => w.agent.leasesHere() === 0, 5000, 5);
      await w.agent.stop();
    }
  });

  it('attributes an unreadable record, bad before the agent started, that a node outside the view reports: creates go on', async () => {
    for (const deltas of [true, false]) {
      const driver = new PoolWithProblems();
      const w = world(deltas, { driver });
      w.control.setNodes([
        other,
        {
          ...other,
          uuid: THIRD,
          instance_id: 'i-third',
          volumes: [{ blockdevice_id: 'vol-bad', dataset_id: dsId(5), size: 64 * MiB, attached_to: null }],
        },
      ]);
      volumeOf(w, 'vol-bad', dsId(5), null);
      driver.bad.add('vol-bad');
      w.agent.start();
      w.control.setDatasets([dataset(4, ME), dataset(5, OTHER)]);
      await w.clock.advanceUntil(() => w.control.last()?.manifestations[0]?.status === 'mounted', 5000, 5);
      expect({ deltas, mounted: w.control.last()?.manifestations.map((m) => m.dataset_id) }).toEqual({
        deltas,
        mounted: [dsId(4)],
      });
      await w.agent.stop();
    }
  });
});

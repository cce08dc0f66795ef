/**
 * A deletion's worker started on the configuration change itself (review of 03016a2: moveStart.deleteStarts, no full
 * look when that is all the change is), on the fakes and a manual clock. Pinned here: the start never acts where the
 * full look would not — a node declared dead in the same snapshot destroys nothing; a volume last seen here but now
 * another live node's is left alone; a dataset deleted while its create runs ends destroyed, one volume ever made; a
 * deletion with configured snapshots takes the full look; and an agent killed mid-deletion (its calls frozen, as by
 * kill -9) is converged by the next one on the same host and pool.
 */
import type { ClusterSnapshot, NodeReport } from '@flocker/api';
import { ManualClock } from '@flocker/runtime/testing';
import { DatasetAgent, type ControlChannel } from './DatasetAgent';
import { TEST_NODE, testAgentOptions } from './testing/agentOptions';
import { FakeDriver, FakeHost, FakeLongPolls } from './testing/fakes';

const ME = TEST_NODE;
const B = '22222222-2222-4222-8222-222222222222';
const DS = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
const MiB = 1024 * 1024;
const NODE_TIMEOUT_S = 4;
const dataset = { dataset_id: DS, primary: ME, maximum_size: 64 * MiB, metadata: { name: 'pg' }, deleted: false };
const deleted = { ...dataset, deleted: true };

/** A control service with fencing on (a node timeout): this node and B, either declared dead with a change. */
class Control implements ControlChannel {
  reports: NodeReport[] = [];
  refuseReports = false;
  private generation = 1;
  private tag = 1;
  private datasets: ClusterSnapshot['datasets'] = [];
  private snapshots: ClusterSnapshot['snapshots'];
  private readonly dead = new Set<string>();
  /** What B reports of its volumes. */
  private bVolumes: NonNullable<ClusterSnapshot['nodes'][number]['volumes']> = [];
  /** B's report: its volumes (a new generation, the same configuration). */
  reportOfB(volumes: NonNullable<ClusterSnapshot['nodes'][number]['volumes']>): void {
    this.bVolumes = volumes;
    this.generation++;
    this.polls.wake();
  }
  private readonly polls: FakeLongPolls;
  constructor(clock: ManualClock) {
    this.polls = new FakeLongPolls(clock);
  }
  /** One new configuration: datasets, and nodes declared dead in the same snapshot. */
  set(datasets: ClusterSnapshot['datasets'], opts: { dead?: string[]; snapshots?: ClusterSnapshot['snapshots'] } = {}) {
    this.datasets = datasets;
    for (const n of opts.dead ?? []) this.dead.add(n);
    if (opts.snapshots !== undefined) this.snapshots = opts.snapshots;
    this.tag++;
    this.generation++;
    this.polls.wake();
  }
  private node(uuid: string, instance: string): ClusterSnapshot['nodes'][number] {
    return {
      uuid,
      era: 'e',
      host: uuid === ME ? '10.0.0.1' : '10.0.0.2',
      instance_id: instance,
      backend: 'fake',
      manifestations: [],
      errors: [],
      alive: !this.dead.has(uuid),
      last_seen: '',
      ...(uuid === B ? { volumes: this.bVolumes } : {}),
    };
  }
  private snapshot(): ClusterSnapshot {
    return {
      generation: String(this.generation),
      configuration_tag: `t${this.tag}`,
      datasets: this.datasets,
      ...(this.snapshots !== undefined ? { snapshots: this.snapshots } : {}),
      leases: [],
      nodes: [this.node(ME, 'i-me'), this.node(B, 'i-b')],
      node_timeout_seconds: NODE_TIMEOUT_S,
      lease_grace_seconds: 1,
    };
  }
  async reportNodeState(report: NodeReport): Promise<unknown> {
    if (this.refuseReports) throw new Error('409 INSTANCE_CLAIMED');
    this.reports.push(report);
    return {
      generation: String(this.generation),
      configuration_tag: `t${this.tag}`,
      node_timeout_seconds: NODE_TIMEOUT_S,
    };
  }
  waitForCluster(since?: string, timeoutMs = 1000): Promise<ClusterSnapshot> {
    return this.polls.wait(since, this.generation, timeoutMs, () => this.snapshot());
  }
  last(): NodeReport | undefined {
    return this.reports[this.reports.length - 1];
  }
}

/** Each call of obj[method] first notes `label` in events, then runs as before. */
function noteCalls<T extends object, K extends keyof T>(events: string[], obj: T, method: K, label: string): void {
  const original = obj[method] as unknown as (...args: unknown[]) => Promise<unknown>;
  obj[method] = (async (...args: unknown[]) => (events.push(label), original.apply(obj, args))) as unknown as T[K];
}

function setup() {
  const clock = new ManualClock();
  const driver = new FakeDriver();
  const host = new FakeHost();
  const control = new Control(clock);
  const options = { driver, hostOps: host, control, clock, resyncIntervalMs: 60_000 };
  const agent = new DatasetAgent(testAgentOptions(options));
  const eventually = async (check: () => boolean, ms = 5000): Promise<void> => {
    await clock.advanceUntil(check, ms, 5);
  };
  return { clock, driver, host, control, agent, eventually };
}

async function mountedHere() {
  const parts = setup();
  parts.agent.start();
  parts.control.set([dataset]);
  await parts.eventually(() => parts.control.last()?.manifestations[0]?.status === 'mounted');
  await parts.clock.advance(50);
  return parts;
}

describe('DatasetAgent: a deletion started on the change itself (03016a2)', () => {
  it('the deletion as the only change: unmount and destroy, no full look (the fast path taken)', async () => {
    const { driver, host, control, agent, eventually, clock } = await mountedHere();
    const events: string[] = [];
    noteCalls(events, driver, 'listSnapshots', 'full look');
    noteCalls(events, host, 'unmount', 'unmount');
    noteCalls(events, driver, 'destroyVolume', 'destroy');
    control.set([deleted]);
    await eventually(() => driver.volumes.size === 0 && control.last()?.volumes?.length === 0);
    await clock.advance(100);
    expect(events).toEqual(['unmount', 'destroy']);
    await agent.stop();
  });

  it('this node declared dead in the same snapshot as the deletion (reports refused): fences, destroys nothing', async () => {
    const { driver, host, control, agent, clock } = await mountedHere();
    const events: string[] = [];
    noteCalls(events, driver, 'destroyVolume', 'destroy');
    noteCalls(events, driver, 'detachVolume', 'detach');
    control.refuseReports = true;
    control.set([deleted], { dead: [ME] });
    await clock.advanceUntil(() => host.mounts.length === 0, 1000, 5);
    await clock.advance(1000);
    expect(events).toEqual([]);
    expect([...driver.volumes.values()].map((v) => v.attachedTo)).toEqual(['i-me']);
    await agent.stop();
  });

  it('last seen attached here, now attached to another live node: the worker looks and leaves it alone', async () => {
    const { driver, host, control, agent, clock } = await mountedHere();
    // Taken over behind this node's back (by hand): the view still says attached and mounted here.
    const [vol] = [...driver.volumes.values()];
    driver.volumes.set(vol!.blockdeviceId, { ...vol!, attachedTo: 'i-b' });
    host.mounts = [];
    const events: string[] = [];
    for (const m of ['destroyVolume', 'detachVolume'] as const) noteCalls(events, driver, m, m);
    control.set([deleted]);
    await clock.advance(2000);
    expect(events).toEqual([]);
    expect(driver.volumes.get(vol!.blockdeviceId)?.attachedTo).toBe('i-b');
    await agent.stop();
  });

  it('deleted while its create runs: ends destroyed, one volume ever made, nothing mounted', async () => {
    const { driver, host, control, agent, eventually, clock } = setup();
    agent.start();
    control.set([]);
    await clock.advance(100); // the first full look (pool seen): the create takes the fast start on the change
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => (release = resolve));
    let creates = 0;
    const create = driver.createVolume.bind(driver);
    driver.createVolume = async (...args) => {
      creates++;
      await gate;
      return create(...args);
    };
    control.set([dataset]);
    await eventually(() => creates === 1);
    control.set([deleted]);
    await clock.advance(100);
    release();
    await eventually(
      () => driver.volumes.size === 0 && host.mounts.length === 0 && control.last()?.volumes?.length === 0,
    );
    await clock.advance(500);
    expect({ creates, volumes: driver.volumes.size, mounts: host.mounts.length }).toEqual({
      creates: 1,
      volumes: 0,
      mounts: 0,
    });
    await agent.stop();
  });

  it('a deletion of a dataset with configured snapshots takes the full look (its snapshots are decided there)', async () => {
    const { driver, control, agent, eventually, clock } = await mountedHere();
    const snapshot = {
      snapshot_id: 'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb',
      dataset_id: DS,
      metadata: {},
      created_at: '2026-01-01T00:00:00.000Z',
      deleted: true as const,
    };
    control.set([dataset], { snapshots: [snapshot] });
    await clock.advance(500);
    const events: string[] = [];
    noteCalls(events, driver, 'listSnapshots', 'full look');
    noteCalls(events, driver, 'destroyVolume', 'destroy');
    control.set([deleted]);
    await eventually(() => driver.volumes.size === 0);
    expect(events[0]).toBe('full look');
    expect(events).toContain('destroy');
    await agent.stop();
  });

  it('moved here, its volume made elsewhere after the last full look: the fast start makes no second volume, the release starts the attach', async () => {
    const { driver, host, control, agent, eventually, clock } = setup();
    agent.start();
    const onB = { ...dataset, primary: B };
    control.set([onB]);
    await clock.advance(200); // the full look of this change: no volume of DS in the pool yet
    // B makes DS's volume and mounts it; this node has no look since (resync 60 s).
    driver.volumes.set('vol-b', { blockdeviceId: 'vol-b', datasetId: DS, size: 64 * MiB, attachedTo: 'i-b' });
    host.formatted.add('/dev/fake/vol-b');
    control.reportOfB([{ blockdevice_id: 'vol-b', dataset_id: DS, size: 64 * MiB, attached_to: 'i-b' }]);
    await clock.advance(200);
    const creates: string[] = [];
    noteCalls(creates, driver, 'createVolume', 'create');
    control.set([dataset]); // moved here
    await clock.advance(500);
    expect(creates).toEqual([]);
    expect(host.mounts).toEqual([]);
    // B lets go (its report, or the pool's change): this node attaches and mounts the one volume.
    driver.volumes.set('vol-b', { blockdeviceId: 'vol-b', datasetId: DS, size: 64 * MiB, attachedTo: null });
    control.reportOfB([{ blockdevice_id: 'vol-b', dataset_id: DS, size: 64 * MiB, attached_to: null }]);
    const released = clock.now();
    await eventually(() => control.last()?.manifestations[0]?.status === 'mounted', 70_000);
    // Started by the release itself, not by the resync's full look.
    expect(clock.now() - released).toBeLessThan(1000);
    expect({ creates, volumes: [...driver.volumes.keys()] }).toEqual({ creates: [], volumes: ['vol-b'] });
    await agent.stop();
  });

  for (const killedIn of ['unmount', 'detachVolume', 'destroyVolume'] as const) {
    it(`killed in the deletion's ${killedIn} (kill -9: no call answered from then on): the next agent converges`, async () => {
      const clock = new ManualClock();
      const driver = new FakeDriver();
      const host = new FakeHost();
      const control = new Control(clock);
      let killed = false;
      // The killed agent's driver, host and control: the chosen call is made (the kernel or backend did it), then
      // neither it nor any later call of that agent is answered.
      const proc = <T extends object>(target: T): T =>
        new Proxy(target, {
          get(t, key, receiver) {
            const v: unknown = Reflect.get(t, key, receiver);
            if (typeof v !== 'function') return v;
            return (...args: unknown[]): unknown => {
              if (killed) return new Promise(() => {});
              const out = (v as (...a: unknown[]) => unknown).apply(t, args);
              if (key !== killedIn) return out;
              return Promise.resolve(out).then(() => {
                killed = true;
                return new Promise(() => {});
              });
            };
          },
        });
      const eventually = async (check: () => boolean, ms = 5000): Promise<void> => {
        await clock.advanceUntil(check, ms, 5);
      };
      const first = new DatasetAgent(
        testAgentOptions({
          driver: proc(driver),
          hostOps: proc(host),
          control: proc(control),
          clock,
          resyncIntervalMs: 60_000,
        }),
      );
      first.start();
      control.set([dataset]);
      await eventually(() => control.last()?.manifestations[0]?.status === 'mounted');
      await clock.advance(50);
      control.set([deleted]);
      await eventually(() => killed);
      await clock.advance(100);
      // Never stopped: a killed process runs nothing more that anyone sees.
      const next = new DatasetAgent(
        testAgentOptions({ driver, hostOps: host, control, clock, resyncIntervalMs: 60_000, era: 'era-2' }),
      );
      next.start();
      await eventually(() => driver.volumes.size === 0 && host.mounts.length === 0, 10_000);
      await clock.advance(500);
      expect({ volumes: driver.volumes.size, mounts: host.mounts.length }).toEqual({ volumes: 0, mounts: 0 });
      expect(control.last()?.volumes).toEqual([]);
      await next.stop();
    });
  }
});

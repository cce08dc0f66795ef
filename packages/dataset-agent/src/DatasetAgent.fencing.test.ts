/**
 * The agent's self-fencing on a manual clock: no wall-clock sleeps; every timer
 * of the agent (loop, heartbeats, fence deadline, backoff) runs on ManualClock.
 */
import { TEST_NODE, testAgentOptions } from './testing/agentOptions';
import type { ClusterSnapshot, NodeReport } from '@flocker/api';
import type { ContainerStopper } from './containers';
import { DatasetAgent, type ControlChannel } from './DatasetAgent';
import { FakeDriver, FakeHost, nodeState } from './testing/fakes';
import { ManualClock } from '@flocker/runtime/testing';

const ME = TEST_NODE;
const B = '22222222-2222-4222-8222-222222222222';
const DS = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
const MiB = 1024 * 1024;
const NODE_TIMEOUT_S = 4; // bound F = 2 s, heartbeat every 666 ms
const dataset = { dataset_id: DS, primary: ME, maximum_size: 64 * MiB, metadata: { name: 'pg' }, deleted: false };

/**
 * A control service that can be cut off: while cut, every call hangs; healing
 * fails the hung calls as a reset connection would. Long-polls are held until
 * the generation moves (no timer: manual time must not be needed to answer).
 */
class CuttableControl implements ControlChannel {
  reports: Array<{ at: number; report: NodeReport }> = [];
  cut = false;
  /** Reports fail at once (a 409/503 answer) while long-polls work. */
  refuseReports = false;
  /** The next this-many reports hang until releaseHung() (a request stuck on a dead connection). */
  hangNext = 0;
  private hungReports: Array<(e: Error) => void> = [];
  releaseHung(): void {
    for (const reject of this.hungReports.splice(0)) reject(new Error('request timed out'));
  }
  private dead = new Set<string>();
  /** Long-polls with a generation hang (a half-broken connection) while reports still work. */
  stuckPolls = false;
  private generation = 1;
  private tag = 1;
  private datasets: ClusterSnapshot['datasets'] = [];
  private waiters: Array<() => void> = [];
  private hung: Array<(e: Error) => void> = [];
  constructor(private readonly clock: ManualClock) {}
  setDatasets(d: ClusterSnapshot['datasets'], wake = true): void {
    this.datasets = d;
    this.tag++;
    this.generation++;
    if (wake) for (const w of this.waiters.splice(0)) w();
  }
  partition(): void {
    this.cut = true;
  }
  heal(): void {
    this.cut = false;
    for (const reject of this.hung.splice(0)) reject(new Error('connection reset'));
  }
  private hang<T>(): Promise<T> {
    return new Promise<T>((_, reject) => this.hung.push(reject));
  }
  private snapshot(): ClusterSnapshot {
    return {
      generation: String(this.generation),
      configuration_tag: `t${this.tag}`,
      datasets: this.datasets,
      leases: [],
      nodes: [
        nodeState(ME, { host: 'a', instance_id: 'i-me', alive: !this.dead.has(ME) }),
        nodeState(B, { host: 'b', instance_id: 'i-b' }),
      ],
      node_timeout_seconds: NODE_TIMEOUT_S,
      lease_grace_seconds: 1,
    };
  }
  bumpGeneration(): void {
    this.generation++;
    for (const w of this.waiters.splice(0)) w();
  }
  declareDead(uuid: string): void {
    this.dead.add(uuid);
    this.bumpGeneration();
  }
  async reportNodeState(report: NodeReport): Promise<unknown> {
    if (this.cut) return this.hang();
    if (this.refuseReports) throw new Error('409 INSTANCE_CLAIMED');
    if (this.hangNext > 0) {
      this.hangNext--;
      return new Promise((_, reject) => this.hungReports.push(reject));
    }
    this.reports.push({ at: this.clock.now(), report });
    return {
      generation: String(this.generation),
      configuration_tag: `t${this.tag}`,
      node_timeout_seconds: NODE_TIMEOUT_S,
    };
  }
  waitForCluster(since?: string): Promise<ClusterSnapshot> {
    if (this.cut) return this.hang();
    if (since !== String(this.generation)) return Promise.resolve(this.snapshot());
    if (this.stuckPolls) return this.hang();
    return new Promise((resolve, reject) => {
      this.waiters.push(() => (this.cut ? this.hung.push(reject) : resolve(this.snapshot())));
    });
  }
  last(): NodeReport | undefined {
    return this.reports[this.reports.length - 1]?.report;
  }
}

class CountingDriver extends FakeDriver {
  attaches = 0;
  override async attachVolume(id: string, instanceId: string) {
    this.attaches++;
    return super.attachVolume(id, instanceId);
  }
}

/** Records host operations in order. */
class LoggingHost extends FakeHost {
  readonly ops: string[] = [];
  override async mount(device: string, mountPoint: string): Promise<void> {
    this.ops.push(`mount ${device} ${mountPoint}`);
    return super.mount(device, mountPoint);
  }
  override async unmount(mountPoint: string): Promise<void> {
    const top = [...this.mounts].reverse().find((m) => m.mountPoint === mountPoint);
    this.ops.push(`unmount ${top?.device ?? '?'} ${mountPoint}`);
    // Like umount(8): the most recent mount at the path comes off.
    if (top !== undefined) this.mounts = this.mounts.filter((m) => m !== top);
  }
}

function setup(extra: { selfFenceMs?: number } = {}) {
  const clock = new ManualClock();
  const driver = new CountingDriver();
  const host = new LoggingHost();
  const control = new CuttableControl(clock);
  const stopped: string[][] = [];
  const stoppedVolumes: string[][] = [];
  const containers: ContainerStopper = {
    stopContainersUsing: async ({ paths, volumes }) => {
      stopped.push([...paths]);
      stoppedVolumes.push([...volumes]);
      return ['writer'];
    },
  };
  let poolChange: () => void = () => undefined;
  const agent = new DatasetAgent(
    testAgentOptions({
      driver,
      hostOps: host,
      control,
      resyncIntervalMs: 10_000,
      backoffInitialMs: 500,
      backoffMaxMs: 5_000,
      pollWaitMs: 25_000,
      clock,
      containers,
      ...extra,
      poolChanges: (onChange) => {
        poolChange = onChange;
        return () => undefined;
      },
    }),
  );
  return { clock, driver, host, control, stopped, stoppedVolumes, agent, poolChanged: () => poolChange() };
}

const mountedHere = (host: FakeHost): boolean => host.mounts.some((m) => m.mountPoint === `/flocker/${DS}`);

/** setup(), the agent started and the dataset mounted here (where most cases begin). */
async function mountedHereAtStart(): Promise<ReturnType<typeof setup>> {
  const fakes = setup();
  fakes.agent.start();
  fakes.control.setDatasets([dataset]);
  await fakes.clock.advanceUntil(() => mountedHere(fakes.host), 5_000);
  return fakes;
}

describe('DatasetAgent self-fencing (manual clock)', () => {
  it('a cut-off node fences itself within the bound, never acts on its stale configuration, and cleans up first when contact returns', async () => {
    const { clock, driver, host, control, stopped, stoppedVolumes, agent, poolChanged } = await mountedHereAtStart();
    expect(driver.attaches).toBe(1);

    // Cut off. Before the bound (2 s after the last confirmation) nothing happens.
    control.partition();
    const cutAt = clock.now();
    await clock.advance(1_000);
    expect(stopped).toEqual([]);
    expect(mountedHere(host)).toBe(true);

    // At the bound, one last report (it hangs: cut off) for at most (T - F)/3 = 666 ms; then
    // containers using the volume stopped, then the volume unmounted, still before T = 4 s.
    const waited = await clock.advanceUntil(() => stopped.length > 0 && !mountedHere(host), 3_000, 5);
    const fencedAfter = clock.now() - cutAt;
    expect(fencedAfter).toBeLessThanOrEqual(2_000 + 666); // F after the last confirmation (before the cut) + the last chance
    expect(fencedAfter).toBeGreaterThan(2_000 + 666 - 700); // not earlier than one heartbeat before that
    expect(fencedAfter).toBeLessThan(NODE_TIMEOUT_S * 1000);
    expect(waited).toBeGreaterThan(0);
    expect(stopped).toEqual([[`/flocker/${DS}`]]);
    // Docker shows no source for a plugin's volume: its users are found by the volume's name too.
    expect(stoppedVolumes).toEqual([['pg']]);
    expect(host.ops.at(-1)).toBe(`unmount /dev/fake/vol-0 /flocker/${DS}`);

    // Meanwhile another node takes over: force-detaches (our stale config still says primary = us).
    driver.volumes.set('vol-0', { ...driver.volumes.get('vol-0')!, attachedTo: null });
    poolChanged();
    await clock.advance(15_000);
    expect(driver.attaches).toBe(1); // never re-attached
    expect(mountedHere(host)).toBe(false);
    driver.volumes.set('vol-0', { ...driver.volumes.get('vol-0')!, attachedTo: 'i-b' });
    // A mount of the old device that came free only now (a process held it): stale.
    host.mounts.push({ device: '/dev/loop-old', mountPoint: `/flocker/${DS}`, majorMinor: '7:9' });

    // The dataset moved to B while we were cut off; contact returns.
    control.setDatasets([{ ...dataset, primary: B }]);
    host.ops.length = 0;
    control.heal();
    await clock.advanceUntil(() => control.last()?.fencing?.state === 'recovered', 20_000);
    // The stale mount came off before anything else was done.
    expect(host.ops[0]).toBe(`unmount /dev/loop-old /flocker/${DS}`);
    expect(host.mounts).toEqual([]);
    expect(driver.attaches).toBe(1);
    expect(control.last()!.fencing).toMatchObject({
      state: 'recovered',
      stopped_containers: ['writer'],
      removed_mounts: [`/flocker/${DS}`, `/flocker/${DS}`],
    });
    await agent.stop();
  });

  it('back in contact with the same configuration, it converges again (re-mounts its own volume)', async () => {
    const { clock, host, control, stopped, agent } = await mountedHereAtStart();
    control.partition();
    await clock.advanceUntil(() => stopped.length > 0 && !mountedHere(host), 3_000);
    control.heal();
    await clock.advanceUntil(() => mountedHere(host), 20_000);
    expect(control.last()?.fencing?.state).toBe('recovered');
    await agent.stop();
  });

  it('after a fence, no report says the volume is mounted until it is mounted again (e2e multihost-deltas read an empty mount path: the view still showed the mount the fence took off)', async () => {
    const { clock, host, control, stopped, agent } = await mountedHereAtStart();
    control.partition();
    await clock.advanceUntil(() => stopped.length > 0 && !mountedHere(host), 3_000);
    // Each report the control service accepts, and whether the mount was there when it was sent.
    const seen: Array<{ status: string | undefined; mounted: boolean }> = [];
    const send = control.reportNodeState.bind(control);
    control.reportNodeState = (report) => {
      if (!control.cut) seen.push({ status: report.manifestations[0]?.status, mounted: mountedHere(host) });
      return send(report);
    };
    control.heal();
    await clock.advanceUntil(() => mountedHere(host), 20_000);
    await clock.advance(2_000);
    expect(seen.filter((s) => s.status === 'mounted' && !s.mounted)).toEqual([]);
    expect(seen[0]).toEqual({ status: 'attached', mounted: false });
    expect(control.last()?.manifestations[0]?.status).toBe('mounted');
    await agent.stop();
  });

  it('reports (heartbeats) confirm contact while the long-poll is stuck; a report naming another configuration fetches it', async () => {
    const { clock, host, control, stopped, agent } = await mountedHereAtStart();
    control.stuckPolls = true;
    const before = control.reports.length;
    await clock.advance(10_000);
    // Heartbeats every bound/3 (666 ms) kept contact confirmed: no fence.
    expect(stopped).toEqual([]);
    expect(mountedHere(host)).toBe(true);
    const beats = control.reports.slice(before).map((r) => r.at);
    expect(beats.length).toBeGreaterThanOrEqual(13);
    for (let i = 1; i < beats.length; i++) expect(beats[i]! - beats[i - 1]!).toBeLessThanOrEqual(700);

    // The configuration changes; the stuck long-poll never tells. The next report's answer does.
    control.setDatasets([{ ...dataset, deleted: true }], false);
    const took = await clock.advanceUntil(() => !mountedHere(host), 2_000);
    expect(took).toBeLessThanOrEqual(700);
    expect(stopped).toEqual([]);
    await agent.stop();
  });

  it('a node whose reports are refused fences even while long-poll answers keep coming (review finding: they prove the configuration, not that the control service hears us)', async () => {
    const { clock, host, control, stopped, agent } = await mountedHereAtStart();
    control.refuseReports = true;
    const from = clock.now();
    // Other nodes' heartbeats move the generation every 500 ms: our long-polls are answered.
    for (let i = 0; i < 8 && stopped.length === 0; i++) {
      control.bumpGeneration();
      await clock.advance(500);
    }
    await clock.advanceUntil(() => stopped.length > 0 && !mountedHere(host), 2_000);
    expect(clock.now() - from).toBeLessThan(NODE_TIMEOUT_S * 1000);
    await agent.stop();
  });

  it('a snapshot showing this node declared dead fences it at once', async () => {
    const { clock, host, control, stopped, agent } = await mountedHereAtStart();
    control.refuseReports = true; // the control service stopped hearing us...
    control.declareDead(ME); // ...and says so
    await clock.advanceUntil(() => stopped.length > 0 && !mountedHere(host), 200, 5);
    await agent.stop();
  });

  it('a pause longer than the bound but shorter than the node timeout fences nothing: the last-chance report confirms contact', async () => {
    const { clock, host, control, stopped, agent } = await mountedHereAtStart();
    // The next heartbeat hangs (a request stuck on a dead connection, or answered only after a
    // stall of this process): the heartbeats queued behind it go nowhere, and the bound runs out.
    control.hangNext = 1;
    const before = control.reports.length;
    await clock.advance(6_000);
    // The last-chance report, sent past the stuck queue, was answered: contact confirmed, no fence.
    expect(control.reports.length).toBeGreaterThan(before);
    expect(stopped).toEqual([]);
    expect(mountedHere(host)).toBe(true);
    control.releaseHung();
    await agent.stop();
  });

  it('an agent restarted while cut off acts on nothing and, after the configured bound, fences what it finds mounted', async () => {
    const { clock, host, control, stopped, agent, driver } = setup({ selfFenceMs: 2_000 });
    control.setDatasets([dataset]);
    driver.volumes.set('vol-9', { blockdeviceId: 'vol-9', datasetId: DS, size: 64 * MiB, attachedTo: 'i-me' });
    host.formatted.add('/dev/fake/vol-9');
    host.mounts.push({ device: '/dev/fake/vol-9', mountPoint: `/flocker/${DS}`, majorMinor: '0:0' });
    control.partition();
    agent.start();
    await clock.advance(1_900);
    expect(stopped).toEqual([]);
    expect(mountedHere(host)).toBe(true);
    // The bound, then the last-chance report (a third of the bound without a known node timeout).
    await clock.advanceUntil(() => !mountedHere(host), 1_000, 5);
    expect(stopped).toEqual([[`/flocker/${DS}`]]);
    expect(driver.attaches).toBe(0);
    control.heal();
    await clock.advanceUntil(() => mountedHere(host), 20_000);
    expect(control.last()?.fencing).toMatchObject({ state: 'recovered', stopped_containers: ['writer'] });
    await agent.stop();
  });
});

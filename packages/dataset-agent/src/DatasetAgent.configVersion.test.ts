/**
 * The configuration version in the agent's reports (session 10, stale mounted): a report never names a version whose
 * "mounted" the kernel may be about to take back. A move away and straight back: the unmount for the move away
 * (decided on the older configuration) is still running when the move back arrives; reports built meanwhile carry the
 * older version, and the first one at the move back's version that shows the volume mounted is built when it is.
 */
import type { ClusterSnapshot, NodeReport, NodeState } from '@flocker/api';
import { ManualClock } from '@flocker/runtime/testing';
import { DatasetAgent } from './DatasetAgent';
import { TEST_NODE, testAgentOptions } from './testing/agentOptions';
import { FakeControl, FakeDriver, FakeHost } from './testing/fakes';

const DS = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
const MiB = 1024 * 1024;
const dataset = { dataset_id: DS, primary: TEST_NODE, maximum_size: 64 * MiB, metadata: {}, deleted: false };
const other: NodeState = {
  uuid: '22222222-2222-4222-8222-222222222222',
  era: 'e',
  host: '10.0.0.2',
  instance_id: 'i-other',
  backend: 'fake',
  manifestations: [],
  volumes: [],
  errors: [],
  alive: true,
  last_seen: '2020-01-01T00:00:00Z',
};

/** FakeControl whose snapshots carry the control service's tags: 'v' and a version that grows with each change. */
class VersionedControl extends FakeControl {
  version = 1;
  /** Each report as sent, and whether the host had the dataset mounted then. */
  readonly sent: Array<{ report: NodeReport; mountedThen: boolean }> = [];
  constructor(
    clock: ManualClock,
    private readonly host: FakeHost,
  ) {
    super(clock);
  }
  override setDatasets(d: ClusterSnapshot['datasets']): void {
    this.version += 1;
    super.setDatasets(d);
  }
  override async waitForCluster(since?: string, timeoutMs?: number): Promise<ClusterSnapshot> {
    const s = await super.waitForCluster(since, timeoutMs);
    return { ...s, configuration_tag: `v${this.version}` };
  }
  override reportNodeState(report: NodeReport): Promise<unknown> {
    this.sent.push({ report, mountedThen: this.host.mounts.some((m) => m.mountPoint === `/flocker/${DS}`) });
    return super.reportNodeState(report);
  }
}

it("reports built while an unmount for an undone move away runs carry the older version; the move back's version comes with the mount", async () => {
  const clock = new ManualClock();
  const driver = new FakeDriver();
  const host = new FakeHost();
  const control = new VersionedControl(clock, host);
  const agent = new DatasetAgent(
    testAgentOptions({ driver, hostOps: host, control, clock, resyncIntervalMs: 60_000, progressReportMs: 20 }),
  );
  const eventually = (check: () => boolean) => clock.advanceUntil(check, 5000, 5);
  const mountedIn = (r: NodeReport | undefined) => r?.manifestations.some((m) => m.status === 'mounted') === true;
  agent.start();
  control.setNodes([other]);
  control.setDatasets([dataset]);
  await eventually(() => mountedIn(control.last()));
  expect(control.last()?.configuration_version).toBe(control.version);

  // The unmount for the move away takes a while (a busy file system); the move back arrives meanwhile.
  let releaseUnmount = () => {};
  const unmountGate = new Promise<void>((resolve) => (releaseUnmount = resolve));
  const unmount = host.unmount.bind(host);
  let unmounting = false;
  host.unmount = async (mountPoint: string) => {
    unmounting = true;
    await unmountGate;
    return unmount(mountPoint);
  };
  control.setDatasets([{ ...dataset, primary: other.uuid }]);
  const away = control.version;
  await eventually(() => unmounting);
  control.setDatasets([dataset]);
  const back = control.version;
  // Reports go out meanwhile (the worker's progress report, built after the move back arrived): none claims the move
  // back's version, though it is the latest the agent has (the unmount running was decided on the move away's).
  await clock.advance(200);
  const during = control.sent.filter((s) => s.report.configuration_version !== undefined);
  expect(during.every((s) => (s.report.configuration_version ?? 0) < back)).toBe(true);
  expect(during.some((s) => s.report.configuration_version === away && mountedIn(s.report))).toBe(true);
  releaseUnmount();
  await eventually(() => {
    const r = control.last();
    return mountedIn(r) && (r?.configuration_version ?? 0) >= back;
  });
  // The rule the control service applies: a "mounted" at the move back's version (or later) is true when sent.
  for (const s of control.sent)
    if ((s.report.configuration_version ?? 0) >= back && mountedIn(s.report)) expect(s.mountedThen).toBe(true);
  // The unmount did happen (the move away was acted on), and the volume is mounted again.
  expect(host.mounts.map((m) => m.mountPoint)).toEqual([`/flocker/${DS}`]);
  await agent.stop();
});

it('a configuration change that needs no work here (metadata) is reported with its version, once', async () => {
  const clock = new ManualClock();
  const driver = new FakeDriver();
  const host = new FakeHost();
  const control = new VersionedControl(clock, host);
  const agent = new DatasetAgent(
    testAgentOptions({ driver, hostOps: host, control, clock, resyncIntervalMs: 60_000, progressReportMs: 20 }),
  );
  agent.start();
  control.setNodes([other]);
  control.setDatasets([dataset]);
  await clock.advanceUntil(() => control.last()?.manifestations[0]?.status === 'mounted', 5000, 5);
  await clock.advance(100);
  const before = control.sent.length;
  control.setDatasets([{ ...dataset, metadata: { owner: 'x' } }]);
  await clock.advanceUntil(() => control.last()?.configuration_version === control.version, 5000, 5);
  await clock.advance(200);
  const after = control.sent.slice(before);
  expect(after.map((s) => s.report.configuration_version)).toEqual([control.version]);
  expect(after[0]?.report.manifestations).toEqual(control.sent[before - 1]?.report.manifestations);
  await agent.stop();
});

it('costs no report of its own on a create, a move away and a move onto this node (the same reports as without versions)', async () => {
  /** Reports sent for: create here, move away (released), move back once the other node let go. */
  async function reportsOf(versioned: boolean): Promise<number[]> {
    const clock = new ManualClock();
    const driver = new FakeDriver();
    const host = new FakeHost();
    const control = versioned ? new VersionedControl(clock, host) : new FakeControl(clock);
    const agent = new DatasetAgent(
      testAgentOptions({ driver, hostOps: host, control, clock, resyncIntervalMs: 60_000, progressReportMs: 20 }),
    );
    const counts: number[] = [];
    const settle = async (check: () => boolean) => {
      await clock.advanceUntil(check, 5000, 5);
      await clock.advance(500);
      counts.push(control.reports.length);
    };
    agent.start();
    control.setNodes([other]);
    await settle(() => control.reports.length > 0);
    control.setDatasets([dataset]);
    await settle(() => control.last()?.manifestations[0]?.status === 'mounted');
    control.setDatasets([{ ...dataset, primary: other.uuid }]);
    await settle(() => (control.last()?.volumes ?? []).every((v) => v.attached_to === null));
    control.setDatasets([dataset]);
    await settle(() => control.last()?.manifestations[0]?.status === 'mounted');
    await agent.stop();
    return counts;
  }
  const plain = await reportsOf(false);
  const versioned = await reportsOf(true);
  expect(versioned).toEqual(plain);
});

it('with nothing mounted here a risen version is no report of its own: it goes with the next one, within progressReportMs (issue 23)', async () => {
  const clock = new ManualClock();
  const driver = new FakeDriver();
  const host = new FakeHost();
  const control = new VersionedControl(clock, host);
  // The other node holds the dataset's volume.
  driver.volumes.set('vol-1', { blockdeviceId: 'vol-1', datasetId: DS, size: 64 * MiB, attachedTo: other.instance_id });
  const agent = new DatasetAgent(
    testAgentOptions({ driver, hostOps: host, control, clock, resyncIntervalMs: 60_000, progressReportMs: 200 }),
  );
  agent.start();
  control.setNodes([other]);
  control.setDatasets([{ ...dataset, primary: other.uuid }]);
  await clock.advanceUntil(() => control.last()?.configuration_version === control.version, 5000, 5);
  await clock.advance(500);
  const before = control.sent.length;
  // A move onto this node: it waits for the other node's release with nothing mounted here, so the version can show
  // nothing yet (a move's new primary sent a report of its own here, beside the old primary's unmount).
  control.setDatasets([dataset]);
  await clock.advance(100);
  expect(control.sent.length).toBe(before);
  await clock.advance(150);
  expect(control.sent.slice(before).map((s) => s.report.configuration_version)).toEqual([control.version]);
  expect(control.last()?.manifestations).toEqual([]);
  await agent.stop();
});

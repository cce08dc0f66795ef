/**
 * Review T1 S0 / FR F4 (session 19): from its start until its first full look at the backend has ended, the agent
 * sends a liveness-only report every heartbeat ("alive, backend not seen yet": empty lists that mean nothing), so a
 * restart while a cloud API hangs keeps the node alive at the control service and, accepted, such a report is the
 * report half of contact: the node does not fence. It never acts before that look. An older control service refuses
 * the member (400): the agent sends none for the rest of the run and fences at its bound as before.
 */
import { TEST_NODE, testAgentOptions } from './testing/agentOptions';
import { FlockerApiError, type ClusterSnapshot, type NodeReport } from '@flocker/api';
import type { ContainerStopper, StopTargets } from './containers';
import type { FenceReportStore } from './fenceReportFile';
import { DatasetAgent, type ControlChannel, type StartUpFindings } from './DatasetAgent';
import { heartbeatMs } from './fencing';
import { FakeDriver, FakeHost } from './testing/fakes';
import { ManualClock } from '@flocker/runtime/testing';

const NODE_TIMEOUT_S = 6; // bound F = 3 s, heartbeat every second
const BOUND_MS = (NODE_TIMEOUT_S * 1000) / 2;
const RESYNC_MS = 2_000;
const HEARTBEAT_MS = heartbeatMs(BOUND_MS, RESYNC_MS);
const DS = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
const NEW = 'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb';
const MiB = 1024 * 1024;
const SINCE_FENCED = '2026-12-06T07:00:00.000Z';

/** A control service that answers at once; `refuse` answers a report as an error instead. */
class Control implements ControlChannel {
  readonly reports: Array<{ at: number; report: NodeReport }> = [];
  refuse: ((report: NodeReport) => Error | undefined) | undefined;
  private readonly datasets: ClusterSnapshot['datasets'] = [
    { dataset_id: DS, primary: TEST_NODE, maximum_size: 64 * MiB, metadata: { name: 'pg' }, deleted: false },
    { dataset_id: NEW, primary: TEST_NODE, maximum_size: 64 * MiB, metadata: {}, deleted: false },
  ];
  constructor(private readonly clock: ManualClock) {}
  async reportNodeState(report: NodeReport): Promise<unknown> {
    this.reports.push({ at: this.clock.now(), report });
    const refused = this.refuse?.(report);
    if (refused !== undefined) throw refused;
    return { generation: '1', configuration_tag: 't1', node_timeout_seconds: NODE_TIMEOUT_S };
  }
  async waitForCluster(since?: string): Promise<ClusterSnapshot> {
    if (since === '1') return new Promise(() => undefined); // nothing changes
    return {
      generation: '1',
      configuration_tag: 't1',
      datasets: this.datasets,
      leases: [{ dataset_id: DS, node_uuid: TEST_NODE, expires: null }],
      nodes: [],
      node_timeout_seconds: NODE_TIMEOUT_S,
      lease_grace_seconds: 1,
    };
  }
  get liveness(): NodeReport[] {
    return this.reports.map((r) => r.report).filter((r) => r.backend_unseen !== undefined);
  }
  get full(): NodeReport[] {
    return this.reports.map((r) => r.report).filter((r) => r.backend_unseen === undefined);
  }
}

/** A backend whose listing hangs until answer() (the first look at a cloud API that does not answer). */
class HangingDriver extends FakeDriver {
  private waiting: Array<() => void> = [];
  hanging = true;
  override async listVolumes() {
    if (this.hanging) await new Promise<void>((r) => this.waiting.push(r));
    return super.listVolumes();
  }
  answer(): void {
    this.hanging = false;
    for (const r of this.waiting.splice(0)) r();
  }
}

/** What the agent before the restart left: DS's volume attached and mounted here, a container using it. */
async function setUp(o: { fenceReports?: FenceReportStore } = {}) {
  const clock = new ManualClock();
  const driver = new HangingDriver();
  const host = new FakeHost();
  driver.hanging = false;
  const volume = await driver.createVolume(DS, 64 * MiB);
  await driver.attachVolume(volume.blockdeviceId, 'i-me');
  driver.hanging = true;
  host.formatted.add(`/dev/fake/${volume.blockdeviceId}`);
  host.mounts.push({ device: `/dev/fake/${volume.blockdeviceId}`, mountPoint: `/flocker/${DS}`, majorMinor: '0:0' });
  const stopped: StopTargets[] = [];
  const containers: ContainerStopper = {
    stopContainersUsing: async (targets) => {
      stopped.push(targets);
      return ['writer'];
    },
  };
  const control = new Control(clock);
  const agent = new DatasetAgent(
    testAgentOptions({
      driver,
      hostOps: host,
      control,
      clock,
      containers,
      resyncIntervalMs: RESYNC_MS,
      lastNodeTimeoutMs: NODE_TIMEOUT_S * 1000,
      version: '1.2.3',
      ...(o.fenceReports !== undefined ? { fenceReports: o.fenceReports } : {}),
    }),
  );
  return { clock, driver, host, stopped, control, agent, volume };
}

/** A start-up step that settles only when told (a cloud API call that does not answer). */
function pendingStep(): { step: () => Promise<StartUpFindings>; finish: () => void } {
  let finish: () => void = () => undefined;
  const settled = new Promise<StartUpFindings>((r) => (finish = () => r({})));
  return { step: () => settled, finish };
}

const mountedHere = (host: FakeHost) => host.mounts.some((m) => m.mountPoint === `/flocker/${DS}`);

it('while a start-up step hangs: a liveness-only report every heartbeat, no fence, nothing done', async () => {
  const { clock, driver, host, stopped, control, agent } = await setUp();
  const { step } = pendingStep();
  void agent.startAfter(step);
  // None at once: an ordinary start's first look ends well within a heartbeat, and its full report is the first.
  await clock.advance(HEARTBEAT_MS - 1);
  expect(control.reports).toEqual([]);
  await clock.advance(1);
  expect(control.reports).toHaveLength(1);
  expect(control.reports[0]?.report).toEqual({
    uuid: TEST_NODE,
    era: 'era-1',
    host: '10.0.0.1',
    instance_id: 'i-me',
    backend: 'fake',
    manifestations: [],
    errors: [],
    version: '1.2.3',
    backend_unseen: {
      since: new Date(1_000_000).toISOString(),
      reason: 'listing volumes of fake: no answer yet',
      fencing_stated: true,
    },
  });
  await clock.advance(3 * NODE_TIMEOUT_S * 1000);
  expect(control.full).toEqual([]);
  // Every heartbeat: never a gap the node timeout could fall into.
  const times = control.reports.map((r) => r.at);
  expect(times[0]).toBe(1_000_000 + HEARTBEAT_MS);
  for (let i = 1; i < times.length; i++) expect(times[i]! - times[i - 1]!).toBeLessThanOrEqual(HEARTBEAT_MS);
  expect(times.length).toBeGreaterThanOrEqual((3 * NODE_TIMEOUT_S * 1000) / HEARTBEAT_MS);
  // In contact (liveness accepted, configuration followed): no fence; and nothing acts before its first look.
  expect(stopped).toEqual([]);
  expect(mountedHere(host)).toBe(true);
  expect([...driver.volumes.values()].map((v) => v.datasetId)).toEqual([DS]);
  await agent.stop();
});

it('while the first look hangs: liveness only, no fence, no create; once it answers, full reports only', async () => {
  const { clock, driver, host, stopped, control, agent, volume } = await setUp();
  const { step, finish } = pendingStep();
  void agent.startAfter(step);
  await clock.advance(1_000);
  finish(); // the start-up steps end; the first look (listVolumes) still hangs
  await clock.advance(2 * NODE_TIMEOUT_S * 1000);
  expect(control.full).toEqual([]);
  expect(control.liveness.length).toBeGreaterThan(10);
  expect(stopped).toEqual([]);
  expect(mountedHere(host)).toBe(true);
  expect([...driver.volumes.values()].map((v) => v.datasetId)).toEqual([DS]); // NEW waits for the look
  const before = control.reports.length;
  driver.answer();
  await clock.advanceUntil(() => control.full.length > 0, 5_000);
  // Its first full report has what the look found (NEW may be in it already: it starts right after the look).
  expect(control.full[0]?.volumes).toContainEqual({
    blockdevice_id: volume.blockdeviceId,
    dataset_id: DS,
    size: 64 * MiB,
    attached_to: 'i-me',
  });
  expect(control.full[0]?.manifestations.map((m) => [m.dataset_id, m.status])).toContainEqual([DS, 'mounted']);
  await clock.advanceUntil(() => [...driver.volumes.values()].some((v) => v.datasetId === NEW), 5_000);
  await clock.advance(2 * NODE_TIMEOUT_S * 1000);
  expect(control.reports.slice(before).filter((r) => r.report.backend_unseen !== undefined)).toEqual([]);
  expect(control.full.at(-1)?.fencing).toBeUndefined();
  expect(stopped).toEqual([]);
  await agent.stop();
});

it('an older control service (400 to the liveness-only report): none sent again this run, fenced at the bound', async () => {
  const { clock, driver, stopped, control, agent } = await setUp();
  control.refuse = (r) =>
    r.backend_unseen !== undefined
      ? new FlockerApiError(400, 'INVALID_REQUEST', "The request is not valid: Unrecognized key: 'backend_unseen'")
      : undefined;
  const { step, finish } = pendingStep();
  void agent.startAfter(step);
  await clock.advance(NODE_TIMEOUT_S * 1000);
  // The first with backend_unseen.fencing_stated, again without it (review s27 F12), then none.
  expect(control.liveness.map((r) => r.backend_unseen?.fencing_stated)).toEqual([true, undefined]);
  expect(stopped).toEqual([{ paths: [`/flocker/${DS}`], volumes: ['pg'] }]);
  finish();
  driver.answer();
  await clock.advanceUntil(() => control.full.length > 0, 5_000);
  expect(control.full[0]?.fencing?.state).toBe('fenced');
  expect(control.liveness).toHaveLength(2);
  await agent.stop();
});

it('a control service before fencing_stated (400 to that member): liveness reports without it, accepted, no fence', async () => {
  const { clock, stopped, control, agent } = await setUp();
  control.refuse = (r) =>
    r.backend_unseen?.fencing_stated !== undefined
      ? new FlockerApiError(400, 'INVALID_REQUEST', "The request is not valid: Unrecognized key: 'fencing_stated'")
      : undefined;
  void agent.startAfter(pendingStep().step);
  await clock.advance(2 * NODE_TIMEOUT_S * 1000);
  expect(control.liveness[0]?.backend_unseen?.fencing_stated).toBe(true);
  expect(control.liveness.slice(1).map((r) => r.backend_unseen?.fencing_stated)).toEqual(
    control.liveness.slice(1).map(() => undefined),
  );
  expect(control.liveness.length).toBeGreaterThan(3);
  expect(stopped).toEqual([]);
  await agent.stop();
});

it('a liveness-only report refused otherwise (409 NODE_DEAD) is no contact: fenced at the bound, and sent again', async () => {
  const { clock, stopped, control, agent } = await setUp();
  control.refuse = (r) =>
    r.backend_unseen !== undefined ? new FlockerApiError(409, 'NODE_DEAD', 'declared dead') : undefined;
  void agent.startAfter(pendingStep().step);
  await clock.advance(NODE_TIMEOUT_S * 1000);
  expect(stopped).toHaveLength(1);
  expect(control.liveness.length).toBeGreaterThan(3);
  await agent.stop();
});

it('an ordinary start (the look answers at once) sends no liveness-only report: its full report is the first', async () => {
  const { clock, driver, control, agent } = await setUp();
  driver.answer();
  agent.start();
  await clock.advance(3 * HEARTBEAT_MS);
  expect(control.liveness).toEqual([]);
  expect(control.full.length).toBeGreaterThan(0);
  await agent.stop();
});

it('restarted while fenced, its first look hanging: the liveness reports state the fence, lifted once in contact (W7)', async () => {
  // The control service shows the liveness report's fence in place of the held report's 'fenced' (W7).
  const kept = { state: 'fenced' as const, since: SINCE_FENCED, reason: 'no contact', stopped_containers: ['writer'] };
  const { clock, control, agent } = await setUp({
    fenceReports: { load: () => ({ report: kept }), save: async () => {} },
  });
  void agent.startAfter(pendingStep().step);
  await clock.advanceUntil(() => control.liveness.at(-1)?.fencing?.state === 'recovered', 5 * HEARTBEAT_MS);
  expect(control.liveness[0]?.fencing).toEqual(kept);
  expect(control.liveness.at(-1)?.fencing).toEqual({ ...kept, state: 'recovered' });
  expect(control.full).toEqual([]);
  await agent.stop();
});

/**
 * FR F4 / review T1 S0 (session 19): the self-fence bound holds from the agent's first instant, also while its
 * start-up steps (startDatasetAgent: pool check, repair, maximumVolumeSize, storageZone) do not settle, e.g. a cloud
 * API that hangs at a restart. Until they end the agent only follows the configuration (what the fence needs to stop
 * the containers on a plugin volume: Docker shows no Source for it) and fences: no turn, no worker, no move.
 */
import { TEST_NODE, testAgentOptions } from './testing/agentOptions';
import { FlockerApiError, type ClusterSnapshot, type NodeReport } from '@flocker/api';
import type { ContainerStopper, StopTargets } from './containers';
import { DatasetAgent, type ControlChannel, type StartUpFindings } from './DatasetAgent';
import { FakeDriver, FakeHost } from './testing/fakes';
import { ManualClock } from '@flocker/runtime/testing';

const NODE_TIMEOUT_S = 6; // bound F = 3 s
const BOUND_MS = (NODE_TIMEOUT_S * 1000) / 2;
const DS = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
const NEW = 'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb';
const MiB = 1024 * 1024;

/**
 * A control service that answers at once; the configuration changes by setDatasets. An older release: it refuses a
 * liveness-only report (400), so until its first full look the agent has no accepted report (DatasetAgent.liveness
 * tests a control service that takes them).
 */
class Control implements ControlChannel {
  readonly reports: Array<{ at: number; report: NodeReport }> = [];
  private generation = 1;
  private datasets: ClusterSnapshot['datasets'] = [
    { dataset_id: DS, primary: TEST_NODE, maximum_size: 64 * MiB, metadata: { name: 'pg' }, deleted: false },
  ];
  private waiters: Array<() => void> = [];
  constructor(private readonly clock: ManualClock) {}
  setDatasets(datasets: ClusterSnapshot['datasets']): void {
    this.datasets = datasets;
    this.generation++;
    for (const w of this.waiters.splice(0)) w();
  }
  async reportNodeState(report: NodeReport): Promise<unknown> {
    if (report.backend_unseen !== undefined)
      throw new FlockerApiError(400, 'INVALID_REQUEST', "The request is not valid: Unrecognized key: 'backend_unseen'");
    this.reports.push({ at: this.clock.now(), report });
    return {
      generation: String(this.generation),
      configuration_tag: `t${this.generation}`,
      node_timeout_seconds: NODE_TIMEOUT_S,
    };
  }
  async waitForCluster(since?: string): Promise<ClusterSnapshot> {
    if (since === String(this.generation)) await new Promise<void>((r) => this.waiters.push(r));
    return {
      generation: String(this.generation),
      configuration_tag: `t${this.generation}`,
      datasets: this.datasets,
      leases: [{ dataset_id: DS, node_uuid: TEST_NODE, expires: null }],
      nodes: [],
      node_timeout_seconds: NODE_TIMEOUT_S,
      lease_grace_seconds: 1,
    };
  }
}

/** A start-up step that settles only when told (a cloud API call that does not answer). */
function pendingStep(): { step: () => Promise<StartUpFindings>; finish: (f?: StartUpFindings) => void } {
  let finish: (f?: StartUpFindings) => void = () => undefined;
  const settled = new Promise<StartUpFindings>((r) => (finish = (f) => r(f ?? {})));
  return { step: () => settled, finish: (f) => finish(f) };
}

/** What the agent before the restart left: the dataset's volume attached and mounted here, a container on it. */
async function setUp() {
  const clock = new ManualClock();
  const driver = new FakeDriver();
  const host = new FakeHost();
  const volume = await driver.createVolume(DS, 64 * MiB);
  await driver.attachVolume(volume.blockdeviceId, 'i-me');
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
      resyncIntervalMs: 2_000,
      lastNodeTimeoutMs: NODE_TIMEOUT_S * 1000,
    }),
  );
  return { clock, driver, host, stopped, control, agent, volume };
}

const mountedHere = (host: FakeHost) => host.mounts.some((m) => m.mountPoint === `/flocker/${DS}`);

it('fences at its bound while a start-up step never settles, and acts on nothing meanwhile', async () => {
  const { clock, driver, host, stopped, control, agent } = await setUp();
  const { step } = pendingStep();
  void agent.startAfter(step);
  // A new dataset for this node while the steps hang: no worker may create it before the start.
  await clock.advance(500);
  control.setDatasets([
    { dataset_id: DS, primary: TEST_NODE, maximum_size: 64 * MiB, metadata: { name: 'pg' }, deleted: false },
    { dataset_id: NEW, primary: TEST_NODE, maximum_size: 64 * MiB, metadata: {}, deleted: false },
  ]);
  await clock.advance(BOUND_MS - 600);
  expect(stopped).toEqual([]);
  // The bound, then the last chance (at most a third of T - F): fenced before the node timeout.
  await clock.advance(NODE_TIMEOUT_S * 1000 - BOUND_MS - 1);
  // The plugin volume's name came from the configuration followed meanwhile.
  expect(stopped).toEqual([{ paths: [`/flocker/${DS}`], volumes: ['pg'] }]);
  expect(host.mounts).toEqual([]);
  expect(control.reports).toEqual([]);
  expect([...driver.volumes.values()].map((v) => v.datasetId)).toEqual([DS]);
  await agent.stop();
  expect(clock.pending).toBe(0);
});

it('starts as before when the start-up steps end within the bound: no fence, its findings reported', async () => {
  const { clock, host, stopped, control, agent } = await setUp();
  const { step, finish } = pendingStep();
  const started = agent.startAfter(step);
  await clock.advance(BOUND_MS - 500);
  expect(control.reports).toEqual([]);
  finish({ zone: 'z1', maxVolumeSize: 1024 * MiB });
  await started;
  await clock.advanceUntil(() => control.reports.length > 0, 1_000);
  await clock.advance(NODE_TIMEOUT_S * 1000);
  expect(stopped).toEqual([]);
  expect(mountedHere(host)).toBe(true);
  const last = control.reports.at(-1)?.report;
  expect(last?.zone).toBe('z1');
  expect(last?.max_volume_size).toBe(1024 * MiB);
  expect(last?.fencing).toBeUndefined();
  expect(last?.manifestations.map((m) => [m.dataset_id, m.status])).toEqual([[DS, 'mounted']]);
  await agent.stop();
});

it('lifts the fence once the start-up steps end and contact is back, and converges again', async () => {
  const { clock, host, stopped, control, agent } = await setUp();
  const { step, finish } = pendingStep();
  const started = agent.startAfter(step);
  await clock.advance(NODE_TIMEOUT_S * 1000);
  expect(stopped).toHaveLength(1);
  expect(mountedHere(host)).toBe(false);
  finish();
  await started;
  await clock.advanceUntil(() => control.reports.length > 0, 5_000);
  expect(control.reports[0]?.report.fencing?.state).toBe('fenced');
  await clock.advanceUntil(() => mountedHere(host), 20_000);
  await clock.advanceUntil(() => control.reports.at(-1)?.report.fencing?.state === 'recovered', 5_000);
  expect(control.reports.at(-1)?.report.fencing?.stopped_containers).toEqual(['writer']);
  await agent.stop();
});

it('stops its timers and rethrows when a start-up step fails', async () => {
  const { clock, stopped, agent } = await setUp();
  const started = agent.startAfter(async () => {
    await clock.sleep(100);
    throw new Error('pool of another cluster');
  });
  const failed = expect(started).rejects.toThrow('pool of another cluster');
  await clock.advance(NODE_TIMEOUT_S * 1000);
  await failed;
  expect(stopped).toEqual([]);
  expect(clock.pending).toBe(0);
});

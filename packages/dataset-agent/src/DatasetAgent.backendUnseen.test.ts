/**
 * Review T1 S0 (session 18): an agent whose first look at its backend hangs (a restart during a cloud API
 * brown-out) used to send its heartbeat reports with an empty view: "nothing attached or mounted here", false,
 * and accepted as contact. Until a look finished it must claim nothing about its volumes; without an accepted
 * report it is out of contact, so at its bound it fences (stops what uses its mounts, unmounts) before the control
 * service's node timeout declares it dead and hands its volumes out; once the backend answers it reports and
 * converges again.
 */
import { TEST_NODE, testAgentOptions } from './testing/agentOptions';
import { FlockerApiError, type ClusterSnapshot, type NodeReport } from '@flocker/api';
import type { ContainerStopper } from './containers';
import { DatasetAgent, type ControlChannel } from './DatasetAgent';
import { FakeDriver, FakeHost } from './testing/fakes';
import { ManualClock } from '@flocker/runtime/testing';

const NODE_TIMEOUT_S = 6; // bound F = 3 s
const DS = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
const MiB = 1024 * 1024;

/** An older control service: it refuses a liveness-only report (400); DatasetAgent.liveness tests one that takes it. */
class Control implements ControlChannel {
  readonly reports: Array<{ at: number; report: NodeReport }> = [];
  constructor(private readonly clock: ManualClock) {}
  async reportNodeState(report: NodeReport): Promise<unknown> {
    if (report.backend_unseen !== undefined)
      throw new FlockerApiError(400, 'INVALID_REQUEST', "The request is not valid: Unrecognized key: 'backend_unseen'");
    this.reports.push({ at: this.clock.now(), report });
    return { generation: '1', configuration_tag: 't1', node_timeout_seconds: NODE_TIMEOUT_S };
  }
  async waitForCluster(since?: string): Promise<ClusterSnapshot> {
    if (since === '1') return new Promise(() => undefined); // nothing changes
    return {
      generation: '1',
      configuration_tag: 't1',
      datasets: [{ dataset_id: DS, primary: TEST_NODE, maximum_size: 64 * MiB, metadata: {}, deleted: false }],
      leases: [{ dataset_id: DS, node_uuid: TEST_NODE, expires: null }],
      nodes: [],
      node_timeout_seconds: NODE_TIMEOUT_S,
      lease_grace_seconds: 1,
    };
  }
}

/** A backend whose listing hangs until answer() (the look at a cloud API that does not answer). */
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

it('claims nothing about its volumes before its first look, fences at its bound, and reports once the backend answers', async () => {
  const clock = new ManualClock();
  const driver = new HangingDriver();
  const host = new FakeHost();
  // What the agent before the restart left: the dataset's volume attached and mounted, a container using it.
  const volume = await driver.createVolume(DS, 64 * MiB);
  await driver.attachVolume(volume.blockdeviceId, 'i-me');
  host.mounts.push({ device: `/dev/fake/${volume.blockdeviceId}`, mountPoint: `/flocker/${DS}`, majorMinor: '0:0' });
  const stopped: string[][] = [];
  const containers: ContainerStopper = {
    stopContainersUsing: async ({ paths }) => {
      stopped.push([...paths]);
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
  agent.start();
  await clock.advance(NODE_TIMEOUT_S * 1000);
  expect(control.reports).toEqual([]);
  // Fenced within the bound (3 s), before the node timeout (6 s) would let another host take the volume.
  expect(stopped).toEqual([[`/flocker/${DS}`]]);
  expect(host.mounts).toEqual([]);

  driver.answer();
  await clock.advanceUntil(() => control.reports.length > 0, 5_000);
  const first = control.reports[0]?.report;
  expect(first?.volumes).toEqual([
    { blockdevice_id: volume.blockdeviceId, dataset_id: DS, size: 64 * MiB, attached_to: 'i-me' },
  ]);
  expect(first?.fencing?.state).toBe('fenced');
  // Contact back: it converges again (the dataset mounted here once more).
  await clock.advanceUntil(() => host.mounts.some((m) => m.mountPoint === `/flocker/${DS}`), 20_000);
  await agent.stop();
});

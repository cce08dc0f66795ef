/**
 * The claim check of a node report and the node's registration (review RC, session 14): a first report (or a new host)
 * commits the node before its report is recorded, and another report arriving during that commit must still see the
 * claim. Each test holds the registration's commit open while the other report arrives.
 */
import { FlockerApiError, FlockerClient } from '@flocker/api';
import type { Configuration } from './configuration';
import type { ControlService } from './server';
import { HeldStore } from './testing/heldStore';
import { NODE_A, NODE_B, nodeReport, startOnLoopback } from './testing/httpService';

const C = 'cccccccc-cccc-4ccc-8ccc-cccccccccccc';
const INSTANCE = 'i-shared';

async function until(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !cond(); i++) await new Promise((r) => setTimeout(r, 2));
  if (!cond()) throw new Error('timed out');
}

/** The error code a request failed with, or 'ok'; settles within `ms` or answers 'pending'. */
async function outcome(p: Promise<unknown>, ms: number): Promise<string> {
  const settled = p.then(
    () => 'ok',
    (err: unknown) => (err instanceof FlockerApiError ? err.code : String(err)),
  );
  return Promise.race([settled, new Promise<string>((r) => setTimeout(() => r('pending'), ms))]);
}

describe('a report arriving while another registers its node', () => {
  let store: HeldStore;
  let svc: ControlService;
  let client: FlockerClient;
  beforeEach(async () => {
    store = new HeldStore();
    svc = await startOnLoopback({ store });
    client = new FlockerClient({ baseUrl: svc.url, timeoutMs: 5000 });
  });
  afterEach(async () => {
    store.release();
    await svc.close();
  });

  it("two first reports naming one instance: the second is refused (INSTANCE_CLAIMED), the first's node holds it", async () => {
    store.hold();
    const first = client.reportNodeState(nodeReport(NODE_A, { instance_id: INSTANCE }));
    await until(() => store.waiting === 1);
    const second = client.reportNodeState(nodeReport(NODE_B, { instance_id: INSTANCE }));
    // Refused at once, during the first's registration (not registered itself: nothing to commit).
    expect(await outcome(second, 1000)).toBe('INSTANCE_CLAIMED');
    store.release();
    await first;
    expect([...svc.state.nodesClaimingInstance(INSTANCE)].map((n) => n.report.uuid)).toEqual([NODE_A]);
    expect(svc.state.configuration.nodes.has(NODE_B)).toBe(false);
  });

  it('a known node moved to another host and instance re-registers: a first report naming that instance meanwhile is refused', async () => {
    await client.reportNodeState(nodeReport(NODE_A, { instance_id: 'i-before' }));
    store.hold();
    const moved = client.reportNodeState(nodeReport(NODE_A, { instance_id: INSTANCE, host: '10.0.0.9' }));
    await until(() => store.waiting === 1);
    expect(await outcome(client.reportNodeState(nodeReport(NODE_B, { instance_id: INSTANCE })), 1000)).toBe(
      'INSTANCE_CLAIMED',
    );
    store.release();
    await moved;
  });

  it("a known node's report claiming a volume attached to the instance of a node still registering is refused (VOLUME_CLAIMED)", async () => {
    await client.reportNodeState(nodeReport(C));
    store.hold();
    const first = client.reportNodeState(nodeReport(NODE_A, { instance_id: INSTANCE }));
    await until(() => store.waiting === 1);
    const dataset = '11111111-1111-4111-8111-111111111111';
    const claim = client.reportNodeState(
      nodeReport(C, {
        manifestations: [{ dataset_id: dataset, blockdevice_id: 'b-1', size: 67108864, status: 'mounted' }],
        volumes: [{ dataset_id: dataset, blockdevice_id: 'b-1', size: 67108864, attached_to: INSTANCE }],
      }),
    );
    expect(await outcome(claim, 1000)).toBe('VOLUME_CLAIMED');
    store.release();
    await first;
  });

  it('a registration that fails leaves no claim behind', async () => {
    store.hold();
    const failing = store.commit.bind(store);
    let fail = true;
    store.commit = async (config: Configuration): Promise<void> => {
      await failing(config);
      if (fail) throw new Error('disk full');
    };
    const first = client.reportNodeState(nodeReport(NODE_A, { instance_id: INSTANCE }));
    await until(() => store.waiting === 1);
    store.release();
    expect(await outcome(first, 2000)).not.toBe('ok');
    fail = false;
    await client.reportNodeState(nodeReport(NODE_B, { instance_id: INSTANCE }));
    expect([...svc.state.nodesClaimingInstance(INSTANCE)].map((n) => n.report.uuid)).toEqual([NODE_B]);
  });
});

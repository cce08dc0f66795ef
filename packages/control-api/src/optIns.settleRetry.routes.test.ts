/**
 * Review RV3 (session 17) Q2 of a275362: a report's settle applies only to dataset entries unchanged since it was
 * computed (stillAsSeen, RV finding 6). A skipped one waited for the node's next report: a completed move's loss
 * opt-in outlived it by up to one resync interval, and for good when the new primary died before reporting again;
 * then a failover from it (the old primary dead, its report listing the live copy: replicaOptInRule keeps an opt-in
 * set before the move) was covered by the left-over opt-in and promoted an old replica with nobody asked. Now the
 * settle is computed again once the change it was skipped for is committed, while the report is still the node's
 * latest. Through the HTTP service with a store whose commits are held, so the change is pending when the report's
 * settle is applied.
 */
import {
  FlockerClient,
  METADATA_ACCEPT_REPLICA_LOSS_KEY as REPLICA_LOSS,
  METADATA_REPLICAS_KEY as REPLICAS,
} from '@flocker/api';
import type { ControlService } from './server';
import { HeldStore } from './testing/heldStore';
import { C } from './testing/fixtures';
import {
  configurationVersionOf,
  NODE_A as A,
  NODE_B as B,
  localBtrfsReport,
  startOnLoopback,
} from './testing/httpService';

const D = '11111111-1111-4111-8111-111111111111';
const TIMEOUT_S = 1;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !cond(); i++) await sleep(2);
  if (!cond()) throw new Error('timed out');
}

describe("a report's settle skipped for a pending change is computed again once it is committed", () => {
  let store: HeldStore;
  let svc: ControlService;
  let client: FlockerClient;
  /** The configuration version of the move A→B. */
  let moved: number;

  // A's data on A; A dies; the user moves to B with accept-replica-loss; B is promoting (not mounted yet).
  beforeEach(async () => {
    store = new HeldStore();
    svc = await startOnLoopback({ store, nodeTimeoutSeconds: TIMEOUT_S });
    client = new FlockerClient({ baseUrl: svc.url, timeoutMs: 5000 });
    for (const n of [A, B, C]) await client.reportNodeState(localBtrfsReport(n, []));
    await client.createDataset({ primary: A, dataset_id: D, metadata: { name: 'db' } });
    await client.reportNodeState(localBtrfsReport(A, [D]));
    await sleep(TIMEOUT_S * 1000 + 300);
    for (const n of [B, C]) await client.reportNodeState(localBtrfsReport(n, []));
    await client.updateDataset(D, { primary: B, metadata: { [REPLICA_LOSS]: 'true' } });
    moved = await configurationVersionOf(client);
    await client.reportNodeState(localBtrfsReport(B, [], [], moved));
    expect((await client.getDataset(D)).metadata[REPLICA_LOSS]).toBe('true');
  });
  afterEach(async () => {
    store.release();
    await svc.close();
  });

  /** D's entry as applied, committed or not. */
  const pendingD = () => svc.state.latestConfiguration.datasets.get(D);

  /**
   * B's report of it mounted (of the move A→B's configuration version) arrives while `changes` (of D's entry, each applied
   * before the next is sent) wait for their commit; all answered once the commit goes on.
   */
  async function reportDuring(changes: readonly (() => Promise<unknown>)[], applied: () => boolean): Promise<void> {
    store.hold();
    const answers: Promise<unknown>[] = [];
    for (const change of changes) {
      const before = pendingD();
      answers.push(change());
      await until(() => pendingD() !== before);
    }
    await until(() => applied() && store.waiting === 1);
    answers.push(client.reportNodeState(localBtrfsReport(B, [D], [], moved)));
    // Recorded, and its settle applied onto the pending configuration (the same turn): then the commit goes on.
    await until(() => svc.state.reportedNode(B)?.report.manifestations.length === 1);
    await sleep(50);
    store.release();
    await Promise.all(answers);
  }

  it('B reports it mounted while another change of the dataset is pending: the opt-in goes with that report', async () => {
    await reportDuring(
      [() => client.updateDataset(D, { metadata: { [REPLICAS]: '1' } })],
      () => pendingD()?.metadata[REPLICAS] === '1',
    );
    const metadata = (await client.getDataset(D)).metadata;
    expect(metadata[REPLICAS]).toBe('1');
    // Before: kept until B's next report (and for good if B died first: a failover from B then promoted C's replica).
    expect(metadata[REPLICA_LOSS]).toBeUndefined();
  });

  it('RV finding 6 stays closed: a report of B older than a move away and back does not take the new opt-in', async () => {
    await reportDuring(
      [
        () => client.updateDataset(D, { primary: C }),
        () => client.updateDataset(D, { primary: B, metadata: { [REPLICA_LOSS]: 'true' } }),
      ],
      () => pendingD()?.primary === B && pendingD()?.metadata[REPLICA_LOSS] === 'true',
    );
    const d = await client.getDataset(D);
    expect(d.primary).toBe(B);
    // The report (of the move A→B's era) is stale for the move back: its "mounted" does not settle that move.
    expect(d.metadata[REPLICA_LOSS]).toBe('true');
  });
});

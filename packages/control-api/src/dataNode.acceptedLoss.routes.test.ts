/**
 * The accepted-loss marker through the service (RV finding 1, session 16): a failover with accept-replica-loss
 * leaves, when the opt-in is removed, clusterhq:flocker:accepted-loss-from naming the old primary; it survives a
 * restart of the service and a later change of primary, and goes once the old primary reports no live copy.
 */
import {
  METADATA_ACCEPT_REPLICA_LOSS_KEY as REPLICA_LOSS,
  METADATA_ACCEPTED_LOSS_FROM_KEY as LOSS_FROM,
} from '@flocker/api';
import { C } from './testing/fixtures';
import {
  closeAndRemove,
  configurationVersionOf,
  NODE_A as A,
  NODE_B as B,
  localBtrfsReport,
  type ServiceOnDir,
  startOnDir,
  startWithLocalDataset,
} from './testing/httpService';

const D = '11111111-1111-4111-8111-111111111111';
const TIMEOUT_S = 1;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('accepted-loss-from', () => {
  let dir: string;
  let svc: ServiceOnDir;

  beforeEach(async () => {
    ({ dir, ...svc } = await startWithLocalDataset('accepted-loss-', D, [A, B, C], TIMEOUT_S));
  });
  afterEach(() => closeAndRemove(svc.svc, dir));

  const metadata = async () => (await svc.client.getDataset(D)).metadata;

  it('names the failover’s old primary with the opt-in’s removal, and goes once it reports no live copy', async () => {
    await sleep(TIMEOUT_S * 1000 + 300); // A dies, its last report listing the copy.
    for (const n of [B, C]) await svc.client.reportNodeState(localBtrfsReport(n, []));
    await svc.client.updateDataset(D, { primary: B, metadata: { [REPLICA_LOSS]: 'true' } });
    const v = await configurationVersionOf(svc.client);
    expect((await metadata())[LOSS_FROM]).toBeUndefined();
    await svc.client.reportNodeState(localBtrfsReport(B, [D], [], v));
    expect((await metadata())[REPLICA_LOSS]).toBeUndefined();
    expect((await metadata())[LOSS_FROM]).toBe(A);
    // A client may not set or remove it.
    await expect(svc.client.updateDataset(D, { metadata: { [LOSS_FROM]: C } })).rejects.toThrow();
    // A restart of the service, then a move to C: it stays (A may still come back with its copy).
    await svc.svc.close();
    svc = await startOnDir(dir, TIMEOUT_S);
    await svc.client.reportNodeState(localBtrfsReport(B, [D], [], v));
    expect((await metadata())[LOSS_FROM]).toBe(A);
    await svc.client.updateDataset(D, { primary: C });
    expect((await metadata())[LOSS_FROM]).toBe(A);
    // A back with its copy (not mounted): stays; A's copy kept aside (its report without it): gone.
    await svc.client.reportNodeState(localBtrfsReport(A, [], [D]));
    expect((await metadata())[LOSS_FROM]).toBe(A);
    await svc.client.reportNodeState(localBtrfsReport(A, []));
    expect((await metadata())[LOSS_FROM]).toBeUndefined();
  });
});

/**
 * The loss opt-ins through the service (session 16, review U2 finding 2): accept-replica-loss is one-shot. It applies
 * to the move it was given for (with the move, or set first and the move in a second request: the way before the
 * CLI flag), and goes once that move has completed (the new primary reports it mounted, also after a restart of the
 * service) or when the primary changes again before (a new move needs its own opt-in). Before: it stayed on the
 * volume and the next failover promoted an old replica with nobody asked.
 */
import {
  METADATA_ACCEPT_DATA_LOSS_KEY as DATA_LOSS,
  METADATA_ACCEPT_REPLICA_LOSS_KEY as REPLICA_LOSS,
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

const localReport = (uuid: string, mounted: string[], version?: number) => localBtrfsReport(uuid, mounted, [], version);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('accept-replica-loss is one-shot', () => {
  let dir: string;
  let svc: ServiceOnDir;

  beforeEach(async () => {
    ({ dir, ...svc } = await startWithLocalDataset('opt-ins-one-shot-', D, [A, B, C], TIMEOUT_S));
  });
  afterEach(() => closeAndRemove(svc.svc, dir));

  const metadata = async () => (await svc.client.getDataset(D)).metadata;
  /** A dies (its last report lists the copy mounted); B and C stay alive. */
  async function aDies(): Promise<void> {
    await sleep(TIMEOUT_S * 1000 + 300);
    for (const n of [B, C]) await svc.client.reportNodeState(localReport(n, []));
  }

  it('given with the move (the CLI): gone once B reports it mounted; the next move has none', async () => {
    await aDies();
    await svc.client.updateDataset(D, { primary: B, metadata: { [REPLICA_LOSS]: 'true' } });
    const v = await configurationVersionOf(svc.client);
    expect((await metadata())[REPLICA_LOSS]).toBe('true');
    await svc.client.reportNodeState(localReport(B, [], v)); // promoting
    expect((await metadata())[REPLICA_LOSS]).toBe('true');
    await svc.client.reportNodeState(localReport(B, [D], v));
    expect((await metadata())[REPLICA_LOSS]).toBeUndefined();
    // B dies later; the user (or the Docker plugin) moves to C: no opt-in, C's agent refuses and asks.
    await svc.client.updateDataset(D, { primary: C });
    expect((await metadata())[REPLICA_LOSS]).toBeUndefined();
  });

  it('set first, the move in a second request (A dead, its report listing the copy): kept for that move', async () => {
    await aDies();
    await svc.client.updateDataset(D, { metadata: { [REPLICA_LOSS]: 'true' } });
    await svc.client.updateDataset(D, { primary: B });
    expect((await metadata())[REPLICA_LOSS]).toBe('true');
    await svc.client.reportNodeState(localReport(B, [D], await configurationVersionOf(svc.client)));
    expect((await metadata())[REPLICA_LOSS]).toBeUndefined();
  });

  it('the primary changes again before the move completed: gone (a new move needs its own)', async () => {
    await aDies();
    await svc.client.updateDataset(D, { primary: B, metadata: { [REPLICA_LOSS]: 'true' } });
    await svc.client.reportNodeState(localReport(B, [], await configurationVersionOf(svc.client)));
    await svc.client.updateDataset(D, { primary: C });
    expect((await metadata())[REPLICA_LOSS]).toBeUndefined();
    // Given again with that move: kept.
    await svc.client.updateDataset(D, { primary: B, metadata: { [REPLICA_LOSS]: 'true' } });
    expect((await metadata())[REPLICA_LOSS]).toBe('true');
  });

  it('set first while A is alive: A’s next report (it has it mounted) lets it go; a move from A alive drops it', async () => {
    await svc.client.updateDataset(D, { metadata: { [REPLICA_LOSS]: 'true' } });
    await svc.client.updateDataset(D, { primary: B });
    expect((await metadata())[REPLICA_LOSS]).toBeUndefined();
    await svc.client.updateDataset(D, { primary: A, metadata: { [REPLICA_LOSS]: 'true' } });
    await svc.client.reportNodeState(localReport(A, [D], await configurationVersionOf(svc.client)));
    expect((await metadata())[REPLICA_LOSS]).toBeUndefined();
  });

  it('the service restarted before the removal: gone at the primary’s first report after the restart', async () => {
    await aDies();
    await svc.client.updateDataset(D, { primary: B, metadata: { [REPLICA_LOSS]: 'true' } });
    const v = await configurationVersionOf(svc.client);
    await svc.svc.close();
    svc = await startOnDir(dir, TIMEOUT_S);
    expect((await metadata())[REPLICA_LOSS]).toBe('true');
    await svc.client.reportNodeState(localReport(B, [D], v));
    expect((await metadata())[REPLICA_LOSS]).toBeUndefined();
  });

  it('accept-data-loss set on the refusing primary (no move): gone once it reports the dataset mounted', async () => {
    await aDies();
    await svc.client.updateDataset(D, { primary: B });
    await svc.client.updateDataset(D, { metadata: { [DATA_LOSS]: 'true' } });
    await svc.client.reportNodeState(localReport(B, [D], await configurationVersionOf(svc.client)));
    // The loss it covers recorded with the removal (RV finding 1): the marked node's copy, if it comes back branched.
    expect(await metadata()).toEqual({
      name: 'db',
      'clusterhq:flocker:data-node': A,
      'clusterhq:flocker:accepted-loss-from': A,
    });
  });
});

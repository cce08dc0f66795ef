/**
 * The data-node marker after a move has completed (issue 24, U's item 6): it named the old node for ever, read by
 * users as "the data is there". Now removed once the new primary reports the dataset mounted (a "mounted" this
 * service takes as current: built after the agent acted on the move) and no other node reports a live copy of it:
 * the data is on the primary, so the marker's purpose (keep the primary from starting an empty copy while the holder
 * is unseen) is met by the primary itself. Kept otherwise: the old node still holding a live copy (a source killed
 * after the promote), a report from before the move, a block dataset (no marker).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { METADATA_DATA_NODE_KEY } from '@flocker/api';
import {
  configurationVersionOf,
  NODE_A as A,
  NODE_B as B,
  localBtrfsReport as localReport,
  type ServiceOnDir,
  startOnDir,
} from './testing/httpService';

const D = '11111111-1111-4111-8111-111111111111';

describe('the data-node marker once the move has completed', () => {
  let dir: string;
  let svc: ServiceOnDir;

  beforeEach(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'data-node-settled-'));
    svc = await startOnDir(dir);
    await svc.client.reportNodeState(localReport(A, []));
    await svc.client.reportNodeState(localReport(B, []));
    await svc.client.createDataset({ primary: A, dataset_id: D, metadata: { name: 'db' } });
    await svc.client.reportNodeState(localReport(A, [D]));
  });
  afterEach(async () => {
    await svc.svc.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const marker = async (): Promise<string | undefined> =>
    (await svc.client.getDataset(D)).metadata[METADATA_DATA_NODE_KEY];

  /** A -> B: the marker names A (the holder). */
  async function moved(): Promise<number> {
    await svc.client.updateDataset(D, { primary: B });
    expect(await marker()).toBe(A);
    return configurationVersionOf(svc.client);
  }

  it('removed once B reports it mounted and A no longer holds a live copy; the rest of the metadata kept', async () => {
    const v = await moved();
    // Mid-move: A still holds its copy (unmounted, being sent), B has nothing mounted yet.
    await svc.client.reportNodeState(localReport(A, [], [D], v));
    await svc.client.reportNodeState(localReport(B, [], [], v));
    expect(await marker()).toBe(A);
    // B promoted and mounted, A still holding its copy (killed before its retire): kept.
    await svc.client.reportNodeState(localReport(B, [D], [], v));
    expect(await marker()).toBe(A);
    // A retired its copy: the data is on B alone (A's report is enough: B's may not change again).
    await svc.client.reportNodeState(localReport(A, [], [], v));
    expect((await svc.client.getDataset(D)).metadata).toEqual({ name: 'db' });
  });

  it('kept while B’s "mounted" was built before its agent acted on the move (a move away and straight back)', async () => {
    const v = await moved();
    await svc.client.reportNodeState(localReport(A, [], [], v));
    await svc.client.reportNodeState(localReport(B, [D], [], v - 1));
    expect(await marker()).toBe(A);
    await svc.client.reportNodeState(localReport(B, [D], [], v));
    expect(await marker()).toBeUndefined();
  });

  it('a later move records it again, as every move does', async () => {
    const v = await moved();
    await svc.client.reportNodeState(localReport(A, [], [], v));
    await svc.client.reportNodeState(localReport(B, [D], [], v));
    expect(await marker()).toBeUndefined();
    await svc.client.updateDataset(D, { primary: A });
    expect(await marker()).toBe(B);
  });
});

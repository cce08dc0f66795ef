/**
 * A `--when-released` move cancelled (session 17, review U3 item 6): while the move waits for the source's users, a
 * new container there makes its Docker plugin pull the primary back to the source (its lease holder). The control
 * service records a `move_cancelled` event for it, once the change is committed. An ordinary Mount moving a volume
 * to the node that just took its lease is no cancel: no event.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { FlockerApiError } from '@flocker/api';
import { localBtrfsReport, NODE_A as A, NODE_B as B, type ServiceOnDir, startOnDir } from './testing/httpService';

const D = '11111111-1111-4111-8111-111111111111';

describe('a when-released move cancelled by its source using the volume again', () => {
  let dir: string;
  let svc: ServiceOnDir;

  beforeEach(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'move-cancelled-'));
    svc = await startOnDir(dir);
    await svc.client.reportNodeState(localBtrfsReport(A, []));
    await svc.client.reportNodeState(localBtrfsReport(B, []));
    await svc.client.createDataset({ primary: A, dataset_id: D, metadata: { name: 'pg' } });
    await svc.client.reportNodeState(localBtrfsReport(A, [D]));
  });
  afterEach(async () => {
    await svc.svc.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('A holds the lease, the move to B waits; A pulls it back: one move_cancelled event naming both nodes', async () => {
    await svc.client.acquireLease({ dataset_id: D, node_uuid: A, expires: null });
    await svc.client.updateDataset(D, { primary: B, when_released: true });
    expect(await svc.client.listEvents()).toEqual([]);
    await svc.client.updateDataset(D, { primary: A });
    const events = await svc.client.listEvents();
    expect(events).toEqual([
      {
        time: expect.any(String) as string,
        kind: 'move_cancelled',
        node_uuid: A,
        dataset_id: D,
        message: `Move of volume pg (dataset ${D}) to host 10.0.0.2 (node ${B}) cancelled: used again on host 10.0.0.1 (node ${A}), which holds its lease.`,
      },
    ]);
    // Asked again (a plugin retrying after a lost answer): the primary is A already, nothing is cancelled twice.
    await svc.client.updateDataset(D, { primary: A });
    expect(await svc.client.listEvents()).toHaveLength(1);
  });

  it('an ordinary Mount on B (its lease first, then the move): no event', async () => {
    await svc.client.acquireLease({ dataset_id: D, node_uuid: B, expires: null });
    await svc.client.updateDataset(D, { primary: B });
    expect(await svc.client.listEvents()).toEqual([]);
  });

  it('the pull-back refused (configuration changed since the tag it was asked on): no event', async () => {
    await svc.client.acquireLease({ dataset_id: D, node_uuid: A, expires: null });
    await svc.client.updateDataset(D, { primary: B, when_released: true });
    const err: unknown = await svc.client.updateDataset(D, { primary: A }, { ifConfigurationMatches: 'v1' }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(FlockerApiError);
    expect((await svc.client.getDataset(D)).primary).toBe(B);
    expect(await svc.client.listEvents()).toEqual([]);
  });
});

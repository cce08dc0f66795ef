/**
 * What local storage cannot do, refused by the API (issue 24): a local node's agent takes no
 * snapshots and fills no volume from a snapshot or a backup, so a clone or restore onto a local
 * node came out EMPTY (reported mounted), and a snapshot or backup of a local dataset stayed
 * "requested" for ever. Now 409 NOT_ON_LOCAL_STORAGE (the code the CLI and web UI use), nothing
 * recorded. The node concerned is judged by its latest report since this service started; a node
 * that has not reported since (a restart) is not known to be local and is accepted as before.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { METADATA_SNAPSHOT_SCHEDULE_KEY, type NodeReport } from '@flocker/api';
import {
  closeAndRemove,
  configurationVersionOf,
  NODE_A as A,
  NODE_B as B,
  nodeReport,
  postJson as post,
  type ServiceOnDir,
  startOnDir,
} from './testing/httpService';

const LOCAL_DS = '11111111-1111-4111-8111-111111111111';
const BLOCK_DS = '22222222-2222-4222-8222-222222222222';
const CLONE = '33333333-3333-4333-8333-333333333333';
const TARGET = 's3://backups/flocker';
const STORED = `${BLOCK_DS}/20261204T065155123Z-44444444-4444-4444-8444-444444444444`;

/** A is a local node, B a block (loopback) node; both can run backups (so the refusal is the backend's). */
const localA = (): NodeReport => nodeReport(A, { backend: 'local-btrfs', backup_store: true });
const blockB = (): NodeReport => nodeReport(B, { backup_store: true });

describe('what local storage cannot do is refused by the API (409 NOT_ON_LOCAL_STORAGE)', () => {
  let dir: string;
  let svc: ServiceOnDir;

  beforeEach(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'local-refusals-'));
    svc = await startOnDir(dir);
    await svc.client.reportNodeState(localA());
    await svc.client.reportNodeState(blockB());
    await svc.client.createDataset({ primary: A, dataset_id: LOCAL_DS });
    await svc.client.createDataset({ primary: B, dataset_id: BLOCK_DS });
  });
  afterEach(() => closeAndRemove(svc.svc, dir));

  /** Refused with the stable code and a description naming local storage; nothing recorded. */
  async function refused(target: string, body: unknown, words: string): Promise<void> {
    const before = await configurationVersionOf(svc.client);
    const r = await post(svc, target, body);
    expect(r.status).toBe(409);
    expect(r.json['code']).toBe('NOT_ON_LOCAL_STORAGE');
    expect(r.json['description']).toContain(words);
    expect(r.json['description']).toContain('local storage (local-btrfs)');
    expect(await configurationVersionOf(svc.client)).toBe(before);
  }

  it('a clone of a dataset onto a local node (it came out empty), and a clone of a local dataset anywhere', async () => {
    await refused(
      '/v1/configuration/datasets',
      { primary: A, dataset_id: CLONE, source_dataset_id: BLOCK_DS },
      `a clone onto node ${A}`,
    );
    await refused(
      '/v1/configuration/datasets',
      { primary: B, dataset_id: CLONE, source_dataset_id: LOCAL_DS },
      `a clone of the dataset ${LOCAL_DS}`,
    );
    expect(await svc.client.listSnapshots()).toEqual([]);
  });

  it('a clone of a snapshot onto a local node', async () => {
    const snap = await svc.client.createSnapshot({ dataset_id: BLOCK_DS });
    await refused(
      '/v1/configuration/datasets',
      { primary: A, dataset_id: CLONE, source_snapshot_id: snap.snapshot_id },
      `a clone onto node ${A}`,
    );
  });

  it('a restore onto a local node (refused for the backend before its backup settings are looked at)', async () => {
    await refused(
      '/v1/configuration/datasets',
      { primary: A, dataset_id: CLONE, maximum_size: 1 << 26, source_backup: { target: TARGET, backup_id: STORED } },
      `a restore onto node ${A}`,
    );
  });

  it('a snapshot, a backup, or a snapshot schedule of a local dataset', async () => {
    await refused('/v1/configuration/snapshots', { dataset_id: LOCAL_DS }, `a snapshot of the dataset ${LOCAL_DS}`);
    await refused(
      '/v1/configuration/backups',
      { dataset_id: LOCAL_DS, target: TARGET },
      `a backup of the dataset ${LOCAL_DS}`,
    );
    await refused(
      `/v1/configuration/datasets/${LOCAL_DS}`,
      { metadata: { [METADATA_SNAPSHOT_SCHEDULE_KEY]: 'hourly' } },
      `a snapshot schedule of the dataset ${LOCAL_DS}`,
    );
    await refused(
      '/v1/configuration/datasets',
      { primary: A, dataset_id: CLONE, metadata: { [METADATA_SNAPSHOT_SCHEDULE_KEY]: 'daily' } },
      `a snapshot schedule of the dataset ${CLONE}`,
    );
    // Removing a schedule is always allowed (there is nothing to take).
    const off = await post(svc, `/v1/configuration/datasets/${LOCAL_DS}`, {
      metadata: { [METADATA_SNAPSHOT_SCHEDULE_KEY]: null },
    });
    expect(off.status).toBe(200);
  });

  it('block nodes are unaffected: clones, snapshots and restores accepted as before', async () => {
    expect((await post(svc, '/v1/configuration/snapshots', { dataset_id: BLOCK_DS })).status).toBe(201);
    const clone = await post(svc, '/v1/configuration/datasets', {
      primary: B,
      dataset_id: CLONE,
      source_dataset_id: BLOCK_DS,
    });
    expect(clone.status).toBe(201);
  });

  it('a node that has not reported since the service started is not known to be local: accepted as before', async () => {
    await svc.svc.close();
    svc = await startOnDir(dir);
    // Only B reported since the restart: A's backend is unknown (block storage is the default).
    await svc.client.reportNodeState(blockB());
    expect((await post(svc, '/v1/configuration/snapshots', { dataset_id: LOCAL_DS })).status).toBe(201);
    const clone = await post(svc, '/v1/configuration/datasets', {
      primary: A,
      dataset_id: CLONE,
      source_dataset_id: BLOCK_DS,
    });
    expect(clone.status).toBe(201);
    // Once A reports its backend again, the same requests are refused.
    await svc.client.reportNodeState(localA());
    await refused('/v1/configuration/snapshots', { dataset_id: LOCAL_DS }, `a snapshot of the dataset ${LOCAL_DS}`);
  });
});

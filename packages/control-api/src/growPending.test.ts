/**
 * A grow that waits until the volume is unused (TN F3 / R1-F6): the primary's report says so per manifestation and
 * /v1/state/datasets carries it as an optional extra field (absent when no grow waits: the v1 shape unchanged).
 */
import { DatasetState, ManifestationState } from '@flocker/api';
import { releaseVersion } from '@flocker/metrics';
import { datasetStateJson, deriveDatasetState } from './clusterState';
import { buildOpenApi } from './openapi';
import { routes } from './routes';
import type { ControlService } from './server';
import { letterReport, A, D1, D2, T0 } from './testing/fixtures';
import { closeAndRemove, NODE_A, NODE_B, nodeReport, startWithTwoNodes } from './testing/httpService';

const DS = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';

describe('grow_pending in the dataset state', () => {
  const report = letterReport(A, {
    manifestations: [
      {
        dataset_id: D1,
        blockdevice_id: 'b1',
        size: 100,
        status: 'mounted',
        path: '/flocker/d1',
        grow_pending: { reason: 'online_resize_refused' },
      },
      { dataset_id: D2, blockdevice_id: 'b2', size: 200, status: 'mounted', path: '/flocker/d2' },
    ],
  });

  it('a manifestation with a pending grow carries it into the state; others have none', () => {
    expect(deriveDatasetState([{ lastSeen: T0, report }])).toEqual([
      {
        dataset_id: D1,
        primary: A,
        maximum_size: 100,
        path: '/flocker/d1',
        grow_pending: { reason: 'online_resize_refused' },
      },
      { dataset_id: D2, primary: A, maximum_size: 200, path: '/flocker/d2' },
    ]);
  });

  it('the fast JSON of the state is the same bytes as JSON.stringify of it', () => {
    const alive = [{ lastSeen: T0, report }];
    expect(datasetStateJson(alive, new WeakMap())).toBe(JSON.stringify(deriveDatasetState(alive)));
  });

  it('the schemas take grow_pending as optional, with a known reason only', () => {
    const m = { dataset_id: DS, blockdevice_id: 'b', size: 1, status: 'mounted', path: '/p' };
    expect(ManifestationState.safeParse(m).success).toBe(true);
    for (const reason of ['online_resize_refused', 'detach_required'])
      expect(ManifestationState.safeParse({ ...m, grow_pending: { reason } }).success).toBe(true);
    expect(ManifestationState.safeParse({ ...m, grow_pending: { reason: 'other' } }).success).toBe(false);
    expect(ManifestationState.safeParse({ ...m, grow_pending: {} }).success).toBe(false);
    expect(DatasetState.parse({ dataset_id: DS, grow_pending: { reason: 'detach_required' } })).toMatchObject({
      grow_pending: { reason: 'detach_required' },
    });
  });

  it('the OpenAPI document lists grow_pending as an optional property of /v1/state/datasets', () => {
    const doc = JSON.parse(JSON.stringify(buildOpenApi(routes))) as {
      paths: Record<
        string,
        Record<string, { responses: Record<string, { content: Record<string, { schema: unknown }> }> }>
      >;
    };
    const schema = JSON.stringify(doc.paths['/v1/state/datasets']?.['get']?.responses['200']);
    expect(schema).toContain('"grow_pending"');
    expect(schema).toContain('"online_resize_refused"');
    expect(schema).not.toMatch(/"required":\[[^\]]*"grow_pending"/);
  });

  describe('over HTTP', () => {
    let dir: string;
    let svc: ControlService;
    let client: Awaited<ReturnType<typeof startWithTwoNodes>>['client'];
    beforeEach(async () => {
      ({ dir, svc, client } = await startWithTwoNodes('flocker-grow-'));
    });
    afterEach(() => closeAndRemove(svc, dir));

    it('GET /v1/state/datasets returns the pending grow the node reported, and none once it is done', async () => {
      const d = await client.createDataset({ primary: NODE_A, metadata: { name: 'grow' } });
      const path = `/flocker/${d.dataset_id}`;
      const m = { dataset_id: d.dataset_id, blockdevice_id: 'b', size: 1024, status: 'mounted' as const, path };
      await client.reportNodeState({
        ...nodeReport(NODE_A),
        manifestations: [{ ...m, grow_pending: { reason: 'online_resize_refused' } }],
      });
      expect(await client.listDatasetState()).toEqual([
        {
          dataset_id: d.dataset_id,
          primary: NODE_A,
          maximum_size: 1024,
          path,
          grow_pending: { reason: 'online_resize_refused' },
        },
      ]);
      // The agent channel's whole view (plain HTTP: any alive node behind) leaves it out while a node reports no
      // release (Views.growPending.test); once both report this one, it carries it.
      const pendingInView = async () =>
        (await client.waitForCluster(undefined, 0)).nodes.find((n) => n.uuid === NODE_A)?.manifestations[0]
          ?.grow_pending;
      expect(await pendingInView()).toBeUndefined();
      const version = releaseVersion();
      await client.reportNodeState(nodeReport(NODE_B, { version }));
      await client.reportNodeState({
        ...nodeReport(NODE_A, { version }),
        manifestations: [{ ...m, grow_pending: { reason: 'online_resize_refused' } }],
      });
      expect(await pendingInView()).toEqual({ reason: 'online_resize_refused' });
      await client.reportNodeState({ ...nodeReport(NODE_A), manifestations: [m] });
      expect(await client.listDatasetState()).toEqual([
        { dataset_id: d.dataset_id, primary: NODE_A, maximum_size: 1024, path },
      ]);
    });
  });
});

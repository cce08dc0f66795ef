/**
 * Disk usage per volume (issue 21): a node reports used_bytes per mounted manifestation and
 * /v1/state/datasets carries it as an optional extra field (the Flocker v1 shape otherwise unchanged).
 */
import { DatasetState, ManifestationState } from '@flocker/api';
import { deriveDatasetState } from './clusterState';
import { buildOpenApi } from './openapi';
import { routes } from './routes';
import type { ControlService } from './server';
import { letterReport, A, D1, D2, T0 } from './testing/fixtures';
import { closeAndRemove, NODE_A, nodeReport, startWithTwoNodes } from './testing/httpService';

const DS = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';

describe('used_bytes in the dataset state', () => {
  it('a mounted manifestation carries its used_bytes into the state; attached or unmeasured ones have none', () => {
    const report = letterReport(A, {
      manifestations: [
        { dataset_id: D1, blockdevice_id: 'b1', size: 100, status: 'mounted', path: '/flocker/d1', used_bytes: 40 },
        { dataset_id: D2, blockdevice_id: 'b2', size: 200, status: 'attached', used_bytes: 7 },
      ],
    });
    expect(deriveDatasetState([{ lastSeen: T0, report }])).toEqual([
      { dataset_id: D1, primary: A, maximum_size: 100, path: '/flocker/d1', used_bytes: 40 },
      { dataset_id: D2, primary: A, maximum_size: 200 },
    ]);
  });

  it('the schemas take used_bytes as an optional whole number of bytes', () => {
    const m = { dataset_id: DS, blockdevice_id: 'b', size: 1, status: 'mounted', path: '/p' };
    expect(ManifestationState.safeParse(m).success).toBe(true);
    expect(ManifestationState.safeParse({ ...m, used_bytes: 0 }).success).toBe(true);
    for (const bad of [-1, 1.5, '10'])
      expect(ManifestationState.safeParse({ ...m, used_bytes: bad }).success).toBe(false);
    expect(DatasetState.parse({ dataset_id: DS, maximum_size: 10, used_bytes: 5 })).toMatchObject({ used_bytes: 5 });
    expect(DatasetState.safeParse({ dataset_id: DS, used_bytes: -5 }).success).toBe(false);
  });

  it('the OpenAPI document lists used_bytes as an optional property of /v1/state/datasets', () => {
    const doc = JSON.stringify(buildOpenApi(routes));
    const parsed = JSON.parse(doc) as {
      paths: Record<
        string,
        Record<string, { responses: Record<string, { content: Record<string, { schema: unknown }> }> }>
      >;
    };
    const schema = JSON.stringify(parsed.paths['/v1/state/datasets']?.['get']?.responses['200']);
    expect(schema).toContain('"used_bytes"');
    expect(schema).not.toMatch(/"required":\[[^\]]*"used_bytes"/);
  });

  describe('over HTTP', () => {
    let dir: string;
    let svc: ControlService;
    let client: Awaited<ReturnType<typeof startWithTwoNodes>>['client'];
    beforeEach(async () => {
      ({ dir, svc, client } = await startWithTwoNodes('flocker-used-'));
    });
    afterEach(() => closeAndRemove(svc, dir));

    it('GET /v1/state/datasets returns the used_bytes the node reported', async () => {
      const d = await client.createDataset({ primary: NODE_A, metadata: { name: 'used' } });
      const path = `/flocker/${d.dataset_id}`;
      const manifestation = {
        dataset_id: d.dataset_id,
        blockdevice_id: 'b',
        size: 1024,
        status: 'mounted' as const,
        path,
      };
      await client.reportNodeState({ ...nodeReport(NODE_A), manifestations: [{ ...manifestation, used_bytes: 512 }] });
      expect(await client.listDatasetState()).toEqual([
        { dataset_id: d.dataset_id, primary: NODE_A, maximum_size: 1024, path, used_bytes: 512 },
      ]);
      // An agent that does not measure (an older release) still reports; the state has no used_bytes.
      await client.reportNodeState({ ...nodeReport(NODE_A), manifestations: [manifestation] });
      expect(await client.listDatasetState()).toEqual([
        { dataset_id: d.dataset_id, primary: NODE_A, maximum_size: 1024, path },
      ]);
    });
  });
});

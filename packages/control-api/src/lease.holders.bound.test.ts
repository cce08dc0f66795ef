/**
 * One lease with ever more named holders (review T6 F2, session 19): nothing bounded them, so 2,000 acquires with
 * new names gave one lease 2,000 holders, in the configuration and in every snapshot sent to every agent. Now at
 * most LEASE_MAX_HOLDERS: a new name beyond is refused (409 LEASE_TOO_MANY_HOLDERS); renewals and holder-less
 * acquires are not.
 */
import { FlockerApiError, FlockerClient } from '@flocker/api';
import { LEASE_MAX_HOLDERS } from './configuration';
import { NODE_A, nodeReport, startOnLoopback } from './testing/httpService';

describe('holders of one lease', () => {
  it('refuses a new named holder beyond the bound, with a sentence; renewals and unnamed acquires still work', async () => {
    const svc = await startOnLoopback();
    try {
      const client = new FlockerClient({ baseUrl: svc.url });
      await client.reportNodeState(nodeReport(NODE_A));
      const ds = await client.createDataset({ primary: NODE_A, metadata: { name: 'held' } });
      const acquire = (holder?: string): Promise<unknown> =>
        client.acquireLease({
          dataset_id: ds.dataset_id,
          node_uuid: NODE_A,
          expires: null,
          ...(holder !== undefined ? { holder } : {}),
        });
      for (let i = 0; i < LEASE_MAX_HOLDERS; i++) await acquire(`h${i}`);
      const refused = await acquire('one-more').then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(refused).toBeInstanceOf(FlockerApiError);
      const err = refused as FlockerApiError;
      expect({ status: err.status, code: err.code }).toEqual({ status: 409, code: 'LEASE_TOO_MANY_HOLDERS' });
      expect(err.message).toMatch(/at most 16 are allowed: one must release its share before one-more can hold it/);
      // A holder already there renews; an acquire without a holder (Flocker v1, the CLI) joins.
      await expect(acquire('h3')).resolves.toBeDefined();
      await expect(acquire()).resolves.toBeDefined();
      const [lease] = await client.listLeases();
      expect(lease?.holders).toHaveLength(LEASE_MAX_HOLDERS);
      // Once one lets go, another may hold it.
      await client.releaseLease(ds.dataset_id, { holder: 'h0' });
      await expect(acquire('one-more')).resolves.toBeDefined();
    } finally {
      await svc.close();
    }
  });
});

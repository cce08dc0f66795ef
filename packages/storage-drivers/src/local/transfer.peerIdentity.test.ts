/**
 * Who a transfer peer is: the node UUID in its certificate's common name, read by the API's rule
 * (identityFromCommonName: `node-` + any hex 8-4-4-4-12, lower-cased), the rule the control service and
 * flocker-ca use, not a pattern of its own (it took any 36 hex digits and hyphens, and `NODE-` in any case).
 */
import { identityFromCommonName } from '@flocker/api';
import { makeTestCluster, type TestCluster } from './testSupport';
import { nodeUuidOfPem } from './transfer';

describe('a transfer peer is the node its certificate names, by the API rule', () => {
  let cluster: TestCluster;
  beforeAll(() => {
    cluster = makeTestCluster();
  });
  afterAll(() => cluster.destroy());

  it.each([
    ['an RFC 4122 UUID', '3f9a0c4e-1b2d-4c5e-8f70-9a1b2c3d4e5f', '3f9a0c4e-1b2d-4c5e-8f70-9a1b2c3d4e5f'],
    ['any hex (not RFC 4122)', '11111111-1111-1111-1111-111111111111', '11111111-1111-1111-1111-111111111111'],
    ['upper case: lower-cased', '3F9A0C4E-1B2D-4C5E-8F70-9A1B2C3D4E5F', '3f9a0c4e-1b2d-4c5e-8f70-9a1b2c3d4e5f'],
    ['36 hyphens: no node', '-'.repeat(36), undefined],
    ['36 hex digits without hyphens: no node', '0123456789abcdef0123456789abcdef0123', undefined],
    ['hyphens misplaced: no node', '3f9a0c4e1-b2d-4c5e-8f70-9a1b2c3d4e5f', undefined],
  ])('%s', (_what, uuid, expected) => {
    const cert = cluster.node(uuid).cert;
    expect(nodeUuidOfPem(cert)).toBe(expected);
    // The same answer as the control service's.
    const api = identityFromCommonName(`node-${uuid}`);
    expect(api?.kind === 'node' ? api.uuid : undefined).toBe(expected);
  });
});

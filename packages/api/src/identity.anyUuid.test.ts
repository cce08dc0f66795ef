import { identityFromCommonName, nodeCommonName } from './identity';
import { Uuid } from './schemas';

// A node certificate names its node as the API does (Uuid: any hexadecimal 8-4-4-4-12 id since 1f9898a, and
// flocker-ca create-node-certificate --uuid takes any hex): an id the API takes is also an identity, or mTLS refused
// the node it names (requireIdentity 403) and node-config / the CSI driver could not read their node's UUID.
describe('identityFromCommonName: node-<any hex UUID>', () => {
  it.each([
    '11111111-1111-1111-1111-111111111111',
    'ABCDEF01-2345-6789-0ABC-DEF012345678',
    '3f9a0c4e-1b2d-4c5e-8f70-9a1b2c3d4e5f',
  ])('%s: a node, lower-cased as Uuid', (id) => {
    expect(identityFromCommonName(nodeCommonName(id))).toEqual({ kind: 'node', uuid: Uuid.parse(id) });
  });
  it.each([
    '{3f9a0c4e-1b2d-4c5e-8f70-9a1b2c3d4e5f}',
    '3f9a0c4e1b2d4c5e8f709a1b2c3d4e5f',
    'zzzzzzzz-1111-1111-1111-111111111111',
  ])('%s: no identity', (id) => {
    expect(identityFromCommonName(nodeCommonName(id))).toBeUndefined();
  });
});

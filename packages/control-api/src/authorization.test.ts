import type { Identity } from '@flocker/api';
import { authorize, type AuthorizationFacts, type AuthorizationRequest } from './authorization';
import { routes } from './routes';

const ME = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
const OTHER = 'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb';
const FREE = '11111111-1111-4111-8111-111111111111'; // no lease, primary ME
const MINE = '22222222-2222-4222-8222-222222222222'; // leased by ME, primary ME
const THEIRS = '33333333-3333-4333-8333-333333333333'; // leased by OTHER, primary OTHER
const PINNED = '44444444-4444-4444-8444-444444444444'; // leased by ME, pinned by an administrator

const facts: AuthorizationFacts = {
  leaseHolder: (id) => ({ [MINE]: ME, [THEIRS]: OTHER, [PINNED]: ME })[id],
  primaryOf: (id) => ({ [FREE]: ME, [MINE]: ME, [THEIRS]: OTHER, [PINNED]: ME })[id],
  leasePinned: (id) => id === PINNED,
};

const user: Identity = { kind: 'user', name: 'alice' };
const node: Identity = { kind: 'node', uuid: ME };
const control: Identity = { kind: 'control' };

function req(method: string, route: string, params: Record<string, string> = {}, body: unknown = undefined): AuthorizationRequest {
  return { method, route, params, body };
}

type Row = [string, Identity | undefined, AuthorizationRequest, boolean];

const table: Row[] = [
  // API users: the whole public API, the agent channel read-only.
  ['user reads version', user, req('get', '/v1/version'), true],
  ['user creates a dataset anywhere', user, req('post', '/v1/configuration/datasets', {}, { primary: OTHER }), true],
  ['user moves a dataset anywhere', user, req('post', '/v1/configuration/datasets/:id', { id: THEIRS }, { primary: ME }), true],
  ['user deletes a leased dataset (the store answers 409)', user, req('delete', '/v1/configuration/datasets/:id', { id: THEIRS }), true],
  ['user takes a lease for any node', user, req('post', '/v1/configuration/leases', {}, { dataset_id: FREE, node_uuid: OTHER, expires: null }), true],
  ['user pins a lease', user, req('post', '/v1/configuration/leases', {}, { dataset_id: FREE, node_uuid: OTHER, expires: null, pinned: true }), true],
  ['user unpins a lease', user, req('post', '/v1/configuration/leases', {}, { dataset_id: PINNED, node_uuid: ME, expires: null, pinned: false }), true],
  ['user releases any lease', user, req('delete', '/v1/configuration/leases/:dataset_id', { dataset_id: THEIRS }), true],
  ['user reads the agent channel', user, req('get', '/v1/agent/cluster'), true],
  ['user may not report node state', user, req('put', '/v1/agent/nodes/:uuid', { uuid: ME }, { uuid: ME }), false],
  // Nodes: reads.
  ['node reads datasets', node, req('get', '/v1/configuration/datasets'), true],
  ['node reads state', node, req('get', '/v1/state/nodes'), true],
  ['node reads the agent channel', node, req('get', '/v1/agent/cluster'), true],
  ['node reads leases', node, req('get', '/v1/configuration/leases'), true],
  // Nodes: reports.
  ['node reports itself', node, req('put', '/v1/agent/nodes/:uuid', { uuid: ME }, { uuid: ME }), true],
  ['node reports itself (upper-case uuid)', node, req('put', '/v1/agent/nodes/:uuid', { uuid: ME.toUpperCase() }, {}), true],
  ['node reports another node', node, req('put', '/v1/agent/nodes/:uuid', { uuid: OTHER }, { uuid: OTHER }), false],
  // Nodes: datasets.
  ['node creates a dataset on itself', node, req('post', '/v1/configuration/datasets', {}, { primary: ME, metadata: { name: 'x' } }), true],
  ['node creates a dataset on another node', node, req('post', '/v1/configuration/datasets', {}, { primary: OTHER }), false],
  ['node creates with no primary', node, req('post', '/v1/configuration/datasets', {}, {}), false],
  ['node creates with a non-object body', node, req('post', '/v1/configuration/datasets', {}, [ME]), false],
  ['node moves a dataset to itself', node, req('post', '/v1/configuration/datasets/:id', { id: THEIRS }, { primary: ME }), true],
  ['node moves a dataset to another node', node, req('post', '/v1/configuration/datasets/:id', { id: FREE }, { primary: OTHER }), false],
  ['node moves with primary null', node, req('post', '/v1/configuration/datasets/:id', { id: FREE }, { primary: null }), false],
  ['node resizes its own dataset', node, req('post', '/v1/configuration/datasets/:id', { id: FREE }, { maximum_size: 134217728 }), true],
  ['node resizes another node\'s dataset', node, req('post', '/v1/configuration/datasets/:id', { id: THEIRS }, { maximum_size: 134217728 }), false],
  ['node deletes an unleased dataset', node, req('delete', '/v1/configuration/datasets/:id', { id: FREE }), true],
  ['node deletes a dataset it leases', node, req('delete', '/v1/configuration/datasets/:id', { id: MINE }), true],
  ['node deletes a dataset another node leases', node, req('delete', '/v1/configuration/datasets/:id', { id: THEIRS }), false],
  // Nodes: leases.
  ['node takes a lease for itself', node, req('post', '/v1/configuration/leases', {}, { dataset_id: FREE, node_uuid: ME, expires: null }), true],
  ['node takes a lease with pinned: false (the default)', node, req('post', '/v1/configuration/leases', {}, { dataset_id: FREE, node_uuid: ME, expires: null, pinned: false }), true],
  ['node may not pin its lease', node, req('post', '/v1/configuration/leases', {}, { dataset_id: FREE, node_uuid: ME, expires: null, pinned: true }), false],
  ['node renews a pinned lease without pinned (stays pinned)', node, req('post', '/v1/configuration/leases', {}, { dataset_id: PINNED, node_uuid: ME, expires: 60 }), true],
  ['node may not unpin a pinned lease', node, req('post', '/v1/configuration/leases', {}, { dataset_id: PINNED, node_uuid: ME, expires: null, pinned: false }), false],
  ['node releases its pinned lease', node, req('delete', '/v1/configuration/leases/:dataset_id', { dataset_id: PINNED }), true],
  ['node takes a lease for another node', node, req('post', '/v1/configuration/leases', {}, { dataset_id: FREE, node_uuid: OTHER, expires: null }), false],
  ['node releases its lease', node, req('delete', '/v1/configuration/leases/:dataset_id', { dataset_id: MINE }), true],
  ['node releases an absent lease (the store answers 404)', node, req('delete', '/v1/configuration/leases/:dataset_id', { dataset_id: FREE }), true],
  ['node releases another node\'s lease', node, req('delete', '/v1/configuration/leases/:dataset_id', { dataset_id: THEIRS }), false],
  // Others.
  ['the control certificate as a client', control, req('get', '/v1/version'), false],
  ['no identity (unknown common name)', undefined, req('get', '/v1/version'), false],
];

describe('authorize', () => {
  it.each(table)('%s', (_name, identity, request, allowed) => {
    const decision = authorize(identity, request, facts);
    expect(decision.allowed).toBe(allowed);
    if (!decision.allowed) expect(decision.description).toMatch(/\w+ .*\./);
  });

  it('a node may change nothing through a route it has no rule for, and reads every GET route', () => {
    // Containers are configured by API users only (nodes read them and report their own).
    const userOnly = new Set(['post /v1/configuration/containers', 'post /v1/configuration/containers/:name', 'delete /v1/configuration/containers/:name', 'post /v1/configuration/_compose']);
    for (const route of routes) {
      const decision = authorize(node, req(route.method, route.path, { id: FREE, dataset_id: FREE, uuid: ME, name: 'web' }, { primary: ME, node_uuid: ME }), facts);
      expect(decision.allowed).toBe(!userOnly.has(`${route.method} ${route.path}`));
    }
    expect(authorize(node, req('put', '/v1/agent/nodes/:uuid/containers', { uuid: OTHER }, { containers: [] }), facts).allowed).toBe(false);
    expect(authorize(user, req('post', '/v1/configuration/_compose', {}, {}), facts).allowed).toBe(true);
    expect(authorize(user, req('put', '/v1/agent/nodes/:uuid/containers', { uuid: ME }, {}), facts).allowed).toBe(false);
    expect(authorize(node, req('patch', '/v1/configuration/datasets/:id', { id: FREE }, {}), facts).allowed).toBe(false);
  });

  it('a node asking for a pinned lease is told only an API user may pin', () => {
    const d = authorize(node, req('post', '/v1/configuration/leases', {}, { dataset_id: FREE, node_uuid: ME, expires: null, pinned: true }), facts);
    expect(d).toEqual({ allowed: false, description: expect.stringMatching(new RegExp(`^node ${ME} may not pin a lease .*only an API user \\(administrator certificate\\) may pin\\.$`)) });
  });

  it('denials name the node and what it may do instead', () => {
    const d = authorize(node, req('put', '/v1/agent/nodes/:uuid', { uuid: OTHER }, {}), facts);
    expect(d).toEqual({ allowed: false, description: `node ${ME} may report only its own state, not that of node ${OTHER}.` });
  });
});

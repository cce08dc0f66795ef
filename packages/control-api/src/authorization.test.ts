import type { Identity } from '@flocker/api';
import { authorize, type AuthorizationFacts, type AuthorizationRequest } from './authorization';
import { canonicalInput, routes } from './routes';

const ME = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
const OTHER = 'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb';
const FREE = '11111111-1111-4111-8111-111111111111'; // no lease, primary ME
const MINE = '22222222-2222-4222-8222-222222222222'; // leased by ME, primary ME
const THEIRS = '33333333-3333-4333-8333-333333333333'; // leased by OTHER, primary OTHER
const PINNED = '44444444-4444-4444-8444-444444444444'; // leased by ME, pinned by an administrator
const ELSEWHERE = '55555555-5555-4555-8555-555555555555'; // no lease, primary OTHER
const HELD_HERE = '66666666-6666-4666-8666-666666666666'; // leased by ME, primary OTHER (an administrator's doing)
const SCHEDULE_KEY = 'clusterhq:flocker:snapshot-schedule';

const facts: AuthorizationFacts = {
  leaseHolder: (id) => ({ [MINE]: ME, [THEIRS]: OTHER, [PINNED]: ME, [HELD_HERE]: ME })[id],
  primaryOf: (id) =>
    ({ [FREE]: ME, [MINE]: ME, [THEIRS]: OTHER, [PINNED]: ME, [ELSEWHERE]: OTHER, [HELD_HERE]: OTHER })[id],
  leasePinned: (id) => id === PINNED,
};

const user: Identity = { kind: 'user', name: 'alice' };
const node: Identity = { kind: 'node', uuid: ME };
const control: Identity = { kind: 'control' };

function req(
  method: string,
  route: string,
  params: Record<string, string> = {},
  body: unknown = undefined,
): AuthorizationRequest {
  return { method, route, params, body };
}

type Row = [string, Identity | undefined, AuthorizationRequest, boolean];

const table: Row[] = [
  // API users: the whole public API, the agent channel read-only.
  ['user reads version', user, req('get', '/v1/version'), true],
  ['user reads one dataset', user, req('get', '/v1/configuration/datasets/:id', { id: ELSEWHERE }), true],
  ['user creates a dataset anywhere', user, req('post', '/v1/configuration/datasets', {}, { primary: OTHER }), true],
  [
    'user moves a dataset anywhere',
    user,
    req('post', '/v1/configuration/datasets/:id', { id: THEIRS }, { primary: ME }),
    true,
  ],
  [
    'user deletes a leased dataset (the store answers 409)',
    user,
    req('delete', '/v1/configuration/datasets/:id', { id: THEIRS }),
    true,
  ],
  [
    'user takes a lease for any node',
    user,
    req('post', '/v1/configuration/leases', {}, { dataset_id: FREE, node_uuid: OTHER, expires: null }),
    true,
  ],
  [
    'user pins a lease',
    user,
    req('post', '/v1/configuration/leases', {}, { dataset_id: FREE, node_uuid: OTHER, expires: null, pinned: true }),
    true,
  ],
  [
    'user unpins a lease',
    user,
    req('post', '/v1/configuration/leases', {}, { dataset_id: PINNED, node_uuid: ME, expires: null, pinned: false }),
    true,
  ],
  [
    'user releases any lease',
    user,
    req('delete', '/v1/configuration/leases/:dataset_id', { dataset_id: THEIRS }),
    true,
  ],
  ['user reads the agent channel', user, req('get', '/v1/agent/cluster'), true],
  ['user may not report node state', user, req('put', '/v1/agent/nodes/:uuid', { uuid: ME }, { uuid: ME }), false],
  // Snapshots (issue 20): API users manage them; nodes read them and may clone onto themselves, nothing more.
  ['user asks for a snapshot', user, req('post', '/v1/configuration/snapshots', {}, { dataset_id: THEIRS }), true],
  ['user deletes a snapshot', user, req('delete', '/v1/configuration/snapshots/:id', { id: FREE }), true],
  ['node reads snapshots', node, req('get', '/v1/configuration/snapshots'), true],
  ['node reads snapshot state', node, req('get', '/v1/state/snapshots'), true],
  [
    'node may not ask for a snapshot, even of its own dataset',
    node,
    req('post', '/v1/configuration/snapshots', {}, { dataset_id: FREE }),
    false,
  ],
  ['node may not delete a snapshot', node, req('delete', '/v1/configuration/snapshots/:id', { id: FREE }), false],
  [
    'node clones a dataset nobody leases onto itself (the implicit snapshot comes with it, as pulling it would)',
    node,
    req('post', '/v1/configuration/datasets', {}, { primary: ME, source_dataset_id: FREE }),
    true,
  ],
  [
    'node may not clone live a dataset another node leases (in use there; T6 F0c, FR19-2: authorization.clone.test)',
    node,
    req('post', '/v1/configuration/datasets', {}, { primary: ME, source_dataset_id: THEIRS }),
    false,
  ],
  [
    'node may not clone a dataset onto another node',
    node,
    req('post', '/v1/configuration/datasets', {}, { primary: OTHER, source_dataset_id: FREE }),
    false,
  ],
  [
    'node clones a snapshot onto itself',
    node,
    req('post', '/v1/configuration/datasets', {}, { primary: ME, source_snapshot_id: FREE }),
    true,
  ],
  [
    'node restores a backup onto itself (a snapshot an API user took; review FR19-2: authorization.clone.test)',
    node,
    req(
      'post',
      '/v1/configuration/datasets',
      {},
      {
        primary: ME,
        maximum_size: 1073741824,
        source_backup: { target: 's3://b/f', backup_id: `${THEIRS}/x-${FREE}` },
      },
    ),
    true,
  ],
  // Nodes: reads.
  ['node reads datasets', node, req('get', '/v1/configuration/datasets'), true],
  // One dataset (issue 23): the same rule as the whole list, whichever node it is on or leased to.
  ['node reads one of its datasets', node, req('get', '/v1/configuration/datasets/:id', { id: FREE }), true],
  ["node reads another node's dataset", node, req('get', '/v1/configuration/datasets/:id', { id: THEIRS }), true],
  ['node reads an unknown dataset (404)', node, req('get', '/v1/configuration/datasets/:id', { id: OTHER }), true],
  ['node reads state', node, req('get', '/v1/state/nodes'), true],
  ['node reads the agent channel', node, req('get', '/v1/agent/cluster'), true],
  ['node reads leases', node, req('get', '/v1/configuration/leases'), true],
  // Nodes: reports.
  ['node reports itself', node, req('put', '/v1/agent/nodes/:uuid', { uuid: ME }, { uuid: ME }), true],
  [
    'node reports itself (upper-case uuid)',
    node,
    req('put', '/v1/agent/nodes/:uuid', { uuid: ME.toUpperCase() }, {}),
    true,
  ],
  ['node reports another node', node, req('put', '/v1/agent/nodes/:uuid', { uuid: OTHER }, { uuid: OTHER }), false],
  // Nodes: datasets.
  [
    'node creates a dataset on itself',
    node,
    req('post', '/v1/configuration/datasets', {}, { primary: ME, metadata: { name: 'x' } }),
    true,
  ],
  [
    'node creates a dataset on another node',
    node,
    req('post', '/v1/configuration/datasets', {}, { primary: OTHER }),
    false,
  ],
  // Issue 23 (session 28): the lease a create asks for is the primary's, so a node asks it only for itself, as a
  // lease POST (node_uuid == itself); an API user for any node.
  [
    'node creates a dataset on itself with its lease',
    node,
    req(
      'post',
      '/v1/configuration/datasets',
      {},
      { primary: ME, lease: { holder: 'docker', release_on_request: true } },
    ),
    true,
  ],
  [
    'node creates a dataset on another node with a lease (a lease for that node)',
    node,
    req('post', '/v1/configuration/datasets', {}, { primary: OTHER, lease: { holder: 'docker' } }),
    false,
  ],
  [
    'user creates a dataset on any node with its lease',
    user,
    req('post', '/v1/configuration/datasets', {}, { primary: OTHER, lease: {} }),
    true,
  ],
  ['node creates with no primary', node, req('post', '/v1/configuration/datasets', {}, {}), false],
  ['node creates with a non-object body', node, req('post', '/v1/configuration/datasets', {}, [ME]), false],
  [
    'node moves a dataset to itself',
    node,
    req('post', '/v1/configuration/datasets/:id', { id: THEIRS }, { primary: ME }),
    true,
  ],
  [
    'node moves a dataset to another node',
    node,
    req('post', '/v1/configuration/datasets/:id', { id: FREE }, { primary: OTHER }),
    false,
  ],
  [
    'node moves with primary null',
    node,
    req('post', '/v1/configuration/datasets/:id', { id: FREE }, { primary: null }),
    false,
  ],
  [
    'node resizes its own dataset',
    node,
    req('post', '/v1/configuration/datasets/:id', { id: FREE }, { maximum_size: 134217728 }),
    true,
  ],
  [
    "node resizes another node's dataset",
    node,
    req('post', '/v1/configuration/datasets/:id', { id: THEIRS }, { maximum_size: 134217728 }),
    false,
  ],
  ['node deletes an unleased dataset', node, req('delete', '/v1/configuration/datasets/:id', { id: FREE }), true],
  ['node deletes a dataset it leases', node, req('delete', '/v1/configuration/datasets/:id', { id: MINE }), true],
  [
    'node deletes a dataset another node leases',
    node,
    req('delete', '/v1/configuration/datasets/:id', { id: THEIRS }),
    false,
  ],
  // Least privilege: a node acts only on datasets whose primary it is.
  [
    "node deletes another node's unleased dataset",
    node,
    req('delete', '/v1/configuration/datasets/:id', { id: ELSEWHERE }),
    false,
  ],
  [
    'node deletes a dataset on another node that it leases',
    node,
    req('delete', '/v1/configuration/datasets/:id', { id: HELD_HERE }),
    false,
  ],
  [
    "node moves another node's unleased dataset to itself (the plugin's Mount)",
    node,
    req('post', '/v1/configuration/datasets/:id', { id: ELSEWHERE }, { primary: ME }),
    true,
  ],
  [
    "node moves another node's dataset to itself and resizes it at once",
    node,
    req('post', '/v1/configuration/datasets/:id', { id: ELSEWHERE }, { primary: ME, maximum_size: 134217728 }),
    false,
  ],
  [
    'node moves its own dataset to itself and resizes it',
    node,
    req('post', '/v1/configuration/datasets/:id', { id: FREE }, { primary: ME, maximum_size: 134217728 }),
    true,
  ],
  [
    'node moves its own dataset to another node',
    node,
    req('post', '/v1/configuration/datasets/:id', { id: FREE }, { primary: OTHER }),
    false,
  ],
  [
    "node resizes another node's unleased dataset",
    node,
    req('post', '/v1/configuration/datasets/:id', { id: ELSEWHERE }, { maximum_size: 134217728 }),
    false,
  ],
  [
    'node changes the snapshot schedule of its own dataset',
    node,
    req('post', '/v1/configuration/datasets/:id', { id: FREE }, { metadata: { [SCHEDULE_KEY]: 'hourly' } }),
    true,
  ],
  [
    "node changes the snapshot schedule of another node's dataset",
    node,
    req('post', '/v1/configuration/datasets/:id', { id: ELSEWHERE }, { metadata: { [SCHEDULE_KEY]: 'hourly' } }),
    false,
  ],
  [
    "node moves another node's dataset to itself and changes its schedule at once",
    node,
    req(
      'post',
      '/v1/configuration/datasets/:id',
      { id: ELSEWHERE },
      { primary: ME, metadata: { [SCHEDULE_KEY]: null } },
    ),
    false,
  ],
  [
    'node resizes or deletes an unknown dataset (the store answers 404)',
    node,
    req('delete', '/v1/configuration/datasets/:id', { id: '77777777-7777-4777-8777-777777777777' }),
    true,
  ],
  [
    "node takes its own lease on another node's dataset (before moving it to itself)",
    node,
    req('post', '/v1/configuration/leases', {}, { dataset_id: ELSEWHERE, node_uuid: ME, expires: null }),
    true,
  ],
  [
    "node releases the absent lease of another node's dataset (a no-op: the store answers 404)",
    node,
    req('delete', '/v1/configuration/leases/:dataset_id', { dataset_id: ELSEWHERE }),
    true,
  ],
  [
    'node releases its own lease on a dataset on another node',
    node,
    req('delete', '/v1/configuration/leases/:dataset_id', { dataset_id: HELD_HERE }),
    true,
  ],
  // Nodes: leases.
  [
    'node takes a lease for itself',
    node,
    req('post', '/v1/configuration/leases', {}, { dataset_id: FREE, node_uuid: ME, expires: null }),
    true,
  ],
  [
    'node takes a lease with pinned: false (the default)',
    node,
    req('post', '/v1/configuration/leases', {}, { dataset_id: FREE, node_uuid: ME, expires: null, pinned: false }),
    true,
  ],
  [
    'node may not pin its lease',
    node,
    req('post', '/v1/configuration/leases', {}, { dataset_id: FREE, node_uuid: ME, expires: null, pinned: true }),
    false,
  ],
  [
    'node renews a pinned lease without pinned (stays pinned)',
    node,
    req('post', '/v1/configuration/leases', {}, { dataset_id: PINNED, node_uuid: ME, expires: 60 }),
    true,
  ],
  [
    'node may not unpin a pinned lease',
    node,
    req('post', '/v1/configuration/leases', {}, { dataset_id: PINNED, node_uuid: ME, expires: null, pinned: false }),
    false,
  ],
  [
    'node releases its pinned lease',
    node,
    req('delete', '/v1/configuration/leases/:dataset_id', { dataset_id: PINNED }),
    true,
  ],
  [
    'node takes a lease for another node',
    node,
    req('post', '/v1/configuration/leases', {}, { dataset_id: FREE, node_uuid: OTHER, expires: null }),
    false,
  ],
  [
    'node takes its own lease as one local holder (the Docker plugin, the CSI node plugin)',
    node,
    req('post', '/v1/configuration/leases', {}, { dataset_id: MINE, node_uuid: ME, expires: null, holder: 'csi' }),
    true,
  ],
  [
    "node adds a holder to another node's lease",
    node,
    req('post', '/v1/configuration/leases', {}, { dataset_id: THEIRS, node_uuid: OTHER, expires: null, holder: 'csi' }),
    false,
  ],
  // Releases: the rule is the same for the whole lease and for one holder's share (?holder=): its own lease only.
  ['node releases its lease', node, req('delete', '/v1/configuration/leases/:dataset_id', { dataset_id: MINE }), true],
  [
    'node releases an absent lease (the store answers 404)',
    node,
    req('delete', '/v1/configuration/leases/:dataset_id', { dataset_id: FREE }),
    true,
  ],
  [
    "node releases another node's lease",
    node,
    req('delete', '/v1/configuration/leases/:dataset_id', { dataset_id: THEIRS }),
    false,
  ],
  // Declining a release request (session 21): the holder node (its plugin knows the volume is in use) or a user.
  [
    'node declines the request for its own lease',
    node,
    req('delete', '/v1/configuration/leases/:dataset_id/release-request', { dataset_id: MINE }),
    true,
  ],
  [
    'node declines for an absent lease (the store answers 404)',
    node,
    req('delete', '/v1/configuration/leases/:dataset_id/release-request', { dataset_id: FREE }),
    true,
  ],
  [
    "node declines the request for another node's lease",
    node,
    req('delete', '/v1/configuration/leases/:dataset_id/release-request', { dataset_id: THEIRS }),
    false,
  ],
  [
    "user declines the request for any node's lease",
    user,
    req('delete', '/v1/configuration/leases/:dataset_id/release-request', { dataset_id: THEIRS }),
    true,
  ],
  // Others.
  ['the control certificate as a client', control, req('get', '/v1/version'), false],
  ['no identity (unknown common name)', undefined, req('get', '/v1/version'), false],
  ['no identity reads one dataset', undefined, req('get', '/v1/configuration/datasets/:id', { id: FREE }), false],
  [
    'the control certificate reads one dataset',
    control,
    req('get', '/v1/configuration/datasets/:id', { id: FREE }),
    false,
  ],
];

/** The same request with every UUID written another way (as a client may send it). */
const variants: [string, (uuid: string) => string][] = [
  ['upper case', (u) => u.toUpperCase()],
  ['mixed case', (u) => [...u].map((c, i) => (i % 2 === 0 ? c.toUpperCase() : c)).join('')],
];
const UUID_RE = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g;
function rewrite(value: unknown, f: (uuid: string) => string): unknown {
  return JSON.parse(JSON.stringify(value ?? null).replace(UUID_RE, f)) as unknown;
}

describe('authorize', () => {
  it.each(table)('%s', (_name, identity, request, allowed) => {
    const decision = authorize(identity, request, facts);
    expect(decision.allowed).toBe(allowed);
    if (!decision.allowed) expect(decision.description).toMatch(/\w+ .*\./);
  });

  // Every row of the table again, its UUIDs in another case (and the node's identity too), through the
  // server's canonicalisation: the decision is the same, and authorization and handler see the same ids.
  const nodeRows = table.filter(([, identity]) => identity?.kind === 'node');
  describe.each(variants)('with UUIDs in %s', (_variant, f) => {
    it.each(nodeRows)('%s', (_name, identity, request, allowed) => {
      const route = routes.find((r) => r.method === request.method && r.path === request.route);
      const params = rewrite(request.params, f) as Record<string, string>;
      const body = request.body === undefined ? undefined : rewrite(request.body, f);
      const input = route === undefined ? { params, body } : canonicalInput(route, params, body);
      // What the handler will act on is canonical whenever the schema accepts it.
      if (route?.params !== undefined && route.params.safeParse(params).success) {
        expect(JSON.stringify(input.params)).toBe(JSON.stringify(request.params).toLowerCase());
      }
      if (route?.body !== undefined && route.body.safeParse(body).success)
        expect(JSON.stringify(input.body)).not.toMatch(/[A-F]/);
      const decision = authorize(identity, { ...request, params: input.params, body: input.body }, facts);
      expect(decision.allowed).toBe(allowed);
    });
  });

  it('braces and urn forms are no UUIDs: the schema refuses them, so canonicalisation keeps them and the handler answers 400', () => {
    for (const form of [`{${ME}}`, `urn:uuid:${ME}`]) {
      const route = routes.find((r) => r.method === 'put' && r.path === '/v1/agent/nodes/:uuid');
      expect(route?.params?.safeParse({ uuid: form }).success).toBe(false);
      expect(authorize(node, req('put', '/v1/agent/nodes/:uuid', { uuid: form }, {}), facts).allowed).toBe(false);
    }
  });

  it('a node may change nothing through a route it has no rule for, and reads every GET route', () => {
    // Containers are configured by API users only (nodes read them and report their own).
    const userOnly = new Set([
      'post /v1/configuration/containers',
      'post /v1/configuration/containers/:name',
      'delete /v1/configuration/containers/:name',
      'post /v1/configuration/_compose',
      // So are snapshots (issue 20): nodes read them and report what their backends hold.
      'post /v1/configuration/snapshots',
      'delete /v1/configuration/snapshots/:id',
      // And backups (issue 20): nodes run them and report their state.
      'post /v1/configuration/backups',
      // And forgetting a retired node (session 18): an operator's call, never a node's, not even about itself.
      'delete /v1/configuration/nodes/:node',
    ]);
    for (const route of routes) {
      const decision = authorize(
        node,
        req(
          route.method,
          route.path,
          { id: FREE, dataset_id: FREE, uuid: ME, name: 'web' },
          { primary: ME, node_uuid: ME },
        ),
        facts,
      );
      expect(decision.allowed).toBe(!userOnly.has(`${route.method} ${route.path}`));
    }
    expect(
      authorize(node, req('put', '/v1/agent/nodes/:uuid/containers', { uuid: OTHER }, { containers: [] }), facts)
        .allowed,
    ).toBe(false);
    expect(authorize(user, req('post', '/v1/configuration/_compose', {}, {}), facts).allowed).toBe(true);
    expect(authorize(user, req('put', '/v1/agent/nodes/:uuid/containers', { uuid: ME }, {}), facts).allowed).toBe(
      false,
    );
    expect(authorize(node, req('patch', '/v1/configuration/datasets/:id', { id: FREE }, {}), facts).allowed).toBe(
      false,
    );
  });

  it('a node asking for a pinned lease is told only an API user may pin', () => {
    const d = authorize(
      node,
      req('post', '/v1/configuration/leases', {}, { dataset_id: FREE, node_uuid: ME, expires: null, pinned: true }),
      facts,
    );
    expect(d).toEqual({
      allowed: false,
      description: expect.stringMatching(
        new RegExp(`^node ${ME} may not pin a lease .*only an API user \\(administrator certificate\\) may pin\\.$`),
      ),
    });
  });

  it("a move when released (issue 24) is an API user's: a node may not pull a volume another node uses with it", () => {
    const asked = req('post', '/v1/configuration/datasets/:id', { id: THEIRS }, { primary: ME, when_released: true });
    expect(authorize(user, asked, facts).allowed).toBe(true);
    const d = authorize(node, asked, facts);
    expect(d).toEqual({
      allowed: false,
      description: expect.stringMatching(new RegExp(`^node ${ME} may not move a dataset when_released: .*API user`)),
    });
    // false is the default: allowed as the plain pull it is.
    const plain = req('post', '/v1/configuration/datasets/:id', { id: THEIRS }, { primary: ME, when_released: false });
    expect(authorize(node, plain, facts).allowed).toBe(true);
  });

  it('denials name the node and what it may do instead', () => {
    const d = authorize(node, req('put', '/v1/agent/nodes/:uuid', { uuid: OTHER }, {}), facts);
    expect(d).toEqual({
      allowed: false,
      description: `node ${ME} may report only its own state, not that of node ${OTHER}.`,
    });
  });
});

/**
 * What a new user tried in the README walkthrough (session 13, helper U) and found wrong or confusing:
 * `flocker --version`, `flocker nodes` alone, the volumes usage message, and `volumes move` of a volume a
 * container uses (the API's "Release the lease first" with bare UUIDs).
 */
import {
  FlockerApiError,
  type ClusterSnapshot,
  type DatasetConfiguration,
  type FlockerClient,
  type Lease,
  type NodeState,
} from '@flocker/api';
import { node as fixtureNode } from '@flocker/web-ui/testing';
import { versionFlag } from './cli';
import { runCli } from './testing/runCli';
import { EXIT } from './errors';
import { leaseHeldOnMove } from './safety';
import { beyondBackendProblem } from './validation';
import { clientVersion } from './version';

const A = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
const B = 'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb';
const D1 = '11111111-1111-4111-8111-111111111111';

const node = (uuid: string, host: string, patch: Partial<NodeState> = {}): NodeState =>
  fixtureNode(uuid, host, { last_seen: new Date().toISOString(), ...patch });
const GiB = 1024 ** 3;
const TiB = 1024 * GiB;
const ds = (name: string): DatasetConfiguration => ({
  dataset_id: D1,
  primary: A,
  maximum_size: 128 * 1024 * 1024,
  metadata: { name },
  deleted: false,
});

/** The control service as these commands see it; a move of a leased volume is refused as the real one does. */
function fakeClient(
  leases: Lease[],
  calls: string[] = [],
  nodes: NodeState[] = [node(A, '10.0.0.1'), node(B, '10.0.0.2')],
): FlockerClient {
  const snapshot: ClusterSnapshot = {
    generation: '1',
    configuration_tag: 't',
    datasets: [ds('pg')],
    leases,
    nodes,
  };
  const fake = {
    version: async () => {
      calls.push('version');
      return { flocker: 'test' };
    },
    listDatasets: async () => snapshot.datasets,
    listLeases: async () => leases,
    waitForCluster: async () => snapshot,
    createDataset: async () => {
      calls.push('create');
      throw new FlockerApiError(400, 'SIZE_BEYOND_BACKEND', 'maximum_size … at most 17592186044416 bytes.');
    },
    updateDataset: async () => {
      calls.push('update');
      throw new FlockerApiError(
        409,
        'LEASE_HELD',
        `The dataset ${D1} cannot move: node ${A} (used there by docker) holds a lease on it. Release the lease first.`,
      );
    },
  };
  // Only the methods these commands call exist.
  return fake as unknown as FlockerClient;
}

function flocker(client: FlockerClient, ...argv: string[]): ReturnType<typeof runCli> {
  return runCli(() => client, argv);
}

describe('flocker --version', () => {
  it("prints this client's version and exits 0 without asking the control service (it said 'Name a command', 2)", async () => {
    const calls: string[] = [];
    const r = await flocker(fakeClient([], calls), '--version');
    expect(r).toEqual({ code: EXIT.OK, out: `Client:  ${clientVersion()}`, err: '' });
    expect(calls).toEqual([]);
  });

  it('--json gives {"client": …}; version --client is the same; version alone still asks the server', async () => {
    const json = await flocker(fakeClient([]), '-o', 'json', '--version');
    expect(JSON.parse(json.out)).toEqual({ client: clientVersion() });
    expect((await flocker(fakeClient([]), 'version', '--client')).out).toBe(`Client:  ${clientVersion()}`);
    const calls: string[] = [];
    const both = await flocker(fakeClient([], calls), 'version');
    expect(both.out).toMatch(/^Client: .*\nServer: {2}test/);
    expect(calls).toEqual(['version']);
  });

  it('is rewritten only without a command word', () => {
    expect(versionFlag(['--version'])).toEqual(['version', '--client']);
    expect(versionFlag(['--control-url', 'https://x:4523', '--version'])).toEqual([
      'version',
      '--client',
      '--control-url',
      'https://x:4523',
    ]);
    expect(versionFlag(['volumes', 'list', '--version'])).toEqual(['volumes', 'list', '--version']);
    expect(versionFlag(['volumes', 'list'])).toEqual(['volumes', 'list']);
  });
});

describe('flocker nodes', () => {
  it('alone lists the nodes, as the top-level help ("List nodes") promises (it said "Name a nodes command", 2)', async () => {
    const r = await flocker(fakeClient([]), 'nodes');
    expect(r.code).toBe(EXIT.OK);
    expect(r.out).toMatch(/^NODE +HOST +ALIVE/);
    expect(r.out).toContain('10.0.0.2');
    expect((await flocker(fakeClient([]), 'nodes', '-o', 'name')).out).toBe('10.0.0.1\n10.0.0.2');
  });

  it('nodes list still works; an unknown word is still a usage error', async () => {
    expect((await flocker(fakeClient([]), 'nodes', 'list')).code).toBe(EXIT.OK);
    const r = await flocker(fakeClient([]), 'nodes', 'bogus');
    expect(r.code).toBe(EXIT.USAGE);
    expect(r.err).toMatch(/unknown nodes command "bogus": the commands are list \(ls\), forget/);
  });
});

it('flocker volumes alone names every volumes command, schedule too', async () => {
  const r = await flocker(fakeClient([]), 'volumes');
  expect(r.code).toBe(EXIT.USAGE);
  expect(r.err).toMatch(/list, create, show, move, clone, schedule, resize or destroy/);
});

describe('volumes move of a leased volume', () => {
  const dockerLease: Lease = { dataset_id: D1, node_uuid: A, expires: null, holders: ['docker'] };

  it('names the host and says to stop the container (not "Release the lease first" with UUIDs), exit 4', async () => {
    const calls: string[] = [];
    const r = await flocker(fakeClient([dockerLease], calls), 'volumes', 'move', 'pg', '10.0.0.2');
    expect(calls).toEqual(['update']);
    expect(r.code).toBe(EXIT.CONFLICT);
    expect(r.err).toBe(
      'flocker: volume pg cannot move: 10.0.0.1 (node aaaaaaaa) holds its lease: a container there uses it. ' +
        'Stop that container, then move it again, or start the container on the other host ' +
        '(the Docker plugin moves the volume there).',
    );
  });

  it('--json keeps the API code LEASE_HELD', async () => {
    const r = await flocker(fakeClient([dockerLease], []), 'volumes', 'move', 'pg', '10.0.0.2', '--json');
    expect(JSON.parse(r.err)).toEqual({
      error: {
        code: 'LEASE_HELD',
        message: expect.stringMatching(/^volume pg cannot move: 10\.0\.0\.1/),
        exit_code: 4,
      },
    });
  });

  it("a lease that is not Docker's: release it first, naming the command", () => {
    const nodes = [node(A, '10.0.0.1')];
    const pinned: Lease = { dataset_id: D1, node_uuid: A, expires: null, pinned: true };
    expect(leaseHeldOnMove('pg', pinned, nodes, 'api').message).toBe(
      'volume pg cannot move: 10.0.0.1 (node aaaaaaaa) holds its lease: held by (unnamed), pinned. ' +
        'Release it first ("flocker leases release pg"), then move it again.',
    );
    // The holder unknown to this snapshot: its UUID prefix; the lease gone meanwhile: the API's own words.
    const other: Lease = { dataset_id: D1, node_uuid: B, expires: null, holders: ['csi'] };
    expect(leaseHeldOnMove('pg', other, nodes, 'api').message).toMatch(
      /^volume pg cannot move: node bbbbbbbb holds its lease: held by csi\. Release it first/,
    );
    expect(leaseHeldOnMove('pg', undefined, nodes, 'the API says').message).toBe('the API says');
  });
});

describe('a size the backend cannot create', () => {
  // A loopback node as it reports itself: at most 16 TiB a volume, 73 GiB free.
  const loopback = node(A, '127.0.0.1', { backend: 'loopback', max_volume_size: 16 * TiB, available_bytes: 73 * GiB });

  it('volumes create is refused before the API, in TiB, with no "created anyway" warning first (exit 2)', async () => {
    const calls: string[] = [];
    const r = await flocker(fakeClient([], calls, [loopback]), 'volumes', 'create', 'big', '--size', '100T');
    expect(calls).toEqual([]);
    expect(r.code).toBe(EXIT.USAGE);
    expect(r.err).toBe(
      'flocker: big (100 TiB) is larger than the loopback backend of 127.0.0.1 can create: at most 16 TiB',
    );
    const json = await flocker(fakeClient([], [], [loopback]), 'volumes', 'create', 'big', '--size', '17T', '--json');
    expect(JSON.parse(json.err)).toEqual({
      error: { code: 'SIZE_BEYOND_BACKEND', message: expect.stringMatching(/^big \(17 TiB\)/), exit_code: 2 },
    });
  });

  it('volumes resize beyond it is refused the same way', async () => {
    const calls: string[] = [];
    const r = await flocker(fakeClient([], calls, [loopback]), 'volumes', 'resize', 'pg', '20T');
    expect(calls).toEqual([]);
    expect(r.code).toBe(EXIT.USAGE);
    expect(r.err).toBe(
      'flocker: pg grown (20 TiB) is larger than the loopback backend of 127.0.0.1 can create: at most 16 TiB',
    );
  });

  it('within it, or with no limit reported: no problem (the overcommit warning still applies)', () => {
    expect(beyondBackendProblem(loopback, 16 * TiB, 'v')).toBeUndefined();
    expect(beyondBackendProblem(node(A, 'h'), 100 * TiB, 'v')).toBeUndefined();
  });
});

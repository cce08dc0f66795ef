/**
 * `flocker` commands end to end against a fake control service client: what is
 * refused, what is called, what people read (issue 17, items 10-12).
 */
import type {
  ClusterSnapshot,
  ContainerConfiguration,
  ContainerState,
  DatasetConfiguration,
  FlockerClient,
  Lease,
  NodeState,
} from '@flocker/api';
import { FlockerApiError } from '@flocker/api';
import { backend, mounted, node as fixtureNode } from '@flocker/web-ui/testing';
import { runCli } from './testing/runCli';
import { EXIT } from './errors';

const A = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
const B = 'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb';
const D1 = '11111111-1111-4111-8111-111111111111';
const D2 = '22222222-2222-4222-8222-222222222222';

/** A node the control service saw just now (the CLI prints how long ago). */
const node = (uuid: string, host: string, patch: Partial<NodeState> = {}): NodeState =>
  fixtureNode(uuid, host, { last_seen: new Date().toISOString(), ...patch });
const ds = (id: string, name: string | undefined, patch: Partial<DatasetConfiguration> = {}): DatasetConfiguration => ({
  dataset_id: id,
  primary: A,
  maximum_size: 128 * 1024 * 1024,
  metadata: name === undefined ? {} : { name },
  deleted: false,
  ...patch,
});
const busy = (id: string) => ({
  dataset_id: id,
  action: 'destroy',
  code: 'DEVICE_BUSY',
  message: 'unmounting /flocker/x failed: target is busy',
  attempts: 4,
  since: '2026-01-01T00:00:00.000Z',
});

/** The control service as the CLI sees it; every write is recorded. */
class FakeControl {
  calls: Array<[string, ...unknown[]]> = [];
  containers: ContainerConfiguration[] = [];
  containerState: ContainerState[] = [];
  /** What createDataset answers instead of creating (the control service's refusal). */
  refuseCreate: Error | undefined;
  /** Snapshots waitForCluster answers, in turn (the last one repeats). */
  snapshots: ClusterSnapshot[];
  constructor(
    public datasets: DatasetConfiguration[],
    public leases: Lease[],
    nodes: NodeState[],
  ) {
    this.snapshots = [{ generation: '1', configuration_tag: 't', datasets, leases, nodes }];
  }
  client(): FlockerClient {
    const fake = {
      version: async () => ({ flocker: 'test' }),
      listDatasets: async () => this.datasets,
      listLeases: async () => this.leases,
      listEvents: async () => [],
      listNodes: async () => [],
      listSnapshots: async () => [],
      listContainers: async () => this.containers,
      listContainerState: async () => this.containerState,
      waitForCluster: async () => (this.snapshots.length > 1 ? this.snapshots.shift()! : this.snapshots[0]!),
      createDataset: async (req: { primary: string; metadata?: Record<string, string> }) => {
        this.calls.push(['create', req]);
        if (this.refuseCreate !== undefined) throw this.refuseCreate;
        return ds(D2, req.metadata?.name, { primary: req.primary });
      },
      deleteDataset: async (id: string) => {
        this.calls.push(['delete', id]);
        return { ...this.datasets.find((d) => d.dataset_id === id)!, deleted: true };
      },
      releaseLease: async (id: string) => {
        this.calls.push(['release', id]);
        return this.leases.find((l) => l.dataset_id === id)!;
      },
      acquireLease: async (req: Lease) => {
        this.calls.push(['acquire', req]);
        return { ...req };
      },
    };
    // Only the methods these commands call exist.
    return fake as unknown as FlockerClient;
  }
}

function flocker(control: FakeControl, ...argv: string[]): ReturnType<typeof runCli> {
  return runCli(() => control.client(), argv);
}

const leasedToA: Lease = { dataset_id: D1, node_uuid: A, expires: null };

describe('releasing or destroying a volume a container uses (item 10)', () => {
  it('leases release is refused while the holder is a live node, naming the host', async () => {
    const c = new FakeControl(
      [ds(D1, 'pgdata')],
      [leasedToA],
      [node(A, '10.0.0.1', { manifestations: [mounted(D1)] }), node(B, '10.0.0.2')],
    );
    const r = await flocker(c, 'leases', 'release', 'pgdata');
    expect(r.code).toBe(EXIT.CONFLICT);
    expect(r.err).toMatch(/pgdata is in use on 10\.0\.0\.1/);
    expect(r.err).toMatch(/--force/);
    expect(c.calls).toEqual([]);
  });

  it('leases release --force releases with a clear warning', async () => {
    const c = new FakeControl(
      [ds(D1, 'pgdata')],
      [leasedToA],
      [node(A, '10.0.0.1', { manifestations: [mounted(D1)] })],
    );
    const r = await flocker(c, 'leases', 'release', 'pgdata', '--force');
    expect(r.code).toBe(0);
    expect(r.err).toMatch(/warning: .*pgdata is in use on 10\.0\.0\.1/);
    expect(c.calls).toEqual([['release', D1]]);
  });

  it("a dead node's lease is released without --force (manual failover)", async () => {
    const c = new FakeControl(
      [ds(D1, 'pgdata')],
      [leasedToA],
      [node(A, '10.0.0.1', { alive: false }), node(B, '10.0.0.2')],
    );
    const r = await flocker(c, 'leases', 'release', 'pgdata');
    expect(r.code).toBe(0);
    expect(c.calls).toEqual([['release', D1]]);
  });

  it('volumes destroy of a volume leased by a live node is refused; --force releases the lease first, with a warning', async () => {
    const nodes = [node(A, '10.0.0.1', { manifestations: [mounted(D1)] })];
    const c = new FakeControl([ds(D1, 'pgdata')], [leasedToA], nodes);
    const refused = await flocker(c, 'volumes', 'destroy', 'pgdata', '--no-wait');
    expect(refused.code).toBe(EXIT.CONFLICT);
    expect(refused.err).toMatch(/pgdata is in use on 10\.0\.0\.1/);
    expect(c.calls).toEqual([]);
    const forced = await flocker(c, 'volumes', 'destroy', 'pgdata', '--no-wait', '--force');
    expect(forced.code).toBe(0);
    expect(forced.err).toMatch(/warning: .*in use on 10\.0\.0\.1/);
    expect(c.calls).toEqual([
      ['release', D1],
      ['delete', D1],
    ]);
  });
});

describe('stuck or failing operations show their reason (item 11)', () => {
  const stuck = () => {
    const deleted = ds(D1, 'gone', { deleted: true });
    return new FakeControl(
      [deleted, ds(D2, 'web')],
      [],
      [
        node(A, '10.0.0.1', {
          manifestations: [mounted(D2)],
          volumes: [backend(D1, 'i-10.0.0.1'), backend(D2, 'i-10.0.0.1')],
          errors: [busy(D1)],
        }),
      ],
    );
  };

  it('status is not converged while a delete is stuck, and says why', async () => {
    const r = await flocker(stuck(), 'status');
    expect(r.code).toBe(EXIT.FAILURE);
    expect(r.out).toMatch(
      /gone: deleting — destroy failed on 10\.0\.0\.1 \(4 attempts since 2026-01-01T00:00:00.000Z\): unmounting \/flocker\/x failed: target is busy \(DEVICE_BUSY\)/,
    );
    const json = JSON.parse((await flocker(stuck(), 'status', '--json')).out) as {
      problems: string[];
      errors: Array<{ code: string; host: string }>;
    };
    expect(json.problems.join('\n')).toMatch(/DEVICE_BUSY/);
    expect(json.errors).toEqual([
      expect.objectContaining({ code: 'DEVICE_BUSY', host: '10.0.0.1', dataset_id: D1, volume: 'gone' }),
    ]);
  });

  it('status is not converged while an action on a mounted volume fails', async () => {
    const resize = { ...busy(D2), action: 'resize', code: 'BACKEND_ERROR', message: 'no space' };
    const c = new FakeControl(
      [ds(D2, 'web')],
      [],
      [node(A, '10.0.0.1', { manifestations: [mounted(D2)], errors: [resize] })],
    );
    const r = await flocker(c, 'status');
    expect(r.code).toBe(EXIT.FAILURE);
    expect(r.out).toMatch(/Volumes: +0\/1 converged/);
    expect(r.out).toMatch(/web: mounted, but resize failed on 10\.0\.0\.1 .*no space \(BACKEND_ERROR\)/);
  });

  it('status reports errors of no volume (the node itself)', async () => {
    const listing = { action: 'list', code: 'BACKEND_ERROR', message: 'pool unreadable', attempts: 2, since: 's' };
    const c = new FakeControl([], [], [node(A, '10.0.0.1', { errors: [listing] })]);
    const r = await flocker(c, 'status');
    expect(r.code).toBe(EXIT.FAILURE);
    expect(r.out).toMatch(/node 10\.0\.0\.1: list failed .*pool unreadable \(BACKEND_ERROR\)/);
  });

  it('volumes show of a deleted volume that still exists says "deleting" and why, by name or id', async () => {
    for (const ref of ['gone', D1, D1.slice(0, 6)]) {
      const r = await flocker(stuck(), 'volumes', 'show', ref);
      expect(r.code).toBe(0);
      expect(r.out).toMatch(/State: +deleting/);
      expect(r.out).toMatch(/destroy failed on 10\.0\.0\.1 .*\(DEVICE_BUSY\)/);
    }
    const json = JSON.parse((await flocker(stuck(), 'volumes', 'show', 'gone', '--json')).out) as {
      state: string;
      deleted: boolean;
    };
    expect(json).toMatchObject({ state: 'deleting', deleted: true });
  });

  it('volumes destroy prints the reason as soon as it appears, and again on timeout', async () => {
    const c = stuck();
    c.datasets = [ds(D1, 'gone'), ds(D2, 'web')];
    const r = await flocker(c, 'volumes', 'destroy', 'gone', '--timeout', '0');
    expect(c.calls).toEqual([['delete', D1]]);
    expect(r.code).toBe(EXIT.TIMEOUT);
    expect(r.err).toMatch(/… .*destroy failed on 10\.0\.0\.1 .*\(DEVICE_BUSY\)/);
    expect(r.err).toMatch(/timed out after 0s while .*: destroy failed on 10\.0\.0\.1 .*\(DEVICE_BUSY\)/);
  });

  it('volumes list shows a deleted volume that still exists as deleting', async () => {
    const rows = JSON.parse((await flocker(stuck(), 'volumes', 'list', '--json')).out) as Array<{
      name: string;
      state: string;
    }>;
    expect(rows.map((x) => [x.name, x.state])).toEqual([
      ['gone', 'deleting'],
      ['web', 'mounted'],
    ]);
  });
});

describe('one volume-name rule; the empty name matches nothing (item 12)', () => {
  const unnamed = () => new FakeControl([ds(D1, undefined), ds(D2, 'web')], [], [node(A, '10.0.0.1')]);

  it.each([[''], ['   ']])('volumes show/destroy %p is a usage error, never the first unnamed volume', async (ref) => {
    const c = unnamed();
    const shown = await flocker(c, 'volumes', 'show', ref);
    expect(shown.code).toBe(EXIT.USAGE);
    expect(shown.out).toBe('');
    const destroyed = await flocker(c, 'volumes', 'destroy', ref, '--no-wait');
    expect(destroyed.code).toBe(EXIT.USAGE);
    expect(c.calls).toEqual([]);
  });

  it.each([['bad name!'], ['   '], ['a'], ['.x']])(
    "volumes create %p is refused with the plugin's rule",
    async (name) => {
      const c = unnamed();
      const r = await flocker(c, 'volumes', 'create', name, '--node', '10.0.0.1', '--no-wait');
      expect(r.code).toBe(EXIT.USAGE);
      expect(r.err).toMatch(/not a valid volume name|needs a name/);
      expect(c.calls).toEqual([]);
    },
  );

  it('volumes create of a good name goes ahead', async () => {
    const c = unnamed();
    const r = await flocker(c, 'volumes', 'create', 'pg-data.1', '--node', '10.0.0.1', '--no-wait');
    expect(r.code).toBe(0);
    expect(c.calls).toEqual([['create', expect.objectContaining({ metadata: { name: 'pg-data.1' } })]]);
  });

  it('volumes create asks the control service to keep the name unique: a namesake made since its check is refused', async () => {
    const c = unnamed();
    const r = await flocker(c, 'volumes', 'create', 'db', '--node', '10.0.0.1', '--no-wait');
    expect(r.code).toBe(0);
    expect(c.calls).toEqual([['create', expect.objectContaining({ metadata: { name: 'db' }, unique_name: true })]]);
    // A Docker plugin's Create of "db" landed between the CLI's list and its POST (session 21's window).
    c.refuseCreate = new FlockerApiError(409, 'DATASET_NAME_IN_USE', `The name "db" is used by the dataset ${D1}.`);
    const raced = await flocker(c, 'volumes', 'create', 'db', '--node', '10.0.0.1', '--no-wait');
    expect(raced.code).toBe(EXIT.CONFLICT);
    expect(raced.err).toMatch(/a volume named "db" already exists/);
  });
});

describe("a volume named with another volume's id (review TN F1)", () => {
  const twins = () => new FakeControl([ds(D1, 'v23'), ds(D2, D1)], [], [node(A, '10.0.0.1')]);

  it('volumes destroy/show of that string is refused as ambiguous, naming what picks each', async () => {
    const c = twins();
    const destroyed = await flocker(c, 'volumes', 'destroy', D1, '--no-wait');
    expect(destroyed.code).toBe(EXIT.USAGE);
    expect(destroyed.err).toMatch(new RegExp(`matches 2 volumes.*Give "11111111" .*named "${D1}" \\(${D2}\\)`));
    expect((await flocker(c, 'volumes', 'show', D1)).code).toBe(EXIT.USAGE);
    expect(c.calls).toEqual([]);
    expect((await flocker(c, 'volumes', 'destroy', '11111111', '--no-wait')).code).toBe(0);
    expect(c.calls).toEqual([['delete', D1]]);
  });

  it('volumes create refuses a new UUID-shaped name', async () => {
    const c = twins();
    const r = await flocker(c, 'volumes', 'create', B.toUpperCase(), '--node', '10.0.0.1', '--no-wait');
    expect(r.code).toBe(EXIT.USAGE);
    expect(r.err).toMatch(/shaped like a volume id/);
    expect(c.calls).toEqual([]);
  });
});

describe('output that composes (issue 21)', () => {
  it('volumes create --json returns the same shape as volumes list --json', async () => {
    const c = new FakeControl([ds(D1, 'pgdata')], [], [node(A, '10.0.0.1', { manifestations: [mounted(D1)] })]);
    const listed = JSON.parse((await flocker(c, 'volumes', 'list', '--json')).out) as Array<Record<string, unknown>>;
    const created = await flocker(c, 'volumes', 'create', 'new', '--node', '10.0.0.1', '--no-wait', '--json');
    expect(created.code).toBe(0);
    const v = JSON.parse(created.out) as Record<string, unknown>;
    expect(Object.keys(v).sort()).toEqual(Object.keys(listed[0]!).sort());
    expect(v).toMatchObject({ name: 'new', node: '10.0.0.1', node_uuid: A, state: 'pending' });
  });

  it('volumes destroy --json returns the view, deleted once gone', async () => {
    const c = new FakeControl([ds(D1, 'pgdata')], [], [node(A, '10.0.0.1')]);
    const r = await flocker(c, 'volumes', 'destroy', 'pgdata', '--json');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out)).toMatchObject({ name: 'pgdata', state: 'deleted', deleted: true, node: '10.0.0.1' });
  });

  it('volumes list is sorted by name; --sort, globs, --node, --label, -q, -o name, -o yaml', async () => {
    const c = new FakeControl(
      [
        ds(D1, 'zeta', { metadata: { name: 'zeta', owner: 'alice' } }),
        ds(D2, 'alpha', { primary: B, maximum_size: 256 * 1024 * 1024 }),
      ],
      [],
      [node(A, '10.0.0.1'), node(B, '10.0.0.2')],
    );
    expect((await flocker(c, 'volumes', 'list', '-o', 'name')).out).toBe('alpha\nzeta');
    expect((await flocker(c, 'volumes', 'list', '-o', 'name', '--sort', 'created')).out).toBe('zeta\nalpha');
    expect((await flocker(c, 'volumes', 'list', '-q', 'z*')).out).toBe(D1);
    expect((await flocker(c, 'volumes', 'list', '-o', 'name', '--node', '10.0.0.2')).out).toBe('alpha');
    expect((await flocker(c, 'volumes', 'list', '-o', 'name', '--label', 'owner=alice')).out).toBe('zeta');
    expect((await flocker(c, 'volumes', 'list', '-o', 'yaml')).out).toMatch(/^- dataset_id: 2222/);
    expect((await flocker(c, 'volumes', 'list', '-o', 'wide')).out).toMatch(/NODE UUID.*METADATA[\s\S]*owner=alice/);
    const bad = await flocker(c, 'volumes', 'list', '--label', '=x', '-o', 'json');
    expect(bad.code).toBe(EXIT.USAGE);
    expect(JSON.parse(bad.err)).toMatchObject({ error: { code: 'USAGE' } });
  });

  it('volumes list --all --json: a long-gone volume is "deleted", as in the table', async () => {
    const c = new FakeControl([ds(D1, 'old', { deleted: true })], [], [node(A, '10.0.0.1')]);
    const json = JSON.parse((await flocker(c, 'volumes', 'list', '--all', '--json')).out) as Array<{ state: string }>;
    expect(json.map((x) => x.state)).toEqual(['deleted']);
    expect((await flocker(c, 'volumes', 'list', '--all')).out).toMatch(/old .*deleted/);
  });

  it('leases list shows hosts; the UUID stays in JSON', async () => {
    const c = new FakeControl([ds(D1, 'pgdata')], [leasedToA], [node(A, '10.0.0.1')]);
    const r = await flocker(c, 'leases', 'list');
    expect(r.out).toMatch(/pgdata\s+11111111\s+10\.0\.0\.1/);
    const json = JSON.parse((await flocker(c, 'leases', 'list', '--json')).out) as unknown[];
    expect(json).toEqual([expect.objectContaining({ node_uuid: A, node: '10.0.0.1', name: 'pgdata' })]);
  });

  it('a size its node rounded up shows as the real size, in list and show (s23 USER-T F8: 67108865 B showed "64 MiB")', async () => {
    const MiB = 1024 * 1024;
    const odd = ds(D1, 'odd', { maximum_size: 64 * MiB + 1 });
    const c = new FakeControl(
      [odd],
      [],
      [node(A, '10.0.0.1', { manifestations: [{ ...mounted(D1), size: 65 * MiB }] })],
    );
    expect((await flocker(c, 'volumes', 'list')).out).toMatch(/odd\s+11111111\s+65 MiB\s+10\.0\.0\.1/);
    expect((await flocker(c, 'volumes', 'show', 'odd')).out).toContain(
      "Size:       65 MiB (67108865 bytes asked for, rounded up to its backend's allocation unit)",
    );
  });

  it('leases acquire names the host, as every other command (s23 USER-T: it printed the UUID prefix); the UUID stays in JSON', async () => {
    const c = new FakeControl([ds(D1, 'pgdata')], [], [node(A, '10.0.0.1'), node(B, '10.0.0.2')]);
    const r = await flocker(c, 'leases', 'acquire', 'pgdata', '--expires', '30');
    expect(r.code).toBe(0);
    expect(r.out).toBe('Leased pgdata to 10.0.0.1 (expires 30s)');
    expect((await flocker(c, 'leases', 'acquire', 'pgdata', '--node', B)).out).toBe(
      'Leased pgdata to 10.0.0.2 (expires never)',
    );
    const json = JSON.parse((await flocker(c, 'leases', 'acquire', 'pgdata', '--json')).out) as unknown;
    expect(json).toEqual({ dataset_id: D1, node_uuid: A, expires: null });
  });
});

describe('version, describe, containers (issue 21)', () => {
  it('version prints the client and the server', async () => {
    const c = new FakeControl([], [], []);
    const r = await flocker(c, 'version', '--json');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out)).toEqual({
      client: expect.any(String),
      server: { flocker: 'test', error: null },
      nodes: [], // the nodes' releases (review TN F9); this fake reports no node
    });
  });

  it("volumes show names the lease's host, as describe volume (it printed the node UUID prefix)", async () => {
    const c = new FakeControl(
      [ds(D1, 'pgdata')],
      [leasedToA],
      [node(A, '10.0.0.1', { manifestations: [mounted(D1)] })],
    );
    const r = await flocker(c, 'volumes', 'show', 'pgdata');
    expect(r.out).toMatch(/^Lease: +held by 10\.0\.0\.1 \(\(unnamed\)\), expires never$/m);
  });

  it('describe volume: the volume, its nodes, lease and last error', async () => {
    const c = new FakeControl(
      [ds(D1, 'pgdata')],
      [leasedToA],
      [node(A, '10.0.0.1', { manifestations: [mounted(D1)], errors: [busy(D1)] })],
    );
    const r = await flocker(c, 'describe', 'volume', 'pgdata');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^Lease: +held by 10\.0\.0\.1/m);
    expect(r.out).toMatch(/^Last error: +destroy failed on 10\.0\.0\.1 .*target is busy \(DEVICE_BUSY\)$/m);
    const json = JSON.parse((await flocker(c, 'describe', 'volume', 'pgdata', '-o', 'json')).out) as {
      volume: { name: string };
    };
    expect(json.volume.name).toBe('pgdata');
    expect((await flocker(c, 'describe', 'volume', 'nope')).code).toBe(EXIT.NOT_FOUND);
  });

  it('containers list shows the agent error; show of an unknown container is not found', async () => {
    const c = new FakeControl([ds(D1, 'pgdata')], [], [node(A, '10.0.0.1')]);
    c.containers = [
      {
        name: 'web',
        node_uuid: A,
        image: 'nginx:nope',
        ports: [],
        environment: {},
        links: [],
        volumes: [{ dataset_id: D1, mountpoint: '/data' }],
        restart_policy: { name: 'never' },
      },
    ];
    c.containerState = [
      {
        name: 'web',
        node_uuid: A,
        image: 'nginx:nope',
        running: false,
        error: { code: 'IMAGE_NOT_FOUND', message: 'No such image: nginx:nope', attempts: 2, since: 't' },
      },
    ];
    const r = await flocker(c, 'containers', 'list');
    expect(r.out).toMatch(/web +nginx:nope +10\.0\.0\.1 +failing +pgdata +IMAGE_NOT_FOUND: No such image/);
    expect((await flocker(c, 'containers', 'list', '-q')).out).toBe('web');
    expect((await flocker(c, 'containers', 'show', 'web')).out).toMatch(/^Error: +IMAGE_NOT_FOUND/m);
    expect((await flocker(c, 'containers', 'show', 'nope')).code).toBe(EXIT.NOT_FOUND);
  });
});

describe('containers list: a silent container agent (ff05251)', () => {
  it("says so in ERROR when STATE is unknown for it, not the stale report's error", async () => {
    const c = new FakeControl([], [], [node(A, '10.0.0.1')]);
    const since = new Date(Date.now() - 60_000).toISOString();
    const spec = {
      image: 'nginx',
      ports: [],
      environment: {},
      links: [],
      volumes: [],
      restart_policy: { name: 'never' as const },
    };
    c.containers = [{ name: 'web', node_uuid: A, ...spec }];
    c.containerState = [
      {
        name: 'web',
        node_uuid: A,
        image: 'nginx',
        running: false,
        reported_at: since,
        error: { code: 'PORT_IN_USE', message: 'port busy', attempts: 1, since: 't' },
      },
    ];
    const r = await flocker(c, 'containers', 'list');
    expect(r.out).toMatch(
      new RegExp(
        `web +nginx +10\\.0\\.0\\.1 +unknown +- +no report from the container agent on host 10\\.0\\.0\\.1 since ${since.replace(/\./g, '\\.')}: is it running\\?$`,
        'm',
      ),
    );
  });
});

describe('following the cluster (issue 21)', () => {
  it('volumes list --watch prints again only when the list changes', async () => {
    const c = new FakeControl([ds(D1, 'pgdata')], [], [node(A, '10.0.0.1')]);
    const s0 = c.snapshots[0]!;
    const mountedNode = node(A, '10.0.0.1', { manifestations: [mounted(D1)] });
    c.snapshots = [s0, s0, { ...s0, generation: '2' }, { ...s0, generation: '3', nodes: [mountedNode] }];
    const r = await flocker(c, 'volumes', 'list', '--watch', '--timeout', '0.5', '-o', 'name');
    expect(r.code).toBe(0);
    const w = await flocker(
      new FakeControl([ds(D1, 'pgdata')], [], [node(A, '10.0.0.1')]),
      'volumes',
      'list',
      '-w',
      '--timeout',
      '0.3',
    );
    expect(w.out.match(/^NAME/gm)).toHaveLength(1);
    expect(r.out).toBe('pgdata');
  });

  it('volumes list --watch --json: one line per change', async () => {
    const c = new FakeControl([ds(D1, 'pgdata')], [], [node(A, '10.0.0.1')]);
    const s0 = c.snapshots[0]!;
    c.snapshots = [s0, s0, { ...s0, generation: '2', nodes: [node(A, '10.0.0.1', { manifestations: [mounted(D1)] })] }];
    const r = await flocker(c, 'volumes', 'list', '--watch', '--timeout', '0.5', '--json');
    const lines = r.out.split('\n').map((l) => JSON.parse(l) as Array<{ state: string }>);
    expect(lines.map((l) => l[0]?.state)).toEqual(['pending', 'mounted']);
  });

  it('events: the web UI feed between snapshots, --json lines, --since the stored events', async () => {
    const c = new FakeControl([ds(D1, 'pgdata')], [], [node(A, '10.0.0.1')]);
    const s0 = c.snapshots[0]!;
    c.snapshots = [
      s0,
      { ...s0, generation: '2', nodes: [node(A, '10.0.0.1', { manifestations: [mounted(D1)] })] },
      { ...s0, generation: '3', nodes: [node(A, '10.0.0.1', { alive: false })] },
    ];
    const r = await flocker(c, 'events', '--timeout', '0.5', '--json');
    expect(r.code).toBe(0);
    const events = r.out.split('\n').map((l) => JSON.parse(l) as { kind: string; message: string; time: string });
    expect(events.map((e) => e.kind)).toEqual(['mounted', 'node-lost']);
    expect(events[0]?.message).toMatch(/Volume pgdata mounted on 10\.0\.0\.1/);
    const bad = await flocker(c, 'events', '--since', 'soon', '--timeout', '0.1');
    expect(bad.code).toBe(EXIT.USAGE);
  });
});

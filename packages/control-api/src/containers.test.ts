import { ContainerConfiguration, type CreateContainerRequest } from '@flocker/api';
import { acquireLease, type Configuration, createDataset, emptyConfiguration, registerNode } from './configuration';
import { compose, containersOf, createContainer, deleteContainer, moveContainer, resolveNodeKey } from './containers';
import { containerStates } from './containerRoutes';
import { applyRecords, diffConfiguration } from './ConfigurationLog';
import { decodeConfiguration, encodeConfiguration } from './ConfigurationStore';
import { ControlError } from './errors';
import { toApiError } from './httpErrors';
import { A, B, D1, D2, T0 } from './testing/fixtures';

function base(): Configuration {
  let c = registerNode(registerNode(emptyConfiguration, { uuid: A, host: '10.0.0.1' }), { uuid: B, host: '10.0.0.2' });
  c = createDataset(c, { primary: A, dataset_id: D1, metadata: { name: 'db' } }).config;
  c = createDataset(c, { primary: A, dataset_id: D2 }).config;
  return c;
}

const make = (req: CreateContainerRequest) => ContainerConfiguration.parse(req);

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof ControlError) return `${toApiError(err).status} ${err.code}`;
    throw err;
  }
  return 'ok';
}

describe('createContainer', () => {
  const db = make({
    name: 'db',
    node_uuid: A,
    image: 'busybox',
    ports: [{ internal: 80, external: 8080 }],
    volumes: [{ dataset_id: D1, mountpoint: '/data' }],
  });
  const withDb = () => createContainer(base(), db).config;
  /** A container `x` on node A that differs from a valid request only in `over`. */
  const link = (alias: string, local_port: number, remote_port: number) => ({ alias, local_port, remote_port });
  const other = (over: Partial<CreateContainerRequest>) => make({ name: 'x', node_uuid: A, image: 'i', ...over });

  test.each([
    ['a new container', () => createContainer(base(), db), 'ok'],
    [
      'duplicate name',
      () => createContainer(withDb(), { ...db, volumes: [], ports: [] }),
      '409 CONTAINER_NAME_COLLISION',
    ],
    [
      'external port used anywhere',
      () => createContainer(withDb(), other({ node_uuid: B, ports: [{ internal: 1, external: 8080 }] })),
      '409 CONTAINER_PORT_COLLISION',
    ],
    [
      'dataset used by another container',
      () => createContainer(withDb(), other({ volumes: [{ dataset_id: D1, mountpoint: '/d' }] })),
      '409 DATASET_IN_USE',
    ],
    [
      'dataset on another node',
      () => createContainer(base(), { ...db, node_uuid: B }),
      '409 DATASET_ON_DIFFERENT_NODE',
    ],
    [
      'dataset without a volume name',
      () => createContainer(base(), other({ volumes: [{ dataset_id: D2, mountpoint: '/d' }] })),
      '409 DATASET_NOT_A_VOLUME',
    ],
    [
      'unknown dataset',
      () =>
        createContainer(
          base(),
          other({ volumes: [{ dataset_id: '33333333-3333-4333-8333-333333333333', mountpoint: '/d' }] }),
        ),
      '404 DATASET_NOT_FOUND',
    ],
    [
      'unknown node',
      () => createContainer(base(), other({ node_uuid: '44444444-4444-4444-8444-444444444444' })),
      '400 UNKNOWN_NODE',
    ],
    [
      'duplicate link alias',
      () => createContainer(base(), other({ links: [link('db', 1, 2), link('DB', 3, 4)] })),
      '409 LINK_ALIAS_COLLISION',
    ],
    [
      'duplicate link local port',
      () => createContainer(base(), other({ links: [link('a', 1, 2), link('b', 1, 4)] })),
      '409 LINK_PORT_COLLISION',
    ],
  ])('%s', (_what, fn, expected) => {
    expect(code(fn)).toBe(expected);
  });

  test('defaults are filled in and the version grows', () => {
    const applied = createContainer(base(), make({ name: 'web', node_uuid: B, image: 'nginx' }));
    expect(applied.status).toBe(201);
    expect(applied.result).toEqual({
      name: 'web',
      node_uuid: B,
      image: 'nginx',
      ports: [],
      environment: {},
      links: [],
      volumes: [],
      restart_policy: { name: 'never' },
    });
    expect(applied.config.version).toBe(base().version + 1);
  });
});

describe('moveContainer / deleteContainer', () => {
  const db = make({ name: 'db', node_uuid: A, image: 'busybox', volumes: [{ dataset_id: D1, mountpoint: '/data' }] });

  test('moving moves the dataset when no lease pins it', () => {
    const moved = moveContainer(createContainer(base(), db).config, 'db', B, T0);
    expect(moved.result.node_uuid).toBe(B);
    expect(moved.config.datasets.get(D1)?.primary).toBe(B);
  });

  test("with the old node's lease the dataset stays (the plugin on the new node moves it)", () => {
    let c = createContainer(base(), db).config;
    c = acquireLease(c, { dataset_id: D1, node_uuid: A, expires: null }, T0).config;
    const moved = moveContainer(c, 'db', B, T0);
    expect(containersOf(moved.config).get('db')?.node_uuid).toBe(B);
    expect(moved.config.datasets.get(D1)?.primary).toBe(A);
  });

  test('to the same node changes nothing; unknown names are 404', () => {
    const c = createContainer(base(), db).config;
    expect(moveContainer(c, 'db', A, T0).config).toBe(c);
    expect(code(() => moveContainer(c, 'nope', B, T0))).toBe('404 CONTAINER_NOT_FOUND');
    expect(code(() => deleteContainer(c, 'nope'))).toBe('404 CONTAINER_NOT_FOUND');
    expect(containersOf(deleteContainer(c, 'db').config).size).toBe(0);
  });
});

describe('compose (flocker-deploy)', () => {
  const apps = {
    version: 1,
    applications: {
      db: {
        image: 'busybox',
        ports: [{ internal: 80, external: 8080 }],
        volume: { mountpoint: '/data', maximum_size: '100M' },
      },
      client: {
        image: 'busybox',
        links: [{ alias: 'db', local_port: 80, remote_port: 8080 }],
        restart_policy: { name: 'always' },
      },
    },
  };
  let n = 0;
  const ids = () => `55555555-5555-4555-8555-${String(++n).padStart(12, '0')}`;

  test('creates containers and a named dataset on the node; a second deployment moves them', () => {
    let c = registerNode(registerNode(emptyConfiguration, { uuid: A, host: '10.0.0.1' }), {
      uuid: B,
      host: '10.0.0.2',
    });
    const first = compose(c, apps, { version: 1, nodes: { '10.0.0.1': ['db'], [B]: 'client' } }, T0, ids);
    c = first.config;
    expect(first.result.map((x) => [x.name, x.node_uuid])).toEqual([
      ['db', A],
      ['client', B],
    ]);
    const dataset = [...c.datasets.values()].find((d) => d.metadata['name'] === 'db');
    expect(dataset).toMatchObject({ primary: A, maximum_size: 100 * 1024 * 1024 });
    expect(containersOf(c).get('db')?.volumes).toEqual([{ dataset_id: dataset?.dataset_id, mountpoint: '/data' }]);
    // Same files again: nothing changes.
    expect(compose(c, apps, { version: 1, nodes: { '10.0.0.1': ['db'], [B]: 'client' } }, T0, ids).config).toBe(c);
    const second = compose(c, apps, { version: 1, nodes: { '10.0.0.2': ['db'] } }, T0, ids);
    expect(second.result.map((x) => [x.name, x.node_uuid])).toEqual([['db', B]]);
    expect(second.config.datasets.get(dataset?.dataset_id ?? '')?.primary).toBe(B);
    expect(second.config.datasets.size).toBe(1);
  });

  test('a changed volume maximum_size: a larger one grows the volume, a smaller one is refused (review T8, TD-3)', () => {
    const MIB = 1024 * 1024;
    let c = registerNode(emptyConfiguration, { uuid: A, host: '10.0.0.1' });
    const sized = (size: string | undefined) => ({
      version: 1,
      applications: {
        db: {
          image: 'busybox',
          volume: { mountpoint: '/data', ...(size !== undefined ? { maximum_size: size } : {}) },
        },
      },
    });
    const deployment = { version: 1, nodes: { [A]: ['db'] } };
    c = compose(c, sized('64M'), deployment, T0, ids).config;
    const sizeOf = (conf: Configuration) =>
      [...conf.datasets.values()].find((d) => d.metadata['name'] === 'db')?.maximum_size;
    expect(sizeOf(c)).toBe(64 * MIB);
    // Larger: the dataset's maximum_size grows (the agents resize it, as for PATCH maximum_size); applied again,
    // nothing changes.
    const grown = compose(c, sized('128M'), deployment, T0, ids).config;
    expect(sizeOf(grown)).toBe(128 * MIB);
    expect(grown.version).toBeGreaterThan(c.version);
    expect(compose(grown, sized('128M'), deployment, T0, ids).config).toBe(grown);
    // No size in the file: the volume keeps its own.
    expect(compose(grown, sized(undefined), deployment, T0, ids).config).toBe(grown);
    // Smaller: refused, nothing changed; the message names the volume and both sizes.
    expect(code(() => compose(grown, sized('64M'), deployment, T0, ids))).toBe('400 DATASET_SHRINK');
    expect(() => compose(grown, sized('64M'), deployment, T0, ids)).toThrow(
      /volume db is 128 MiB.*maximum_size 64 MiB.*do not shrink/,
    );
    // A volume without a maximum_size (its backend's default, maybe larger): left as it is, never shrunk.
    let unsized = registerNode(emptyConfiguration, { uuid: A, host: '10.0.0.1' });
    unsized = compose(unsized, sized(undefined), deployment, T0, ids).config;
    expect(compose(unsized, sized('64M'), deployment, T0, ids).config).toBe(unsized);
  });

  test.each([
    ['an application not in the file', { version: 1, nodes: { [A]: ['nope'] } }, '400 UNKNOWN_APPLICATION'],
    ['an unknown node', { version: 1, nodes: { '10.9.9.9': ['db'] } }, '400 UNKNOWN_NODE'],
    ['a bad deployment file', { version: 2, nodes: {} }, '400 INVALID_CONFIGURATION_FILE'],
  ])('refuses %s', (_what, deployment, expected) => {
    const c = registerNode(emptyConfiguration, { uuid: A, host: '10.0.0.1' });
    expect(code(() => compose(c, apps, deployment, T0, ids))).toBe(expected);
  });

  test('two applications on one external port conflict', () => {
    const c = registerNode(emptyConfiguration, { uuid: A, host: '10.0.0.1' });
    const clash = {
      version: 1,
      applications: {
        a: { image: 'i', ports: [{ internal: 1, external: 80 }] },
        b: { image: 'i', ports: [{ internal: 2, external: 80 }] },
      },
    };
    expect(code(() => compose(c, clash, { version: 1, nodes: { [A]: ['a', 'b'] } }, T0, ids))).toBe(
      '409 CONTAINER_PORT_COLLISION',
    );
  });

  test("Compose's name:/path mounts the named volume (created if missing, else the existing one)", () => {
    let c = registerNode(emptyConfiguration, { uuid: A, host: '10.0.0.1' });
    const pg = { services: { db: { image: 'postgres', volumes: ['pgdata:/var/lib/postgresql'] } } };
    c = compose(c, pg, { version: 1, nodes: { [A]: ['db'] } }, T0, ids).config;
    const dataset = [...c.datasets.values()].find((d) => d.metadata['name'] === 'pgdata');
    expect(dataset).toMatchObject({ primary: A, deleted: false });
    expect([...c.datasets.values()].some((d) => d.metadata['name'] === 'db')).toBe(false);
    expect(containersOf(c).get('db')?.volumes).toEqual([
      { dataset_id: dataset?.dataset_id, mountpoint: '/var/lib/postgresql' },
    ]);
    // Another application name, same volume: the existing dataset, not a new one.
    const renamed = { services: { pg: { image: 'postgres', volumes: ['pgdata:/data'] } } };
    const next = compose(c, renamed, { version: 1, nodes: { [A]: ['pg'] } }, T0, ids).config;
    expect(next.datasets.size).toBe(1);
    expect(containersOf(next).get('pg')?.volumes[0]?.dataset_id).toBe(dataset?.dataset_id);
    // The path-only syntax still names the volume after the application.
    const plain = compose(
      c,
      { web: { image: 'nginx', volumes: ['/srv'] } },
      { version: 1, nodes: { [A]: 'web' } },
      T0,
      ids,
    );
    expect([...plain.config.datasets.values()].find((d) => d.metadata['name'] === 'web')).toBeDefined();
  });

  test('two applications on one named volume conflict', () => {
    const c = registerNode(emptyConfiguration, { uuid: A, host: '10.0.0.1' });
    const both = {
      services: { a: { image: 'i', volumes: ['shared:/a'] }, b: { image: 'i', volumes: ['shared:/b'] } },
    };
    expect(code(() => compose(c, both, { version: 1, nodes: { [A]: ['a', 'b'] } }, T0, ids))).toBe(
      '409 DATASET_IN_USE',
    );
  });

  test('node keys resolve by UUID or reported address', () => {
    const c = registerNode(emptyConfiguration, { uuid: A, host: '10.0.0.1' });
    expect(resolveNodeKey(c, '10.0.0.1')).toBe(A);
    expect(resolveNodeKey(c, A.toUpperCase())).toBe(A);
  });
});

describe('persistence of containers', () => {
  test('the snapshot and the log carry containers', () => {
    const before = base();
    const after = createContainer(
      before,
      make({ name: 'web', node_uuid: B, image: 'nginx', environment: { A: '1' } }),
    ).config;
    expect([...containersOf(decodeConfiguration(JSON.parse(encodeConfiguration(after))))]).toEqual([
      ...containersOf(after),
    ]);
    const record = diffConfiguration(before, after);
    expect(record.ops).toEqual([{ op: 'container', value: containersOf(after).get('web') }]);
    expect(containersOf(applyRecords(before, [record])).get('web')?.image).toBe('nginx');
    const removed = deleteContainer(after, 'web').config;
    const del = diffConfiguration(after, removed);
    expect(del.ops).toEqual([{ op: 'container-delete', id: 'web' }]);
    expect(containersOf(applyRecords(after, [del])).size).toBe(0);
  });

  test('a snapshot without containers (older document) loads', () => {
    expect(encodeConfiguration(base())).not.toContain('containers');
    expect(containersOf(decodeConfiguration(JSON.parse(encodeConfiguration(base())))).size).toBe(0);
  });
});

describe('containerStates', () => {
  test('fresh reports only, with their node', () => {
    const reports = new Map([
      [A, { report: { containers: [{ name: 'db', image: 'busybox', running: true }] }, lastSeen: T0 }],
      [B, { report: { containers: [{ name: 'old', image: 'busybox', running: false }] }, lastSeen: T0 - 60_000 }],
    ]);
    expect(containerStates(reports, T0 + 1000)).toEqual([
      { name: 'db', node_uuid: A, image: 'busybox', running: true, reported_at: new Date(T0).toISOString() },
    ]);
  });

  test('the configuration a container runs, as its agent reports it, and when the report came', () => {
    const reports = new Map([
      [
        A,
        {
          report: { containers: [{ name: 'db', image: 'busybox', running: true, config: '0123456789abcdef' }] },
          lastSeen: T0,
        },
      ],
    ]);
    expect(containerStates(reports, T0 + 1000)).toEqual([
      {
        name: 'db',
        node_uuid: A,
        image: 'busybox',
        running: true,
        config: '0123456789abcdef',
        reported_at: new Date(T0).toISOString(),
      },
    ]);
  });

  test("a container the agent cannot create or start carries the agent's error", () => {
    const error = { code: 'IMAGE_NOT_FOUND' as const, message: 'No such image: nope', attempts: 3, since: 'x' };
    const reports = new Map([
      [A, { report: { containers: [{ name: 'web', image: 'nope', running: false, error }] }, lastSeen: T0 }],
    ]);
    expect(containerStates(reports, T0)).toEqual([
      { name: 'web', node_uuid: A, image: 'nope', running: false, error, reported_at: new Date(T0).toISOString() },
    ]);
  });
});

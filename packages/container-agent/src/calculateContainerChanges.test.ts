import {
  ContainerConfiguration,
  containerConfigId,
  type ContainerReport,
  type CreateContainerRequest,
  type DatasetConfiguration,
} from '@flocker/api';
import { ManualClock } from '@flocker/runtime/testing';
import winston from 'winston';
import { calculateContainerChanges, type DockerState, type ObservedContainer } from './calculateContainerChanges';
import { ContainerAgent, reportOf, type AgentClient } from './ContainerAgent';
import { desiredContainers, linkEnvironment, type DesiredContainer, type DockerSpec } from './desiredContainers';
import type { ContainerRuntime } from './DockerOps';

const ME = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
const OTHER = 'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb';
const D1 = '11111111-1111-4111-8111-111111111111';
const nodes = [
  { uuid: ME, host: '10.0.0.1' },
  { uuid: OTHER, host: '10.0.0.2' },
];
const datasets: DatasetConfiguration[] = [
  { dataset_id: D1, primary: OTHER, metadata: { name: 'dbvol' }, deleted: false },
];
const make = (req: CreateContainerRequest) => ContainerConfiguration.parse(req);

const spec = (name: string): DockerSpec => ({
  name,
  image: 'busybox',
  env: [],
  ports: [],
  restartPolicy: { Name: 'no', MaximumRetryCount: 0 },
});
const want = (name: string, hash = `h-${name}`): DesiredContainer => ({ spec: spec(name), hash, volumeHere: true });
const seen = (name: string, state: DockerState, hash = `h-${name}`, id = `id-${name}-${state}`): ObservedContainer => ({
  id,
  name,
  hash,
  state,
  image: 'busybox',
});

describe('calculateContainerChanges', () => {
  test.each<[string, DesiredContainer[], ObservedContainer[], string[]]>([
    ['nothing wanted, nothing there', [], [], []],
    ['wanted and absent: create', [want('db')], [], ['create db']],
    ['wanted and running: nothing', [want('db')], [seen('db', 'running')], []],
    ['wanted, exited: left to the restart policy', [want('db')], [seen('db', 'exited')], []],
    ['wanted, never started (start failed): start', [want('db')], [seen('db', 'created')], ['start id-db-created']],
    [
      'spec changed: remove then create',
      [want('db', 'new')],
      [seen('db', 'running', 'old')],
      ['remove id-db-running (configuration changed)', 'create db'],
    ],
    [
      'not wanted here (moved or deleted): remove',
      [],
      [seen('db', 'running')],
      ['remove id-db-running (not configured on this node)'],
    ],
    [
      'duplicates: keep the running one',
      [want('db')],
      [seen('db', 'exited'), seen('db', 'running')],
      ['remove id-db-exited (duplicate)'],
    ],
    [
      'removes come before creates',
      [want('web')],
      [seen('db', 'running')],
      ['remove id-db-running (not configured on this node)', 'create web'],
    ],
  ])('%s', (_what, desired, observed, expected) => {
    const got = calculateContainerChanges(desired, observed).map((c) =>
      c.kind === 'create'
        ? `create ${c.spec.name}`
        : c.kind === 'start'
          ? `start ${c.id}`
          : `remove ${c.id} (${c.reason})`,
    );
    expect(got).toEqual(expected);
  });
});

describe('desiredContainers', () => {
  const db = make({
    name: 'db',
    node_uuid: OTHER,
    image: 'busybox',
    ports: [{ internal: 80, external: 8080 }],
    volumes: [{ dataset_id: D1, mountpoint: '/data' }],
  });
  const client = make({
    name: 'client',
    node_uuid: ME,
    image: 'busybox',
    links: [{ alias: 'my-db', local_port: 80, remote_port: 8080 }],
    environment: { MODE: 'x' },
  });

  test('links point at the node of the container publishing the remote port', () => {
    const { desired } = desiredContainers(ME, [db, client], datasets, nodes);
    expect(desired.map((d) => d.spec.name)).toEqual(['client']);
    expect(desired[0]?.spec.env).toEqual([
      'MODE=x',
      'MY_DB_PORT_80=tcp://10.0.0.2:8080',
      'MY_DB_PORT_80_TCP=tcp://10.0.0.2:8080',
      'MY_DB_PORT_80_TCP_ADDR=10.0.0.2',
      'MY_DB_PORT_80_TCP_PORT=8080',
      'MY_DB_PORT_80_TCP_PROTO=tcp',
    ]);
  });

  test('a moved link target changes the spec (the client is recreated and reconnects)', () => {
    const before = desiredContainers(ME, [db, client], datasets, nodes).desired[0]?.hash;
    const after = desiredContainers(ME, [{ ...db, node_uuid: ME }, client], datasets, nodes).desired.find(
      (d) => d.spec.name === 'client',
    )?.hash;
    expect(after).not.toBe(before);
  });

  test('volumes by dataset name, restart policy mapped; a dataset without a name blocks', () => {
    const { desired } = desiredContainers(
      OTHER,
      [{ ...db, restart_policy: { name: 'on-failure', maximum_retry_count: 3 } }],
      datasets,
      nodes,
    );
    expect(desired[0]?.spec).toMatchObject({
      volume: { name: 'dbvol', mountpoint: '/data' },
      restartPolicy: { Name: 'on-failure', MaximumRetryCount: 3 },
    });
    const unnamed = desiredContainers(
      OTHER,
      [db],
      datasets.map((d) => ({ ...d, metadata: {} })),
      nodes,
    );
    expect(unnamed.desired).toEqual([]);
    expect(unnamed.blocked[0]?.name).toBe('db');
  });

  test('link environment as Flocker named it', () => {
    expect(linkEnvironment({ alias: 'pg', local_port: 5432, remote_port: 15432 }, 'h')).toEqual({
      PG_PORT_5432: 'tcp://h:15432',
      PG_PORT_5432_TCP: 'tcp://h:15432',
      PG_PORT_5432_TCP_ADDR: 'h',
      PG_PORT_5432_TCP_PORT: '15432',
      PG_PORT_5432_TCP_PROTO: 'tcp',
    });
  });
});

describe('ContainerAgent.converge', () => {
  class FakeRuntime implements ContainerRuntime {
    containers: ObservedContainer[] = [];
    failStart = true;
    log: string[] = [];
    async list() {
      return this.containers.map((c) => ({ ...c }));
    }
    async create(s: DockerSpec, hash: string) {
      this.log.push(`create ${s.name}`);
      const c: ObservedContainer = { id: `id${this.log.length}`, name: s.name, hash, state: 'created', image: s.image };
      this.containers.push(c);
      if (this.failStart) throw new Error('volume dbvol is in use by a container on host 10.0.0.2.');
      c.state = 'running';
    }
    async start(id: string) {
      this.log.push(`start ${id}`);
      const c = this.containers.find((x) => x.id === id);
      if (c) c.state = 'running';
    }
    async remove(id: string) {
      this.log.push(`remove ${id}`);
      this.containers = this.containers.filter((x) => x.id !== id);
    }
  }

  test('a start that fails (volume still held elsewhere) is retried, then reported running', async () => {
    const db = make({
      name: 'db',
      node_uuid: ME,
      image: 'busybox',
      volumes: [{ dataset_id: D1, mountpoint: '/data' }],
    });
    const reports: unknown[] = [];
    const client: AgentClient = {
      waitForCluster: async () => ({ generation: 'g', configuration_tag: 'v1', datasets: [], leases: [], nodes: [] }),
      listContainers: async () => [db],
      listDatasets: async () => datasets,
      listNodes: async () => nodes,
      reportContainers: async (_n, r) => {
        reports.push(r);
        return { generation: 'g' };
      },
    };
    const runtime = new FakeRuntime();
    const clock = new ManualClock();
    const logger = winston.createLogger({ silent: true });
    const agent = new ContainerAgent({ client, runtime, nodeUuid: ME, logger, clock });
    expect(await agent.converge()).toBe(false);
    runtime.failStart = false;
    // Not retried before its backoff (1 s at most for the first failure) is over.
    expect(await agent.converge()).toBe(false);
    expect(runtime.log).toEqual(['create db']);
    await clock.advance(1_000);
    expect(await agent.converge()).toBe(true);
    expect(runtime.log).toEqual(['create db', 'start id1']);
    const error = {
      code: 'VOLUME_UNAVAILABLE',
      message: 'volume dbvol is in use by a container on host 10.0.0.2.',
      attempts: 1,
      since: new Date(1_000_000).toISOString(),
    };
    // The container in Docker runs the configured db: each report names that configuration.
    const config = containerConfigId(db);
    expect(reports).toEqual([
      { containers: [{ name: 'db', image: 'busybox', running: false, error, config }] },
      { containers: [{ name: 'db', image: 'busybox', running: false, error, config }] },
      { containers: [{ name: 'db', image: 'busybox', running: true, config }] },
    ]);
    expect(reportOf([])).toEqual({ containers: [] });
  });

  test('reportOf: the desired spec is reported with its image as configured, another spec with what Docker lists', () => {
    // Docker lists a container's image by ID once its tag has moved; flocker-deploy --wait compares names (F4).
    const running = { ...seen('db', 'running', 'h-db'), image: 'sha256:0123' };
    expect(reportOf([running], new Map(), [want('db')]).containers).toEqual([
      { name: 'db', image: 'busybox', running: true },
    ]);
    const old = { ...seen('db', 'running', 'h-old'), image: 'tiny' };
    expect(
      reportOf([old], new Map(), [{ ...want('db'), spec: { ...spec('db'), image: 'nosuchimage' } }]).containers,
    ).toEqual([{ name: 'db', image: 'tiny', running: true }]);
  });

  test('a missing image: reported with its code and message, retried with a growing, bounded backoff', async () => {
    const web = make({ name: 'web', node_uuid: ME, image: 'nope:1' });
    const reports: ContainerReport[] = [];
    let configured = [web];
    const client: AgentClient = {
      waitForCluster: async () => ({ generation: 'g', configuration_tag: 'v1', datasets: [], leases: [], nodes: [] }),
      listContainers: async () => configured,
      listDatasets: async () => datasets,
      listNodes: async () => nodes,
      reportContainers: async (_n, r) => {
        reports.push(r);
        return { generation: 'g' };
      },
    };
    const runtime = new FakeRuntime();
    let creates = 0;
    runtime.create = async () => {
      creates++;
      throw Object.assign(new Error('(HTTP code 404) no such container - No such image: nope:1'), {
        statusCode: 404,
        json: { message: 'No such image: nope:1' },
      });
    };
    const clock = new ManualClock();
    const failureBackoff = { initialMs: 1_000, maxMs: 8_000, jitter: false };
    const logger = winston.createLogger({ silent: true });
    const agent = new ContainerAgent({ client, runtime, nodeUuid: ME, logger, clock, failureBackoff });
    // A turn every 100 ms for a minute: tries at 0, 1, 3, 7, 15, 23, 31, ... s (1, 2, 4, 8, 8, ... s apart).
    const tries: number[] = [];
    for (let t = 0; t <= 60_000; t += 100) {
      const before = creates;
      await agent.converge();
      if (creates > before) tries.push(t);
      await clock.advance(100);
    }
    expect(tries.slice(0, 7)).toEqual([0, 1_000, 3_000, 7_000, 15_000, 23_000, 31_000]);
    expect(tries.length).toBe(10);
    expect(agent.nextTurnInMs(5_000)).toBeLessThanOrEqual(5_000);
    expect(reports.at(-1)).toEqual({
      containers: [
        {
          name: 'web',
          image: 'nope:1',
          running: false,
          error: { code: 'IMAGE_NOT_FOUND', message: 'No such image: nope:1', attempts: 10, since: expect.any(String) },
        },
      ],
    });
    // A corrected configuration is tried at once, and the error goes once it runs.
    configured = [{ ...web, image: 'busybox' }];
    runtime.create = FakeRuntime.prototype.create.bind(runtime);
    runtime.failStart = false;
    await agent.converge();
    expect(reports.at(-1)).toEqual({
      containers: [
        { name: 'web', image: 'busybox', running: true, config: containerConfigId({ ...web, image: 'busybox' }) },
      ],
    });
    // Deleted from the configuration: forgotten.
    configured = [];
    await agent.converge();
    expect(agent.currentFailures.size).toBe(0);
  });

  test('a volume held elsewhere (a move) is retried at least every 5 s', async () => {
    const db = make({
      name: 'db',
      node_uuid: ME,
      image: 'busybox',
      volumes: [{ dataset_id: D1, mountpoint: '/data' }],
    });
    const client: AgentClient = {
      waitForCluster: async () => ({ generation: 'g', configuration_tag: 'v1', datasets: [], leases: [], nodes: [] }),
      listContainers: async () => [db],
      listDatasets: async () => datasets,
      listNodes: async () => nodes,
      reportContainers: async () => ({ generation: 'g' }),
    };
    const runtime = new FakeRuntime();
    const clock = new ManualClock();
    const failureBackoff = { initialMs: 1_000, maxMs: 60_000, jitter: false };
    const logger = winston.createLogger({ silent: true });
    const agent = new ContainerAgent({ client, runtime, nodeUuid: ME, logger, clock, failureBackoff });
    runtime.start = async (id: string) => {
      runtime.log.push(`start ${id}`);
      throw new Error('volume dbvol is in use by a container on host 10.0.0.2.');
    };
    const tries: number[] = [];
    for (let t = 0; t <= 30_000; t += 100) {
      const before = runtime.log.length;
      await agent.converge();
      if (runtime.log.length > before) tries.push(t);
      await clock.advance(100);
    }
    expect(tries.slice(0, 5)).toEqual([0, 1_000, 3_000, 7_000, 12_000]);
    expect(agent.currentFailures.get('db')?.error.code).toBe('VOLUME_UNAVAILABLE');
  });
});

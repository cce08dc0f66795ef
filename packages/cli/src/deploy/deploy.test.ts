import {
  type ComposeRequest,
  type ContainerConfiguration,
  type ContainerErrorCode,
  type ContainerState,
  type FlockerClient,
  parseApplicationFile,
} from '@flocker/api';
import { EXIT } from '../errors';
import { buildDeployCli, controlUrl, notYetRunning } from './command';
import { containerConfig } from '../testing/containers';
import { runDeploy } from '../testing/deploy';
import { DeployFileError, parseYaml, readDeployFiles } from './files';
import { deployPlan, describeStuck, errorStreaks, formatPlan, stuckContainers } from './plan';

const A = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
const B = 'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb';

const APP = `version: 1
applications:
  db:
    image: busybox
    ports:
      - internal: 80
        external: 8080
    volume:
      mountpoint: /data
      maximum_size: 100M
  client:
    image: busybox
    links:
      - alias: db
        local_port: 80
        remote_port: 8080
`;
const DEPLOY = `version: 1
nodes:
  10.0.0.1: [db]
  10.0.0.2: client
`;

function message(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof DeployFileError) return err.message;
    throw err;
  }
  return 'ok';
}

describe('readDeployFiles', () => {
  test('valid files come back as JSON for /v1/configuration/_compose', () => {
    const docs = readDeployFiles({ text: DEPLOY, file: 'deployment.yml' }, { text: APP, file: 'application.yml' });
    expect(docs.deployment).toEqual({ version: 1, nodes: { '10.0.0.1': ['db'], '10.0.0.2': 'client' } });
    expect(Object.keys(docs.applications['applications'] as object)).toEqual(['db', 'client']);
  });

  test.each([
    [
      'a bad value names its line',
      APP.replace('external: 8080', 'external: eighty'),
      /application\.yml:7:\d+: applications\.db\.ports\.0\.external: /,
    ],
    [
      'an unknown key names its line',
      APP.replace('    image: busybox\n    links', '    imag: busybox\n    links'),
      /application\.yml:1[12]:\d+: /,
    ],
    [
      'a bad size names its line',
      APP.replace('100M', 'lots'),
      /application\.yml:10:\d+: applications\.db\.volume\.maximum_size: size "lots"/,
    ],
    [
      'invalid YAML names its line',
      APP.replace('  client:', '  client: [\n'),
      /application\.yml:\d+:\d+: invalid YAML/,
    ],
  ])('%s', (_what, app, expected) => {
    expect(
      message(() => readDeployFiles({ text: DEPLOY, file: 'deployment.yml' }, { text: app, file: 'application.yml' })),
    ).toMatch(expected);
  });

  test('the deployment file: wrong version, unknown application, one node per application', () => {
    const read = (dep: string) =>
      message(() => readDeployFiles({ text: dep, file: 'deployment.yml' }, { text: APP, file: 'application.yml' }));
    expect(read(DEPLOY.replace('version: 1', 'version: 2'))).toMatch(/deployment\.yml:1:\d+: version: /);
    expect(read(DEPLOY.replace('client', 'nope'))).toMatch(
      /deployment\.yml:4:\d+: application "nope" is not defined in application\.yml/,
    );
    expect(read(`${DEPLOY}  10.0.0.3: [db]\n`)).toMatch(
      /deployment\.yml:5:\d+: nodes\.10\.0\.0\.3\.0: application "db" is already deployed/,
    );
  });

  test('a Docker Compose file is accepted as the application file', () => {
    const compose = `db:
  image: busybox
  ports: ["8080:80"]
  volumes: [/data]
  environment: [A=1]
  restart: always
client:
  image: busybox
  links: ["db:database"]
  command: cat /dev/null
`;
    const docs = readDeployFiles({ text: DEPLOY, file: 'd.yml' }, { text: compose, file: 'docker-compose.yml' });
    const apps = parseApplicationFile(docs.applications);
    expect(apps.ok && apps.value).toEqual({
      db: {
        image: 'busybox',
        ports: [{ internal: 80, external: 8080 }],
        environment: { A: '1' },
        links: [],
        volume: { mountpoint: '/data' },
        restart_policy: { name: 'always' },
      },
      client: {
        image: 'busybox',
        ports: [],
        environment: {},
        links: [{ alias: 'database', local_port: 80, remote_port: 8080 }],
        restart_policy: { name: 'never' },
        command_line: ['/bin/sh', '-c', 'cat /dev/null'],
      },
    });
    const v3 = parseApplicationFile(
      parseYaml(`version: "3"\nservices:\n  web:\n    image: nginx\n    ports: ["80"]\n`, 'c.yml').json,
    );
    expect(v3).toEqual({
      ok: false,
      issues: [{ path: ['services', 'web', 'ports', 0], message: expect.stringContaining('external:internal') }],
    });
  });
});

describe('controlUrl / notYetRunning', () => {
  test.each([
    ['10.0.0.1', false, 'https://10.0.0.1:4523'],
    ['10.0.0.1:4600', false, 'https://10.0.0.1:4600'],
    ['control.example', true, 'http://control.example:4523'],
    ['::1', false, 'https://[::1]:4523'],
    ['http://x:1', false, 'http://x:1'],
  ])('%s', (host, insecure, url) => {
    expect(controlUrl(host, 4523, insecure)).toBe(url);
  });

  test('a container counts once it runs on its configured node', () => {
    const c = (name: string, node: string) => ({
      name,
      node_uuid: node,
      image: 'i',
      ports: [],
      environment: {},
      links: [],
      volumes: [],
      restart_policy: { name: 'never' as const },
    });
    const configured = [c('db', A), c('client', B)];
    expect(
      notYetRunning(configured, [
        { name: 'db', node_uuid: B, image: 'i', running: true },
        { name: 'client', node_uuid: B, image: 'i', running: true },
      ]),
    ).toEqual(['db']);
    expect(
      notYetRunning(configured, [
        { name: 'db', node_uuid: A, image: 'i', running: true },
        { name: 'client', node_uuid: B, image: 'i', running: false },
      ]),
    ).toEqual(['client']);
  });
});

describe('the plan of a deployment (issue 21)', () => {
  const D = '11111111-1111-4111-8111-111111111111';
  const nodes = [
    { uuid: A, host: '10.0.0.1' },
    { uuid: B, host: '10.0.0.2' },
  ];
  const datasets = [{ dataset_id: D, primary: A, metadata: { name: 'db' }, deleted: false }];
  const configured = (name: string, node: string, patch: Partial<ContainerConfiguration> = {}) => ({
    name,
    node_uuid: node,
    image: 'busybox',
    ports: [],
    environment: {},
    links: [],
    volumes: [],
    restart_policy: { name: 'never' as const },
    ...patch,
  });
  const files = readDeployFiles({ text: DEPLOY, file: 'deployment.yml' }, { text: APP, file: 'application.yml' });

  test('everything new: all added', () => {
    const plan = deployPlan(files.apps, files.placement, [], nodes, []);
    expect(formatPlan(plan, 'deployment.yml')).toEqual([
      'plan: 2 to add, 0 to change, 0 to remove, 0 unchanged',
      '  + db: busybox on 10.0.0.1',
      '  + client: busybox on 10.0.0.2',
    ]);
  });

  test('a second file: what it does not name is removed, a moved one changes, the same one is unchanged', () => {
    const now = [
      configured('db', B, {
        ports: [{ internal: 80, external: 8080 }],
        volumes: [{ dataset_id: D, mountpoint: '/data' }],
      }),
      configured('client', B, { links: [{ alias: 'db', local_port: 80, remote_port: 8080 }] }),
      configured('web', A, { image: 'nginx' }),
    ];
    const plan = deployPlan(files.apps, files.placement, now, nodes, datasets);
    expect(formatPlan(plan, 'deployment.yml')).toEqual([
      'plan: 0 to add, 1 to change, 1 to remove, 1 unchanged',
      '  ~ db: node 10.0.0.2 → 10.0.0.1 (its volume moves with it)',
      '  - web: nginx on 10.0.0.1 (configured now, not in deployment.yml: removed)',
      '  = client: busybox on 10.0.0.2',
    ]);
  });

  test('each kind of change is named; an unknown node is flagged', () => {
    const now = [
      configured('db', A, { image: 'old', volumes: [{ dataset_id: D, mountpoint: '/var' }], command_line: ['x'] }),
      configured('client', B, { environment: { A: '1' }, restart_policy: { name: 'always' } }),
    ];
    const dep = readDeployFiles(
      { text: 'version: 1\nnodes:\n  10.0.0.1: [db]\n  10.9.9.9: [client]\n', file: 'd.yml' },
      { text: APP, file: 'a.yml' },
    );
    const plan = deployPlan(dep.apps, dep.placement, now, nodes, datasets);
    expect(plan.changed.map((e) => [e.name, e.changes])).toEqual([
      ['db', ['image old → busybox', 'ports', 'volume db:/var → db:/data', 'command_line']],
      ['client', ['node 10.0.0.2 → 10.9.9.9 (not known)', 'environment', 'links', 'restart_policy']],
    ]);
    expect(plan.unknownNodes).toEqual(['10.9.9.9']);
    expect(formatPlan(plan, 'd.yml').at(-1)).toBe('  ! d.yml names node 10.9.9.9, which is not known');
  });

  test("Compose's name:/path volume is compared by name", () => {
    const compose = readDeployFiles(
      { text: 'version: 1\nnodes:\n  10.0.0.1: [pg]\n', file: 'd.yml' },
      { text: 'pg:\n  image: postgres\n  volumes: ["pgdata:/var/lib/postgresql"]\n', file: 'c.yml' },
    );
    const now = [
      configured('pg', A, { image: 'postgres', volumes: [{ dataset_id: D, mountpoint: '/var/lib/postgresql' }] }),
    ];
    expect(deployPlan(compose.apps, compose.placement, now, nodes, datasets).changed[0]?.changes).toEqual([
      'volume db:/var/lib/postgresql → pgdata:/var/lib/postgresql',
    ]);
  });
});

describe('errors the container agents report while --wait waits (issue 21)', () => {
  const db = {
    name: 'db',
    node_uuid: A,
    image: 'nope:1',
    ports: [],
    environment: {},
    links: [],
    volumes: [],
    restart_policy: { name: 'never' as const },
  };
  const error = (code: ContainerErrorCode, since = 's1') => ({
    code,
    message: 'No such image: nope:1',
    attempts: 1,
    since,
  });
  const state = (code: ContainerErrorCode, since?: string) => [
    { name: 'db', node_uuid: A, image: 'nope:1', running: false, error: error(code, since) },
  ];

  test('an error that needs someone to act stops the wait; a passing one does not', () => {
    const none = new Set<string>();
    expect(stuckContainers([db], state('IMAGE_NOT_FOUND'), none, new Map())).toHaveLength(1);
    expect(stuckContainers([db], state('VOLUME_UNAVAILABLE'), none, new Map())).toEqual([]);
    // On another node (the old one of a moved container): not this deployment's.
    expect(stuckContainers([{ ...db, node_uuid: B }], state('IMAGE_NOT_FOUND'), none, new Map())).toEqual([]);
    const [stuck] = stuckContainers([db], state('IMAGE_NOT_FOUND'), none, new Map());
    expect(stuck && describeStuck(stuck, '10.0.0.1')).toBe(
      'db cannot start on 10.0.0.1: IMAGE_NOT_FOUND: No such image: nope:1 (the container agent does not pull images: pull it on that node (docker pull nope:1) or correct image: in the application file)',
    );
  });

  test("a changed container's error from before the deployment is the old configuration's", () => {
    const before = errorStreaks(state('IMAGE_NOT_FOUND', 'old'));
    expect(before).toEqual(new Map([[`db@${A}`, 'old']]));
    const changed = new Set(['db']);
    expect(stuckContainers([db], state('IMAGE_NOT_FOUND', 'old'), changed, before)).toEqual([]);
    expect(stuckContainers([db], state('IMAGE_NOT_FOUND', 'new'), changed, before)).toHaveLength(1);
    // Unchanged by this deployment: the error stands.
    expect(stuckContainers([db], state('IMAGE_NOT_FOUND', 'old'), new Set(), before)).toHaveLength(1);
  });
});

describe('flocker-deploy against a control service (fake client)', () => {
  const node = (uuid: string, host: string) => ({ uuid, host });
  function fake(stateAfter: ContainerState[]) {
    const calls: string[] = [];
    const client = {
      listContainers: async () => [],
      listNodes: async () => [node(A, '10.0.0.1'), node(B, '10.0.0.2')],
      listDatasets: async () => [],
      listContainerState: async () => (calls.includes('compose') ? stateAfter : []),
      compose: async (req: ComposeRequest) => {
        calls.push('compose');
        expect(Object.keys(req).sort()).toEqual(['applications', 'deployment']);
        return [containerConfig('db', A, 'busybox'), containerConfig('client', B, 'busybox')];
      },
    } as unknown as FlockerClient;
    return { calls, client };
  }
  const run = (args: string[], client: FlockerClient) => runDeploy(args, client, DEPLOY, APP);

  test('--dry-run prints the plan and changes nothing', async () => {
    const { calls, client } = fake([]);
    const r = await run(['--dry-run'], client);
    expect(r.out).toEqual([
      'plan: 2 to add, 0 to change, 0 to remove, 0 unchanged',
      '  + db: busybox on 10.0.0.1',
      '  + client: busybox on 10.0.0.2',
      'dry run: nothing changed',
    ]);
    expect(calls).toEqual([]);
    expect(r.code).toBe(0);
  });

  test('--wait fails early with the reason a container agent reports', async () => {
    const stuck: ContainerState = {
      name: 'db',
      node_uuid: A,
      image: 'busybox',
      running: false,
      error: { code: 'IMAGE_NOT_FOUND', message: 'No such image: busybox', attempts: 1, since: 's' },
    };
    const { calls, client } = fake([stuck]);
    const started = Date.now();
    const r = await run(['--wait', '--timeout', '60'], client);
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(calls).toEqual(['compose']);
    expect(r.out[0]).toBe('plan: 2 to add, 0 to change, 0 to remove, 0 unchanged');
    expect(r.err.join('\n')).toMatch(
      /^flocker-deploy: db cannot start on 10\.0\.0\.1: IMAGE_NOT_FOUND: No such image: busybox/,
    );
    expect(r.code).toBe(EXIT.FAILURE);
  });

  test('--help says that a deployment removes the applications it does not name', async () => {
    const out: string[] = [];
    const parser = buildDeployCli(['--help'], { out: (t) => out.push(t), err: () => undefined, readFile: () => '' });
    const help = await new Promise<string>((resolve) => {
      void parser
        .exitProcess(false)
        .parse(['--help'], {}, (_e: unknown, _a: unknown, output: string) => resolve(output));
    });
    expect(help).toMatch(/does not name is REMOVED/);
    expect(help).toMatch(/--dry-run/);
  });
});

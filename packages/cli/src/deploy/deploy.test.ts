import { parseApplicationFile } from '@flocker/api';
import { controlUrl, notYetRunning } from './command';
import { DeployFileError, parseYaml, readDeployFiles } from './files';

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

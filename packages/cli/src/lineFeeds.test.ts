/**
 * A line feed in a value other parties chose (a node's reported host, mount path or error message, any client's
 * volume or snapshot name, a container's image, environment names or command) cannot fake a line of the CLI's text
 * output (closing-s19 follow-up of T6 F3): the detail printers, one-line results and --wait's progress lines show it
 * as \u000a, as 580c244 did for volumes show, describe and status.
 */
import type { ClusterSnapshot, ContainerConfiguration, ContainerState, FlockerClient } from '@flocker/api';
import { A, actionError, B, D1, dataset, mounted, node, snapshot } from '@flocker/web-ui/testing';
import { containerConfig } from './testing/containers';
import { runDeploy } from './testing/deploy';
import { runCli } from './testing/runCli';

const LF = '\nFAKE';
const S1 = '51515151-0000-4000-8000-000000000001';
const HOST = `h${LF} host`;
const cluster: ClusterSnapshot = snapshot({
  datasets: [dataset(D1, `db${LF} name`, A)],
  nodes: [
    node(A, HOST, {
      manifestations: [mounted(D1, `/m${LF} path`)],
      errors: [actionError(D1, { message: `boom${LF} error` })],
    }),
    node(B, `b${LF} host`),
  ],
  leases: [{ dataset_id: D1, node_uuid: A, expires: null, holders: [`docker${LF} holder`] }],
});
const snap = { snapshot_id: S1, dataset_id: D1, metadata: { name: `s${LF} snap` }, created_at: '2026-12-06T00:00:00Z' };
const container: ContainerConfiguration = {
  name: 'web',
  node_uuid: A,
  image: `nginx${LF} image`,
  ports: [],
  environment: { [`K${LF} env`]: 'v' },
  links: [],
  volumes: [{ dataset_id: D1, mountpoint: `/data${LF} mount` }],
  restart_policy: { name: 'never' },
  command_line: ['sh', `-c${LF} command`],
};
const state: ContainerState = {
  name: 'web',
  node_uuid: A,
  image: `nginx${LF} image`,
  running: false,
  error: { code: 'DOCKER_ERROR', message: `no${LF} container error`, attempts: 1, since: 'x' },
};

const client = () =>
  ({
    version: async () => ({ flocker: 'x' }),
    listDatasets: async () => cluster.datasets,
    waitForCluster: async () => cluster,
    listNodes: async () => cluster.nodes.map((n) => ({ uuid: n.uuid, host: n.host })),
    listLeases: async () => cluster.leases,
    listSnapshots: async () => [snap],
    listEvents: async () => [],
    listContainers: async () => [container],
    listContainerState: async () => [state],
    deleteSnapshot: async () => snap,
    createSnapshot: async () => ({ ...snap, snapshot_id: S1.replace('1', '2'), metadata: { name: 'n' } }),
    updateDataset: async () => ({ ...cluster.datasets[0], primary: B }),
    deleteDataset: async () => ({ ...cluster.datasets[0], deleted: true }),
  }) as unknown as FlockerClient;

/** No printed line starts with what followed a value's line feed. */
const fakesNoLine = (text: string): void => expect(text.split('\n').filter((l) => /^\s*FAKE/.test(l))).toEqual([]);

describe('a line feed inside a value does not start a line', () => {
  for (const argv of [
    ['volumes', 'show', D1],
    ['describe', 'volume', D1],
    ['volumes', 'list', '-o', 'name'],
    ['snapshots', 'list', '-o', 'name'],
    ['snapshots', 'show', S1],
    ['snapshots', 'list'],
    ['containers', 'show', 'web'],
    ['containers', 'list'],
    ['snapshots', 'destroy', S1, '--no-wait'],
    ['snapshots', 'create', D1, '--no-wait'],
    ['snapshots', 'create', D1, '--timeout', '0'],
    ['volumes', 'move', D1, B, '--no-wait'],
    ['volumes', 'move', D1, B, '--timeout', '0'],
    ['leases', 'list'],
    ['nodes', 'list'],
    ['status'],
  ])
    it(`flocker ${argv.join(' ')}`, async () => {
      const r = await runCli(client, argv);
      fakesNoLine(r.out);
      fakesNoLine(r.err);
      // The value is still shown, escaped.
      expect(`${r.out}\n${r.err}`).toMatch(/\\u000aFAKE|^$/m);
    });
});

describe('flocker-deploy: a line feed in a host, an image or an agent error does not start a line', () => {
  const APP = 'version: 1\napplications:\n  web:\n    image: nginx\n';
  const DEPLOY = 'version: 1\nnodes:\n  10.0.0.1: web\n';
  const deployClient = (state: ContainerState[]) => {
    let composed = false;
    return {
      // Configured by another client, not in this deployment: listed as removed.
      listContainers: async () => [containerConfig('old', B, `busybox${LF} image`)],
      listNodes: async () => [
        { uuid: A, host: '10.0.0.1' },
        { uuid: B, host: `b${LF} host` },
      ],
      listDatasets: async () => [],
      // Reported once deployed (an error from before the deployment would be the old configuration's).
      listContainerState: async () => (composed ? state : []),
      compose: async () => {
        composed = true;
        return [{ ...containerConfig('web', A, 'nginx'), image: `nginx${LF} image` }];
      },
    } as unknown as FlockerClient;
  };

  it('the plan, the placed containers and a stuck container', async () => {
    const stuck: ContainerState = {
      name: 'web',
      node_uuid: A,
      image: 'nginx',
      running: false,
      error: { code: 'IMAGE_NOT_FOUND', message: `No such image${LF} error`, attempts: 1, since: 's' },
    };
    const r = await runDeploy(['--wait', '--timeout', '60'], deployClient([stuck]), DEPLOY, APP);
    expect(r.out.join('\n')).toMatch(/old: busybox\\u000aFAKE image/);
    fakesNoLine(r.out.join('\n'));
    fakesNoLine(r.err.join('\n'));
    expect(r.err.join('\n')).toMatch(/No such image\\u000aFAKE error/);
  });

  it('the reasons a wait that times out names', async () => {
    const failing: ContainerState = {
      name: 'web',
      node_uuid: A,
      image: `nginx${LF} image`,
      running: false,
      error: { code: 'VOLUME_UNAVAILABLE', message: `not yet${LF} reason`, attempts: 1, since: 's' },
    };
    const r = await runDeploy(['--wait', '--timeout', '1'], deployClient([failing]), DEPLOY, APP);
    expect(r.err.join('\n')).toMatch(/timed out/);
    fakesNoLine(r.out.join('\n'));
    fakesNoLine(r.err.join('\n'));
  }, 30_000);
});

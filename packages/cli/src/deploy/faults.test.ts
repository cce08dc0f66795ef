/**
 * flocker-deploy under faults (review T8, tester TD, session 20; /work/notes/s20-TD-findings.md):
 * TD-2: two deploys racing — the compose is conditional on the configuration the plan was made from (412: exit 4, nothing
 * applied), and --wait ends (exit 4) when the configuration it waits for was replaced, naming where it is now;
 * TD-4: a dead node's last report does not count as running (exit 1 naming the node as dead), and the plan neither shows
 * a move for a container that stays on its dead node nor calls that node unknown;
 * TD-1 (the CLI half): a container with restart_policy never that exited ends the wait (exit 1) instead of its timeout.
 */
import {
  type ComposeRequest,
  type ContainerConfiguration,
  containerConfigId,
  type ContainerState,
  FlockerApiError,
  type FlockerClient,
  type WriteOptions,
} from '@flocker/api';
import { EXIT } from '../errors';
import { containerConfig } from '../testing/containers';
import { runDeploy } from '../testing/deploy';
import { clientVersion } from '../version';
import {
  exitedForGood,
  finishedJobs,
  nodeVerdicts,
  onDeadNodes,
  planNodes,
  replacedWhileWaiting,
  reportsExitCodesOf,
  unlistedNodes,
} from './waitVerdict';

const A = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
const B = 'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb';
const C = 'cccccccc-cccc-4ccc-8ccc-cccccccccccc';
const APP = 'version: 1\napplications:\n  db:\n    image: busybox\n';
const HOSTS: Record<string, string> = { [A]: '10.0.0.1', [B]: '10.0.0.2', [C]: '10.0.0.3' };

interface Cluster {
  tag: string;
  configured: ContainerConfiguration[];
  state: ContainerState[];
  dead: Set<string>;
  /** The release every node's dataset agent reports (GET /v1/state/nodes `version`); absent: none reported. */
  version?: string;
  /** The restart policy of what compose configures (default never). */
  policy?: ContainerConfiguration['restart_policy'];
  composes: Array<{ req: ComposeRequest; options: WriteOptions | undefined }>;
  calls: string[];
}

/** A control service in memory: three nodes, a configuration with a tag, conditional compose (412 on another tag). */
function fakeCluster(init: Partial<Cluster> = {}): { cluster: Cluster; client: FlockerClient } {
  const cluster: Cluster = { tag: 'v7', configured: [], state: [], dead: new Set(), composes: [], calls: [], ...init };
  const nodes = () =>
    Object.entries(HOSTS).map(([uuid, host]) => ({
      uuid,
      host,
      alive: !cluster.dead.has(uuid),
      ...(cluster.dead.has(uuid) ? { dead_since: '2026-12-06T12:00:00.000Z' } : {}),
      ...(cluster.version !== undefined ? { version: cluster.version } : {}),
    }));
  const client = {
    waitForCluster: async () => {
      cluster.calls.push('view');
      return { generation: 'g', configuration_tag: cluster.tag, nodes: nodes(), datasets: [], leases: [] } as unknown;
    },
    listContainers: async () => {
      cluster.calls.push('containers');
      return cluster.configured;
    },
    listNodes: async () => nodes().filter((n) => n.alive),
    listDatasets: async () => [],
    listContainerState: async () => cluster.state,
    compose: async (req: ComposeRequest, options?: WriteOptions) => {
      cluster.composes.push({ req, options });
      if (options?.ifConfigurationMatches !== undefined && options.ifConfigurationMatches !== cluster.tag)
        throw new FlockerApiError(412, 'CONFIGURATION_CHANGED', 'The configuration changed since tag …');
      const key = Object.keys((req.deployment['nodes'] as Record<string, unknown>) ?? {})[0] ?? '';
      const uuid = Object.keys(HOSTS).find((u) => HOSTS[u] === key) ?? key;
      const db = containerConfig('db', uuid, 'busybox');
      cluster.configured = [cluster.policy !== undefined ? { ...db, restart_policy: cluster.policy } : db];
      cluster.tag = `v${Number(cluster.tag.slice(1)) + 1}`;
      return cluster.configured;
    },
  };
  return { cluster, client: client as unknown as FlockerClient };
}

const on = (host: string) => `version: 1\nnodes:\n  ${host}: [db]\n`;
const running = (node: string, c: ContainerConfiguration, over: Partial<ContainerState> = {}): ContainerState => ({
  name: c.name,
  node_uuid: node,
  image: c.image,
  running: true,
  config: containerConfigId(c),
  ...over,
});

describe('TD-2: deploys racing', () => {
  test('the compose is conditional on the tag of the view read before the containers the plan is made from', async () => {
    const { cluster, client } = fakeCluster({ configured: [containerConfig('db', A, 'busybox')] });
    const r = await runDeploy([], client, on('10.0.0.2'), APP);
    expect(r.code).toBe(0);
    expect(cluster.calls.slice(0, 2)).toEqual(['view', 'containers']);
    expect(cluster.composes[0]?.options).toEqual({ ifConfigurationMatches: 'v7' });
  });

  test('another deploy changed the containers since the plan: exit 4, nothing applied, a message that says so', async () => {
    const { cluster, client } = fakeCluster({ configured: [containerConfig('db', A, 'busybox')] });
    const original = client.compose.bind(client);
    // Another deploy commits between this one's reads and its compose.
    (client as { compose: FlockerClient['compose'] }).compose = async (req, options) => {
      if (cluster.tag === 'v7') {
        cluster.tag = 'v8';
        cluster.configured = [containerConfig('db', C, 'busybox')];
      }
      return original(req, options);
    };
    const r = await runDeploy(['--wait', '--timeout', '60'], client, on('10.0.0.2'), APP);
    expect(r.code).toBe(EXIT.CONFLICT);
    expect(cluster.configured).toEqual([containerConfig('db', C, 'busybox')]);
    expect(r.err.join('\n')).toMatch(/configuration changed since the plan above was made .*nothing was applied/);
  });

  test('a change that leaves the plan as it was (a lease released): sent again with the new tag, applied', async () => {
    const { cluster, client } = fakeCluster({ configured: [containerConfig('db', A, 'busybox')] });
    const original = client.compose.bind(client);
    (client as { compose: FlockerClient['compose'] }).compose = async (req, options) => {
      if (cluster.tag === 'v7') cluster.tag = 'v8';
      return original(req, options);
    };
    const r = await runDeploy([], client, on('10.0.0.2'), APP);
    expect(r.code).toBe(0);
    expect(cluster.composes.map((x) => x.options)).toEqual([
      { ifConfigurationMatches: 'v7' },
      { ifConfigurationMatches: 'v8' },
    ]);
    expect(cluster.configured).toEqual([containerConfig('db', B, 'busybox')]);
  });

  test('the configuration changing on every try: given up after a few, exit 4', async () => {
    const { cluster, client } = fakeCluster({ configured: [containerConfig('db', A, 'busybox')] });
    const original = client.compose.bind(client);
    (client as { compose: FlockerClient['compose'] }).compose = async (req, options) => {
      cluster.tag = `${cluster.tag}x`;
      return original(req, options);
    };
    const r = await runDeploy([], client, on('10.0.0.2'), APP);
    expect(r.code).toBe(EXIT.CONFLICT);
    expect(cluster.composes).toHaveLength(5);
  });

  test('--wait ends (exit 4) once another deploy put the container elsewhere, naming where', async () => {
    const { cluster, client } = fakeCluster({ configured: [containerConfig('db', A, 'busybox')] });
    const listState = client.listContainerState.bind(client);
    let polls = 0;
    (client as { listContainerState: FlockerClient['listContainerState'] }).listContainerState = async () => {
      // By the wait's second poll another deploy has put db on C (and it runs there).
      if (++polls === 3) {
        cluster.configured = [containerConfig('db', C, 'busybox')];
        cluster.state = [running(C, containerConfig('db', C, 'busybox'))];
      }
      return listState();
    };
    const started = Date.now();
    const r = await runDeploy(['--wait', '--timeout', '120'], client, on('10.0.0.2'), APP);
    expect(r.code).toBe(EXIT.CONFLICT);
    expect(r.err.join('\n')).toMatch(
      /replaced while waiting.*db is now configured on 10\.0\.0\.3 \(this deploy put it on 10\.0\.0\.2\)/,
    );
    expect(Date.now() - started).toBeLessThan(60_000);
  });

  test('replacedWhileWaiting: moved, changed, removed; the same configuration is not replaced', () => {
    const db = containerConfig('db', B, 'busybox');
    expect(replacedWhileWaiting([db], [containerConfig('db', B, 'busybox')])).toEqual([]);
    expect(replacedWhileWaiting([db], [containerConfig('db', C, 'busybox')]).map((r) => r.now?.node_uuid)).toEqual([C]);
    expect(replacedWhileWaiting([db], [containerConfig('db', B, 'nginx')]).map((r) => r.now?.image)).toEqual(['nginx']);
    expect(replacedWhileWaiting([db], [])).toEqual([{ name: 'db', was: db, now: undefined }]);
  });
});

describe("TD-4: an application's node is dead", () => {
  const dbOnA = containerConfig('db', A, 'busybox');

  test('the plan shows db unchanged on the dead node by address, says it is dead; --wait fails at once naming it', async () => {
    const { client } = fakeCluster({
      configured: [dbOnA],
      dead: new Set([A]),
      // The dead node's last report, still listed by the control service.
      state: [running(A, dbOnA)],
    });
    const started = Date.now();
    const r = await runDeploy(['--wait', '--timeout', '120'], client, on('10.0.0.1'), APP);
    const out = r.out.join('\n');
    expect(out).toMatch(/^plan: 0 to add, 0 to change, 0 to remove, 1 unchanged/);
    expect(out).toContain('= db: busybox on 10.0.0.1');
    expect(out).not.toMatch(/~ db|not known/);
    expect(out).toMatch(/! d\.yml places db on a dead node: node 10\.0\.0\.1 is dead \(declared dead at /);
    expect(out).not.toContain('deployed');
    expect(r.code).toBe(EXIT.FAILURE);
    expect(r.err.join('\n')).toMatch(/db: node 10\.0\.0\.1 is dead .*deploy db to another node/);
    expect(Date.now() - started).toBeLessThan(60_000);
  });

  test('a node declared dead during the wait: its last report stops counting', async () => {
    const { cluster, client } = fakeCluster({ configured: [dbOnA] });
    const listState = client.listContainerState.bind(client);
    let polls = 0;
    (client as { listContainerState: FlockerClient['listContainerState'] }).listContainerState = async () => {
      // After the wait's first poll A is declared dead; its last report said running.
      if (++polls === 3) {
        cluster.dead.add(A);
        cluster.state = [running(A, dbOnA)];
      }
      return listState();
    };
    const r = await runDeploy(['--wait', '--timeout', '120'], client, on('10.0.0.1'), APP);
    expect(r.out.join('\n')).not.toMatch(/dead|deployed/);
    expect(r.code).toBe(EXIT.FAILURE);
    expect(r.err.join('\n')).toMatch(/node 10\.0\.0\.1 is dead/);
  });

  test('a dead node at the address of a live one (reinstalled): the live one is meant', () => {
    const nodes = [
      { uuid: A, host: '10.0.0.1', alive: false },
      { uuid: B, host: '10.0.0.1', alive: true },
      { uuid: C, host: '10.0.0.3', alive: false },
    ];
    expect(planNodes(nodes).map((n) => n.uuid)).toEqual([B, C]);
  });

  test("nodeVerdicts / onDeadNodes: dead on the view's word; listed alive is back; missing from both is unchanged", () => {
    const view = [
      { uuid: A, host: '10.0.0.1', alive: false },
      { uuid: B, host: '10.0.0.2', alive: true },
    ];
    const dead = nodeVerdicts(new Set(), new Set([C]), view);
    expect([...dead]).toEqual([A]);
    expect(onDeadNodes([dbOnA, containerConfig('web', C, 'x')], dead).map((c) => c.name)).toEqual(['db']);
    // Missing from the live list with no view read (a restarted control service): nothing changes either way.
    expect([...nodeVerdicts(new Set([A]), new Set())]).toEqual([A]);
    expect([...nodeVerdicts(new Set(), new Set())]).toEqual([]);
    // Listed alive again (a dead node back, or a stale view): not dead.
    expect([...nodeVerdicts(new Set([A]), new Set([A]))]).toEqual([]);
    expect([...nodeVerdicts(new Set(), new Set([A]), [{ uuid: A, host: '10.0.0.1', alive: false }])]).toEqual([]);
    // The view lists it alive: no longer held dead.
    expect([...nodeVerdicts(new Set([A]), new Set(), [{ uuid: A, host: '10.0.0.1', alive: true }])]).toEqual([]);
  });

  test("unlistedNodes: the waited containers' nodes the live list misses and not held dead, once each", () => {
    const waited = [
      dbOnA,
      containerConfig('web', A, 'x'),
      containerConfig('cache', B, 'x'),
      containerConfig('q', C, 'x'),
    ];
    expect(unlistedNodes(waited, new Set([B]), new Set([C]))).toEqual([A]);
    expect(unlistedNodes(waited, new Set([A, B, C]), new Set())).toEqual([]);
  });
});

describe('TD-1 (CLI half): restart_policy never and the container exited', () => {
  const db = containerConfig('db', B, 'busybox');

  test('--wait fails at once (exit 1) with what to do, not at its timeout (an agent that reports no exit code)', async () => {
    const { cluster, client } = fakeCluster();
    const compose = client.compose.bind(client);
    (client as { compose: FlockerClient['compose'] }).compose = async (req, options) => {
      const answer = await compose(req, options);
      cluster.state = [running(B, db, { running: false })];
      return answer;
    };
    const started = Date.now();
    const r = await runDeploy(['--wait', '--timeout', '120'], client, on('10.0.0.2'), APP);
    expect(r.code).toBe(EXIT.FAILURE);
    expect(r.err.join('\n')).toMatch(
      /db exited \(its exit code is not reported by that node's container agent, a release other than this flocker-deploy's .*; 0 means it finished\) on 10\.0\.0\.2 and its restart_policy is never: it will not be started again/,
    );
    expect(Date.now() - started).toBeLessThan(60_000);
  });

  /** A fake whose compose configures db on B and whose state then shows it stopped without an error (exit code 0). */
  const cleanExit = (init: Partial<Cluster>) => {
    const { cluster, client } = fakeCluster(init);
    const compose = client.compose.bind(client);
    (client as { compose: FlockerClient['compose'] }).compose = async (req, options) => {
      const answer = await compose(req, options);
      cluster.state = [running(B, answer[0] as ContainerConfiguration, { running: false })];
      return answer;
    };
    return client;
  };

  test('review FR-9: a one-shot job that exited with code 0 finished: --wait says so and ends 0', async () => {
    const client = cleanExit({ version: clientVersion() });
    const r = await runDeploy(['--wait', '--timeout', '120'], client, on('10.0.0.2'), APP);
    expect(r.err).toEqual([]);
    expect(r.code).toBe(0);
    const out = r.out.join('\n');
    expect(out).toContain('db: finished on 10.0.0.2: exited with code 0 (restart_policy never: not started again)');
    expect(out).toMatch(/deployed: every container is running on its node, or finished$/);
  });

  test('review FR-9: on-failure and exit code 0 finished too (Docker restarts only a failure)', async () => {
    const client = cleanExit({ version: clientVersion(), policy: { name: 'on-failure', maximum_retry_count: 3 } });
    const r = await runDeploy(['--wait', '--timeout', '120'], client, on('10.0.0.2'), APP);
    expect(r.code).toBe(0);
    expect(r.out.join('\n')).toContain('db: finished on 10.0.0.2: exited with code 0 (restart_policy on-failure');
  });

  test('review FR-9: restart_policy always stopped without an error is not finished: --wait waits for it', async () => {
    const client = cleanExit({ version: clientVersion(), policy: { name: 'always' } });
    const r = await runDeploy(['--wait', '--timeout', '1'], client, on('10.0.0.2'), APP);
    expect(r.code).toBe(EXIT.TIMEOUT);
    expect(r.out.join('\n')).not.toMatch(/finished|deployed/);
  });

  test('finishedJobs / reportsExitCodesOf: stopped without an error, policy not always, a node of this release', () => {
    const stopped = running(B, db, { running: false });
    const same = reportsExitCodesOf([{ uuid: B, version: '1.2.3' }, { uuid: C }], '1.2.3');
    // A: not listed (a control service just restarted): not known.
    expect([same(B), same(C), same(A)]).toEqual([true, false, undefined]);
    expect(reportsExitCodesOf([{ uuid: B, version: 'unknown' }], 'unknown')(B)).toBe(false);
    expect(finishedJobs([db], [stopped], new Set(), same).map((c) => c.name)).toEqual(['db']);
    expect(finishedJobs([db], [stopped], new Set(), () => false)).toEqual([]);
    expect(finishedJobs([db], [stopped], new Set([B]), same)).toEqual([]);
    expect(finishedJobs([{ ...db, restart_policy: { name: 'always' } }], [stopped], new Set(), same)).toEqual([]);
    expect(finishedJobs([db], [running(B, db)], new Set(), same)).toEqual([]);
    const exit = { code: 'DOCKER_ERROR' as const, message: 'exited with code 3', attempts: 1, since: 's' };
    expect(finishedJobs([db], [{ ...stopped, error: exit }], new Set(), same)).toEqual([]);
    // Where exit codes are reported, a stop without an error is a finish, not an exit for good.
    expect(exitedForGood([db], [stopped], new Set(), same)).toEqual([]);
    expect(exitedForGood([db], [{ ...stopped, error: exit }], new Set(), same).map((c) => c.name)).toEqual(['db']);
    // Its node not listed: a stop without an error is judged neither way (until it is listed again).
    const notListed = reportsExitCodesOf([], '1.2.3');
    expect(finishedJobs([db], [stopped], new Set(), notListed)).toEqual([]);
    expect(exitedForGood([db], [stopped], new Set(), notListed)).toEqual([]);
  });

  test('the exit code the container agent reports is named', async () => {
    const { cluster, client } = fakeCluster();
    const compose = client.compose.bind(client);
    (client as { compose: FlockerClient['compose'] }).compose = async (req, options) => {
      const answer = await compose(req, options);
      const error = { code: 'DOCKER_ERROR' as const, message: 'exited with code 3', attempts: 1, since: 's' };
      cluster.state = [running(B, db, { running: false, error })];
      return answer;
    };
    const r = await runDeploy(['--wait', '--timeout', '120'], client, on('10.0.0.2'), APP);
    expect(r.code).toBe(EXIT.FAILURE);
    expect(r.err.join('\n')).toMatch(/db exited with code 3 on 10\.0\.0\.2 and its restart_policy is never/);
  });

  test('exitedForGood: only the deployed configuration, stopped without an error, on a live node, policy never', () => {
    const stopped = running(B, db, { running: false });
    expect(exitedForGood([db], [stopped]).map((c) => c.name)).toEqual(['db']);
    expect(exitedForGood([{ ...db, restart_policy: { name: 'always' } }], [stopped])).toEqual([]);
    expect(exitedForGood([db], [running(B, db)])).toEqual([]);
    // The previous configuration's container, or an agent that names no configuration: not told apart.
    expect(exitedForGood([db], [{ ...stopped, config: '0123456789abcdef' }])).toEqual([]);
    const { config: _none, ...unnamed } = stopped;
    expect(exitedForGood([db], [unnamed])).toEqual([]);
    // A failure to create or start: the agent retries.
    const error = { code: 'DOCKER_ERROR' as const, message: 'x', attempts: 1, since: 's' };
    expect(exitedForGood([db], [{ ...stopped, error }])).toEqual([]);
    // Docker's exit as the container agent reports it since session 20 (TD-1).
    const exit = { ...error, message: 'exited with code 3' };
    expect(exitedForGood([db], [{ ...stopped, error: exit }]).map((c) => c.name)).toEqual(['db']);
    expect(exitedForGood([db], [stopped], new Set([B]))).toEqual([]);
  });
});

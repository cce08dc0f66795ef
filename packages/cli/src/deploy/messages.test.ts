/**
 * flocker-deploy's smaller messages (review T2 finding F9, session 18): an invalid YAML file's error
 * ends in the yaml library's dangling "at line L, column C:"; an unknown node printed the plan with
 * `node X → ?` before the control service refused it; `--wait` gave up with exit 6 when the control
 * service restarted while it waited, though the configuration had been applied.
 */
import { type ContainerState, FlockerApiError, type FlockerClient, LEFT_REPLICA } from '@flocker/api';
import { EXIT } from '../errors';
import { containerConfig } from '../testing/containers';
import { runDeploy } from '../testing/deploy';
import { DeployFileError, parseYaml } from './files';

const A = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
const APP = 'version: 1\napplications:\n  db:\n    image: busybox\n';
const run = (args: string[], client: FlockerClient, deployment: string) => runDeploy(args, client, deployment, APP);

function client(over: Partial<Record<keyof FlockerClient, unknown>>): FlockerClient {
  return {
    listContainers: async () => [],
    listNodes: async () => [{ uuid: A, host: '10.0.0.1' }],
    listDatasets: async () => [],
    listContainerState: async () => [],
    compose: async () => [containerConfig('db', A, 'busybox')],
    ...over,
  } as unknown as FlockerClient;
}

test('invalid YAML: the position leads, no dangling "at line …, column …:"', () => {
  let message = '';
  try {
    parseYaml('version: 1\napplications:\n  a:\n[x: }\n', 'bad1.yml');
  } catch (e) {
    if (e instanceof DeployFileError) message = e.message;
  }
  expect(message).toMatch(/^bad1\.yml:4:\d+: invalid YAML: \S/);
  expect(message).not.toMatch(/at line \d+, column \d+/);
  expect(message).not.toMatch(/:\s*$/);
});

describe('a node no live node reports', () => {
  const deployment = 'version: 1\nnodes:\n  10.9.9.9: [db]\n';
  test('refused by the control service: its reason, exit 2, and no plan that reads as if applied', async () => {
    const refused = new FlockerApiError(
      400,
      'UNKNOWN_NODE',
      'The deployment file names node 10.9.9.9, which is not known. Known nodes: 10.0.0.1 (a).',
    );
    const r = await run(
      [],
      client({
        compose: async () => {
          throw refused;
        },
      }),
      deployment,
    );
    expect(r.code).toBe(EXIT.USAGE);
    expect(r.out).toEqual([]);
    expect(r.err.join('\n')).toMatch(/names node 10\.9\.9\.9, which is not known\. Known nodes/);
  });
  test('known to the control service (a dead node): applied, the plan printed after', async () => {
    const r = await run([], client({}), deployment);
    expect(r.code).toBe(0);
    expect(r.out[0]).toMatch(/^plan: 1 to add/);
    expect(r.out.at(-1)).toMatch(/^db: busybox on /);
  });
  test('--dry-run: the plan, the key named, then the refusal', async () => {
    const r = await run(['--dry-run'], client({}), deployment);
    expect(r.out).toContain('  ! d.yml names node 10.9.9.9, which is not known');
    expect(r.code).toBe(EXIT.USAGE);
  });
});

describe('--wait while the control service restarts', () => {
  const deployment = 'version: 1\nnodes:\n  10.0.0.1: [db]\n';
  const running: ContainerState[] = [{ name: 'db', node_uuid: A, image: 'busybox', running: true }];
  const down = () => new FlockerApiError(0, 'UNREACHABLE', 'connect ECONNREFUSED 10.0.0.9:4523');
  /** A client whose nth container state answer is `answer(n)`. */
  const answering = (answer: (call: number) => ContainerState[]) => {
    let calls = 0;
    return client({ listContainerState: async () => answer(++calls) });
  };

  test('no answer for a while (after the configuration was applied): retried, then success', async () => {
    const r = await run(
      ['--wait', '--timeout', '10'],
      answering((call) => {
        // The first answer is the state before the deployment (asked before compose).
        if (call === 1) return [];
        if (call <= 3) throw down();
        return running;
      }),
      deployment,
    );
    expect(r.err).toEqual([]);
    expect(r.code).toBe(0);
    expect(r.out.at(-1)).toBe('deployed: every container is running on its node');
  });

  test('no answer until the timeout: exit 6, saying the configuration was applied', async () => {
    const r = await run(
      ['--wait', '--timeout', '1'],
      answering((call) => {
        if (call === 1) return [];
        throw down();
      }),
      deployment,
    );
    expect(r.code).toBe(EXIT.UNREACHABLE);
    expect(r.err.join('\n')).toMatch(
      /waiting for db to run: the configuration was applied, but the control service does not answer \(connect ECONNREFUSED/,
    );
  });

  test('an error that is no outage still ends the wait at once', async () => {
    const r = await run(
      ['--wait', '--timeout', '10'],
      answering((call) => {
        if (call === 1) return [];
        throw new FlockerApiError(403, 'FORBIDDEN', 'not allowed');
      }),
      deployment,
    );
    expect(r.code).toBe(EXIT.FAILURE);
    expect(r.err.join('\n')).toMatch(/not allowed/);
  });

  test('a read ended because the client left its replica (LEFT_REPLICA) is no unreachable service', async () => {
    // FR19-4: the replica answered (its store is down); before, that was its 503 (exit 1), not "is it there?".
    const left =
      'left https://ctl1:4523 while this request was open there (its outcome is unknown): STORE_UNAVAILABLE: x';
    const r = await run(
      ['--wait', '--timeout', '10'],
      answering(() => {
        throw new FlockerApiError(0, LEFT_REPLICA, left);
      }),
      deployment,
    );
    expect(r.code).toBe(EXIT.FAILURE);
    expect(r.err.join('\n')).toContain(left);
    expect(r.err.join('\n')).not.toMatch(/is the control service at/);
  });
});

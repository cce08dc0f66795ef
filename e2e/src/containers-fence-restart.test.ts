/**
 * A container placed by flocker-deploy after its node fenced itself during a control-service outage
 * (review T2 finding F1, session 18).
 *
 * The control service is SIGKILLed and restarted after a little more than the self-fence bound
 * (T/2). The node's dataset agent fences (SIGKILLs the containers using its Flocker volumes,
 * unmounts them), then recovers once the control service answers again. Docker does not restart a
 * killed container, whatever its restart policy; before the fix the container agent left it exited
 * for good ("desired, exited → left to Docker"). Now, once the node's fence report says recovered,
 * the container agent starts again the containers the fence killed, whose volume is still this
 * node's: the application runs again on its node with its data. A container a user stops
 * afterwards (docker stop) stays stopped, as Docker leaves it. The same when the dataset agent is killed
 * (kill -9) and restarted while fenced: the fence report is kept in its state directory (FX14).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { REPO_ROOT, run, sleep, TINY_IMAGE, waitFor, type Cluster, type ClusterHost } from './cluster';
import { clusterForSuite } from './cluster/suite';

jest.setTimeout(240_000);

const NODE_TIMEOUT_S = 4;
/** The harness's container agent resync (startContainerAgent's default). */
const RESYNC_S = 2;
const DEPLOY_BIN = path.join(REPO_ROOT, 'packages/cli/dist/flocker-deploy.js');

let cluster: Cluster;
let a: ClusterHost;
let dir: string;

clusterForSuite(
  { hosts: 1, withDocker: true, nodeTimeoutSeconds: NODE_TIMEOUT_S },
  async (started) => {
    cluster = started;
    [a] = cluster.hosts as [ClusterHost];
    await a.startContainerAgent();
    dir = fs.mkdtempSync(path.join(cluster.baseDir, 'deploy-'));
  },
  async () => {
    // Remove the container so its volume is released before teardown.
    await deploy('version: 1\nnodes: {}\n', []).catch(() => undefined);
    await waitFor(
      'containers removed',
      async () => ((await cluster.client.listContainerState()).length === 0 ? true : undefined),
      { timeoutMs: 30_000, intervalMs: 250 },
    ).catch(() => undefined);
  },
);

const APPLICATION = `version: 1
applications:
  db:
    image: ${TINY_IMAGE}
    volume:
      mountpoint: /data
      maximum_size: 64MiB
    restart_policy:
      name: always
    command_line: ["sh", "-c", "trap 'exit 0' TERM; while :; do date >> /data/log; sleep 1 & wait $!; done"]
`;

function deploy(deployment: string, extra: string[] = ['--wait', '--timeout', '60']) {
  const dep = path.join(dir, 'deployment.yml');
  const app = path.join(dir, 'application.yml');
  fs.writeFileSync(dep, deployment);
  fs.writeFileSync(app, APPLICATION);
  return run([process.execPath, DEPLOY_BIN, cluster.layout.controlUrl, dep, app, ...extra], {
    env: { ...process.env, ...cluster.cliEnv() },
    check: false,
    timeoutMs: 90_000,
  });
}

/** Lines db has written to its volume (its log survives the fence: the volume is the same). */
async function lines(): Promise<number> {
  const r = await a.docker(['exec', 'db', 'sh', '-c', 'wc -l < /data/log'], { check: false });
  return r.code === 0 ? Number(r.stdout.trim()) : 0;
}

async function dbRunning(): Promise<boolean> {
  const state = await cluster.client.listContainerState();
  return state.some((c) => c.name === 'db' && c.node_uuid === a.requireNodeUuid() && c.running);
}

describe('a deployed container after its node fenced itself (control service outage)', () => {
  it('runs again on its node once the control service is back', async () => {
    const node = (await cluster.client.listNodes()).find((n) => n.uuid === a.requireNodeUuid());
    expect(node).toBeDefined();
    const first = await deploy(`version: 1\nnodes:\n  ${node?.host ?? ''}: [db]\n`);
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    expect(await dbRunning()).toBe(true);
    await waitFor('db to write a few lines', async () => ((await lines()) >= 2 ? true : undefined), {
      timeoutMs: 20_000,
      intervalMs: 250,
    });
    const before = await lines();

    // An outage a little longer than the self-fence bound (T/2): the node fences.
    await cluster.killControl('SIGKILL');
    await sleep((NODE_TIMEOUT_S / 2 + 2) * 1000);
    await cluster.startControl();
    await waitFor(
      'the dataset agent to report that it fenced',
      async () => {
        const log = fs.readFileSync(path.join(a.layout.logDir, 'agent.log'), 'utf8');
        return log.includes('"fence: stopped containers"') ? true : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 250 },
    );

    // The configuration never changed: db is to run on A. It must run there again by itself.
    let recoveredFirst = false;
    const back = await waitFor(
      'db to run again on A',
      async () => {
        if (!(await dbRunning())) return undefined;
        // Never while fenced: the dataset agent was back in contact (report 'recovered') before.
        recoveredFirst = fs
          .readFileSync(path.join(a.layout.logDir, 'agent.log'), 'utf8')
          .includes('"back in contact: converging again"');
        return true;
      },
      { timeoutMs: 60_000, intervalMs: 500 },
    ).catch(() => false);
    expect(back).toBe(true);
    expect(recoveredFirst).toBe(true);
    expect(fs.readFileSync(path.join(a.layout.logDir, 'container-agent.log'), 'utf8')).toContain(
      "killed by this node's fence, now lifted",
    );
    // Started again, not recreated empty: its lines from before the fence are there, and it writes on.
    await waitFor('db to write on', async () => ((await lines()) > before ? true : undefined), {
      timeoutMs: 20_000,
      intervalMs: 250,
    });

    // A user stops it on purpose: it stays stopped, as Docker leaves it (3 turns of the container agent).
    await a.docker(['stop', '-t', '5', 'db']);
    await sleep(3 * RESYNC_S * 1000);
    expect(await dbRunning()).toBe(false);
    expect((await a.docker(['inspect', '--format', '{{.State.Running}}', 'db'])).stdout.trim()).toBe('false');
  });

  it.each([
    ['before the control service is back (it fences again at start: the fence goes on)', 'before'],
    ['after the control service is back (the kept fence is lifted at first contact)', 'after'],
  ] as const)(
    'runs again also when its dataset agent was killed (kill -9) while fenced and restarted %s',
    async (_, order) => {
      // The fence report lives in the agent's state directory (FX14): before, a restarted agent forgot it, reported
      // no fence, and the container agent left db exited for good.
      const agentLog = path.join(a.layout.logDir, 'agent.log');
      const containerLog = path.join(a.layout.logDir, 'container-agent.log');
      const lifted = (): number =>
        fs.readFileSync(containerLog, 'utf8').split("killed by this node's fence, now lifted").length - 1;
      const from = fs.statSync(agentLog).size;
      const since = (): string => fs.readFileSync(agentLog, 'utf8').slice(from);
      if (!(await dbRunning())) await a.docker(['start', 'db']); // stopped by the user in the first case
      await waitFor('db running', async () => ((await dbRunning()) ? true : undefined), {
        timeoutMs: 30_000,
        intervalMs: 250,
      });
      await waitFor('db to write', async () => ((await lines()) > 0 ? true : undefined), {
        timeoutMs: 20_000,
        intervalMs: 250,
      });
      const before = await lines();
      const liftedBefore = lifted();

      await cluster.killControl('SIGKILL');
      await waitFor(
        'the node to fence',
        async () => (since().includes('"fence: stopped containers"') ? true : undefined),
        {
          timeoutMs: 30_000,
          intervalMs: 250,
        },
      );
      expect((await a.docker(['inspect', '--format', '{{.State.Running}}', 'db'])).stdout.trim()).toBe('false');
      await a.killAgent('SIGKILL');
      if (order === 'before') {
        const restartedAt = fs.statSync(agentLog).size;
        await a.startAgent({ wait: false });
        // The restarted agent must have fenced again (no contact for F from its start) before the control service
        // comes back: a fixed 3 s was shorter than the agent's start plus F under load, and then it met the control
        // service before its own fence and lifted the kept one the other way (ci26; 'cannot reach the control
        // service' + 1 s was not enough either: it comes before F).
        await waitFor(
          'the restarted agent to fence again',
          async () =>
            fs
              .readFileSync(agentLog, 'utf8')
              .slice(restartedAt)
              .includes('"fencing this node: stopping containers that use its volumes and unmounting them"')
              ? true
              : undefined,
          { timeoutMs: 30_000, intervalMs: 250 },
        );
        await cluster.startControl();
      } else {
        await cluster.startControl();
        await a.startAgent({ wait: false });
      }

      const back = await waitFor('db to run again on A', async () => ((await dbRunning()) ? true : undefined), {
        timeoutMs: 60_000,
        intervalMs: 500,
      }).catch(() => false);
      expect(back).toBe(true);
      // The restarted agent read the fence it was killed in and lifted it, with its victim, before db ran again.
      const logged = since()
        .split('\n')
        .flatMap((l) => {
          try {
            return [JSON.parse(l) as { message?: string; state?: string; stopped_containers?: string[] }];
          } catch {
            return [];
          }
        });
      const kept = logged.findIndex((l) => l.message === 'fence report kept from before the restart');
      expect(kept).toBeGreaterThanOrEqual(0);
      expect(logged[kept]).toMatchObject({ state: 'fenced', stopped_containers: ['db'] });
      const liftMessage =
        order === 'before'
          ? 'back in contact: converging again'
          : 'back in contact after a restart while fenced: the fence is lifted';
      const lift = logged.slice(kept).find((l) => l.message === liftMessage);
      expect(lift).toMatchObject({ state: 'recovered' });
      expect(lift?.stopped_containers).toContain('db');
      expect(lifted()).toBe(liftedBefore + 1);
      await waitFor('db to write on', async () => ((await lines()) > before ? true : undefined), {
        timeoutMs: 20_000,
        intervalMs: 250,
      });
    },
  );
});

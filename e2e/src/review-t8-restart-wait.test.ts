/**
 * Review FR (session 20), FR-1: `flocker-deploy --wait` called a live node dead after a control-service restart. The
 * restarted control service lists a node (GET /v1/state/nodes) only once the node has reported to it again, and
 * --wait (27caa23) took "listed alive once, missing now" for dead: exit 1, "node … is dead: … deploy web to another
 * node". Now only the control service's word (a cluster view listing it alive: false) makes a node dead.
 *
 * The container agent is stopped so that the wait is still waiting when the control service is killed and started
 * again; then the container agent comes back and creates the container: --wait must end "deployed", exit 0.
 */
import { TINY_IMAGE, waitFor, type Cluster, type ClusterHost } from './cluster';
import { deploySuite, flockerDeploy, hostOf } from './review-t8-deploy';

jest.setTimeout(300_000);

let cluster: Cluster;
let a: ClusterHost;
let dir: string;

const APPLICATION = `version: 1
applications:
  web:
    image: ${TINY_IMAGE}
    command_line: ["sh", "-c", "trap 'exit 0' TERM; sleep 100000 & wait"]
`;

deploySuite(
  { hosts: 1, nodeTimeoutSeconds: 10 },
  'fxr1-restart-',
  APPLICATION,
  (started, d) => {
    cluster = started;
    [a] = cluster.hosts as [ClusterHost];
    dir = d;
  },
  {
    before: async () => {
      if (a.containerAgentPid() === undefined) await a.startContainerAgent().catch(() => undefined);
    },
  },
);

describe('--wait across a control-service restart (review FR-1)', () => {
  it('does not call the live node dead while it has not reported to the restarted service', async () => {
    const host = await hostOf(cluster, a);
    await a.killContainerAgent('SIGKILL');
    const deploying = flockerDeploy(cluster, dir, `version: 1\nnodes:\n  ${host}: [web]\n`, APPLICATION, [
      '--wait',
      '--timeout',
      '150',
    ]);
    await waitFor(
      'web configured (the deploy applied, --wait waiting)',
      async () => ((await cluster.client.listContainers()).some((c) => c.name === 'web') ? true : undefined),
      { timeoutMs: 60_000, intervalMs: 100 },
    );
    await cluster.killControl('SIGKILL');
    await cluster.startControl();
    // Right after the start the node is in no list until its dataset agent reports again: the window FR-1 is about.
    const listedAtStart = (await cluster.client.listNodes()).length;
    await a.startContainerAgent();
    const r = await deploying;
    console.log(`nodes listed right after the restart: ${listedAtStart}`);
    // Its output shown if it fails.
    expect({ code: r.code, stdout: r.stdout, stderr: r.stderr }).toMatchObject({ code: 0 });
    expect(r.stderr).not.toMatch(/is dead/);
    expect(r.stdout).toContain('deployed: every container is running on its node');
    expect((await a.docker(['inspect', '-f', '{{.State.Running}}', 'web'])).stdout.trim()).toBe('true');
  });
});

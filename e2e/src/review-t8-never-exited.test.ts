/**
 * Review T8 (tester TD, session 20), TD-1's CLI half: with `restart_policy: never` a container that exits is not
 * started again, yet `flocker-deploy --wait` waited out its whole --timeout (exit 5, "reported stopped on its node").
 * It now stops at once (exit 1), saying the container exited and will not be started again. One that exited with code
 * 0 finished (review FR-9): --wait says so and ends 0.
 */
import { TINY_IMAGE, type Cluster, type ClusterHost } from './cluster';
import { deploySuite, flockerDeploy, hostOf } from './review-t8-deploy';

jest.setTimeout(240_000);

let cluster: Cluster;
let a: ClusterHost;
let dir: string;

const APPLICATION = `version: 1
applications:
  oneshot:
    image: ${TINY_IMAGE}
    restart_policy:
      name: never
    command_line: ["sh", "-c", "echo done; exit 3"]
`;

deploySuite({ hosts: 1, nodeTimeoutSeconds: 10 }, 'fxd1-never-', APPLICATION, (started, d) => {
  cluster = started;
  [a] = cluster.hosts as [ClusterHost];
  dir = d;
});

describe('restart_policy never, the container exited (review T8, TD-1 CLI half)', () => {
  it('--wait stops early with exit 1 saying it exited, not at its timeout', async () => {
    const host = await hostOf(cluster, a);
    // A timeout far above what the early stop takes even under load: running it out is the failure.
    const started = Date.now();
    const r = await flockerDeploy(cluster, dir, `version: 1\nnodes:\n  ${host}: [oneshot]\n`, APPLICATION, [
      '--wait',
      '--timeout',
      '150',
    ]);
    const tookMs = Date.now() - started;
    expect({ code: r.code, stderr: r.stderr }).toEqual({
      code: 1,
      stderr: expect.stringMatching(
        /oneshot exited[^\n]* and its restart_policy is never: it will not be started again/,
      ),
    });
    // The exit code as the container agent reports it (dabf9cb).
    expect(r.stderr).toMatch(/oneshot exited with code 3 on /);
    expect(tookMs).toBeLessThan(120_000);
  });

  // Review FR-9: a one-shot job that exited with code 0 finished; --wait says so and succeeds (the agents here report
  // this CLI's release, so their clean exit is told from a failed one).
  it('a one-shot job that exits with code 0: --wait says it finished, exit 0', async () => {
    const host = await hostOf(cluster, a);
    const job = APPLICATION.replace('oneshot:', 'job:').replace('echo done; exit 3', 'echo done; exit 0');
    const r = await flockerDeploy(cluster, dir, `version: 1\nnodes:\n  ${host}: [job]\n`, job, [
      '--wait',
      '--timeout',
      '150',
    ]);
    // Its stderr shown if it fails.
    expect({ code: r.code, stderr: r.stderr }).toMatchObject({ code: 0 });
    expect(r.stderr).not.toMatch(/flocker-deploy:/);
    expect(r.stdout).toContain(
      `job: finished on ${host}: exited with code 0 (restart_policy never: not started again)`,
    );
    expect(r.stdout).toContain('deployed: every container is running on its node, or finished');
  });
});

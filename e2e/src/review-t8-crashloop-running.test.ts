/**
 * Review T8 (tester TD, session 20), finding TD-1: an application whose container keeps crashing is reported
 * running, and `flocker-deploy --wait` says it is deployed (exit 0).
 *
 * The container exits at once (exit 3) with restart_policy always: Docker restarts it with its own back-off, so it
 * spends nearly all its time in Docker's state "restarting". The container agent reports "restarting" as
 * running (ContainerAgent.reportOf), so /v1/state/containers says running: true with no error,
 * `flocker containers list` says running, and `--wait` ends at once with "deployed: every container is running on
 * its node", exit 0, for an application that never serves.
 */
import { sleep, TINY_IMAGE, waitFor, type Cluster, type ClusterHost } from './cluster';
import { deploySuite, flockerDeploy, hostOf } from './review-t8-deploy';

jest.setTimeout(240_000);

let cluster: Cluster;
let a: ClusterHost;
let dir: string;

const APPLICATION = `version: 1
applications:
  crashy:
    image: ${TINY_IMAGE}
    restart_policy:
      name: always
    command_line: ["sh", "-c", "echo starting; exit 3"]
`;

deploySuite({ hosts: 1, nodeTimeoutSeconds: 10 }, 'td-crash-', APPLICATION, (started, d) => {
  cluster = started;
  [a] = cluster.hosts as [ClusterHost];
  dir = d;
});

describe('an application whose container keeps crashing (review T8, TD-1)', () => {
  it('is not reported running, and --wait does not say it is deployed', async () => {
    const host = await hostOf(cluster, a);
    const r = await flockerDeploy(cluster, dir, `version: 1\nnodes:\n  ${host}: [crashy]\n`, APPLICATION, [
      '--wait',
      '--timeout',
      '30',
    ]);
    // Docker has restarted it a few times: it is crash-looping, whatever the instant.
    await waitFor(
      'crashy to have been restarted 3 times by Docker',
      async () => {
        const n = await a.docker(['inspect', '-f', '{{.RestartCount}}', 'crashy'], { check: false });
        return n.code === 0 && Number(n.stdout.trim()) >= 3 ? true : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 500 },
    );
    // Every report from then on says it is not running, or carries an error saying why. Sampled each second: at
    // least 5, and until one falls in Docker's back-off between runs (the exit code's variant, checked below) —
    // on a loaded host the first few may all be the short-run variant.
    const seen: Array<{ running: boolean; error?: unknown }> = [];
    const withExitCode = (): boolean =>
      seen.some((s) =>
        /^crash loop: exited with code 3,/.test((s.error as { message?: string } | undefined)?.message ?? ''),
      );
    const until = Date.now() + 120_000;
    while ((seen.length < 5 || !withExitCode()) && Date.now() < until) {
      const s = (await cluster.client.listContainerState()).find((c) => c.name === 'crashy');
      if (s !== undefined) seen.push({ running: s.running, ...(s.error !== undefined ? { error: s.error } : {}) });
      await sleep(1000);
    }
    expect(seen.length).toBeGreaterThan(0);
    // Before: --wait said "deployed: every container is running on its node", exit 0, and every report was
    // { running: true } with no error.
    expect({
      deployedSaid: r.stdout.includes('deployed: every container is running'),
      exitZero: r.code === 0,
      runningWithoutError: seen.filter((s) => s.running && s.error === undefined).length,
    }).toEqual({ deployedSaid: false, exitZero: false, runningWithoutError: 0 });
    // Fixed (FXD2): the container agent reports the crash loop (DOCKER_ERROR, exit code, restarts), and --wait says why.
    expect(seen.every((s) => !s.running)).toBe(true);
    expect(r.stdout + r.stderr).toMatch(/crash loop: .*restarted \d+ times by Docker/);
    // With its exit code (review FR-2: Docker's restarting state shows Running true, and its ExitCode was dropped):
    // a sample in the back-off between runs (the short-run variant between carries no code).
    const messages = seen.map((s) => (s.error as { message?: string } | undefined)?.message ?? '');
    expect(messages.some((m) => /^crash loop: exited with code 3, restarted \d+ times by Docker/.test(m))).toBe(true);
  });
});

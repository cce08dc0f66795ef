/**
 * Review T8 (tester TD, session 20), finding TD-2: a deploy whose configuration another deploy replaced while it
 * waits is left waiting for the full --timeout with a misleading reason.
 *
 * Deploy X moves db (with its volume) from A to B with --wait, while a plain container on A keeps db's volume there
 * (its lease); once the control service accepted X, deploy Y puts db on C and the blocker goes: db runs on C with
 * its data. X then waits its whole --timeout and ends with exit 5 naming db as not running yet: nothing says that db
 * is no longer configured on B, nor where it is. (Run at the same instant, both plans are computed from the same old
 * configuration and both are accepted, last one wins: flocker-deploy sends /v1/configuration/_compose without
 * If-Match although the API supports it; see /work/notes/s20-TD-findings.md.)
 * Expected: X's wait ends once what it waits for is no longer configured, saying so and naming where db now is.
 */
import { TINY_IMAGE, waitFor, type Cluster, type ClusterHost } from './cluster';
import { deploySuite, flockerDeploy, hostOf } from './review-t8-deploy';

jest.setTimeout(300_000);

let cluster: Cluster;
let a: ClusterHost;
let b: ClusterHost;
let c: ClusterHost;
let dir: string;

const APPLICATION = `version: 1
applications:
  db:
    image: ${TINY_IMAGE}
    volume:
      mountpoint: /data
      maximum_size: 64MiB
    command_line: ["sh", "-c", "trap 'exit 0' TERM; sleep 100000 & wait"]
`;

deploySuite(
  { hosts: 3, nodeTimeoutSeconds: 10 },
  'td-race-',
  APPLICATION,
  (started, d) => {
    cluster = started;
    [a, b, c] = cluster.hosts as [ClusterHost, ClusterHost, ClusterHost];
    dir = d;
  },
  { timeoutMs: 60_000 },
);

describe('a deploy replaced by another while it waits (review T8, TD-2)', () => {
  it('ends its wait saying the configuration was replaced, and where db now is', async () => {
    const [hostA, hostB, hostC] = [await hostOf(cluster, a), await hostOf(cluster, b), await hostOf(cluster, c)];
    const first = await flockerDeploy(cluster, dir, `version: 1\nnodes:\n  ${hostA}: [db]\n`, APPLICATION);
    expect(first.code).toBe(0);
    await a.docker(['exec', 'db', 'sh', '-c', 'echo kept > /data/f; sync /data/f']);

    // A container outside Flocker's configuration keeps db's volume on A (its lease), so X cannot finish before Y.
    await a.docker([
      'run',
      '-d',
      '--name',
      'td-blocker',
      '-v',
      'db:/data',
      '--volume-driver',
      'flocker',
      TINY_IMAGE,
      'sh',
      '-c',
      "trap 'exit 0' TERM; sleep 100000 & wait",
    ]);
    // X: db to B, waiting (timeout 40 s). Y, once X's configuration is accepted: db to C.
    const x = flockerDeploy(cluster, dir, `version: 1\nnodes:\n  ${hostB}: [db]\n`, APPLICATION, [
      '--wait',
      '--timeout',
      '40',
    ]);
    await waitFor(
      "X's configuration accepted",
      async () =>
        (await cluster.client.listContainers()).find((k) => k.name === 'db')?.node_uuid === b.requireNodeUuid()
          ? true
          : undefined,
      { timeoutMs: 60_000, intervalMs: 50 },
    );
    const y = await flockerDeploy(cluster, dir, `version: 1\nnodes:\n  ${hostC}: [db]\n`, APPLICATION, []);
    expect(y.code).toBe(0);
    await a.docker(['rm', '-f', 'td-blocker']);
    await waitFor(
      'db running on C',
      async () =>
        (await cluster.client.listContainerState()).some(
          (k) => k.name === 'db' && k.node_uuid === c.requireNodeUuid() && k.running,
        )
          ? true
          : undefined,
      { timeoutMs: 90_000, intervalMs: 250 },
    );
    const rx = await x;

    // The data followed the last deploy (this part works).
    expect((await c.docker(['exec', 'db', 'cat', '/data/f'])).stdout.trim()).toBe('kept');
    // X did not succeed.
    expect(rx.code).not.toBe(0);
    // Before: after the full 40 s, exit 5, "timed out … waiting for db to run on their nodes (db: …)": nothing names C
    // or says that db's configuration changed.
    expect(rx.stderr).toContain(hostC);
  });
});

/**
 * Review T8 (tester TD, session 20), finding TD-4: with the node of an application dead, `flocker-deploy --wait`
 * says "deployed: every container is running on its node" (exit 0), and its plan says the application moves.
 *
 * db (a Flocker volume, writing a counter and fsyncing it) runs on A, web on B. A is powered off; once the control
 * service has declared A dead the operator deploys the same files again (say, to change web). The control service
 * still lists A's last container report (running: true) for 30 s after it was sent, and --wait (cli
 * deploy/command.ts notYetRunning) counts it: "deployed", exit 0, although db runs nowhere. The plan meanwhile reads
 * "~ db: node <A's UUID> → <A's address> (not known) (its volume moves with it)" and "names node <A>, which is not
 * known": db does not move, and the control service knows A — it is dead.
 * What works (asserted too): moving db to B afterwards brings it up there with every acknowledged write.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { TINY_IMAGE, waitFor, type Cluster, type ClusterHost } from './cluster';
import { deploySuite, flockerDeploy, hostOf } from './review-t8-deploy';

jest.setTimeout(300_000);

let cluster: Cluster;
let a: ClusterHost;
let b: ClusterHost;
let dir: string;

const WRITER =
  "trap 'exit 0' TERM; i=$(wc -l < /data/log 2>/dev/null || echo 0); " +
  'while :; do i=$((i+1)); echo $i >> /data/log && sync /data/log && echo $i > /tmp/acked; sleep 0.2 & wait $!; done';
const APPLICATION = `version: 1
applications:
  db:
    image: ${TINY_IMAGE}
    volume:
      mountpoint: /data
      maximum_size: 64MiB
    restart_policy:
      name: always
    command_line: ["sh", "-c", ${JSON.stringify(WRITER)}]
  web:
    image: ${TINY_IMAGE}
    command_line: ["sh", "-c", "trap 'exit 0' TERM; sleep 100000 & wait"]
`;

deploySuite(
  { hosts: 2, nodeTimeoutSeconds: 5, leaseGraceSeconds: 2 },
  'td-dead-',
  APPLICATION,
  (started, d) => {
    cluster = started;
    [a, b] = cluster.hosts as [ClusterHost, ClusterHost];
    dir = d;
  },
  { removed: (states) => states.every((c) => c.node_uuid === a.nodeUuid()), timeoutMs: 60_000 },
);

describe('an application whose node died (review T8, TD-4)', () => {
  it("--wait does not count the dead node's last report; the plan does not say it moves", async () => {
    const [hostA, hostB] = [await hostOf(cluster, a), await hostOf(cluster, b)];
    const deployment = `version: 1\nnodes:\n  ${hostA}: [db]\n  ${hostB}: [web]\n`;
    const first = await flockerDeploy(cluster, dir, deployment, APPLICATION);
    expect(first.code).toBe(0);
    await waitFor(
      'db to acknowledge 10 writes',
      async () => {
        const r = await a.docker(['exec', 'db', 'cat', '/tmp/acked'], { check: false });
        return r.code === 0 && Number(r.stdout.trim()) >= 10 ? true : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 250 },
    );
    const upper = (await a.docker(['inspect', '-f', '{{.GraphDriver.Data.UpperDir}}', 'db'])).stdout.trim();

    await a.powerOff();
    const acked = Number(fs.readFileSync(path.join(upper, 'tmp', 'acked'), 'utf8').trim());
    expect(acked).toBeGreaterThanOrEqual(10);
    await waitFor(
      'A declared dead',
      async () => ((await cluster.client.listNodes()).some((n) => n.uuid === a.requireNodeUuid()) ? undefined : true),
      { timeoutMs: 60_000, intervalMs: 200 },
    );
    // The same files again, at once (within the 30 s the control service still lists A's last report).
    const again = await flockerDeploy(cluster, dir, deployment, APPLICATION, ['--wait', '--timeout', '15']);

    // The operator's way out: db to B. Its data comes along (this works).
    const moved = await flockerDeploy(cluster, dir, `version: 1\nnodes:\n  ${hostB}: [db, web]\n`, APPLICATION);
    // Its stderr shown if it fails.
    expect({ code: moved.code, stderr: moved.stderr }).toMatchObject({ code: 0 });
    const lines = (await b.docker(['exec', 'db', 'cat', '/data/log'])).stdout.trim().split('\n').map(Number);
    for (let i = 1; i <= acked; i++) expect(lines[i - 1]).toBe(i);

    // Before: "deployed: every container is running on its node", exit 0, and the plan line
    // "~ db: node <uuid> → <A> (not known) (its volume moves with it)".
    expect({
      deployedSaid: again.stdout.includes('deployed: every container is running'),
      exitZero: again.code === 0,
      saysMoves: /db: node .*its volume moves with it/.test(again.stdout),
      namesADead: new RegExp(`${hostA.replace(/\./g, '\\.')}[^\\n]*dead`).test(again.stdout + again.stderr),
    }).toEqual({ deployedSaid: false, exitZero: false, saysMoves: false, namesADead: true });
  });
});

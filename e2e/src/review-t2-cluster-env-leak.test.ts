/**
 * Review T2 (session 18): following README "Several hosts on one machine" literally breaks a host.
 *
 * The README says to export the FLOCKER_CONTROL_URL (and TLS variables) that `./dev cluster status`
 * prints, so that `flocker` reaches the cluster; that URL is the control service's address as seen
 * from the root network namespace (10.77.1.x). The fault commands (`./dev cluster start|poweron <h>`)
 * then start the host's daemons with the caller's environment, and the Docker plugin takes
 * FLOCKER_CONTROL_URL from its environment (a managed plugin's setting) over agent.yml: inside the
 * host that address is unreachable (ENETUNREACH), so every `docker run -v …--volume-driver=flocker`
 * and every Swarm task with a Flocker volume on that host fails until its plugin is restarted with
 * a clean environment. Expected: a host's daemons behave the same whatever the operator's shell exports.
 */
import { randomUUID } from 'node:crypto';
import { TINY_IMAGE, type Cluster, type ClusterHost } from './cluster';
import { clusterForSuite } from './cluster/suite';

jest.setTimeout(180_000);

let cluster: Cluster;
let a: ClusterHost;
const saved: Record<string, string | undefined> = {};

clusterForSuite(
  { hosts: 1, withDocker: true, nodeTimeoutSeconds: 5 },
  (started) => {
    cluster = started;
    [a] = cluster.hosts as [ClusterHost];
  },
  () => {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) Reflect.deleteProperty(process.env, k);
      else process.env[k] = v;
    }
    return Promise.resolve();
  },
);

describe('a host started again from a shell that exported the CLI settings (README)', () => {
  it('still mounts Flocker volumes', async () => {
    // What the README has the user do: export what `./dev cluster status` prints for the CLI.
    for (const [k, v] of Object.entries(cluster.cliEnv())) {
      saved[k] = process.env[k];
      process.env[k] = v;
    }
    await a.powerOff();
    await a.powerOn();

    const volume = `t2env${randomUUID().slice(0, 6)}`;
    const r = await a.docker(
      ['run', '--rm', '-v', `${volume}:/data`, '--volume-driver=flocker', TINY_IMAGE, 'sh', '-c', 'echo ok > /data/f'],
      { check: false },
    );
    expect(r.stderr).not.toContain('ENETUNREACH');
    expect(r.code).toBe(0);
    await a.docker(['volume', 'rm', volume], { check: false });
  });
});

/**
 * Helpers of the tests of the Docker plugin's idle leases across two hosts: their cluster (jest hooks) and the
 * plugin's log.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Cluster } from './Cluster';
import { defaultCommands } from './Cluster';
import type { ClusterHost } from './Host';
import { clusterForSuite } from './suite';

/**
 * The test file's cluster: hosts a and b with Docker, each plugin keeping a volume's lease `idleSeconds` after its
 * last use; `started` gets the cluster and both hosts. Nothing idle is left for the teardown: each host's plugin is
 * stopped first (SIGTERM lets go of its idle leases).
 */
export function idleLeaseSuite(
  idleSeconds: number,
  started: (cluster: Cluster, a: ClusterHost, b: ClusterHost) => void,
): void {
  let hosts: [ClusterHost, ClusterHost] | undefined;
  clusterForSuite(
    {
      hosts: 2,
      withDocker: true,
      commands: {
        plugin: (args) => [...defaultCommands.plugin(args), '--idle-lease-seconds', String(idleSeconds)],
      },
    },
    (cluster) => {
      hosts = cluster.hosts as [ClusterHost, ClusterHost];
      started(cluster, ...hosts);
    },
    async () => {
      for (const h of hosts ?? []) await h.killPlugin('SIGTERM');
    },
  );
}

/** The host's plugin log so far ('' before the plugin wrote one). */
export function pluginLog(host: ClusterHost): string {
  try {
    return fs.readFileSync(path.join(host.layout.logDir, 'plugin.log'), 'utf8');
  } catch {
    return '';
  }
}

/**
 * Helpers of the tests where two hosts share one loopback pool and a dead node's datasets and snapshots
 * are left to a live node (issue 23, caretakers): their cluster, agent logs, the pool's snapshot images,
 * and the waits those tests share.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Cluster } from './Cluster';
import type { ClusterHost } from './Host';
import { waitFor } from './run';
import { clusterForSuite } from './suite';

/**
 * The test file's cluster (jest hooks): hosts A and B on one shared loopback pool, a node declared dead
 * 3 s after its last report. Call the answer inside a test, once the cluster is up.
 */
export function sharedPoolSuite(): () => { cluster: Cluster; a: ClusterHost; b: ClusterHost } {
  let started: { cluster: Cluster; a: ClusterHost; b: ClusterHost } | undefined;
  clusterForSuite({ hosts: 2, nodeTimeoutSeconds: 3 }, (cluster) => {
    const [a, b] = cluster.hosts as [ClusterHost, ClusterHost];
    started = { cluster, a, b };
  });
  return () => {
    if (started === undefined) throw new Error('the shared-pool cluster is not started');
    return started;
  };
}

/** The host's agent log so far ('' before the agent wrote one). */
export function agentLog(host: ClusterHost): string {
  const file = path.join(host.layout.logDir, 'agent.log');
  return fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
}

/** The last 20 lines of the host's agent log, as context for a failed wait. */
export function logTail(host: ClusterHost): string {
  return `--- ${host.name}/agent.log\n${agentLog(host).trimEnd().split('\n').slice(-20).join('\n')}`;
}

/** The snapshot images in the cluster's shared pool (`<pool>/snapshots/<id>.img`). */
export function snapshotImages(cluster: Cluster): string[] {
  const dir = path.join(cluster.layout.poolDir, 'snapshots');
  return fs.existsSync(dir) ? fs.readdirSync(dir).filter((n) => n.endsWith('.img')) : [];
}

/** Waits until every snapshot in ids is ready (taken by host, whose log is the context on failure). */
export async function waitForSnapshotsReady(cluster: Cluster, ids: string[], host: ClusterHost): Promise<void> {
  await waitFor(
    'the snapshots taken (ready)',
    async () =>
      (await cluster.client.listSnapshotState()).filter((s) => ids.includes(s.snapshot_id) && s.status === 'ready')
        .length === ids.length,
    { timeoutMs: 60_000, intervalMs: 200, context: () => logTail(host) },
  );
}

/** Waits until the control service declares the node dead (`name` says which in the wait's message). */
export async function waitForDeclaredDead(cluster: Cluster, name: string, nodeUuid: string): Promise<void> {
  await waitFor(
    `${name} to be declared dead`,
    async () => (await cluster.client.waitForCluster(undefined, 0)).nodes.some((n) => n.uuid === nodeUuid && !n.alive),
    { timeoutMs: 30_000, intervalMs: 200 },
  );
}

/** Waits until the snapshot's image has left the pool and the control service has purged it. */
export async function waitForSnapshotDestroyed(
  cluster: Cluster,
  what: string,
  snapshotId: string,
  host: ClusterHost,
): Promise<void> {
  await waitFor(
    what,
    async () =>
      !snapshotImages(cluster).includes(`${snapshotId}.img`) &&
      !(await cluster.client.listSnapshots()).some((s) => s.snapshot_id === snapshotId),
    { timeoutMs: 30_000, intervalMs: 250, context: () => logTail(host) },
  );
}

/** flocker-deploy on a simulated cluster, for the review-t8 suites (tester TD, session 20). */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ContainerState } from '@flocker/api';
import {
  REPO_ROOT,
  run,
  waitFor,
  type Cluster,
  type ClusterHost,
  type ClusterOptions,
  type RunResult,
} from './cluster';
import { clusterForSuite } from './cluster/suite';

export const DEPLOY_BIN = path.join(REPO_ROOT, 'packages/cli/dist/flocker-deploy.js');

/** Runs flocker-deploy with these files (written into dir) against the cluster. */
export function flockerDeploy(
  cluster: Cluster,
  dir: string,
  deployment: string,
  application: string,
  extra: string[] = ['--wait', '--timeout', '90'],
): Promise<RunResult> {
  const dep = path.join(dir, `deployment-${process.hrtime.bigint()}.yml`);
  const app = path.join(dir, `application-${process.hrtime.bigint()}.yml`);
  fs.writeFileSync(dep, deployment);
  fs.writeFileSync(app, application);
  return run([process.execPath, DEPLOY_BIN, cluster.layout.controlUrl, dep, app, ...extra], {
    env: { ...process.env, ...cluster.cliEnv() },
    check: false,
    timeoutMs: 200_000,
  });
}

/** The address the control service lists for this host's node. */
export async function hostOf(cluster: Cluster, h: ClusterHost): Promise<string> {
  const uuid = h.requireNodeUuid();
  const node = (await cluster.client.listNodes()).find((n) => n.uuid === uuid);
  if (node === undefined) throw new Error(`node of host ${h.name} is not alive`);
  return node.host;
}

/** How a deploySuite's teardown removes the applications before the cluster stops. */
export interface DeploySuiteTeardown {
  /** Run first (say, start again an agent the test stopped). */
  before?: () => Promise<void>;
  /** When the containers count as removed (default: none reported). */
  removed?: (states: ContainerState[]) => boolean;
  /** How long to wait for that (default 30 s). */
  timeoutMs?: number;
}

/**
 * A cluster with Docker and a container agent on every host for the whole suite, and a temp dir (dirPrefix) for
 * flocker-deploy's files; started(cluster, dir) hands them to the suite. Teardown deploys no nodes with application
 * and waits for the containers to go, so their volumes are released before the cluster stops.
 */
export function deploySuite(
  options: Omit<ClusterOptions, 'withDocker'>,
  dirPrefix: string,
  application: string,
  started: (cluster: Cluster, dir: string) => void,
  teardown: DeploySuiteTeardown = {},
): void {
  let dir = '';
  clusterForSuite(
    { ...options, withDocker: true },
    async (cluster) => {
      await Promise.all(cluster.hosts.map((h) => h.startContainerAgent()));
      dir = fs.mkdtempSync(path.join(cluster.baseDir, dirPrefix));
      started(cluster, dir);
    },
    async (cluster) => {
      await teardown.before?.();
      await flockerDeploy(cluster, dir, 'version: 1\nnodes: {}\n', application, []).catch(() => undefined);
      const removed = teardown.removed ?? ((states) => states.length === 0);
      await waitFor(
        'containers removed',
        async () => (removed(await cluster.client.listContainerState()) ? true : undefined),
        { timeoutMs: teardown.timeoutMs ?? 30_000, intervalMs: 250 },
      ).catch(() => undefined);
    },
  );
}

/** flocker-deploy on a simulated cluster, for the review-t8 suites (tester TD, session 20). */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { REPO_ROOT, run, type Cluster, type ClusterHost, type RunResult } from './cluster';

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

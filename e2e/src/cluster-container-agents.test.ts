/**
 * `./dev cluster up` starts a container agent on each host (review T2 F3): before, it started only the dataset
 * agent, the plugin and dockerd, so a flocker-deploy on the documented multi-host simulation stayed "pending" for
 * ever and `--wait` timed out with no hint. The cluster here is exactly what `up 2 --node-timeout 5` starts
 * (parseUpArgs). The fault commands treat the container agent as one of the host's daemons: `kill` SIGKILLs it,
 * `start` and `poweron` start it again.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { REPO_ROOT, run, startCluster, TINY_IMAGE, waitFor, type Cluster, type ClusterHost } from './cluster';
import { applyFault, parseUpArgs } from './cluster/cli';

jest.setTimeout(300_000);

const DEPLOY_BIN = path.join(REPO_ROOT, 'packages/cli/dist/flocker-deploy.js');
const APPLICATIONS = `version: 1
applications:
  web:
    image: ${TINY_IMAGE}
    volume:
      mountpoint: /data
      maximum_size: 64MiB
    command_line: ["sh", "-c", "trap 'exit 0' TERM; sleep 1000 & wait"]
`;

let cluster: Cluster | undefined;

afterAll(async () => {
  if (cluster === undefined || cluster.isStopped) return;
  // Remove the deployed container first so its volume is released before teardown.
  await deploy(cluster, 'version: 1\nnodes: {}\n', []).catch(() => undefined);
  await waitFor(
    'containers removed',
    async () => ((await cluster?.client.listContainerState())?.length === 0 ? true : undefined),
    { timeoutMs: 30_000, intervalMs: 250 },
  ).catch(() => undefined);
  await cluster.stop();
});

async function deploy(c: Cluster, deployment: string, extra: string[]) {
  const dir = path.join(c.baseDir, 'deploy');
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'deployment.yml'), deployment);
  fs.writeFileSync(path.join(dir, 'application.yml'), APPLICATIONS);
  return run(
    [
      process.execPath,
      DEPLOY_BIN,
      c.layout.controlUrl,
      path.join(dir, 'deployment.yml'),
      path.join(dir, 'application.yml'),
      ...extra,
    ],
    { env: { ...process.env, ...c.cliEnv() }, check: false, timeoutMs: 120_000 },
  );
}

it('flocker-deploy --wait runs an application on a host of `up`; kill, start, poweroff and poweron keep its container agent', async () => {
  cluster = await startCluster(parseUpArgs(['2', '--node-timeout', '5']));
  const c = cluster;
  const b = c.hosts[1] as ClusterHost;
  for (const h of c.hosts) expect(h.containerAgentPid()).toBeDefined();

  const uuid = b.requireNodeUuid();
  const host = (await c.client.listNodes()).find((n) => n.uuid === uuid)?.host;
  const r = await deploy(c, `version: 1\nnodes:\n  ${host}: [web]\n`, ['--wait', '--timeout', '60']);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  expect((await b.docker(['inspect', '-f', '{{.State.Running}}', 'web'])).stdout.trim()).toBe('true');

  expect(await applyFault(c, { fault: 'kill', host: 'b' })).toMatch(/container agent \d+/);
  expect(b.containerAgentPid()).toBeUndefined();
  expect(await applyFault(c, { fault: 'start', host: 'b' })).toContain('container agent');
  expect(b.containerAgentPid()).toBeDefined();

  await applyFault(c, { fault: 'poweroff', host: 'b' });
  expect(b.containerAgentPid()).toBeUndefined();
  await applyFault(c, { fault: 'poweron', host: 'b' });
  expect(b.containerAgentPid()).toBeDefined();
});

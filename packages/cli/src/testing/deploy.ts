/** Test support for the cli's own tests: flocker-deploy run in-process. */
import type { ClusterSnapshot, ContainerConfiguration, FlockerClient } from '@flocker/api';
import { buildDeployCli } from '../deploy/command';

/**
 * A fake client written before flocker-deploy read the cluster view and the configuration during --wait (session 20)
 * has no waitForCluster, and its listContainers does not follow its compose: it gets both here — a view of its live
 * nodes and datasets (one configuration tag), and after compose the containers compose answered — so that what it
 * tests stays as it was. A fake with waitForCluster is used as it is.
 */
function withView(client: FlockerClient): FlockerClient {
  const fake = client as unknown as Partial<FlockerClient>;
  if (fake.waitForCluster !== undefined) return client;
  let composed: ContainerConfiguration[] | undefined;
  return {
    ...fake,
    waitForCluster: async () =>
      ({
        generation: 'g1',
        configuration_tag: 'v1',
        nodes: (await client.listNodes()).map((n) => ({ ...n, alive: true })),
        datasets: await client.listDatasets(),
        leases: [],
      }) as unknown as ClusterSnapshot,
    listContainers: async () => composed ?? (await client.listContainers()),
    compose: async (...args: Parameters<FlockerClient['compose']>) => {
      composed = await client.compose(...args);
      return composed;
    },
  } as unknown as FlockerClient;
}

/**
 * Runs `flocker-deploy http://control d.yml a.yml <args>` against `client`, where d.yml reads `deployment` and
 * a.yml `applications`; answers what it printed (line by line) and its exit code.
 */
export async function runDeploy(args: string[], client: FlockerClient, deployment: string, applications: string) {
  const out: string[] = [];
  const err: string[] = [];
  const io = {
    out: (t: string) => out.push(t),
    err: (t: string) => err.push(t),
    readFile: (p: string) => (p === 'd.yml' ? deployment : applications),
  };
  process.exitCode = undefined;
  await buildDeployCli(['http://control', 'd.yml', 'a.yml', ...args], io, () => withView(client)).parseAsync();
  const code = process.exitCode ?? 0;
  process.exitCode = undefined;
  return { out, err, code };
}

/** Test support for the cli's own tests: flocker-deploy run in-process. */
import type { FlockerClient } from '@flocker/api';
import { buildDeployCli } from '../deploy/command';

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
  await buildDeployCli(['http://control', 'd.yml', 'a.yml', ...args], io, () => client).parseAsync();
  const code = process.exitCode ?? 0;
  process.exitCode = undefined;
  return { out, err, code };
}

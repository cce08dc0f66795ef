/**
 * flocker-deploy <control-host> <deployment.yml> <application.yml>: sends both
 * files to the control service (`POST /v1/configuration/_compose`), which makes
 * the configured containers exactly the deployed applications. Running it again
 * with a changed deployment moves containers, their volumes with them. It prints
 * the plan (added, changed, removed) first; `--dry-run` stops there. `--wait`
 * stops early when a container agent reports an error that retrying will not fix.
 */
import { readFileSync } from 'node:fs';
import yargs, { type Argv } from 'yargs';
import {
  type ContainerConfiguration,
  containerConfigId,
  type ContainerState,
  FlockerApiError,
  type FlockerClient,
  LEFT_REPLICA,
  serverNow,
} from '@flocker/api';
import { errorMessage, pollUntil } from '@flocker/runtime';
import { visible, visibleText } from '../format';
import { connect, type ConnectionArgs } from '../connection';
import { agentSilenceText, type ListedNode, silentContainerAgent } from '../containersAgentSilence';
import { CliError, EXIT } from '../errors';
import { clientVersion } from '../version';
import { DeployFileError, readDeployFiles } from './files';
import { deployPlan, describeStuck, errorStreaks, formatPlan, stuckContainers } from './plan';

export interface DeployIo {
  out(text: string): void;
  err(text: string): void;
  readFile(path: string): string;
}

export const DEFAULT_CONTROL_PORT = 4523;

/** `host`, `host:port` or a full URL → the control service URL. */
export function controlUrl(controlHost: string, port: number, insecureHttp: boolean): string {
  if (/^https?:\/\//.test(controlHost)) return controlHost;
  const hasPort = /^\[.*\]:\d+$/.test(controlHost) || /^[^:[\]]+:\d+$/.test(controlHost);
  const host = !hasPort && controlHost.includes(':') && !controlHost.startsWith('[') ? `[${controlHost}]` : controlHost;
  return `${insecureHttp ? 'http' : 'https'}://${hasPort ? host : `${host}:${port}`}`;
}

/**
 * Does this report show the configured container (not the previous configuration's, which its agent has not
 * recreated yet)? The configuration it runs decides when the agent reports it (ContainerState.config); a container
 * agent from before session 18 does not, and then only the image can be compared (a change of only the command,
 * ports or environment is not told apart).
 */
function isConfigured(c: ContainerConfiguration, s: ContainerState): boolean {
  return s.config !== undefined ? s.config === containerConfigId(c) : s.image === c.image;
}

/** Pure: are the deployed containers running where configured? Returns what is still missing. */
export function notYetRunning(
  configured: readonly ContainerConfiguration[],
  state: readonly ContainerState[],
): string[] {
  return configured
    .filter(
      (c) => !state.some((s) => s.name === c.name && s.node_uuid === c.node_uuid && s.running && isConfigured(c, s)),
    )
    .map((c) => c.name);
}

/**
 * Pure: why a container --wait still waits for is not running, as far as the reports tell; undefined if unknown.
 * With the nodes (as listed: live ones) and the time: a container agent that stopped reporting is named. `now` is on
 * the control service's clock, as the reports' times (by default the clock of the answer `state`, else this host's).
 */
export function whyNotRunning(
  c: ContainerConfiguration,
  state: readonly ContainerState[],
  nodes: readonly ListedNode[] = [],
  now: number = serverNow(state) ?? Date.now(),
): string | undefined {
  const silence = (uuid: string, configuredHere: boolean) => {
    const s = silentContainerAgent(uuid, state, nodes, now, configuredHere);
    return s === undefined ? undefined : agentSilenceText(s);
  };
  const s = state.find((x) => x.name === c.name && x.node_uuid === c.node_uuid);
  if (s === undefined) {
    const elsewhere = state.find((x) => x.name === c.name);
    if (elsewhere !== undefined) {
      // A move whose old node's container agent is gone: that node keeps the container (and its volume's lease).
      const old = silence(elsewhere.node_uuid, false);
      return `still reported on another node only${old !== undefined ? `; ${old}` : ''}`;
    }
    return silence(c.node_uuid, true) ?? 'not reported by its node (is its container agent running?)';
  }
  // An old report says nothing about now.
  const here = silence(c.node_uuid, true);
  if (here !== undefined) return here;
  if (s.error !== undefined) {
    // The error may name another node holding the volume (a move): say if that node's container agent is silent.
    const others = [
      ...new Set(state.filter((x) => x.name === c.name && x.node_uuid !== c.node_uuid).map((x) => x.node_uuid)),
    ]
      .map((uuid) => silence(uuid, false))
      .filter((x): x is string => x !== undefined);
    return [`${s.error.code}: ${s.error.message}`, ...others].join('; ');
  }
  if (s.running && !isConfigured(c, s)) {
    return s.image !== c.image
      ? `its node still runs the previous image ${s.image}`
      : `its node still runs the previous configuration of ${c.name}`;
  }
  if (!s.running) return 'reported stopped on its node';
  return undefined;
}

interface DeployArgs extends ConnectionArgs {
  'control-host': string;
  deployment: string;
  application: string;
  port: number;
  'insecure-http': boolean;
  wait: boolean;
  timeout: number;
  'dry-run': boolean;
}

export async function deploy(a: DeployArgs, io: DeployIo, client: FlockerClient): Promise<void> {
  const read = (file: string) => {
    try {
      return { text: io.readFile(file), file };
    } catch (err) {
      throw new CliError(EXIT.USAGE, `cannot read ${file}: ${errorMessage(err)}`);
    }
  };
  const files = readDeployFiles(read(a.deployment), read(a.application));
  const [configured, nodeList, datasets, stateBefore] = await Promise.all([
    client.listContainers(),
    client.listNodes(),
    client.listDatasets(),
    a.wait ? client.listContainerState() : Promise.resolve([]),
  ]);
  const plan = deployPlan(files.apps, files.placement, configured, nodeList, datasets);
  if (a['dry-run']) {
    for (const line of formatPlan(plan, a.deployment)) io.out(line);
    if (plan.unknownNodes.length > 0) {
      throw new CliError(EXIT.USAGE, `${a.deployment} names unknown node(s): ${plan.unknownNodes.join(', ')}`);
    }
    io.out('dry run: nothing changed');
    return;
  }
  // A node no live node reports may still be known to the control service (a dead one, named by its UUID or address):
  // it decides. Its refusal comes without a plan that reads as if it were being applied; an accepted plan follows.
  const planFirst = plan.unknownNodes.length === 0;
  if (planFirst) for (const line of formatPlan(plan, a.deployment)) io.out(line);
  const containers = await client.compose({ deployment: files.deployment, applications: files.applications });
  if (!planFirst) for (const line of formatPlan(plan, a.deployment)) io.out(line);
  const nodes = new Map(nodeList.map((n) => [n.uuid, n.host]));
  for (const c of containers) io.out(visible(`${c.name}: ${c.image} on ${nodes.get(c.node_uuid) ?? c.node_uuid}`));
  if (!a.wait) return;
  const changed = new Set([...plan.added, ...plan.changed].map((e) => e.name));
  const before = errorStreaks(stateBefore);
  let missing: string[] = containers.map((c) => c.name);
  let retrying: string[] = [];
  /** The control service not answering (restarting, say) while we wait: the configuration is applied, so retried. */
  let unreachable: FlockerApiError | undefined;
  await pollUntil(
    async () => {
      let state: ContainerState[];
      try {
        state = await client.listContainerState();
        unreachable = undefined;
      } catch (e) {
        if (!(e instanceof FlockerApiError) || !isTransient(e)) throw e;
        unreachable = e;
        return undefined;
      }
      const stuck = stuckContainers(containers, state, changed, before);
      if (stuck.length > 0) {
        const lines = stuck.map((x) => describeStuck(x, nodes.get(x.node_uuid) ?? x.node_uuid));
        throw new CliError(
          EXIT.FAILURE,
          `${lines.join('\n  ')}\n  (the container agent keeps retrying; deploy again once it is fixed)`,
        );
      }
      missing = notYetRunning(containers, state);
      retrying = containers.flatMap((c) => {
        const why = missing.includes(c.name) ? whyNotRunning(c, state, nodeList) : undefined;
        return why === undefined ? [] : [`${c.name}: ${visible(why)}`];
      });
      return missing.length === 0 ? true : undefined;
    },
    {
      timeoutMs: a.timeout * 1000,
      intervalMs: 500,
      onTimeout: () => {
        if (unreachable !== undefined) {
          throw new CliError(
            EXIT.UNREACHABLE,
            `timed out after ${a.timeout}s waiting for ${missing.join(', ')} to run: the configuration was applied, but the control service does not answer (${unreachable.description})`,
          );
        }
        const why = retrying.length > 0 ? ` (${retrying.join('; ')})` : '';
        throw new CliError(
          EXIT.TIMEOUT,
          `timed out after ${a.timeout}s waiting for ${missing.join(', ')} to run on their nodes${why}`,
        );
      },
    },
  );
  io.out('deployed: every container is running on its node');
}

export function buildDeployCli(
  argv: string[],
  io: DeployIo,
  makeClient: (a: ConnectionArgs) => FlockerClient = (a) => connect(a),
): Argv {
  return yargs(argv)
    .scriptName('flocker-deploy')
    .command(
      '$0 <control-host> <deployment> <application>',
      'Deploy applications (Flocker application file or Docker Compose file) onto the nodes a deployment file names.\n\n' +
        'The deployment replaces the whole container configuration: every application running now that ' +
        'the deployment file does not name is REMOVED (its volume stays). The plan (added, changed, removed) ' +
        'is printed before it is applied; --dry-run prints it and changes nothing. ' +
        'Format: packages/cli/docs/flocker-deploy.md',
      (y) =>
        y
          .positional('control-host', {
            type: 'string',
            demandOption: true,
            describe: 'Control service address (host, host:port or URL)',
          })
          .positional('deployment', {
            type: 'string',
            demandOption: true,
            describe: 'deployment.yml: version: 1, nodes: {<address or UUID>: [names]}',
          })
          .positional('application', {
            type: 'string',
            demandOption: true,
            describe: 'application.yml (Flocker format) or docker-compose.yml',
          })
          .option('port', { type: 'number', default: DEFAULT_CONTROL_PORT, describe: 'Control service port' })
          .option('cacert', {
            type: 'string',
            describe: 'Cluster CA certificate [env FLOCKER_CA_CERT; default /etc/flocker/cluster.crt]',
          })
          .option('cert', {
            type: 'string',
            describe: 'API user certificate [env FLOCKER_CERT; default /etc/flocker/admin.crt]',
          })
          .option('key', {
            type: 'string',
            describe: 'API user private key [env FLOCKER_KEY; default /etc/flocker/admin.key]',
          })
          .option('insecure-http', {
            type: 'boolean',
            default: false,
            describe: 'Plain HTTP (a control service started with --insecure-http)',
          })
          .option('dry-run', {
            type: 'boolean',
            default: false,
            describe: 'Print the plan (added, changed, removed applications) and change nothing',
          })
          .option('wait', {
            type: 'boolean',
            default: false,
            describe:
              'Wait until every container runs on its node; fail early when a container agent cannot start one (e.g. a missing image)',
          })
          .option('timeout', { type: 'number', default: 300, describe: 'Seconds to wait with --wait' }),
      async (args) => {
        const a = args as unknown as DeployArgs;
        const connection: ConnectionArgs = {
          'control-url': controlUrl(a['control-host'], a.port, a['insecure-http']),
          ...(a.cacert !== undefined ? { cacert: a.cacert } : {}),
          ...(a.cert !== undefined ? { cert: a.cert } : {}),
          ...(a.key !== undefined ? { key: a.key } : {}),
        };
        try {
          await deploy(a, io, makeClient(connection));
        } catch (e) {
          const err =
            e instanceof DeployFileError
              ? new CliError(EXIT.USAGE, e.message)
              : e instanceof FlockerApiError
                ? new CliError(
                    apiExit(e),
                    e.status === 0 && e.code !== LEFT_REPLICA
                      ? `${e.description} (is the control service at ${connection['control-url']}?)`
                      : e.description,
                  )
                : e;
          if (err instanceof CliError) {
            io.err(`flocker-deploy: ${err.message}`);
            process.exitCode = err.exitCode;
            return;
          }
          throw err;
        }
      },
    )
    .strict()
    .help()
    .version(clientVersion());
}

/** No answer, or the control service (or a proxy before it) says it cannot answer now. */
function isTransient(e: FlockerApiError): boolean {
  return e.status === 0 || e.status === 502 || e.status === 503 || e.status === 504;
}

function apiExit(e: FlockerApiError): number {
  // LEFT_REPLICA: reached, its store down (an outcome unknown, not an unreachable service).
  if (e.status === 0 && e.code !== LEFT_REPLICA) return EXIT.UNREACHABLE;
  if (e.status === 404) return EXIT.NOT_FOUND;
  if (e.status === 409 || e.status === 412) return EXIT.CONFLICT;
  if (e.status === 400) return EXIT.USAGE;
  return EXIT.FAILURE;
}

// Node hosts and service errors are chosen by other parties: control characters shown as escapes (review T6 F3).
export const defaultDeployIo: DeployIo = {
  out: (t) => process.stdout.write(`${visibleText(t)}\n`),
  err: (t) => process.stderr.write(`${visibleText(t)}\n`),
  readFile: (p) => readFileSync(p, 'utf8'),
};

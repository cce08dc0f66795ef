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
  type ClusterSnapshot,
  type ContainerConfiguration,
  containerConfigId,
  type ContainerState,
  FlockerApiError,
  type FlockerClient,
  LEFT_REPLICA,
  type NodeStateSummary,
  serverNow,
} from '@flocker/api';
import { errorMessage, pollUntil } from '@flocker/runtime';
import { visible, visibleText } from '../format';
import { connect, type ConnectionArgs } from '../connection';
import { agentSilenceText, type ListedNode, silentContainerAgent } from '../containersAgentSilence';
import { CliError, EXIT } from '../errors';
import { refuseMissingValues } from '../requireValues';
import { clientVersion } from '../version';
import { DeployFileError, readDeployFiles } from './files';
import { deployPlan, describeStuck, errorStreaks, formatPlan, resolveNode, stuckContainers } from './plan';
import {
  exitedForGood,
  finishedJobs,
  isExit,
  type KnownNode,
  nodeVerdicts,
  onDeadNodes,
  planNodes,
  replacedWhileWaiting,
  reportsExitCodesOf,
  unlistedNodes,
} from './waitVerdict';

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
  notCounted: ReadonlySet<string> = new Set(),
): string[] {
  // A dead node's last report (the control service lists it for a while) is not a container running now (TD-4), nor
  // is one from a node not listed alive (FR-1).
  return configured
    .filter(
      (c) =>
        notCounted.has(c.node_uuid) ||
        !state.some((s) => s.name === c.name && s.node_uuid === c.node_uuid && s.running && isConfigured(c, s)),
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
  // The cluster view first: its configuration tag is then no newer than the containers read after it, so a change
  // between the two reads makes the conditional compose refuse (never apply a plan made from a configuration older
  // than the tag). It lists dead nodes too (listNodes: live ones only), which the plan names as such (TD-4).
  const readPlan = async () => {
    const view = await client.waitForCluster(undefined, 0);
    const [configured, datasets] = await Promise.all([client.listContainers(), client.listDatasets()]);
    const known: KnownNode[] = view.nodes.map((n) => ({
      uuid: n.uuid,
      host: n.host,
      alive: n.alive,
      dead_since: n.dead_since,
    }));
    const resolvable = planNodes(known);
    const plan = deployPlan(files.apps, files.placement, configured, resolvable, datasets);
    const lines = [
      ...formatPlan(plan, a.deployment),
      ...deadPlacements(files.placement, files.apps, resolvable, a.deployment),
    ];
    return { tag: view.configuration_tag, known, configured, plan, lines };
  };
  const [planned, stateBefore] = await Promise.all([
    readPlan(),
    a.wait ? client.listContainerState() : Promise.resolve([]),
  ]);
  const { known, plan } = planned;
  const printPlan = () => {
    for (const line of planned.lines) io.out(line);
  };
  // The control service makes these volumes as named; the CLI refuses them, as `flocker volumes create` does.
  if (plan.idShapedVolumes.length > 0) {
    printPlan();
    const names = [...new Set(plan.idShapedVolumes.map((v) => v.volume))].join(', ');
    throw new CliError(
      EXIT.USAGE,
      `${a.application} would make a new volume named like a volume id (${names}): choose another name; nothing was applied`,
    );
  }
  if (a['dry-run']) {
    printPlan();
    if (plan.unknownNodes.length > 0) {
      throw new CliError(EXIT.USAGE, `${a.deployment} names unknown node(s): ${plan.unknownNodes.join(', ')}`);
    }
    io.out('dry run: nothing changed');
    return;
  }
  // A node no live node reports may still be known to the control service (a dead one, named by its UUID or address):
  // it decides. Its refusal comes without a plan that reads as if it were being applied; an accepted plan follows.
  const planFirst = plan.unknownNodes.length === 0;
  if (planFirst) printPlan();
  let containers: ContainerConfiguration[] | undefined;
  // Applied only to the configuration the plan was made from (TD-2): a deploy racing this one is not undone silently.
  // The tag covers the whole configuration, leases and datasets too (a dead node's leases released, a volume plugin's
  // lease taken): refused for such a change, the compose is sent again while the containers and the plan read again
  // are what was planned.
  for (let tag = planned.tag, attempt = 1; containers === undefined; attempt++) {
    try {
      containers = await client.compose(
        { deployment: files.deployment, applications: files.applications },
        { ifConfigurationMatches: tag },
      );
    } catch (e) {
      if (!(e instanceof FlockerApiError) || e.status !== 412) throw e;
      const again = await readPlan();
      if (attempt >= COMPOSE_ATTEMPTS || !samePlan(planned, again)) {
        throw new CliError(
          EXIT.CONFLICT,
          `the configuration changed since ${planFirst ? 'the plan above was made' : 'this deploy read it'} (another flocker-deploy or API client changed it): nothing was applied. Run flocker-deploy again to see the plan against the current configuration.`,
        );
      }
      tag = again.tag;
    }
  }
  if (!planFirst) printPlan();
  const hosts = new Map(known.map((n) => [n.uuid, n.host]));
  const hostOf = (uuid: string) => hosts.get(uuid) ?? uuid;
  for (const c of containers) io.out(visible(`${c.name}: ${c.image} on ${hostOf(c.node_uuid)}`));
  if (!a.wait) return;
  const changed = new Set([...plan.added, ...plan.changed].map((e) => e.name));
  const before = errorStreaks(stateBefore);
  // Dead only on the control service's word (a view's alive: false), never for missing from the live list (FR-1).
  let dead = nodeVerdicts(new Set(), new Set(), known);
  const deadSince = new Map(known.map((n) => [n.uuid, n.dead_since]));
  /** When the cluster view was last read to ask about nodes missing from the live list (throttled). */
  let viewAskedAt = -Infinity;
  let missing: string[] = containers.map((c) => c.name);
  /** One-shot jobs that finished (exit code 0, not started again): done, as running containers are (FR-9). */
  let finished: ContainerConfiguration[] = [];
  const cliVersion = clientVersion();
  let retrying: string[] = [];
  /** The control service not answering (restarting, say) while we wait: the configuration is applied, so retried. */
  let unreachable: FlockerApiError | undefined;
  await pollUntil(
    async () => {
      let state: ContainerState[];
      let configuredNow: ContainerConfiguration[];
      let alive: NodeStateSummary[];
      try {
        [state, configuredNow, alive] = await Promise.all([
          client.listContainerState(),
          client.listContainers(),
          client.listNodes(),
        ]);
        unreachable = undefined;
      } catch (e) {
        if (!(e instanceof FlockerApiError) || !isTransient(e)) throw e;
        unreachable = e;
        return undefined;
      }
      for (const n of alive) hosts.set(n.uuid, n.host);
      const replaced = replacedWhileWaiting(containers, configuredNow);
      if (replaced.length > 0) {
        const lines = replaced.map((r) =>
          visible(
            r.now === undefined
              ? `${r.name} is no longer configured`
              : r.now.node_uuid !== r.was.node_uuid
                ? `${r.name} is now configured on ${hostOf(r.now.node_uuid)} (this deploy put it on ${hostOf(r.was.node_uuid)})`
                : `${r.name} is now configured differently on ${hostOf(r.now.node_uuid)}`,
          ),
        );
        throw new CliError(
          EXIT.CONFLICT,
          `the configuration this deploy applied was replaced while waiting (another flocker-deploy or API client): ${lines.join('; ')}. Nothing more to wait for: see flocker containers list.`,
        );
      }
      const aliveNow = new Set(alive.map((n) => n.uuid));
      dead = nodeVerdicts(dead, aliveNow);
      if (unlistedNodes(containers, aliveNow, dead).length > 0 && Date.now() - viewAskedAt >= VIEW_ASK_INTERVAL_MS) {
        viewAskedAt = Date.now();
        let view: ClusterSnapshot;
        try {
          view = await client.waitForCluster(undefined, 0);
        } catch (e) {
          if (!(e instanceof FlockerApiError) || !isTransient(e)) throw e;
          unreachable = e;
          return undefined;
        }
        for (const n of view.nodes) {
          hosts.set(n.uuid, n.host);
          deadSince.set(n.uuid, n.dead_since);
        }
        dead = nodeVerdicts(dead, aliveNow, view.nodes);
      }
      const onDead = onDeadNodes(containers, dead);
      if (onDead.length > 0) {
        throw new CliError(
          EXIT.FAILURE,
          onDead
            .map((c) => `${c.name}: ${deadNodeText(c.name, hostOf(c.node_uuid), deadSince.get(c.node_uuid))}`)
            .join('\n  '),
        );
      }
      const stuck = stuckContainers(containers, state, changed, before);
      if (stuck.length > 0) {
        const lines = stuck.map((x) => describeStuck(x, hostOf(x.node_uuid)));
        throw new CliError(
          EXIT.FAILURE,
          `${lines.join('\n  ')}\n  (the container agent keeps retrying; deploy again once it is fixed)`,
        );
      }
      const reportsExitCodes = reportsExitCodesOf(alive, cliVersion);
      const exited = exitedForGood(containers, state, dead, reportsExitCodes);
      if (exited.length > 0) {
        throw new CliError(
          EXIT.FAILURE,
          exited
            .map((c) =>
              visible(
                `${c.name} ${exitOf(c, state, reportsExitCodes)} on ${hostOf(c.node_uuid)} and its restart_policy is never: it will not be started again (its output: docker logs ${c.name} on that node; set restart_policy: {name: on-failure} or always in the application file to have it restarted)`,
              ),
            )
            .join('\n  '),
        );
      }
      // A report from a node the live list misses is not counted until the control service lists the node again: a
      // dead node's last report (kept 30 s) is "running" too, and whether it is dead is not known yet.
      const unlisted = new Set(unlistedNodes(containers, aliveNow, dead));
      finished = finishedJobs(containers, state, dead, reportsExitCodes);
      missing = notYetRunning(containers, state, new Set([...dead, ...unlisted])).filter(
        (name) => !finished.some((c) => c.name === name),
      );
      const listed = known.map((n) => ({ ...n, alive: !dead.has(n.uuid) }));
      retrying = containers.flatMap((c) => {
        const why = !missing.includes(c.name)
          ? undefined
          : unlisted.has(c.node_uuid)
            ? `its node is not listed alive by the control service (restarted and not reported to yet, or its dataset agent is silent)`
            : whyNotRunning(c, state, listed);
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
  for (const c of finished) {
    io.out(
      visible(
        `${c.name}: finished on ${hostOf(c.node_uuid)}: exited with code 0 (restart_policy ${c.restart_policy.name}: not started again)`,
      ),
    );
  }
  io.out(`deployed: every container is running on its node${finished.length > 0 ? ', or finished' : ''}`);
}

/**
 * How often --wait reads the cluster view while a node it waits on is missing from the live list (a control service
 * just restarted: for seconds; a node forgotten: until the timeout). The list is polled every 500 ms.
 */
const VIEW_ASK_INTERVAL_MS = 2_000;

/** Conditional composes refused for changes that leave the plan as it was (leases, say) before giving up. */
const COMPOSE_ATTEMPTS = 5;

/** The same containers configured and the same plan lines: what the user read still holds. */
function samePlan(
  a: { configured: readonly ContainerConfiguration[]; lines: readonly string[] },
  b: { configured: readonly ContainerConfiguration[]; lines: readonly string[] },
): boolean {
  const ids = (cs: readonly ContainerConfiguration[]) =>
    JSON.stringify(cs.map((c) => `${c.name}@${c.node_uuid}#${containerConfigId(c)}`).sort());
  return ids(a.configured) === ids(b.configured) && JSON.stringify(a.lines) === JSON.stringify(b.lines);
}

/**
 * The container agent's "exited with code N"; else "exited" and, when its agent does not report exit codes (a release
 * before this CLI's), that the code is not known here: a job that finished cleanly is not told from a failed one.
 */
function exitOf(
  c: ContainerConfiguration,
  state: readonly ContainerState[],
  reportsExitCodes: (node: string) => boolean | undefined,
): string {
  const error = state.find((s) => s.name === c.name && s.node_uuid === c.node_uuid)?.error;
  if (error !== undefined && isExit(error)) return error.message;
  return reportsExitCodes(c.node_uuid) !== false
    ? 'exited'
    : `exited (its exit code is not reported by that node's container agent, a release other than this flocker-deploy's ${clientVersion()}: docker inspect ${c.name} there; 0 means it finished)`;
}

/** What the operator does about an application whose node died (packages/cli/docs/flocker-deploy.md). */
function deadNodeText(name: string, host: string, since: string | undefined): string {
  return visible(
    `node ${host} is dead${since !== undefined ? ` (declared dead at ${since})` : ''}: ${name} runs nowhere and is not moved on its own; deploy ${name} to another node to run it there (its volume follows)`,
  );
}

/** Plan lines for the applications the deployment file places on a dead node (TD-4): they will not run there. */
function deadPlacements(
  placement: ReadonlyMap<string, string>,
  apps: Readonly<Record<string, unknown>>,
  nodes: readonly KnownNode[],
  deploymentFile: string,
): string[] {
  const lines: string[] = [];
  for (const [name, key] of placement) {
    if (apps[name] === undefined) continue;
    const uuid = resolveNode(key, nodes);
    const node = nodes.find((n) => n.uuid === uuid);
    if (node === undefined || node.alive) continue;
    lines.push(
      `  ! ${deploymentFile} places ${name} on a dead node: ${deadNodeText(name, node.host, node.dead_since)}`,
    );
  }
  return lines;
}

export function buildDeployCli(
  argv: string[],
  io: DeployIo,
  makeClient: (a: ConnectionArgs) => FlockerClient = (a) => connect(a),
): Argv {
  return yargs(argv)
    .scriptName('flocker-deploy')
    .middleware(
      refuseMissingValues(argv, (why) => {
        io.err(`flocker-deploy: ${why}\nRun with --help for usage.`);
        process.exit(EXIT.USAGE);
      }),
      true,
    )
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
              'Wait until every container runs on its node (or, restart_policy never or on-failure, finished with exit code 0); fail early when a container agent cannot start one (e.g. a missing image)',
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

/**
 * flocker-deploy's decisions about what it read, pure (review T8, session 20): which nodes the plan resolves names
 * against, and what ends a --wait for good before its timeout — the configuration it waits for replaced by another
 * deploy (TD-2), a container's node declared dead (TD-4), a container that exited and will not be started again
 * (restart_policy never, TD-1).
 */
import { type ContainerConfiguration, containerConfigId, type ContainerError, type ContainerState } from '@flocker/api';

/** A node as the cluster view lists it: every known node, dead ones too (GET /v1/state/nodes lists live ones only). */
export interface KnownNode {
  uuid: string;
  host: string;
  alive: boolean;
  dead_since?: string | undefined;
}

/**
 * The nodes a deployment file's keys are resolved against: every live node, and each dead node whose address no live
 * node reports (a host reinstalled under a new UUID at the same address means the live one). A dead node is known to
 * the control service, which accepts it: the plan must say it is dead, not "not known", and not show a move when the
 * container stays where it is configured.
 */
export function planNodes(nodes: readonly KnownNode[]): KnownNode[] {
  const liveHosts = new Set(nodes.filter((n) => n.alive).map((n) => n.host));
  return nodes.filter((n) => n.alive || !liveHosts.has(n.host));
}

/** What the wait saw replaced: `now` is the container's configuration now, undefined when it is no longer configured. */
export interface Replaced {
  name: string;
  was: ContainerConfiguration;
  now: ContainerConfiguration | undefined;
}

/**
 * Pure: the containers this deploy waits for that are configured differently now (another deploy or API client
 * replaced the configuration meanwhile): waiting for them can only run out the timeout.
 */
export function replacedWhileWaiting(
  waited: readonly ContainerConfiguration[],
  configuredNow: readonly ContainerConfiguration[],
): Replaced[] {
  return waited.flatMap((was) => {
    const now = configuredNow.find((c) => c.name === was.name);
    if (now !== undefined && now.node_uuid === was.node_uuid && containerConfigId(now) === containerConfigId(was))
      return [];
    return [{ name: was.name, was, now }];
  });
}

/**
 * Pure: the nodes --wait holds dead, from what it held before (`dead`), the live nodes listed now and, when one was
 * read, a cluster view. Only the control service's word makes a node dead: a view listing it `alive: false` (with
 * `dead_since`). Missing from GET /v1/state/nodes is no evidence (review FR-1): that list shows the nodes heard from
 * since the control service (or the replica answering) started, so after a restart a live node is missing until its
 * next report. A node listed alive, in either, is not dead (it came back); a node neither lists stays as it was.
 */
export function nodeVerdicts(
  dead: ReadonlySet<string>,
  aliveNow: ReadonlySet<string>,
  view: readonly KnownNode[] = [],
): Set<string> {
  const next = new Set([...dead].filter((uuid) => !aliveNow.has(uuid)));
  for (const n of view) {
    if (n.alive || aliveNow.has(n.uuid)) next.delete(n.uuid);
    else next.add(n.uuid);
  }
  return next;
}

/**
 * Pure: the nodes of the containers waited for that the live list does not show and that are not held dead: the
 * cluster view is read to ask the control service about them (not on every poll: a large cluster's view is big).
 */
export function unlistedNodes(
  waited: readonly ContainerConfiguration[],
  aliveNow: ReadonlySet<string>,
  dead: ReadonlySet<string>,
): string[] {
  return [...new Set(waited.map((c) => c.node_uuid))].filter((uuid) => !aliveNow.has(uuid) && !dead.has(uuid));
}

/**
 * Pure: the containers whose node is dead. Its last report (kept by the control service for a while) says nothing about
 * now: a powered-off host runs nothing, and the container will not run there again (a node declared dead stays out).
 */
export function onDeadNodes(
  waited: readonly ContainerConfiguration[],
  dead: ReadonlySet<string>,
): ContainerConfiguration[] {
  return waited.filter((c) => dead.has(c.node_uuid));
}

/**
 * Pure: the containers with restart_policy never that ran the deployed configuration and exited with an error: the
 * container agent does not start them again, so waiting can only run out the timeout. Only a report naming the
 * configuration it runs counts (an agent from before session 18 names none, and then the old container cannot be told
 * from the new). Container agents since session 20 (TD-1) report Docker's non-zero exit as a DOCKER_ERROR whose
 * message begins "exited", and a clean exit (code 0) without an error: that one finished (finishedJobs). An older
 * agent reports every exit without an error (`reportsExitCodes` false for its node): its exit counts as one here, its
 * code unknown. Any other error is a failure to create or start, which the agent retries.
 */
export function exitedForGood(
  waited: readonly ContainerConfiguration[],
  state: readonly ContainerState[],
  dead: ReadonlySet<string> = new Set(),
  reportsExitCodes: (node: string) => boolean | undefined = () => false,
): ContainerConfiguration[] {
  return waited.filter((c) => {
    if (c.restart_policy.name !== 'never' || dead.has(c.node_uuid)) return false;
    const s = stoppedReport(c, state);
    return s !== undefined && (s.error === undefined ? reportsExitCodes(c.node_uuid) === false : isExit(s.error));
  });
}

/**
 * Pure (review FR-9): the containers that ran the deployed configuration and finished, a one-shot job done. Stopped
 * without an error on a node whose container agent reports exit codes (so: exit code 0), where Docker does not start
 * a clean exit again (restart_policy never, or on-failure). --wait counts them done, as running containers, and says
 * so: what `docker compose up --wait` users ask of an exited init container (docker/compose#10596).
 */
export function finishedJobs(
  waited: readonly ContainerConfiguration[],
  state: readonly ContainerState[],
  dead: ReadonlySet<string>,
  reportsExitCodes: (node: string) => boolean | undefined,
): ContainerConfiguration[] {
  return waited.filter((c) => {
    if (c.restart_policy.name === 'always' || dead.has(c.node_uuid) || reportsExitCodes(c.node_uuid) !== true)
      return false;
    const s = stoppedReport(c, state);
    return s !== undefined && s.error === undefined;
  });
}

/** The report of the deployed configuration of `c` on its node, if it says the container is stopped. */
function stoppedReport(c: ContainerConfiguration, state: readonly ContainerState[]): ContainerState | undefined {
  const s = state.find((x) => x.name === c.name && x.node_uuid === c.node_uuid);
  return s !== undefined && !s.running && s.config !== undefined && s.config === containerConfigId(c) ? s : undefined;
}

/**
 * Whether the container agent on a node reports exit codes (session 20 on), as far as the CLI can tell: its node's
 * dataset agent (the same package, so the same release) reports this CLI's release. Any other (older, newer, or no
 * version) is not trusted with it: a clean exit is then not told from a failed one. Undefined for a node not listed
 * (a control service just restarted): not known yet, so a stop without an error is judged neither way.
 */
export function reportsExitCodesOf(
  nodes: readonly { uuid: string; version?: string | undefined }[],
  cliVersion: string,
): (node: string) => boolean | undefined {
  const versions = new Map(nodes.map((n) => [n.uuid, n.version]));
  return (node) => {
    if (!versions.has(node)) return undefined;
    const v = versions.get(node);
    return cliVersion !== 'unknown' && v !== undefined && v === cliVersion;
  };
}

/** The container agent's report of a container Docker says exited ("exited with code 3"), not a failure it retries. */
export function isExit(e: ContainerError): boolean {
  return e.code === 'DOCKER_ERROR' && /^exited\b/.test(e.message);
}

/**
 * `flocker containers list|show` (issue 21): what flocker-deploy placed — the configured containers
 * beside what their nodes' container agents report, with the agent's error. Pure.
 */
import {
  METADATA_NAME_KEY,
  type ContainerConfiguration,
  type ContainerError,
  type ContainerState,
  type DatasetConfiguration,
  type NodeState,
  serverNow,
} from '@flocker/api';
import { type AgentSilence, agentSilenceText, silentContainerAgent } from './containersAgentSilence';
import { visible } from './format';

export interface ContainerView extends ContainerConfiguration {
  /** Host of the node it is configured on (a short UUID when that node never reported). */
  node: string;
  /**
   * running, stopped, failing (the agent reports an error), pending (not reported yet), removing (reported, no longer
   * configured), unknown (the node that reported it is dead, or its container agent stopped reporting: its last
   * report says nothing about now).
   */
  state: 'running' | 'stopped' | 'failing' | 'pending' | 'removing' | 'unknown';
  /** With state unknown: what the dead node (or the silent container agent) last reported (running, stopped, failing). */
  last_reported: 'running' | 'stopped' | 'failing' | null;
  /** Where its node's agent reports it, when not where it is configured (moving). */
  reported_node: string | null;
  /** The volume it mounts, by name (id when unnamed); null without one. */
  volume: string | null;
  error: ContainerError | null;
  /** Its node is alive but its container agent reports nothing new (or nothing of it); null otherwise. */
  silent_agent: AgentSilence | null;
}

function hostOf(nodes: readonly NodeState[], uuid: string): string {
  return nodes.find((n) => n.uuid === uuid)?.host ?? uuid.slice(0, 8);
}

function reportedState(r: ContainerState): 'running' | 'stopped' | 'failing' {
  if (r.error !== undefined) return 'failing';
  return r.running ? 'running' : 'stopped';
}

/** A dead node's report is its last word, not the container's state now (a powered-off host runs nothing). */
function onDeadNode(nodes: readonly NodeState[], r: ContainerState): boolean {
  return nodes.find((n) => n.uuid === r.node_uuid)?.alive === false;
}

function stateOf(
  nodes: readonly NodeState[],
  r: ContainerState | undefined,
  silent: AgentSilence | undefined,
): Pick<ContainerView, 'state' | 'last_reported'> {
  if (r === undefined) return { state: 'pending', last_reported: null };
  // An old report of a silent agent is its last word too (the container may have stopped, or run on).
  if (onDeadNode(nodes, r) || (silent !== undefined && silent.since !== null))
    return { state: 'unknown', last_reported: reportedState(r) };
  return { state: reportedState(r), last_reported: null };
}

/**
 * Every configured container, then those still reported but no longer configured; sorted by name. `now` is on the
 * control service's clock, as the reports' times (by default the clock of the answer `reported`, else this host's).
 */
export function containerViews(
  configured: readonly ContainerConfiguration[],
  reported: readonly ContainerState[],
  nodes: readonly NodeState[],
  datasets: readonly DatasetConfiguration[],
  now: number = serverNow(reported) ?? Date.now(),
): ContainerView[] {
  const configuredOn = new Set(configured.map((c) => c.node_uuid));
  const silence = (uuid: string) => silentContainerAgent(uuid, reported, nodes, now, configuredOn.has(uuid));
  const volumeName = (c: ContainerConfiguration): string | null => {
    const v = c.volumes[0];
    if (v === undefined) return null;
    return datasets.find((d) => d.dataset_id === v.dataset_id)?.metadata[METADATA_NAME_KEY] ?? v.dataset_id;
  };
  const views: ContainerView[] = configured.map((c) => {
    // The report from its configured node wins; another node's means it is still moving there.
    const here = reported.find((r) => r.name === c.name && r.node_uuid === c.node_uuid);
    const elsewhere = reported.find((r) => r.name === c.name && r.node_uuid !== c.node_uuid);
    const r = here ?? elsewhere;
    const silent = silence(r?.node_uuid ?? c.node_uuid);
    return {
      ...c,
      node: hostOf(nodes, c.node_uuid),
      ...stateOf(nodes, r, silent),
      reported_node: here === undefined && elsewhere !== undefined ? hostOf(nodes, elsewhere.node_uuid) : null,
      volume: volumeName(c),
      error: r?.error ?? null,
      silent_agent: silent ?? null,
    };
  });
  const names = new Set(configured.map((c) => c.name));
  for (const r of reported) {
    if (names.has(r.name)) continue;
    names.add(r.name);
    const silent = silence(r.node_uuid);
    views.push({
      name: r.name,
      node_uuid: r.node_uuid,
      image: r.image,
      ports: [],
      environment: {},
      links: [],
      volumes: [],
      restart_policy: { name: 'never' },
      node: hostOf(nodes, r.node_uuid),
      ...(onDeadNode(nodes, r) || silent !== undefined
        ? { state: 'unknown' as const, last_reported: reportedState(r) }
        : { state: 'removing' as const, last_reported: null }),
      reported_node: null,
      volume: null,
      error: r.error ?? null,
      silent_agent: silent ?? null,
    });
  }
  return views.sort((a, b) => a.name.localeCompare(b.name));
}

/** "IMAGE_NOT_FOUND: No such image: x (3 attempts since <iso>)". */
export function containerErrorText(e: ContainerError): string {
  return `${e.code}: ${e.message} (${e.attempts} attempt${e.attempts === 1 ? '' : 's'} since ${e.since})`;
}

/** Why the state is what it is, when the reports alone do not say it: a dead node, a silent container agent. */
function stateNote(c: ContainerView): string {
  const silent = c.silent_agent !== null ? agentSilenceText(c.silent_agent) : undefined;
  const last = c.last_reported !== null ? `last reported ${c.last_reported}` : undefined;
  if (silent !== undefined) return ` (${[silent, last].filter((x) => x !== undefined).join('; ')})`;
  return last !== undefined ? ` (its node is dead; ${last})` : '';
}

/** `containers show`: one container in lines. */
export function containerText(c: ContainerView): string {
  return (
    [
      `Name:       ${c.name}`,
      `Image:      ${c.image}`,
      `Node:       ${c.node} (${c.node_uuid})${c.reported_node !== null ? `; still reported on ${c.reported_node}` : ''}`,
      `State:      ${c.state}${stateNote(c)}`,
      `Volume:     ${c.volume !== null ? `${c.volume} at ${c.volumes[0]?.mountpoint ?? '?'}` : '-'}`,
      `Ports:      ${c.ports.map((p) => `${p.external}->${p.internal}`).join(', ') || '-'}`,
      `Links:      ${c.links.map((l) => `${l.alias}:${l.local_port}->${l.remote_port}`).join(', ') || '-'}`,
      `Restart:    ${c.restart_policy.name}`,
      ...(c.command_line !== undefined ? [`Command:    ${c.command_line.join(' ')}`] : []),
      `Env:        ${Object.keys(c.environment).join(', ') || '-'}`,
      ...(c.error !== null ? [`Error:      ${containerErrorText(c.error)}`] : []),
    ]
      // Each entry is one line: a line feed in an image, host, path, command word or message cannot start another.
      .map(visible)
      .join('\n')
  );
}

/**
 * The container agent's decision, pure: desired Docker specs × the Flocker-owned
 * containers Docker has → the changes to make. One table decides per container.
 */
import type { DesiredContainer, DockerSpec } from './desiredContainers';
import type { NodeFence } from './fence';

/** Labels on every container the agent creates; it touches no other container. */
export const LABEL_NAME = 'flocker.container';
export const LABEL_SPEC = 'flocker.spec';
/** The configuration identity (containerConfigId) the container was created for; reported when its spec is not the desired one. */
export const LABEL_CONFIG = 'flocker.config';

/** Docker's container states (`docker ps --format {{.State}}`). */
export type DockerState = 'created' | 'running' | 'paused' | 'restarting' | 'removing' | 'exited' | 'dead';

export interface ObservedContainer {
  id: string;
  /** The Flocker container name (label), not Docker's. */
  name: string;
  hash: string | undefined;
  /** Its LABEL_CONFIG (absent on containers created before session 18). */
  config?: string;
  state: DockerState;
  image: string;
  /** When Docker last started it / it last stopped (ms; for an exited container; absent if it never ran). */
  startedAt?: number;
  finishedAt?: number;
  /** For an exited or restarting container (Docker's inspect): when it was created, its last exit code, and how
   * many times Docker's restart policy restarted it since it was last started by hand (or by the agent). */
  createdAt?: number;
  exitCode?: number;
  restartCount?: number;
}

export type ContainerChange =
  | { kind: 'create'; spec: DockerSpec; hash: string; config?: string }
  | { kind: 'start'; id: string; name: string; reason?: string }
  | { kind: 'remove'; id: string; name: string; reason: string };

/**
 * Whether the node's fence killed this exited container and it may run again: the fence is lifted,
 * it names the container, the container was started before the fence began and stopped after (not
 * started since: a container started again and then stopped, by a user or by itself, is not the
 * fence's), and its volume is still this node's (the fence is there so that two nodes never write
 * one volume: a container whose volume went elsewhere meanwhile stays stopped).
 */
export function killedByFence(want: DesiredContainer, o: ObservedContainer, fence: NodeFence): boolean {
  return fence.kind === 'lifted' && want.volumeHere && stoppedByFence(o, fence);
}

/**
 * Whether this exited container is one the node's fence stopped, lifted or not (its report names it; started before
 * the fence began, stopped after, not started since).
 */
export function stoppedByFence(o: ObservedContainer, fence: NodeFence): boolean {
  if (fence.kind === 'none' || fence.since === undefined || fence.stopped === undefined) return false;
  return (
    o.state === 'exited' &&
    fence.stopped.has(o.name) &&
    o.startedAt !== undefined &&
    o.startedAt < fence.since &&
    (o.finishedAt === undefined || o.finishedAt >= fence.since)
  );
}

/**
 * - not desired → remove (moved away or deleted), fenced or not (it lets go of its volume and ports);
 * - while the node is fenced (or declared dead) → nothing is created or started;
 * - desired, absent → create (which starts it);
 * - desired, spec changed (image, environment, links' targets, ports, volume…) → remove, then create;
 * - desired, never started or its start failed (state created: e.g. its volume was
 *   still in use on the old node) → start again;
 * - desired, exited, killed by the node's fence (killedByFence) → start again once the fence is
 *   lifted, whatever the restart policy: the configured state is "running", and neither the
 *   application nor a user stopped it;
 * - desired, exited otherwise → left to Docker's restart policy (as Flocker's `never` means; a
 *   container a user stopped stays stopped, as Docker leaves it);
 * - duplicates of one name → all but one removed.
 */
function createOf(d: DesiredContainer): ContainerChange {
  return { kind: 'create', spec: d.spec, hash: d.hash, ...(d.config !== undefined ? { config: d.config } : {}) };
}

export function calculateContainerChanges(
  desired: readonly DesiredContainer[],
  observed: readonly ObservedContainer[],
  fence: NodeFence = { kind: 'none' },
): ContainerChange[] {
  const removes: ContainerChange[] = [];
  const others: ContainerChange[] = [];
  const byName = new Map<string, ObservedContainer[]>();
  for (const o of observed) byName.set(o.name, [...(byName.get(o.name) ?? []), o]);
  const wanted = new Map(desired.map((d) => [d.spec.name, d]));
  for (const [name, list] of byName) {
    const want = wanted.get(name);
    if (want === undefined) {
      for (const o of list) removes.push({ kind: 'remove', id: o.id, name, reason: 'not configured on this node' });
      continue;
    }
    // Keep the container that matches the spec, preferring a running one.
    const keep =
      list.find((o) => o.hash === want.hash && o.state === 'running') ?? list.find((o) => o.hash === want.hash);
    for (const o of list) {
      if (o === keep) continue;
      removes.push({
        kind: 'remove',
        id: o.id,
        name,
        reason: o.hash === want.hash ? 'duplicate' : 'configuration changed',
      });
    }
    if (keep === undefined) others.push(createOf(want));
    else if (keep.state === 'created') others.push({ kind: 'start', id: keep.id, name });
    else if (killedByFence(want, keep, fence))
      others.push({ kind: 'start', id: keep.id, name, reason: "killed by this node's fence, now lifted" });
  }
  for (const d of desired) if (!byName.has(d.spec.name)) others.push(createOf(d));
  // Removes first: a moved container must let go of its volume and ports before anything new starts.
  return fence.kind === 'fenced' ? removes : [...removes, ...others];
}

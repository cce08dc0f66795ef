/**
 * The container agent's decision, pure: desired Docker specs × the Flocker-owned
 * containers Docker has → the changes to make. One table decides per container.
 */
import type { DesiredContainer, DockerSpec } from './desiredContainers';

/** Labels on every container the agent creates; it touches no other container. */
export const LABEL_NAME = 'flocker.container';
export const LABEL_SPEC = 'flocker.spec';

/** Docker's container states (`docker ps --format {{.State}}`). */
export type DockerState = 'created' | 'running' | 'paused' | 'restarting' | 'removing' | 'exited' | 'dead';

export interface ObservedContainer {
  id: string;
  /** The Flocker container name (label), not Docker's. */
  name: string;
  hash: string | undefined;
  state: DockerState;
  image: string;
}

export type ContainerChange =
  | { kind: 'create'; spec: DockerSpec; hash: string }
  | { kind: 'start'; id: string; name: string }
  | { kind: 'remove'; id: string; name: string; reason: string };

/**
 * - not desired → remove (moved away or deleted);
 * - desired, absent → create (which starts it);
 * - desired, spec changed (image, environment, links' targets, ports, volume…) → remove, then create;
 * - desired, never started or its start failed (state created: e.g. its volume was
 *   still in use on the old node) → start again;
 * - desired, exited → left to Docker's restart policy (as Flocker's `never` means);
 * - duplicates of one name → all but one removed.
 */
export function calculateContainerChanges(
  desired: readonly DesiredContainer[],
  observed: readonly ObservedContainer[],
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
    if (keep === undefined) others.push({ kind: 'create', spec: want.spec, hash: want.hash });
    else if (keep.state === 'created') others.push({ kind: 'start', id: keep.id, name });
  }
  for (const d of desired) if (!byName.has(d.spec.name)) others.push({ kind: 'create', spec: d.spec, hash: d.hash });
  // Removes first: a moved container must let go of its volume and ports before anything new starts.
  return [...removes, ...others];
}

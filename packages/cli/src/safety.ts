/**
 * Client-side safety for volumes in use (issue 17, item 10). The Docker plugin takes a
 * lease for its node while a container there uses a volume, so a lease held by a live
 * node means "in use": releasing it lets the volume be moved or destroyed under that
 * container, whose data is lost when it stops. The control service keeps Flocker v1's
 * semantics (an API user may release any lease); the CLI refuses unless --force. Pure.
 */
import type { Lease, NodeState } from '@flocker/api';
import { CliError, EXIT } from './errors';
import { shortId } from './format';

export interface InUse {
  lease: Lease;
  node: NodeState;
}

/** The volume's lease when its holder is a node that is alive (a container there uses the volume). */
export function inUseBy(nodes: readonly NodeState[], leases: readonly Lease[], datasetId: string): InUse | undefined {
  const lease = leases.find((l) => l.dataset_id === datasetId);
  const node = lease ? nodes.find((n) => n.uuid === lease.node_uuid) : undefined;
  return lease && node?.alive ? { lease, node } : undefined;
}

export type GuardedAction = 'release' | 'destroy';

function where(u: InUse): string {
  return `${u.node.host} (node ${shortId(u.node.uuid)})`;
}

/**
 * Refuses (CliError, exit code CONFLICT) to release the lease of, or destroy, a volume in
 * use on a live node unless forced; forced, it returns the warning to print first.
 */
export function checkInUse(
  action: GuardedAction,
  volume: string,
  u: InUse | undefined,
  force: boolean,
): string | undefined {
  if (u === undefined) return undefined;
  const inUse = `volume ${volume} is in use on ${where(u)}: that live node holds its lease, so a container there uses it`;
  if (!force) {
    const consequence =
      action === 'release'
        ? 'Releasing the lease would let the volume be moved or destroyed under that container (its data is destroyed when the container stops)'
        : 'Destroying it destroys the data that container is using';
    const remedy =
      action === 'release'
        ? 'pass --force to release it anyway'
        : 'pass --force to release the lease and destroy it anyway';
    throw new CliError(EXIT.CONFLICT, `${inUse}. ${consequence}. Stop the container first, or ${remedy}.`);
  }
  return action === 'release'
    ? `warning: ${inUse}; releasing its lease anyway (--force): the volume may now be moved or destroyed under that container.`
    : `warning: ${inUse}; releasing its lease and destroying it anyway (--force): that container loses its data.`;
}

/**
 * Whether releasing a volume's lease is risky (issue 17, item 10): the Docker plugin
 * holds a lease for its node while a container there uses the volume, so a lease held
 * by a live node means "in use". Released, the volume may be moved or deleted under
 * that container. Pure; the browser asks for confirmation with this sentence, and the
 * `flocker ui` server refuses an unconfirmed release with it.
 */
import type { NodeView, VolumeView } from './view';

/**
 * Whether a lease names no holder: only acquires without one hold it (the API's `holders` absent), which
 * `flocker leases acquire` and Flocker v1 API clients take. Such a lease is no container's (s23 USER-T F1: the user may
 * have taken it). The one decision for the CLI's refusals and the web UI's confirmation (an API lease or the view's).
 */
export function leaseNamesNoHolder(lease: { readonly holders?: readonly string[] | undefined }): boolean {
  return lease.holders === undefined || lease.holders.length === 0;
}

/**
 * What is at stake when a live node (`where`) holds a lease of `subject` that names no holder, in the words of both the
 * CLI (`leases release`, `volumes destroy`) and the web UI; each adds its own way to go on (--force, or confirming).
 */
export function unnamedLeaseRisk(subject: string, where: string): string {
  return (
    `${subject} is in use on ${where}: that live node holds a lease that names no holder ` +
    '(taken by "flocker leases acquire" or a Flocker v1 API client); whatever took it may rely on it'
  );
}

export function releaseRisk(
  v: Pick<VolumeView, 'name' | 'lease'>,
  nodes: readonly Pick<NodeView, 'uuid' | 'host' | 'alive'>[],
): string | null {
  const lease = v.lease;
  if (lease === null) return null;
  const holder = nodes.find((n) => n.uuid === lease.node_uuid);
  if (holder === undefined || !holder.alive) return null;
  // Session 21: its holder lets go of it when asked while unused; a move or delete asks, a release does not.
  if (lease.on_request !== undefined)
    return (
      `${v.name} is held on ${holder.host} by a lease its holder lets go of when asked while no container there uses it; a container there may use it now. ` +
      'Releasing the lease does not ask the holder. To use the volume elsewhere nothing needs releasing: start the container on the other host ' +
      '(its Docker plugin asks for the lease and moves the volume there) or move it here (the control service asks the holder, and a container there keeps it).'
    );
  if (leaseNamesNoHolder(lease))
    return `${unnamedLeaseRisk(v.name, holder.host)}. If you took it yourself, release it: the volume can then be moved or deleted.`;
  return (
    `${v.name} is in use on ${holder.host}: that node is alive and holds its lease, so a container there uses it. ` +
    'Releasing the lease lets the volume be moved or deleted under that container, and its data is destroyed when the container stops.'
  );
}

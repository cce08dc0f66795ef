/**
 * Client-side safety for volumes in use (issue 17, item 10). The Docker plugin takes a
 * lease for its node while a container there uses a volume, so a lease held by a live
 * node means "in use": releasing it lets the volume be moved or destroyed under that
 * container, whose data is lost when it stops. The control service keeps Flocker v1's
 * semantics (an API user may release any lease); the CLI refuses unless --force. A lease its holder lets go of on
 * request (release_on_request: the plugin's lease of a volume it may keep idle) is the control service's to judge on
 * a destroy or move (it asks the holder). Pure.
 */
import type { Lease, NodeState } from '@flocker/api';
import { leaseNamesNoHolder, unnamedLeaseRisk } from '@flocker/web-ui';
import { CliError, EXIT } from './errors';
import { leaseHolders, shortId } from './format';

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
  // Session 21: the Docker plugin keeps an idle volume's lease and lets go of it when asked; the control service asks
  // its holder on a destroy (which waits a few seconds for the answer), so this CLI does not guess whether it is in use:
  // the destroy asks first, also with --force (destroyAfterAsking judges the answer).
  if (u.lease.release_on_request === true) {
    if (action === 'destroy') return undefined;
    const held =
      `volume ${volume} is held on ${where(u)} by a lease its holder lets go of when asked while no container there ` +
      'uses it';
    if (!force) {
      // What the user can do instead (s21 hand-over): what needs the lease asks its holder for it (another host's
      // Mount, a move), and an unused lease ends by itself; --force only for a host gone for good.
      const host = u.node.host;
      throw new CliError(
        EXIT.CONFLICT,
        `${held}; a container there may use it now. Releasing it here would not ask its holder. ` +
          'To use the volume elsewhere, nothing needs releasing: start the container on the other host (its Docker ' +
          `plugin asks for the lease and moves the volume there) or run "flocker volumes move ${volume} <node>"; the ` +
          `holder lets go of it then, unless a container on ${host} uses it (stop that container first). Unused, the ` +
          "lease also ends by itself after the Docker plugin's idle time (plugin.idle_lease_seconds, 60 s by default). " +
          `If ${host} is gone for good, pass --force to release it anyway.`,
      );
    }
    return `warning: ${held}; releasing its lease anyway (--force), without asking: a container there may be using it.`;
  }
  return plainInUse(action, volume, u, force);
}

/**
 * A lease that names no holder was taken by `flocker leases acquire` or a Flocker v1 API client (s23 USER-T F1): the
 * user may have taken it themselves, so a refusal or a forced release says who takes such leases rather than that a
 * container uses the volume, in the web UI's words (unnamedLeaseRisk). (A forced destroy keeps plainInUse's warning:
 * a v1 client's container may be using it.)
 */
function unnamedInUse(action: GuardedAction, volume: string, u: InUse, force: boolean): string | undefined {
  const risk = unnamedLeaseRisk(`volume ${volume}`, where(u));
  const what = action === 'release' ? 'release it' : 'release the lease and destroy the volume';
  if (!force) throw new CliError(EXIT.CONFLICT, `${risk}. If you took it yourself, pass --force to ${what}.`);
  return action === 'release' ? `warning: ${risk}; releasing it anyway (--force).` : undefined;
}

/** checkInUse for a lease whose holder is taken to use the volume (its node is alive and holds it). */
function plainInUse(action: GuardedAction, volume: string, u: InUse, force: boolean): string {
  const unnamed = leaseNamesNoHolder(u.lease) ? unnamedInUse(action, volume, u, force) : undefined;
  if (unnamed !== undefined) return unnamed;
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
    : // The device stays the container's until it stops (review T3 finding 3): the destroy waits for that.
      `warning: ${inUse}; releasing its lease and destroying it anyway (--force): that container loses its data. ` +
        `It keeps using the volume until it stops; the volume is destroyed once that container stops ` +
        `(docker ps --filter volume=${volume}).`;
}

/** The control service's why, when it asked the holder of a release_on_request lease (session 21). */
function askedWhy(apiMessage: string): { text: string; declined: boolean } | undefined {
  const text = /Its holder(?:'s Docker plugin declined| was asked).*$/.exec(apiMessage)?.[0];
  return text === undefined ? undefined : { text, declined: text.includes('declined') };
}

/**
 * `volumes destroy` of a volume whose lease its holder lets go of on request, refused all the same (LEASE_HELD, after
 * the control service asked the holder): unforced, a CliError saying why and what to do (a container there uses it:
 * stop it; the holder did not answer: check its plugin), never the API's "Release the lease first" (`leases release`
 * refuses such a lease too). Forced: the warning of a volume in use (its lease is then released and the volume
 * destroyed, as for any lease a live node holds). A refusal that says nothing of asking (a holder that cannot hear
 * requests, or --handover-wait 0): notAsked, what ends the lease (forced: as a plain lease).
 */
export function destroyAfterAsking(volume: string, u: InUse, apiMessage: string, force: boolean): string {
  const why = askedWhy(apiMessage);
  if (why === undefined) {
    if (force) return plainInUse('destroy', volume, u, true);
    throw notAsked(volume, u);
  }
  if (force) return plainInUse('destroy', volume, u, true);
  const first = why.text.charAt(0).toLowerCase() + why.text.slice(1);
  if (why.declined) {
    throw new CliError(
      EXIT.CONFLICT,
      `volume ${volume} is in use on ${where(u)}: its holder's Docker plugin declined to let go of it: a container there uses it. Stop that container first, or pass --force to release the lease and destroy it anyway (that container loses its data).`,
      'LEASE_HELD',
    );
  }
  throw new CliError(
    EXIT.CONFLICT,
    `volume ${volume} is held on ${where(u)}: ${first} Check that plugin, or pass --force to release the lease and destroy it anyway (a container there, if any, loses its data).`,
    'LEASE_HELD',
  );
}

/**
 * The refusal of a destroy the control service refused without asking the holder of a lease it lets go of on request:
 * the holder cannot hear requests (its node counts as behind: an older release, or not reported since the control
 * service started; on plain HTTP, while any alive node is) and then keeps nothing idle, or the service does not ask
 * (--handover-wait 0). A container there is taken to use the volume: what ends the lease is stopping it (the plugin
 * lets go); a host gone for good has nothing to stop, and its lease is released by hand. Not --force: that destroys
 * the data a container there may be using (review R1 F1).
 */
function notAsked(volume: string, u: InUse): CliError {
  const host = u.node.host;
  return new CliError(
    EXIT.CONFLICT,
    `volume ${volume} is in use on ${where(u)}: that live node holds its lease, and its holder was not asked to let go of it (its node may run an older release or not have reported since the control service started). ` +
      `Stop the container that uses it on ${host} (its Docker plugin then ends the lease), then destroy it again. ` +
      `If ${host} is gone for good, release its lease ("flocker leases release ${volume} --force"), then destroy it again.`,
    'LEASE_HELD',
  );
}

/**
 * `volumes move` refused by the control service because a node holds the volume's lease (LEASE_HELD): which host
 * holds it and what to do, in the terms `volumes destroy` uses, instead of the API's "Release the lease first"
 * with bare UUIDs. A lease of the Docker plugin (holder "docker") means a container there uses the volume: stopping
 * it ends the lease. Any other lease (`flocker leases acquire`, CSI) is released by its owner or `leases release`.
 */
export function leaseHeldOnMove(
  volume: string,
  lease: Lease | undefined,
  nodes: readonly NodeState[],
  apiMessage: string,
  /** The volume's primary (the lease's node when the move may go on --when-released: a local node). */
  primary?: string,
): CliError {
  if (lease === undefined) return new CliError(EXIT.CONFLICT, apiMessage, 'LEASE_HELD');
  const node = nodes.find((n) => n.uuid === lease.node_uuid);
  const on = node ? `${node.host} (node ${shortId(node.uuid)})` : `node ${shortId(lease.node_uuid)}`;
  const holders = lease.holders ?? [];
  // The control service asked its holder (session 21) and says why it kept the lease: declined or did not answer.
  const asked = askedWhy(apiMessage)?.text;
  if (lease.release_on_request === true && asked !== undefined) {
    const then = asked.includes('declined')
      ? ' Stop that container, then move it again, or start the container on the other host (the Docker plugin moves the volume there).'
      : ` Check that plugin, or release the lease ("flocker leases release ${volume} --force") once nothing there uses the volume.`;
    return new CliError(
      EXIT.CONFLICT,
      `volume ${volume} cannot move: ${on} holds its lease. ${asked}${then}`,
      'LEASE_HELD',
    );
  }
  const remedy = holders.includes('docker')
    ? `a container there uses it. Stop that container, then move it again, or start the container on the other host (the Docker plugin moves the volume there)`
    : `held by ${leaseHolders(lease)}${lease.pinned === true ? ', pinned' : ''}. Release it first ("flocker leases release ${volume}"), then move it again`;
  // Local storage copies while the volume stays in use (issue 24): the move can be asked for now, finishing later.
  const local = primary === lease.node_uuid && node !== undefined && node.backend.startsWith('local-');
  const whenReleased = local
    ? `, or add --when-released: the data is copied to the new node now while it stays in use on ${node.host}, and the move finishes once everything there lets it go`
    : '';
  return new CliError(
    EXIT.CONFLICT,
    `volume ${volume} cannot move: ${on} holds its lease: ${remedy}${whenReleased}.`,
    'LEASE_HELD',
  );
}

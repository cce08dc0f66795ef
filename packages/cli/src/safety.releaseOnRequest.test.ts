/**
 * Leases let go of on request (session 21: the Docker plugin keeps an idle volume's lease and lets go of it when
 * asked): the CLI no longer calls such a volume "in use" nor refuses its destroy itself (the control service asks the
 * holder); a plain release still asks for --force (it does not ask the holder); a refused move says why the holder
 * kept it; lists mark such leases.
 */
import type { Lease } from '@flocker/api';
import { CliError } from './errors';
import { leaseHoldersText, leaseOnRequest } from './format';
import { checkInUse, destroyAfterAsking, inUseBy, leaseHeldOnMove } from './safety';
import { A, node as nodeA } from './testing/snapshots';

const D = '11111111-1111-4111-8111-111111111111';
const node = nodeA();
const idle: Lease = { dataset_id: D, node_uuid: A, expires: null, holders: ['docker'], release_on_request: true };
const plain: Lease = { dataset_id: D, node_uuid: A, expires: null, holders: ['docker'] };

function refusal(f: () => unknown): CliError {
  try {
    f();
  } catch (e) {
    if (e instanceof CliError) return e;
    throw e;
  }
  throw new Error('not refused');
}

describe('a lease let go of on request', () => {
  it('destroy: asked first, left to the control service (no client-side refusal, no warning yet)', () => {
    const u = inUseBy([node], [idle], D);
    expect(checkInUse('destroy', 'pg', u, false)).toBeUndefined();
    expect(checkInUse('destroy', 'pg', u, true)).toBeUndefined();
    // A plain lease of a live node: refused as before.
    expect(refusal(() => checkInUse('destroy', 'pg', inUseBy([node], [plain], D), false)).message).toMatch(
      /^volume pg is in use on host-a/,
    );
  });

  it('destroy refused after asking (review TN F8): why and what to do; forced, the warning of a volume in use', () => {
    const u = inUseBy([node], [idle], D);
    if (u === undefined) throw new Error('no lease');
    const declined = `The dataset ${D} cannot be deleted: … Release the lease first. Its holder's Docker plugin declined to let go of it: a container on host-a uses it.`;
    expect(refusal(() => destroyAfterAsking('pg', u, declined, false)).message).toBe(
      "volume pg is in use on host-a (node aaaaaaaa): its holder's Docker plugin declined to let go of it: a container there uses it. Stop that container first, or pass --force to release the lease and destroy it anyway (that container loses its data).",
    );
    const silent = `… Release the lease first. Its holder was asked to let go of it and did not within 5 s (is the Docker plugin on host-a running?).`;
    expect(refusal(() => destroyAfterAsking('pg', u, silent, false)).message).toBe(
      'volume pg is held on host-a (node aaaaaaaa): its holder was asked to let go of it and did not within 5 s (is the Docker plugin on host-a running?). Check that plugin, or pass --force to release the lease and destroy it anyway (a container there, if any, loses its data).',
    );
    // Forced: exactly the warning of a plain lease in use (the lease is then released and the volume destroyed).
    const plainWarning = checkInUse('destroy', 'pg', inUseBy([node], [plain], D), true);
    expect(destroyAfterAsking('pg', u, declined, true)).toBe(plainWarning);
    expect(destroyAfterAsking('pg', u, silent, true)).toMatch(/that container loses its data/);
    // A service that did not ask: what ends the lease (notAsked, below); forced, the warning of a plain lease.
    expect(destroyAfterAsking('pg', u, 'Release the lease first.', true)).toBe(plainWarning);
  });

  it('destroy refused without asking (a holder that cannot hear requests, R1 F1): stop the container there, or release the lease of a host gone for good; never --force', () => {
    const u = inUseBy([node], [idle], D);
    if (u === undefined) throw new Error('no lease');
    const plainRefusal = `The dataset ${D} cannot be deleted: node ${A} holds a lease on it. Release the lease first.`;
    const e = refusal(() => destroyAfterAsking('pg', u, plainRefusal, false));
    expect(e.message).toBe(
      'volume pg is in use on host-a (node aaaaaaaa): that live node holds its lease, and its holder was not asked to let go of it (its node may run an older release or not have reported since the control service started). ' +
        'Stop the container that uses it on host-a (its Docker plugin then ends the lease), then destroy it again. ' +
        'If host-a is gone for good, release its lease ("flocker leases release pg --force"), then destroy it again.',
    );
    expect(e.message).not.toMatch(/pass --force|volumes destroy \S+ --force/);
    expect(e.code).toBe('LEASE_HELD');
  });

  it('release: still needs --force, saying that releasing does not ask, and what the user can do instead (never "destroy it")', () => {
    const u = inUseBy([node], [idle], D);
    const e = refusal(() => checkInUse('release', 'pg', u, false));
    expect(e.message).toBe(
      'volume pg is held on host-a (node aaaaaaaa) by a lease its holder lets go of when asked while no container there uses it; a container there may use it now. ' +
        'Releasing it here would not ask its holder. To use the volume elsewhere, nothing needs releasing: start the container on the other host (its Docker plugin asks for the lease and moves the volume there) or run "flocker volumes move pg <node>"; ' +
        'the holder lets go of it then, unless a container on host-a uses it (stop that container first). ' +
        "Unused, the lease also ends by itself after the Docker plugin's idle time (plugin.idle_lease_seconds, 60 s by default). " +
        'If host-a is gone for good, pass --force to release it anyway.',
    );
    // The stable code of a refusal of the CLI's own (exit code CONFLICT), as before.
    expect(e.code).toBe('CONFLICT');
    expect(e.message).not.toMatch(/destroy it instead/i);
    expect(checkInUse('release', 'pg', u, true)).toMatch(/^warning: volume pg is held on host-a .*without asking/);
  });

  it('a refused move says why the holder kept it: declined, or no answer in time', () => {
    const declined = leaseHeldOnMove(
      'pg',
      idle,
      [node],
      `The dataset ${D} cannot move: node ${A} (held there by docker, kept while no container uses it) holds a lease on it. Release the lease first. Its holder's Docker plugin declined to let go of it: a container on host-a uses it.`,
    );
    expect(declined.message).toBe(
      "volume pg cannot move: host-a (node aaaaaaaa) holds its lease. Its holder's Docker plugin declined to let go of it: a container on host-a uses it. Stop that container, then move it again, or start the container on the other host (the Docker plugin moves the volume there).",
    );
    const silent = leaseHeldOnMove(
      'pg',
      idle,
      [node],
      `The dataset ${D} cannot move: … Release the lease first. Its holder was asked to let go of it and did not within 5 s (is the Docker plugin on host-a running?).`,
    );
    expect(silent.message).toMatch(
      /holds its lease\. Its holder was asked to let go of it and did not within 5 s \(is the Docker plugin on host-a running\?\)\. Check that plugin, or release the lease \("flocker leases release pg --force"\)/,
    );
    // A control service that did not ask (older, or --handover-wait 0): the words of before.
    expect(leaseHeldOnMove('pg', idle, [node], 'Release the lease first.').message).toMatch(
      /a container there uses it/,
    );
  });

  it('lists mark it: released on request, or release requested while a request waits', () => {
    expect(leaseHoldersText(plain)).toBe('docker');
    expect(leaseHoldersText(idle)).toBe('docker; released on request');
    expect(leaseOnRequest({ ...idle, release_requested: { by: 'api', at: '2026-12-06T15:00:00Z' } })).toBe(
      'release requested',
    );
  });
});

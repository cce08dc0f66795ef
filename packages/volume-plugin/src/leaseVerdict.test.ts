/**
 * What a Mount refused a lease tells the user (leaseVerdict): the control service's own reason when it gave one. The
 * snapshot the plugin follows may not show why (a lease's release_on_request is left out of the views served while
 * a node is one release behind, or right after a control restart: Views.newMembersHidden), and the plugin's guess
 * ("in use by a container") was then shown instead of the control service's reason ("has not reported since the
 * control service restarted", "cannot hear a release request: … older release").
 */
import type { ClusterSnapshot, Lease } from '@flocker/api';
import { leaseVerdict } from './FlockerVolumeBackend';
import { NODE_A, NODE_B } from './testing';

function snapshot(lease: Lease): ClusterSnapshot {
  return {
    generation: '1',
    configuration_tag: 'v1',
    datasets: [],
    leases: [lease],
    node_timeout_seconds: 30,
    lease_grace_seconds: 5,
    nodes: [
      {
        uuid: NODE_B,
        era: 'e',
        host: 'host-b',
        instance_id: 'i',
        backend: 'fake',
        manifestations: [],
        errors: [],
        alive: true,
        last_seen: '2026-01-01T00:00:00.000Z',
      },
    ],
  };
}

// As the view left out release_on_request: a plain docker lease of a live node.
const hidden: Lease = { dataset_id: 'd', node_uuid: NODE_B, expires: null, holders: ['docker'] };

it("a live holder's lease refused with the control service's reason: the user sees that reason", () => {
  const refusal =
    `The dataset d is already leased by node ${NODE_B} (held there by docker, kept while no container uses it). ` +
    "Its holder's Docker plugin cannot hear a release request: its node runs an older release. Upgrade it, or " +
    'release the lease (flocker leases release) once no container there uses the volume.';
  const verdict = leaseVerdict(snapshot(hidden), 'd', NODE_A, 'v', refusal);
  expect(verdict).toMatchObject({ kind: 'fail', message: expect.stringContaining(refusal) });
  expect(verdict).toMatchObject({ message: expect.stringMatching(/^volume v is leased to host host-b: /) });
  expect(verdict).not.toMatchObject({ message: expect.stringContaining('in use by a container') });
  // What ends the lease if that host is down is still said.
  expect(verdict).toMatchObject({ message: expect.stringMatching(/declares it dead after 30 s .* 5 s later/) });
});

it('a refusal saying only who holds it (used there), or none: the words of before, naming the host', () => {
  const before = /^volume v is in use by a container on host host-b.*Stop that container first/;
  expect(leaseVerdict(snapshot(hidden), 'd', NODE_A, 'v')).toMatchObject({
    kind: 'fail',
    message: expect.stringMatching(before),
  });
  for (const plain of [
    `The dataset d is already leased by node ${NODE_B} (used there by docker).`,
    `The dataset d is already leased by node ${NODE_B}.`,
    `The dataset d cannot move: node ${NODE_B} (used there by docker, csi) holds a lease on it. Release the lease first.`,
  ])
    expect(leaseVerdict(snapshot(hidden), 'd', NODE_A, 'v', plain)).toMatchObject({
      kind: 'fail',
      message: expect.stringMatching(before),
    });
});

it('right after a control restart (the holder unreported): that reason, not "in use by a container"', () => {
  const refusal =
    `The dataset d is already leased by node ${NODE_B} (held there by docker, kept while no container uses it). ` +
    `Node ${NODE_B} (host-b) has not reported since the control service restarted, so its Docker plugin cannot be ` +
    'asked to let go of the lease yet (waited 5 s). Retry once that node reports again.';
  const verdict = leaseVerdict(snapshot(hidden), 'd', NODE_A, 'v', refusal);
  expect(verdict).toMatchObject({ kind: 'fail', message: expect.stringContaining('has not reported since') });
  expect(verdict).not.toMatchObject({ message: expect.stringContaining('in use by a container') });
});

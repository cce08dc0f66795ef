/**
 * Review T3 finding 3: `flocker volumes destroy --force` of a volume a container writes said "that container loses
 * its data", then repeated "destroy failed … (mounted in another mount namespace or held open); unmount it first
 * (DEVICE_BUSY)" until its timeout: the mount was the container's, which the user cannot unmount, and nothing said the
 * destroy finishes on its own once the container stops.
 */
import type { ClusterSnapshot } from '@flocker/api';
import { destroyProgress } from './health';
import { checkInUse } from './safety';
import { A, node as nodeA } from './testing/snapshots';

const D = '11111111-1111-4111-8111-111111111111';
const node = nodeA({ volumes: [{ blockdevice_id: 'v', dataset_id: D, size: 1, attached_to: 'i-a' }] });

describe('destroy --force of a volume a container uses', () => {
  it('the warning says what happens: the container keeps it until it stops, then it is destroyed', () => {
    const w = checkInUse('destroy', 'shared', { lease: { dataset_id: D, node_uuid: A, expires: null }, node }, true);
    expect(w).toMatch(/that container loses its data/);
    expect(w).toMatch(/destroyed once that container stops \(docker ps --filter volume=shared\)/);
  });

  it('a busy device while deleting: progress says a container there still uses it, how to find it, and what then', () => {
    const busy = {
      dataset_id: D,
      action: 'destroy',
      code: 'DEVICE_BUSY',
      message:
        'loop device /dev/loop20 of volume v is in use (mounted in another mount namespace or held open); unmount it first',
      attempts: 3,
      since: 'T',
    };
    const s: ClusterSnapshot = {
      generation: 'g',
      configuration_tag: 't',
      datasets: [{ dataset_id: D, primary: A, metadata: { name: 'shared' }, deleted: true }],
      leases: [],
      nodes: [{ ...node, errors: [busy] }],
    };
    const p = destroyProgress(s, D);
    expect(p).toMatchObject({ step: 'unmounting, detaching and destroying' });
    expect('error' in p ? p.error : '').toMatch(
      /\(DEVICE_BUSY\)\. Something on host-a still uses it, a container most often: stop it \(docker ps --filter volume=shared\); the destroy finishes once nothing uses it$/,
    );
  });
});

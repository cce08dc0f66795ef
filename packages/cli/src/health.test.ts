import type { DatasetConfiguration } from '@flocker/api';
import { clusterHealth, destroyProgress, errorText, isDeleting, volumeState } from './health';
import { A, node, snap } from './testing/snapshots';

const D = '11111111-1111-4111-8111-111111111111';
const d = (patch: Partial<DatasetConfiguration> = {}): DatasetConfiguration => ({
  dataset_id: D,
  primary: A,
  metadata: { name: 'pg' },
  deleted: false,
  ...patch,
});
const vol = { blockdevice_id: 'v', dataset_id: D, size: 1, attached_to: 'i-a' };
const busy = {
  dataset_id: D,
  action: 'destroy',
  code: 'DEVICE_BUSY',
  message: 'target is busy',
  attempts: 1,
  since: 'T',
};

describe('health (issue 17, item 11: a stuck delete was invisible)', () => {
  it('words a failing action with its host, attempts, since and code', () => {
    expect(errorText({ ...busy, host: 'host-a', node_uuid: A })).toBe(
      'destroy failed on host-a (1 attempt since T): target is busy (DEVICE_BUSY)',
    );
  });

  it('destroyProgress: done once gone; meanwhile the step, and the reason once a node reports one', () => {
    expect(destroyProgress(snap([node()]), D)).toEqual({ done: true });
    expect(destroyProgress(snap([node({ volumes: [vol] })]), D)).toEqual({
      step: 'unmounting, detaching and destroying',
    });
    expect(destroyProgress(snap([node({ volumes: [vol], errors: [busy] })]), D)).toEqual({
      step: 'unmounting, detaching and destroying',
      // The way out (review T3 finding 3); a dataset not in the snapshot is named by its id.
      error:
        'destroy failed on host-a (1 attempt since T): target is busy (DEVICE_BUSY). Something on host-a still uses ' +
        `it, a container most often: stop it (docker ps --filter volume=${D}); the destroy finishes once nothing uses it`,
    });
  });

  it('a deleted volume is "deleting" while a node has it, "deleted" once gone', () => {
    const deleted = d({ deleted: true });
    const mountedStill = snap([
      node({
        manifestations: [{ dataset_id: D, blockdevice_id: 'v', size: 1, status: 'mounted', path: '/p' }],
        errors: [busy],
      }),
    ]);
    expect(isDeleting(mountedStill, deleted)).toBe(true);
    expect(volumeState(mountedStill, deleted)).toMatchObject({
      state: 'deleting',
      reason: expect.stringContaining('DEVICE_BUSY'),
    });
    expect(isDeleting(snap([node()]), deleted)).toBe(false);
    expect(volumeState(snap([node()]), deleted).state).toBe('deleted');
  });

  it('clusterHealth counts only error-free mounted volumes as converged and gives every error a line', () => {
    const mounted = node({
      manifestations: [{ dataset_id: D, blockdevice_id: 'v', size: 1, status: 'mounted', path: '/p' }],
    });
    expect(clusterHealth(snap([mounted]), [d()])).toEqual({ converged: 1, deleting: 0, problems: [], errors: [] });
    const failing = node({ ...mounted, errors: [{ ...busy, action: 'resize' }] });
    const h = clusterHealth(snap([failing]), [d()]);
    expect(h.converged).toBe(0);
    expect(h.problems).toEqual([
      'pg: mounted, but resize failed on host-a (1 attempt since T): target is busy (DEVICE_BUSY)',
    ]);
    const orphan = clusterHealth(snap([node({ errors: [busy] })]), []);
    expect(orphan.problems).toEqual([
      'node host-a (dataset 11111111): destroy failed on host-a (1 attempt since T): target is busy (DEVICE_BUSY)',
    ]);
  });

  it('a grow waiting until the volume is unused (TN F3): not converged, and list/show carry it (volumeState)', () => {
    const pending = node({
      manifestations: [
        {
          dataset_id: D,
          blockdevice_id: 'v',
          size: 256,
          status: 'mounted',
          path: '/p',
          grow_pending: { reason: 'online_resize_refused' },
        },
      ],
    });
    const s = { ...snap([pending]), leases: [{ dataset_id: D, node_uuid: A, expires: null, holders: ['docker'] }] };
    const h = clusterHealth(s, [d({ maximum_size: 256 })]);
    expect(h.converged).toBe(0);
    expect(h.problems).toEqual([
      'pg: mounted, but the grow to 256 B is pending: grows when the volume is unmounted (in use by docker on host-a)',
    ]);
    expect(volumeState(s, d())).toEqual({
      node: 'host-a',
      state: 'mounted',
      path: '/p',
      grow_pending: { reason: 'online_resize_refused' },
    });
  });
});

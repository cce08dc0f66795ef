/**
 * `flocker volumes list`/`show` of a volume whose primary is dead: the dead node's last report is no longer true, so
 * no "mounted" there; the same sentence as the web UI (b944551, review T2 F6: a powered-off host shown as mounting).
 */
import type { DatasetConfiguration } from '@flocker/api';
import { volumeState } from './health';
import { A, node, snap } from './testing/snapshots';

const B = 'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb';
const D = '11111111-1111-4111-8111-111111111111';
const d: DatasetConfiguration = { dataset_id: D, primary: A, metadata: { name: 'pg' }, deleted: false };
const mounted = { dataset_id: D, blockdevice_id: 'v', size: 1, status: 'mounted' as const, path: '/flocker/pg' };
const failing = { dataset_id: D, action: 'mount', code: 'MOUNT_FAILED', message: 'no', attempts: 2, since: 'T' };

describe('volumeState of a volume on a dead node', () => {
  it("is an error naming the dead node and where its last report had it mounted, not 'mounted'", () => {
    const dead = node({ alive: false, manifestations: [mounted] });
    expect(volumeState(snap([dead]), d)).toEqual({
      node: 'host-a',
      state: 'error',
      path: '',
      reason: 'node host-a is not alive (its last report had it mounted at /flocker/pg)',
    });
  });

  it("ignores the dead node's last failure, keeps a live node's, and says not alive without a mount too", () => {
    const dead = node({ alive: false, errors: [failing] });
    const live = node({
      uuid: B,
      host: 'host-b',
      errors: [{ ...failing, action: 'attach', code: 'ATTACHED_ELSEWHERE' }],
    });
    expect(volumeState(snap([dead]), d)).toEqual({
      node: 'host-a',
      state: 'error',
      path: '',
      reason: 'node host-a is not alive',
    });
    expect(volumeState(snap([dead, live]), d).reason).toBe(
      'node host-a is not alive; attach failed on host-b (2 attempts since T): no (ATTACHED_ELSEWHERE)',
    );
  });

  it('a live primary is as before', () => {
    expect(volumeState(snap([node({ manifestations: [mounted] })]), d)).toEqual({
      node: 'host-a',
      state: 'mounted',
      path: '/flocker/pg',
    });
  });
});

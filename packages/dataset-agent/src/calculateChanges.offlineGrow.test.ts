/** Review U6 finding 2: the decision to grow a file system offline (see executeAction.offlineGrow.test.ts). */
import {
  calculateChanges,
  growPendingOf,
  leaseGone,
  resizesWaiting,
  type GrowingDecisionContext,
} from './calculateChanges';
import type { DiscoveredVolume } from './LocalState';
import { dataset, DS, growingContext as base, MiB, mountedVolume, nodes } from './testing/growing';

const mounted = mountedVolume(128 * MiB);
const decide = (ctx: GrowingDecisionContext, volume: DiscoveredVolume = mounted) =>
  calculateChanges({ datasets: [dataset], nodes }, { instanceId: 'i-me', volumes: [volume] }, ctx);
const resize = { kind: 'resize', datasetId: DS, blockdeviceId: 'vol-1', devicePath: '/dev/loop7', size: 128 * MiB };

describe('the offline grow decision', () => {
  it('a grown volume whose file system waits, no lease on it: resized again (the offline grow)', () => {
    expect(decide({ ...base, offlineGrow: { pending: new Set([DS]), leased: new Set() } })).toEqual([resize]);
  });
  it('leased (a container or pod uses it), or not waiting: nothing', () => {
    expect(decide({ ...base, offlineGrow: { pending: new Set([DS]), leased: new Set([DS]) } })).toEqual([]);
    expect(decide({ ...base, offlineGrow: { pending: new Set(), leased: new Set() } })).toEqual([]);
    expect(decide(base)).toEqual([]);
  });
  it('a driver without resizeVolume (canResize false): nothing, not a no-op resize at every decision (FR finding 8)', () => {
    const pending = { pending: new Set([DS]), leased: new Set<string>() };
    expect(decide({ ...base, canResize: false, offlineGrow: pending })).toEqual([]);
  });
  it('not mounted here: the mount step, which grows it first', () => {
    const unmounted = { ...mounted, mountPoints: [] };
    expect(decide({ ...base, offlineGrow: { pending: new Set([DS]), leased: new Set() } }, unmounted)).toEqual([
      {
        kind: 'mount',
        datasetId: DS,
        blockdeviceId: 'vol-1',
        devicePath: '/dev/loop7',
        mountPath: `/flocker/${DS}`,
        size: 128 * MiB,
      },
    ]);
  });
  it('leaseGone: a waiting dataset’s last lease went', () => {
    const lease = { dataset_id: DS };
    const other = { dataset_id: 'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb' };
    expect(leaseGone({ leases: [lease] }, { leases: [] }, new Set([DS]))).toBe(true);
    expect(leaseGone({ leases: [lease] }, { leases: [lease] }, new Set([DS]))).toBe(false);
    expect(leaseGone({ leases: [other] }, { leases: [] }, new Set([DS]))).toBe(false);
  });
});

describe('the grow a report says is pending (TN F3: growPendingOf)', () => {
  const none = new Set<string>();
  const one = new Set([DS]);
  it('the offline grow waits: online_resize_refused; the backend must detach: detach_required', () => {
    expect(growPendingOf(DS, true, one, none)).toEqual({ reason: 'online_resize_refused' });
    expect(growPendingOf(DS, true, none, one)).toEqual({ reason: 'detach_required' });
    // Both cannot wait at once (the device is grown, or not); the grown device's wait is the one left.
    expect(growPendingOf(DS, true, one, one)).toEqual({ reason: 'online_resize_refused' });
  });
  it('nothing waits, or not mounted here (the mount grows it first): none', () => {
    expect(growPendingOf(DS, true, none, none)).toBeUndefined();
    expect(growPendingOf(DS, false, one, one)).toBeUndefined();
    expect(growPendingOf('other', true, one, one)).toBeUndefined();
  });
  it('is what the decision keeps waiting: resizesWaiting for a backend that must detach, leased', () => {
    const grown = { ...dataset, maximumSize: 256 * MiB };
    const ctx = { ...base, resizeUnmounted: { leased: one } };
    const waiting = new Set(
      resizesWaiting({ datasets: [grown], nodes }, { instanceId: 'i-me', volumes: [mounted] }, ctx),
    );
    expect(calculateChanges({ datasets: [grown], nodes }, { instanceId: 'i-me', volumes: [mounted] }, ctx)).toEqual([]);
    expect(growPendingOf(DS, true, none, waiting)).toEqual({ reason: 'detach_required' });
  });
});

import type { DiscoveredVolume } from './LocalState';
import { ObservationView } from './ObservationView';

const A = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
const B = 'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb';
const vol = (datasetId: string, blockdeviceId: string, over: Partial<DiscoveredVolume> = {}): DiscoveredVolume => ({
  blockdeviceId,
  datasetId,
  size: 1,
  attachedTo: 'i-me',
  ...over,
});
const state = (...volumes: DiscoveredVolume[]) => ({ instanceId: 'i-me', volumes });

describe('ObservationView', () => {
  it('keeps the fresher observation of each dataset; a full look drops what it no longer shows, except datasets it did not look at', () => {
    const view = new ObservationView();
    const s1 = view.nextSeq();
    const s2 = view.nextSeq();
    view.update(state(vol(A, 'a2')), s2, A); // a worker's look, begun after the full look below
    view.update(state(vol(A, 'a1'), vol(B, 'b1')), s1);
    expect(view.all().map((v) => v.blockdeviceId)).toEqual(['a2', 'b1']);
    const s3 = view.nextSeq();
    view.update(state(), s3, undefined, new Set([B])); // B busy: not looked at
    expect(view.all().map((v) => v.blockdeviceId)).toEqual(['b1']);
    expect(view.volumesOf(A)).toEqual([]);
  });

  it('some() agrees with all().some() and stops at the first match', () => {
    const view = new ObservationView();
    expect(view.some(() => true)).toBe(false);
    view.update(state(vol(A, 'a1'), vol(B, 'b1', { mountPoints: ['/m'] })), view.nextSeq());
    const mounted = (v: DiscoveredVolume) => (v.mountPoints ?? []).length > 0;
    expect(view.some(mounted)).toBe(view.all().some(mounted));
    expect(view.some(mounted)).toBe(true);
    expect(view.some((v) => v.attachedTo === 'i-other')).toBe(false);
    let calls = 0;
    expect(view.some(() => ++calls > 0)).toBe(true);
    expect(calls).toBe(1);
  });

  it('orders looks and action ends', () => {
    const view = new ObservationView();
    const look = view.nextSeq();
    expect(view.actionEndedSince(look)).toBe(false);
    view.actionEnded();
    expect(view.actionEndedSince(look)).toBe(true);
    expect(view.actionEndedSince(view.nextSeq())).toBe(false);
  });

  it('records a mount just done on a volume attached here; nothing else changes', () => {
    const view = new ObservationView();
    view.update(
      state(
        vol(A, 'a1', { devicePath: '/dev/x', hasFilesystem: true, mountPoints: [] }),
        vol(B, 'b1', { attachedTo: 'i-b' }),
      ),
      view.nextSeq(),
    );
    expect(view.recordMount(A, 'a1', 'i-me', `/flocker/${A}`)).toBe(true);
    expect(view.volumesOf(A)[0]).toMatchObject({ hasFilesystem: true, mountPoints: [`/flocker/${A}`] });
    expect(view.recordMount(A, 'a1', 'i-me', `/flocker/${A}`)).toBe(false); // already there
    expect(view.recordMount(B, 'b1', 'i-me', `/flocker/${B}`)).toBe(false); // attached elsewhere
    expect(view.recordMount('cccccccc-cccc-4ccc-8ccc-cccccccccccc', 'c1', 'i-me', '/flocker/c')).toBe(false); // never seen
  });

  it('records an unmount done outside the workers (the fence); a full look begun before it does not bring the mount back', () => {
    const view = new ObservationView();
    const mounted = { devicePath: '/dev/x', hasFilesystem: true, mountPoints: [`/flocker/${A}`] };
    view.update(state(vol(A, 'a1', mounted), vol(B, 'b1')), view.nextSeq());
    const begun = view.nextSeq(); // a full look under way while the fence unmounts
    expect(view.recordUnmount(`/flocker/${A}`)).toBe(true);
    expect(view.volumesOf(A)[0]).toMatchObject({ blockdeviceId: 'a1', attachedTo: 'i-me', mountPoints: [] });
    expect(view.recordUnmount(`/flocker/${A}`)).toBe(false); // nothing shows it any more
    expect(view.recordUnmount(`/flocker/${B}`)).toBe(false); // never mounted
    view.update(state(vol(A, 'a1', mounted), vol(B, 'b1')), begun);
    expect(view.volumesOf(A)[0]?.mountPoints).toEqual([]);
    // A look begun after the unmount counts (mounted again since).
    view.update(state(vol(A, 'a1', mounted), vol(B, 'b1')), view.nextSeq());
    expect(view.volumesOf(A)[0]?.mountPoints).toEqual([`/flocker/${A}`]);
  });
});

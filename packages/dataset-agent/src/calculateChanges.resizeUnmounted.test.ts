/**
 * Review T1 S2 (session 18): the resize decision for a driver that extends only a volume it may detach (Cinder
 * extend_attached: reattach): with the agent's mount taken off around it (executeAction), only with no lease; with a
 * lease it waits (resizesWaiting), not a DEVICE_BUSY error loop.
 */
import { calculateChanges, resizesWaiting } from './calculateChanges';
import type { DiscoveredVolume } from './LocalState';
import { dataset, DS, growingContext as base, MiB, mountedVolume, nodes } from './testing/growing';

const mounted = mountedVolume(64 * MiB);
const desired = { datasets: [dataset], nodes };
const local = (volume: DiscoveredVolume = mounted) => ({ instanceId: 'i-me', volumes: [volume] });
const resize = { kind: 'resize', datasetId: DS, blockdeviceId: 'vol-1', devicePath: '/dev/loop7', size: 128 * MiB };
const free = { ...base, resizeUnmounted: { leased: new Set<string>() } };
const leased = { ...base, resizeUnmounted: { leased: new Set([DS]) } };

describe('the resize decision for a driver that extends only detached', () => {
  it('no lease: a resize with the mount taken off around it', () => {
    expect(calculateChanges(desired, local(), free)).toEqual([{ ...resize, unmounted: true }]);
    expect(resizesWaiting(desired, local(), free)).toEqual([]);
  });
  it('a lease (a container or pod uses it): nothing, and said to wait', () => {
    expect(calculateChanges(desired, local(), leased)).toEqual([]);
    expect(resizesWaiting(desired, local(), leased)).toEqual([DS]);
  });
  it('a driver that extends attached volumes: the resize as before, nothing waits', () => {
    expect(calculateChanges(desired, local(), base)).toEqual([resize]);
    expect(resizesWaiting(desired, local(), base)).toEqual([]);
  });
  it('grown already, or not mounted here (the mount step first): nothing waits', () => {
    const grown = { ...mounted, size: 128 * MiB };
    expect(calculateChanges(desired, local(grown), leased)).toEqual([]);
    expect(resizesWaiting(desired, local(grown), leased)).toEqual([]);
    expect(resizesWaiting(desired, local({ ...mounted, mountPoints: [] }), leased)).toEqual([]);
  });
});

/**
 * Review T1 S2 (session 18): the resize decision for a driver that extends only a volume it may detach (Cinder
 * extend_attached: reattach): with the agent's mount taken off around it (executeAction), only with no lease; with a
 * lease it waits (resizesWaiting), not a DEVICE_BUSY error loop.
 */
import { calculateChanges, resizesWaiting, type GrowingDecisionContext } from './calculateChanges';
import type { DesiredDataset, DiscoveredVolume } from './LocalState';

const ME = '11111111-1111-4111-8111-111111111111';
const DS = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
const MiB = 1024 * 1024;
const base: GrowingDecisionContext = {
  nodeUuid: ME,
  mountRoot: '/flocker',
  defaultSize: 64 * MiB,
  allocationUnit: MiB,
  canResize: true,
};
const nodes = [{ uuid: ME, instanceId: 'i-me', alive: true }];
const dataset: DesiredDataset = { datasetId: DS, primary: ME, maximumSize: 128 * MiB, deleted: false };
const mounted: DiscoveredVolume = {
  blockdeviceId: 'vol-1',
  datasetId: DS,
  size: 64 * MiB,
  attachedTo: 'i-me',
  devicePath: '/dev/loop7',
  hasFilesystem: true,
  mountPoints: [`/flocker/${DS}`],
};
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

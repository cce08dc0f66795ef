/**
 * The one node, dataset and mounted volume the grow decision tests (calculateChanges.offlineGrow,
 * calculateChanges.resizeUnmounted) decide on (test support; not exported by the package).
 */
import type { GrowingDecisionContext } from '../calculateChanges';
import type { DesiredDataset, DiscoveredVolume } from '../LocalState';

export const ME = '11111111-1111-4111-8111-111111111111';
export const DS = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
export const MiB = 1024 * 1024;

/** A node that may grow volumes, 64 MiB by default, in 1 MiB units. */
export const growingContext: GrowingDecisionContext = {
  nodeUuid: ME,
  mountRoot: '/flocker',
  defaultSize: 64 * MiB,
  allocationUnit: MiB,
  canResize: true,
};
export const nodes = [{ uuid: ME, instanceId: 'i-me', alive: true }];
/** DS on ME, wanted at 128 MiB. */
export const dataset: DesiredDataset = { datasetId: DS, primary: ME, maximumSize: 128 * MiB, deleted: false };
/** DS's volume vol-1 of `size`, attached to ME as /dev/loop7 and mounted at /flocker/DS. */
export const mountedVolume = (size: number): DiscoveredVolume => ({
  blockdeviceId: 'vol-1',
  datasetId: DS,
  size,
  attachedTo: 'i-me',
  devicePath: '/dev/loop7',
  hasFilesystem: true,
  mountPoints: [`/flocker/${DS}`],
});

/**
 * Sizes a backend cannot create are refused at the API: agents report their
 * driver's largest volume (NodeReport.max_volume_size), and a dataset may not be
 * created on, moved to or grown on a node beyond it (else the agent would fail
 * with INVALID_SIZE forever). A node that reports no limit is not checked.
 */
import { formatSize } from '@flocker/api';
import type { ReportedNode } from './clusterState';
import { RequestError } from './errors';

export function sizeBeyondBackend(
  size: number | null | undefined,
  /** The primary's latest report (a lookup: scanning 10,000 nodes per create or move cost O(nodes), issue 23). */
  node: ReportedNode | undefined,
): RequestError | undefined {
  if (size === null || size === undefined || node === undefined) return undefined;
  const limit = node.report.max_volume_size;
  if (limit !== undefined && size > limit) {
    return new RequestError(
      'SIZE_BEYOND_BACKEND',
      `maximum_size ${size} (${formatSize(size)}) is larger than the ${node.report.backend} backend of node ${node.report.uuid} (${node.report.host}) can create: at most ${limit} bytes (${formatSize(limit)}).`,
    );
  }
  return undefined;
}

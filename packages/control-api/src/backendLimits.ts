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
  primary: string,
  nodes: Iterable<ReportedNode>,
): RequestError | undefined {
  if (size === null || size === undefined) return undefined;
  for (const n of nodes) {
    if (n.report.uuid !== primary) continue;
    const limit = n.report.max_volume_size;
    if (limit !== undefined && size > limit) {
      return new RequestError(
        'SIZE_BEYOND_BACKEND',
        `maximum_size ${size} (${formatSize(size)}) is larger than the ${n.report.backend} backend of node ${primary} (${n.report.host}) can create: at most ${limit} bytes (${formatSize(limit)}).`,
      );
    }
  }
  return undefined;
}

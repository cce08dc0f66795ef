/** The synthetic node reports the benchmarks (listBench, scaleBench) send for their simulated nodes. */
import type { NodeReport } from '@flocker/api';

/**
 * Node i's report: a loopback node with a host address of its own (10.x.y.z from i) holding each of
 * its datasets mounted; extraSize is added to every manifestation's size (a change that list shows).
 */
export function syntheticReport(i: number, uuid: string, datasets: readonly string[], extraSize = 0): NodeReport {
  return {
    uuid,
    era: `era-${i}`,
    host: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`,
    instance_id: `i-${i}`,
    backend: 'loopback',
    manifestations: datasets.map((id) => ({
      dataset_id: id,
      blockdevice_id: `b-${id}`,
      size: 67108864 + extraSize,
      status: 'mounted' as const,
      path: `/flocker/${id}`,
    })),
    errors: [],
  };
}

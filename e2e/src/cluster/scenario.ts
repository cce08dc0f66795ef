/**
 * Helpers shared by the multi-host tests and the benchmark: observing where a
 * dataset is, and reading/writing inside a host's mount namespace.
 */
import type { FlockerClient } from '@flocker/api';
import type { ClusterHost } from './Host';
import { ClusterError } from './run';

export const TEST_DATASET_SIZE = 128 * 1024 * 1024;

/**
 * Waits until the dataset is mounted on nodeUuid (per the control service); returns its path there.
 * Follows the control service's long-poll, so it sees the report the moment it lands.
 */
export async function waitForMountedOn(
  client: FlockerClient,
  datasetId: string,
  nodeUuid: string,
  timeoutMs = 30_000,
): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  let since: string | undefined;
  for (;;) {
    const snapshot = await client.waitForCluster(since, Math.max(0, Math.min(10_000, deadline - Date.now())));
    since = snapshot.generation;
    const node = snapshot.nodes.find((n) => n.uuid === nodeUuid && n.alive);
    const m = node?.manifestations.find((x) => x.dataset_id === datasetId && x.status === 'mounted');
    // Only a "mounted" the control service shows too: after a move (back), the node's report built before its agent
    // had acted on the move may still say mounted (session 10: its configuration_version is older than the move's,
    // so /v1/state/datasets does not show it there; docs/performance.md "Waiting for one dataset without polling").
    // Read for this dataset only (?dataset_id=), not the whole list.
    if (m?.path !== undefined && (await client.shownMountedOn(datasetId, nodeUuid)) !== undefined) return m.path;
    if (Date.now() >= deadline) {
      throw new ClusterError(
        'WAIT_TIMEOUT',
        `timed out after ${timeoutMs} ms waiting for dataset ${datasetId} mounted on node ${nodeUuid}`,
      );
    }
  }
}

/** Mount points on the host whose source is a loop device, as seen in its own mount namespace. */
export async function loopMounts(host: ClusterHost): Promise<Array<{ device: string; target: string }>> {
  const { stdout } = await host.exec(['cat', '/proc/self/mounts']);
  return stdout
    .split('\n')
    .map((l) => l.split(' '))
    .filter((f) => (f[0] ?? '').startsWith('/dev/loop'))
    .map((f) => ({ device: f[0] ?? '', target: f[1] ?? '' }));
}

/** True if the host has anything mounted at path (in its own mount namespace). */
export async function isMountedOn(host: ClusterHost, path: string): Promise<boolean> {
  return (await loopMounts(host)).some((m) => m.target === path);
}

export async function writeFileOn(host: ClusterHost, file: string, content: string): Promise<void> {
  await host.exec(['sh', '-c', 'cat > "$1" && sync "$1"', 'sh', file], { input: content });
}

export async function readFileOn(host: ClusterHost, file: string): Promise<string> {
  return (await host.exec(['cat', file])).stdout;
}

/** Writes `mib` MiB of random data plus its checksum file next to it. */
export async function writeBlobOn(host: ClusterHost, dir: string, mib: number): Promise<string> {
  const { stdout } = await host.exec([
    'sh',
    '-ec',
    `dd if=/dev/urandom of="$1/blob" bs=1M count=${mib} status=none; sync; md5sum "$1/blob" | cut -d" " -f1 | tee "$1/blob.md5"`,
    'sh',
    dir,
  ]);
  return stdout.trim();
}

export async function md5On(host: ClusterHost, file: string): Promise<string> {
  return (await host.exec(['md5sum', file])).stdout.split(' ')[0] ?? '';
}

export const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length === 0 ? NaN : s.length % 2 === 1 ? (s[m] ?? NaN) : ((s[m - 1] ?? 0) + (s[m] ?? 0)) / 2;
};

export interface LatencyStats {
  n: number;
  median_ms: number;
  min_ms: number;
  max_ms: number;
  p10_ms: number;
  p90_ms: number;
  /** Nearest rank: with fewer than 100 samples, the largest. */
  p99_ms: number;
  samples_ms: number[];
}

/** Median, nearest-rank p99 and friends of latency samples (ms), rounded to 0.1 ms. */
export function latencyStats(samples: readonly number[]): LatencyStats {
  const s = [...samples].sort((x, y) => x - y);
  const q = (p: number): number => s[Math.min(s.length - 1, Math.floor(p * (s.length - 1)))] ?? NaN;
  const r = (x: number): number => Math.round(x * 10) / 10;
  return {
    n: s.length,
    median_ms: r(median(s)),
    min_ms: r(s[0] ?? NaN),
    max_ms: r(s[s.length - 1] ?? NaN),
    p10_ms: r(q(0.1)),
    p90_ms: r(q(0.9)),
    p99_ms: r(s[Math.min(s.length - 1, Math.ceil(0.99 * s.length) - 1)] ?? NaN),
    samples_ms: samples.map(r),
  };
}

/**
 * The ids and node reports the unit tests of the configuration and cluster state
 * share: nodes A, B and C, datasets D1 to D3, and a fixed start time.
 */
import type { DatasetConfiguration, ManifestationState, NodeReport } from '@flocker/api';
import { type Configuration, emptyConfiguration } from '../configuration';

export const A = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
export const B = 'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb';
export const C = 'cccccccc-cccc-4ccc-8ccc-cccccccccccc';
export const D1 = '11111111-1111-4111-8111-111111111111';
export const D2 = '22222222-2222-4222-8222-222222222222';
export const D3 = '33333333-3333-4333-8333-333333333333';
/** An injected clock's start (Nov 2023). */
export const T0 = 1_700_000_000_000;

/**
 * A loopback node's report named by its uuid's first letter (node A: host `host-a`,
 * instance `i-a`, era `era-<uuid>`), with nothing on it unless `extra` says.
 */
export function letterReport(uuid: string, extra: Partial<NodeReport> = {}): NodeReport {
  const letter = uuid.slice(0, 1);
  return {
    uuid,
    era: `era-${uuid}`,
    host: `host-${letter}`,
    instance_id: `i-${letter}`,
    backend: 'loopback',
    manifestations: [],
    errors: [],
    ...extra,
  };
}

/** The empty configuration with these datasets. */
export function configOf(...d: DatasetConfiguration[]): Configuration {
  return { ...emptyConfiguration, datasets: new Map(d.map((x) => [x.dataset_id, x])) };
}

/** A node's report with the `mounted` datasets mounted (size 1, no path), on a local backend unless told. */
export function mountedReport(uuid: string, mounted: string[], backend = 'local-btrfs'): NodeReport {
  return {
    uuid,
    era: `era-${uuid}`,
    host: uuid.slice(0, 1),
    instance_id: `i-${uuid}`,
    backend,
    manifestations: mounted.map((id) => ({ dataset_id: id, blockdevice_id: id, size: 1, status: 'mounted' as const })),
    errors: [],
  };
}

/** A 1 GiB dataset mounted on a letter node, at `/flocker-<letter>/<id>` (the stale-"mounted" tests). */
export function mountedManifestation(id: string, node: string): ManifestationState {
  return {
    dataset_id: id,
    blockdevice_id: `bd-${id}`,
    size: 1024 ** 3,
    status: 'mounted',
    path: `/flocker-${node.slice(0, 1)}/${id}`,
  };
}

/** One dataset's entry of a whole /v1/state/datasets body, as `?dataset_id=` must answer it. */
export function stateEntryOf(wholeList: string, id: string): string {
  return JSON.stringify((JSON.parse(wholeList) as Array<{ dataset_id: string }>).filter((d) => d.dataset_id === id));
}

/** The configuration-log ops release N (the one before session 11) parses: it rejects any other (store format). */
export const PREVIOUS_RELEASE_LOG_OPS: readonly string[] = [
  'dataset',
  'dataset-delete',
  'lease',
  'lease-delete',
  'node',
  'node-delete',
  'container',
  'container-delete',
  'snapshot',
  'snapshot-delete',
];

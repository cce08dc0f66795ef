/** Small builders of cluster snapshots for the model's tests and the CLI's (`@flocker/web-ui/testing`). */
import type { ActionError, ClusterSnapshot, DatasetConfiguration, NodeState } from '@flocker/api/schemas';

export const A = '0a0a0a0a-0000-4000-8000-00000000000a';
export const B = '0b0b0b0b-0000-4000-8000-00000000000b';
export const D1 = 'd1d1d1d1-0000-4000-8000-0000000000d1';
export const D2 = 'd2d2d2d2-0000-4000-8000-0000000000d2';

export function node(uuid: string, host: string, over: Partial<NodeState> = {}): NodeState {
  return {
    uuid,
    host,
    era: `era-${uuid.slice(0, 4)}`,
    instance_id: `i-${host}`,
    backend: 'loopback',
    manifestations: [],
    volumes: [],
    errors: [],
    alive: true,
    last_seen: '2026-01-01T00:00:00.000Z',
    ...over,
  };
}

export function dataset(
  id: string,
  name: string,
  primary: string,
  over: Partial<DatasetConfiguration> = {},
): DatasetConfiguration {
  return { dataset_id: id, primary, maximum_size: 128 * 1024 * 1024, metadata: { name }, deleted: false, ...over };
}

export function snapshot(over: Partial<ClusterSnapshot> = {}): ClusterSnapshot {
  return {
    generation: '1',
    configuration_tag: 't',
    datasets: [],
    leases: [],
    nodes: [node(A, '10.0.0.1'), node(B, '10.0.0.2')],
    ...over,
  };
}

export const mounted = (id: string, path = `/flocker/${id}`) => ({
  dataset_id: id,
  blockdevice_id: `vol-${id}`,
  size: 1,
  status: 'mounted' as const,
  path,
});
export const attached = (id: string) => ({
  dataset_id: id,
  blockdevice_id: `vol-${id}`,
  size: 1,
  status: 'attached' as const,
});
export const backend = (id: string, attachedTo: string | null) => ({
  blockdevice_id: `vol-${id}`,
  dataset_id: id,
  size: 1,
  attached_to: attachedTo,
});
/** A node's report that an action on dataset `id` keeps failing (an attach, the device busy, unless `over` says). */
export const actionError = (id: string, over: Partial<ActionError> = {}): ActionError => ({
  dataset_id: id,
  action: 'attach',
  code: 'DEVICE_BUSY',
  message: 'device busy',
  attempts: 3,
  since: 's',
  ...over,
});

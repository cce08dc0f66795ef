/** Test support for the cli's own tests: one node and the cluster snapshot around it. */
import type { ClusterSnapshot, DatasetConfiguration, NodeState } from '@flocker/api';

export const A = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';

/** Node A (host-a, instance i-a, loopback): alive, nothing on it; `patch` on top. */
export const node = (patch: Partial<NodeState> = {}): NodeState => ({
  uuid: A,
  era: 'e',
  host: 'host-a',
  instance_id: 'i-a',
  backend: 'loopback',
  manifestations: [],
  volumes: [],
  errors: [],
  alive: true,
  last_seen: 'now',
  ...patch,
});

/** The control service's snapshot of `nodes` and `datasets`, with no leases. */
export const snap = (nodes: NodeState[], datasets: DatasetConfiguration[] = []): ClusterSnapshot => ({
  generation: 'g',
  configuration_tag: 't',
  datasets,
  leases: [],
  nodes,
});

/** Test support for the fence's tests (fence*.test.ts): node ME fenced at SINCE, its container `db` on volume D1. */
import { type ContainerConfiguration, NodeState } from '@flocker/api';
import type { AgentClient } from '../ContainerAgent';

export const ME = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
export const D1 = '11111111-1111-4111-8111-111111111111';
export const SINCE = Date.parse('2026-12-06T05:00:00.000Z');

/** The container `db` on ME, its volume D1 at /data. */
export function dbContainer(restart: 'never' | 'always'): ContainerConfiguration {
  return {
    name: 'db',
    node_uuid: ME,
    image: 'tiny',
    ports: [],
    environment: {},
    links: [],
    volumes: [{ dataset_id: D1, mountpoint: '/data' }],
    restart_policy: { name: restart },
  };
}

/** The control service as the agent reads it: `db` configured, D1 primary on ME (host 10.0.0.1). */
export function dbClient(db: ContainerConfiguration): AgentClient {
  return {
    waitForCluster: async () => ({ generation: 'g', configuration_tag: 'v1', datasets: [], leases: [], nodes: [] }),
    listContainers: async () => [db],
    listDatasets: async () => [{ dataset_id: D1, primary: ME, metadata: { name: 'dbvol' }, deleted: false }],
    listNodes: async () => [{ uuid: ME, host: '10.0.0.1' }],
    reportContainers: async () => ({ generation: 'g' }),
  };
}

/** ME's node state as its dataset agent reports it (alive, no fence), with `over`. */
export function meNodeState(over: Partial<NodeState> = {}): NodeState {
  return NodeState.parse({
    uuid: ME,
    host: '10.0.0.1',
    era: 'e',
    instance_id: 'i',
    backend: 'loopback',
    manifestations: [],
    alive: true,
    last_seen: '2026-12-06T05:00:10.000Z',
    ...over,
  });
}

import type { NodeState } from '@flocker/api';

/** A live node's state as the control service lists it (local-btrfs, nothing held), with `over` applied. */
export function nodeState(uuid: string, host: string, over: Partial<NodeState> = {}): NodeState {
  return {
    uuid,
    host,
    era: `era-${host}`,
    instance_id: `i-${host}`,
    backend: 'local-btrfs',
    manifestations: [],
    errors: [],
    alive: true,
    last_seen: '2026-12-05T22:00:00.000Z',
    ...over,
  };
}

import type { ClusterEvent, NodeState } from '@flocker/api';
import { deadNodeLine, eventLine, fencingLine, recentEvents } from './failover';

const A = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
const D1 = '11111111-1111-4111-8111-111111111111';
const now = new Date('2026-01-01T12:00:00.000Z');

function node(over: Partial<NodeState> = {}): NodeState {
  return {
    uuid: A,
    era: 'e',
    host: '10.0.0.1',
    instance_id: 'i',
    backend: 'loopback',
    manifestations: [],
    errors: [],
    alive: false,
    last_seen: '2026-01-01T11:59:18.000Z',
    ...over,
  };
}

describe('flocker status: failover lines', () => {
  it('a dead node with the time it was declared dead; an older service without dead_since', () => {
    expect(deadNodeLine(node({ dead_since: '2026-01-01T11:59:48.000Z' }), now)).toBe(
      'node 10.0.0.1 (aaaaaaaa) is dead since 2026-01-01T11:59:48.000Z (12s ago); last seen 42s ago',
    );
    expect(deadNodeLine(node(), now)).toBe('node 10.0.0.1 (aaaaaaaa) is not alive; last seen 42s ago');
  });

  it('a fencing report: what was stopped and removed, fenced or recovered', () => {
    expect(fencingLine(node())).toBeUndefined();
    const fencing = {
      state: 'fenced' as const,
      since: '2026-01-01T11:59:30.000Z',
      reason: 'no contact with the control service for 15s',
      stopped_containers: ['web', 'db'],
      removed_mounts: ['/flocker/x'],
    };
    expect(fencingLine(node({ fencing }))).toBe(
      'node 10.0.0.1 (aaaaaaaa) is fenced since 2026-01-01T11:59:30.000Z: no contact with the control service for 15s; stopped containers web, db; removed mounts /flocker/x',
    );
    expect(fencingLine(node({ fencing: { state: 'recovered', since: 's', reason: 'r' } }))).toBe(
      'node 10.0.0.1 (aaaaaaaa) recovered from fencing (fenced at s: r)',
    );
  });

  it('events in words, with host and volume names where known', () => {
    const released: ClusterEvent = {
      time: '2026-01-01T11:59:53.000Z',
      kind: 'lease_released_dead_node',
      node_uuid: A,
      dataset_id: D1,
      message: 'm',
    };
    const hostOf = (u: string) => (u === A ? '10.0.0.1' : undefined);
    expect(eventLine(released, hostOf, () => 'pgdata')).toBe(
      '2026-01-01T11:59:53.000Z  lease released from dead host 10.0.0.1 for volume pgdata',
    );
    expect(
      eventLine(
        released,
        () => undefined,
        () => undefined,
      ),
    ).toBe('2026-01-01T11:59:53.000Z  lease released from dead host aaaaaaaa for volume 11111111');
    expect(eventLine({ ...released, kind: 'node_dead' }, hostOf, () => undefined)).toBe(
      '2026-01-01T11:59:53.000Z  host 10.0.0.1 declared dead',
    );
    expect(eventLine({ ...released, kind: 'node_back' }, hostOf, () => undefined)).toBe(
      '2026-01-01T11:59:53.000Z  host 10.0.0.1 is back',
    );
    // A when_released move its source used again (node_uuid: the node using it).
    expect(eventLine({ ...released, kind: 'move_cancelled' }, hostOf, () => 'pgdata')).toBe(
      '2026-01-01T11:59:53.000Z  move of volume pgdata cancelled: used again on host 10.0.0.1',
    );
  });

  it('shows the newest events, oldest first', () => {
    const events = Array.from({ length: 15 }, (_, i): ClusterEvent => ({
      time: String(i),
      kind: 'node_dead',
      message: String(i),
    }));
    expect(recentEvents(events).map((e) => e.time)).toEqual(['5', '6', '7', '8', '9', '10', '11', '12', '13', '14']);
    expect(recentEvents(events.slice(0, 2))).toHaveLength(2);
  });
});

import { A, D1 } from '@flocker/web-ui/testing';
import { feedLine, parseSince, stamped, storedEventsSince } from './events';
import { EXIT } from './errors';

const now = new Date('2026-01-01T12:00:00.000Z');

describe('flocker events', () => {
  it('--since: a duration back from now or an ISO time; anything else is a usage error', () => {
    expect(parseSince('30s', now).toISOString()).toBe('2026-01-01T11:59:30.000Z');
    expect(parseSince('10m', now).toISOString()).toBe('2026-01-01T11:50:00.000Z');
    expect(parseSince('2h', now).toISOString()).toBe('2026-01-01T10:00:00.000Z');
    expect(parseSince('1d', now).toISOString()).toBe('2025-12-31T12:00:00.000Z');
    expect(parseSince('2026-01-01T11:00:00Z', now).toISOString()).toBe('2026-01-01T11:00:00.000Z');
    for (const bad of ['10', 'yesterday', '5w', ''])
      expect(() => parseSince(bad, now)).toThrow(expect.objectContaining({ exitCode: EXIT.USAGE }));
  });

  it("stored events since then, oldest first, in the feed's kinds", () => {
    const out = storedEventsSince(
      [
        { time: '2026-01-01T11:58:00.000Z', kind: 'node_back', node_uuid: A, message: 'back' },
        { time: '2026-01-01T11:00:00.000Z', kind: 'node_dead', node_uuid: A, message: 'too old' },
        {
          time: '2026-01-01T11:57:00.000Z',
          kind: 'lease_released_dead_node',
          node_uuid: A,
          dataset_id: D1,
          message: 'released',
        },
        { time: '2026-01-01T11:56:00.000Z', kind: 'node_dead', node_uuid: A, message: 'lost' },
        {
          time: '2026-01-01T11:59:00.000Z',
          kind: 'move_cancelled',
          node_uuid: A,
          dataset_id: D1,
          message: 'Move of volume pg to host b cancelled: used again on host a',
        },
      ],
      parseSince('5m', now),
    );
    expect(out.map((e) => [e.kind, e.severity, e.message])).toEqual([
      ['node-lost', 'error', 'lost'],
      ['lease-released', 'warning', 'released'],
      ['node-back', 'success', 'back'],
      ['move-cancelled', 'warning', 'Move of volume pg to host b cancelled: used again on host a'],
    ]);
    expect(out[1]).toMatchObject({ dataset_id: D1, node_uuid: A, time: '2026-01-01T11:57:00.000Z' });
  });

  it('a line: time, kind, message', () => {
    const [e] = stamped([{ kind: 'mounted', severity: 'success', message: 'Volume pg mounted' }], 't');
    expect(feedLine(e!)).toBe('t  mounted            Volume pg mounted');
  });

  it('one line whatever the message holds (review T6 F3: a node address with a line feed faked an event)', () => {
    const [e] = stamped([{ kind: 'node-lost', severity: 'error', message: 'Node h\nt  node-back lost' }], 't');
    expect(feedLine(e!)).toBe('t  node-lost          Node h\\u000at  node-back lost');
  });
});

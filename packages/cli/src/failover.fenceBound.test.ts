/**
 * TN F9: `flocker status` printed every mount a fence removed on one line (14 paths). The lists are bounded: the first
 * few, then "and N more" (the node report and `--output json` keep them all).
 */
import type { NodeState } from '@flocker/api';
import { FENCE_LIST_MAX, fencingLine } from './failover';

const A = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';

function node(fencing: NodeState['fencing']): NodeState {
  return {
    uuid: A,
    era: 'e',
    host: '10.0.0.1',
    instance_id: 'i',
    backend: 'loopback',
    manifestations: [],
    errors: [],
    alive: true,
    last_seen: '2026-01-01T12:00:00.000Z',
    ...(fencing !== undefined ? { fencing } : {}),
  };
}

const mounts = (n: number): string[] => Array.from({ length: n }, (_, i) => `/flocker/m${i}`);

describe('fencingLine bounds its lists', () => {
  it('14 removed mounts: the first few and "and N more"', () => {
    const line = fencingLine(node({ state: 'recovered', since: 's', reason: 'r', removed_mounts: mounts(14) }))!;
    expect(line).toBe(
      `node 10.0.0.1 (aaaaaaaa) recovered from fencing (fenced at s: r); removed mounts ${mounts(FENCE_LIST_MAX).join(', ')} and ${14 - FENCE_LIST_MAX} more`,
    );
  });

  it('up to the bound: all of them, no "more"', () => {
    const line = fencingLine(
      node({ state: 'fenced', since: 's', reason: 'r', removed_mounts: mounts(FENCE_LIST_MAX) }),
    )!;
    expect(line).toContain(`removed mounts ${mounts(FENCE_LIST_MAX).join(', ')}`);
    expect(line).not.toContain('more');
  });

  it('stopped containers too', () => {
    const names = Array.from({ length: FENCE_LIST_MAX + 2 }, (_, i) => `c${i}`);
    const line = fencingLine(node({ state: 'fenced', since: 's', reason: 'r', stopped_containers: names }))!;
    expect(line).toContain(`stopped containers ${names.slice(0, FENCE_LIST_MAX).join(', ')} and 2 more`);
  });
});

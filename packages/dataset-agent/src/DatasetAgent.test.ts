import { backoffDelay, desiredStateOf, parseCrashAfter } from './DatasetAgent';

describe('agent loop helpers', () => {
  it('backs off exponentially within bounds', () => {
    expect([1, 2, 3, 4, 5, 6, 7, 8, 20].map((n) => backoffDelay(n, 500, 30_000))).toEqual([
      500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000,
    ]);
  });

  it('parses the crash hook', () => {
    expect(parseCrashAfter(undefined)).toBeUndefined();
    expect(parseCrashAfter('mount:2')).toEqual({ kind: 'mount', count: 2 });
    expect(() => parseCrashAfter('explode:1')).toThrow(/FLOCKER_AGENT_CRASH_AFTER/);
    expect(() => parseCrashAfter('mount:0')).toThrow(/FLOCKER_AGENT_CRASH_AFTER/);
  });

  it('derives the desired state from a cluster snapshot', () => {
    const d = desiredStateOf({
      generation: '1',
      configuration_tag: 't',
      leases: [],
      datasets: [
        {
          dataset_id: 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa',
          primary: 'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb',
          metadata: { 'clusterhq:flocker:profile': 'gold' },
          deleted: false,
        },
      ],
      nodes: [
        {
          uuid: 'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb',
          era: 'e',
          host: 'h',
          instance_id: 'i-b',
          backend: 'loopback',
          manifestations: [],
          errors: [],
          alive: false,
          last_seen: '2020-01-01T00:00:00Z',
        },
      ],
    });
    expect(d).toEqual({
      datasets: [
        {
          datasetId: 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa',
          primary: 'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb',
          maximumSize: null,
          deleted: false,
          profile: 'gold',
        },
      ],
      nodes: [{ uuid: 'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb', instanceId: 'i-b', alive: false }],
    });
  });
});

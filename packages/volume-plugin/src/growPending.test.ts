import type { ClusterSnapshot, NodeState } from '@flocker/api';
import { growPendingHere } from './growPending';

const ME = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
const OTHER = 'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb';
const D = '11111111-1111-4111-8111-111111111111';
const E = '22222222-2222-4222-8222-222222222222';
const m = (dataset_id: string, pending: boolean) => ({
  dataset_id,
  blockdevice_id: 'b',
  size: 1,
  status: 'mounted' as const,
  path: '/p',
  ...(pending ? { grow_pending: { reason: 'online_resize_refused' as const } } : {}),
});
const node = (uuid: string, manifestations: NodeState['manifestations']): NodeState => ({
  uuid,
  era: 'e',
  host: uuid,
  instance_id: `i-${uuid}`,
  backend: 'loopback',
  manifestations,
  volumes: [],
  errors: [],
  alive: true,
  last_seen: 'now',
});
const snap = (nodes: NodeState[]): ClusterSnapshot => ({
  generation: 'g',
  configuration_tag: 't',
  datasets: [],
  leases: [],
  nodes,
});

describe('growPendingHere (TN F3: an idle lease holding back a grow)', () => {
  it('true only for this node reporting a pending grow of that dataset', () => {
    expect(growPendingHere(snap([node(ME, [m(D, true)])]), ME, D)).toBe(true);
    expect(growPendingHere(snap([node(ME, [m(D, false), m(E, true)])]), ME, D)).toBe(false);
    expect(growPendingHere(snap([node(ME, [m(D, false)]), node(OTHER, [m(D, true)])]), ME, D)).toBe(false);
    expect(growPendingHere(snap([]), ME, D)).toBe(false);
  });
});

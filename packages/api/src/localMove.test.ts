/**
 * localMoveOf / holderOf: the one rule the CLI's `volumes list/show` and the Docker plugin's `docker volume inspect`
 * use to say where a moving local volume is (session 17: inspect named the target while the CLI named the source).
 */
import { holderOf, localMoveOf } from './localView';
import type { ClusterSnapshot, DatasetConfiguration, LocalMove, NodeState } from './schemas';

const A = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
const B = 'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb';
const D = '11111111-1111-4111-8111-111111111111';

function node(uuid: string, backend: string, has: boolean, moves?: LocalMove[]): NodeState {
  return {
    uuid,
    era: `era-${uuid.slice(0, 4)}`,
    host: uuid === A ? 'host-a' : 'host-b',
    instance_id: `i-${uuid.slice(0, 4)}`,
    backend,
    manifestations: has ? [{ dataset_id: D, blockdevice_id: D, size: 1, status: 'attached' }] : [],
    errors: [],
    ...(moves !== undefined ? { moves } : {}),
    alive: true,
    last_seen: '2026-01-01T00:00:00.000Z',
  };
}

const d: DatasetConfiguration = { dataset_id: D, primary: B, metadata: {}, deleted: false };

function snapshot(nodes: NodeState[], leasedTo?: string): ClusterSnapshot {
  return {
    generation: 'g',
    configuration_tag: 'v1',
    datasets: [d],
    leases: leasedTo !== undefined ? [{ dataset_id: D, node_uuid: leasedTo, expires: null }] : [],
    nodes,
  };
}

const waiting: LocalMove = {
  dataset_id: D,
  to: B,
  phase: 'waitingForRelease',
  rounds: 2,
  bytes_sent: 1,
  bytes_total: 1,
};

describe('localMoveOf', () => {
  it('a local source other than the primary holds the copy: the move, when_released from its lease or phase', () => {
    const plain = snapshot([node(A, 'local-btrfs', true), node(B, 'local-btrfs', false)]);
    expect(localMoveOf(plain, d)).toMatchObject({ from: { uuid: A }, to: B, whenReleased: false });
    const leased = snapshot([node(A, 'local-btrfs', true), node(B, 'local-btrfs', false)], A);
    expect(localMoveOf(leased, d)).toMatchObject({ from: { uuid: A }, to: B, whenReleased: true });
    const caughtUp = snapshot([node(A, 'local-zfs', true, [waiting]), node(B, 'local-zfs', false)]);
    expect(localMoveOf(caughtUp, d)?.whenReleased).toBe(true);
  });

  it('no move: the primary has a copy (even listed after another node), a block holder, nobody has it', () => {
    const both = snapshot([node(A, 'local-btrfs', true), node(B, 'local-btrfs', true)], A);
    expect(holderOf(both, d)?.uuid).toBe(B);
    expect(localMoveOf(both, d)).toBeUndefined();
    expect(localMoveOf(snapshot([node(A, 'loopback', true), node(B, 'loopback', false)]), d)).toBeUndefined();
    const none = snapshot([node(A, 'local-btrfs', false), node(B, 'local-btrfs', false)]);
    expect(holderOf(none, d)).toBeUndefined();
    expect(localMoveOf(none, d)).toBeUndefined();
  });
});

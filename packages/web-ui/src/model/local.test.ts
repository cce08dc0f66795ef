import type { ClusterSnapshot, LocalMove } from '@flocker/api/schemas';
import { localMoveOf, localMoveText, replicaOf, replicaText } from './local';
import { clusterView, volumeState } from './view';
import { A, B, D1, D2, dataset, mounted, node, snapshot } from '../testing/fixtures';

const MiB = 1024 * 1024;
const T0 = Date.parse('2026-12-04T12:00:00.000Z');

/** D1 moving from a (where it is mounted) to b, a's report saying how far. */
function moving(move: Partial<LocalMove> = {}): ClusterSnapshot {
  const m: LocalMove = {
    dataset_id: D1,
    to: B,
    phase: 'copying',
    rounds: 1,
    bytes_sent: 16 * MiB,
    bytes_total: 64 * MiB,
    ...move,
  };
  return snapshot({
    datasets: [dataset(D1, 'pgdata', B)],
    nodes: [node(A, 'a', { manifestations: [mounted(D1)], moves: [m] }), node(B, 'b')],
  });
}

describe('localMoveOf / localMoveText', () => {
  it("reads a move's phase, rounds and bytes from the source's report", () => {
    expect(localMoveOf(moving(), D1)).toEqual({
      from: { uuid: A, host: 'a' },
      to: { uuid: B, host: 'b' },
      phase: 'copying',
      rounds: 1,
      bytes_sent: 16 * MiB,
      bytes_total: 64 * MiB,
      // A round is done: the target holds a whole snapshot (the bytes sent may be only the changes since a base).
      percent: 100,
    });
    expect(localMoveOf(moving({ rounds: 0 }), D1)?.percent).toBe(25);
    expect(localMoveOf(moving(), D2)).toBeNull();
    expect(localMoveOf(snapshot({ datasets: [dataset(D1, 'x', A)] }), D1)).toBeNull();
  });

  it('words every phase, with bytes sent of the total and the round', () => {
    const text = (m: Partial<LocalMove>) => localMoveText(localMoveOf(moving(m), D1)!);
    expect(text({ rounds: 0 })).toBe('copying from a to b: 16 MiB of 64 MiB sent (25%), 0 rounds done');
    expect(text({ rounds: 0, bytes_sent: 70 * MiB })).toMatch(/70 MiB of 64 MiB sent \(100%\)/);
    // Once a round is done the target holds a whole copy: no share of the total (a move from a base the target kept
    // sends a few bytes of a large volume, which read "0%" before, session 15).
    expect(text({})).toBe('copying what changed on a to b: all 64 MiB copied, 16 MiB sent, 1 round done');
    expect(text({ phase: 'waitingForRelease', rounds: 3, bytes_sent: 1556 })).toBe(
      'caught up with a; waiting for its users to release the volume (stop what uses it on a, e.g. its containers, ' +
        'to finish the move): all 64 MiB copied, 1.52 KiB sent, 3 rounds done',
    );
    expect(text({ phase: 'final', rounds: 4 })).toMatch(/^sending the last changes to b: .*4 rounds done$/);
    expect(text({ phase: 'promoting' })).toMatch(/^b is taking over: /);
    expect(text({ phase: 'done' })).toMatch(/^moved to b: /);
    expect(text({ bytes_total: 0, bytes_sent: 0, rounds: 0 })).toBe('copying from a to b: 0 B sent, 0 rounds done');
  });

  it("is the volume's state while it runs (not 'detaching'), and in its view", () => {
    const s = moving({ phase: 'final' });
    expect(volumeState(s, s.datasets[0]!)).toMatchObject({
      state: 'moving',
      detail: 'sending the last changes to b: all 64 MiB copied, 16 MiB sent, 1 round done',
    });
    expect(clusterView(s).volumes[0]).toMatchObject({ local_move: { phase: 'final', percent: 100 }, replica: null });
  });
});

describe('replicaOf / replicaText', () => {
  const withReplica = (primary: string, takenAt: string | null, alive = true): ClusterSnapshot =>
    snapshot({
      datasets: [dataset(D1, 'pgdata', primary)],
      nodes: [
        node(A, 'a', {
          alive,
          manifestations: [mounted(D1)],
          replicas: [{ dataset_id: D1, node_uuid: B, snapshot: takenAt && 'move-000001', taken_at: takenAt }],
        }),
        node(B, 'b'),
      ],
    });

  it("names the replica's node and its age, from the primary's report (a dead primary's last one)", () => {
    const r = replicaOf(withReplica(A, '2026-12-04T12:00:00.000Z'), D1)!;
    expect(r).toEqual({ node_uuid: B, host: 'b', taken_at: '2026-12-04T12:00:00.000Z' });
    expect(replicaText(r, T0 + 12_000)).toBe('replica on b, 12 s old');
    expect(replicaText(replicaOf(withReplica(A, '2026-12-04T12:00:00.000Z', false), D1)!, T0 + 300_000)).toBe(
      'replica on b, 5 min old',
    );
    expect(replicaText(replicaOf(withReplica(A, null), D1)!, T0)).toBe('replica on b, none sent yet');
    expect(clusterView(withReplica(A, null)).volumes[0]?.replica).toEqual({ node_uuid: B, host: 'b', taken_at: null });
  });

  it("ignores a former primary's report once the dataset moved (to the replica's node, say)", () => {
    expect(replicaOf(withReplica(B, '2026-12-04T12:00:00.000Z', false), D1)).toBeNull();
    expect(replicaOf(withReplica(A, null), D2)).toBeNull();
  });
});

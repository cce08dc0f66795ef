import {
  anotherRound,
  commonBase,
  DEFAULT_MOVE_POLICY,
  nextMoveStep,
  nextSnapshotName,
  snapshotsToPrune,
  sourceSnapshotsToPrune,
} from './plan';
import { facts, s } from './planTestSupport';

const MiB = 1024 * 1024;

describe('planning a move of a local dataset', () => {
  it('starts with a snapshot, sent whole', () => {
    expect(nextMoveStep(facts({}))).toEqual({ kind: 'snapshot', name: 'move-000001', final: false });
    expect(nextMoveStep(facts({ source: [s(1)] }))).toEqual({ kind: 'send', name: 'move-000001', parent: null });
  });

  it('sends incrementally from the newest snapshot both sides hold (by identity, not name)', () => {
    const f = facts({
      source: [s(1), s(2), s(3)],
      target: [{ name: 'renamed', identity: 'id-2' }],
      rounds: [100 * MiB],
    });
    expect(commonBase(f)?.name).toBe('move-000002');
    expect(nextMoveStep(f)).toEqual({ kind: 'send', name: 'move-000003', parent: 'move-000002' });
  });

  it('resumes after a crash from what the target holds, never from zero', () => {
    // A new run (no rounds) whose earlier run had sent move-000001 and taken move-000002.
    expect(nextMoveStep(facts({ source: [s(1), s(2)], target: [s(1)] }))).toEqual({
      kind: 'send',
      name: 'move-000002',
      parent: 'move-000001',
    });
  });

  it('takes another round while the delta shrinks, then waits for the release', () => {
    const up = (rounds: number[]) => nextMoveStep(facts({ source: [s(1)], target: [s(1)], rounds })).kind;
    expect(up([])).toBe('snapshot');
    expect(up([500 * MiB])).toBe('snapshot');
    expect(up([500 * MiB, 100 * MiB])).toBe('snapshot');
    // Not shrinking by half: the writer keeps pace, more rounds would not help.
    expect(up([500 * MiB, 100 * MiB, 80 * MiB])).toBe('waitForRelease');
    // Small enough for the final round.
    expect(up([500 * MiB, 3 * MiB])).toBe('waitForRelease');
  });

  it('stops after maxRounds', () => {
    const rounds = Array.from({ length: 8 }, (_, i) => 2 ** (40 - 2 * i));
    expect(anotherRound(rounds, DEFAULT_MOVE_POLICY)).toBe(false);
    expect(anotherRound(rounds.slice(0, 7), DEFAULT_MOVE_POLICY)).toBe(true);
  });

  it('once released: a fresh final snapshot, its delta sent, then promoted, then done', () => {
    const base = { source: [s(1), s(2)], target: [s(1), s(2)], released: true };
    expect(nextMoveStep(facts(base))).toEqual({ kind: 'snapshot', name: 'move-000003', final: true });
    const taken = { ...base, source: [s(1), s(2), s(3)], finalSnapshot: 'move-000003' };
    expect(nextMoveStep(facts(taken))).toEqual({ kind: 'send', name: 'move-000003', parent: 'move-000002' });
    const sent = { ...taken, target: [s(1), s(2), s(3)] };
    expect(nextMoveStep(facts(sent))).toEqual({ kind: 'promote', name: 'move-000003' });
    expect(nextMoveStep(facts({ ...sent, targetPromoted: true }))).toEqual({ kind: 'done', name: 'move-000003' });
  });

  it('a released move never promotes a snapshot taken while the volume was in use', () => {
    // Every snapshot is on the target, but none was taken after the release: a new one first.
    expect(nextMoveStep(facts({ source: [s(1)], target: [s(1)], released: true })).kind).toBe('snapshot');
    // A final snapshot name that no longer exists (destroyed): taken again.
    expect(
      nextMoveStep(facts({ source: [s(1)], target: [s(1)], released: true, finalSnapshot: 'move-000009' })).kind,
    ).toBe('snapshot');
  });

  it('a target with nothing in common gets a full send', () => {
    expect(nextMoveStep(facts({ source: [s(1), s(2)], target: [s(7, 'other')], rounds: [1] }))).toEqual({
      kind: 'send',
      name: 'move-000002',
      parent: null,
    });
  });

  it('names never reuse one either side has', () => {
    expect(nextSnapshotName({ source: [s(2)], target: [s(5, 'x')] })).toBe('move-000006');
    expect(nextSnapshotName({ source: [{ name: 'manual', identity: 'm' }], target: [] })).toBe('move-000001');
  });

  it('retention on the source after a move away: the newest N move snapshots up to the final one, never others', () => {
    const all = [s(1), s(2), { name: 'user-snap', identity: 'u' }, s(3), s(4)];
    // 1 (the default): the final snapshot, a move back's base.
    expect(sourceSnapshotsToPrune(all, 'move-000003', 1)).toEqual(['move-000001', 'move-000002', 'move-000004']);
    expect(sourceSnapshotsToPrune(all, 'move-000003', 2)).toEqual(['move-000001', 'move-000004']);
    expect(sourceSnapshotsToPrune(all, 'move-000003', 10)).toEqual(['move-000004']);
    // 0: every move snapshot goes.
    expect(sourceSnapshotsToPrune(all, 'move-000003', 0)).toEqual([
      'move-000001',
      'move-000002',
      'move-000003',
      'move-000004',
    ]);
    // A final snapshot not there (pruned by an earlier run): the newest ones are kept.
    expect(sourceSnapshotsToPrune([s(1), s(2)], 'move-000009', 1)).toEqual(['move-000001']);
    expect(sourceSnapshotsToPrune([], 'move-000001', 1)).toEqual([]);
  });

  it('prunes every move snapshot but the kept one, never others', () => {
    expect(snapshotsToPrune([s(1), s(2), { name: 'user-snap', identity: 'u' }, s(3)], 'move-000003')).toEqual([
      'move-000001',
      'move-000002',
    ]);
  });
});

/** Builders for the move plan's tests (plan.test.ts, plan.targetLive.test.ts): snapshots and facts. */
import type { MoveFacts } from './plan';

/** The n-th move snapshot, its identity `id-n` unless given. */
export const s = (n: number, identity = `id-${n}`): { name: string; identity: string } => ({
  name: `move-${String(n).padStart(6, '0')}`,
  identity,
});

/** A move's facts: nothing on either side, not released, unless `f` says otherwise. */
export const facts = (f: Partial<MoveFacts>): MoveFacts => ({
  source: [],
  target: [],
  released: false,
  rounds: [],
  finalSnapshot: null,
  targetPromoted: false,
  ...f,
});

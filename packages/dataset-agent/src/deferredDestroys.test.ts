import { DESTROY_MAX_DEFER_MS, DESTROY_SETTLE_MS, deletesOnly, destroyDelay } from './deferredDestroys';

const base = {
  now: 10_000,
  wantedSince: 10_000,
  lastActivity: 10_000,
  queueIdle: true,
  spaceWanted: false,
  settleMs: 400,
  maxDeferMs: 3_000,
};

describe('destroyDelay', () => {
  it('waits the settle after the last activity', () => {
    expect(destroyDelay(base)).toBe(400);
    expect(destroyDelay({ ...base, now: 10_300 })).toBe(100);
    expect(destroyDelay({ ...base, now: 10_400 })).toBe(0);
    expect(destroyDelay({ ...base, now: 10_300, lastActivity: 10_250 })).toBe(350);
    // The decision is no activity: decided after the quiet (a look put off until then), at once.
    expect(destroyDelay({ ...base, lastActivity: 5_000 })).toBe(0);
    expect(destroyDelay({ ...base, lastActivity: 9_800 })).toBe(200);
  });

  it('is bounded by maxDeferMs from the decision under continuous activity', () => {
    expect(destroyDelay({ ...base, now: 12_900, lastActivity: 12_900 })).toBe(100);
    expect(destroyDelay({ ...base, now: 13_000, lastActivity: 13_000 })).toBe(0);
    expect(destroyDelay({ ...base, now: 14_000, lastActivity: 14_000 })).toBe(0);
  });

  it('yields to queued or running work until the bound', () => {
    expect(destroyDelay({ ...base, now: 11_000, queueIdle: false })).toBe(2_000);
    expect(destroyDelay({ ...base, now: 13_000, queueIdle: false })).toBe(0);
  });

  it('is zero at once when space is wanted', () => {
    expect(destroyDelay({ ...base, spaceWanted: true })).toBe(0);
    expect(destroyDelay({ ...base, spaceWanted: true, queueIdle: false })).toBe(0);
  });

  it('never negative; defaults are short and bounded', () => {
    expect(destroyDelay({ ...base, now: 20_000 })).toBe(0);
    expect(DESTROY_SETTLE_MS).toBeGreaterThanOrEqual(300);
    expect(DESTROY_SETTLE_MS).toBeLessThanOrEqual(500);
    expect(DESTROY_MAX_DEFER_MS).toBeGreaterThan(DESTROY_SETTLE_MS);
  });
});

describe('deletesOnly', () => {
  const ds = (id: string, deleted = false) => ({ dataset_id: id, primary: 'n1', metadata: {}, deleted });
  const node = { uuid: 'n1', instance_id: 'i-1', alive: true, manifestations: [] };
  const snap = (datasets: ReturnType<typeof ds>[], extra: object = {}) =>
    ({ datasets, nodes: [node], snapshots: [], ...extra }) as never;

  it('is true when datasets were only marked deleted', () => {
    expect(deletesOnly(snap([ds('a'), ds('b')]), snap([ds('a', true), ds('b')]))).toBe(true);
    expect(deletesOnly(snap([ds('a'), ds('b')]), snap([ds('a', true), ds('b', true)]))).toBe(true);
  });

  it('is false for anything else', () => {
    expect(deletesOnly(snap([ds('a')]), snap([ds('a')]))).toBe(false); // nothing deleted
    expect(deletesOnly(snap([ds('a')]), snap([ds('a', true), ds('b')]))).toBe(false); // a create too
    expect(deletesOnly(snap([ds('a'), ds('b')]), snap([ds('a', true)]))).toBe(false); // one dropped
    expect(deletesOnly(snap([ds('a')]), snap([{ ...ds('a', true), primary: 'n2' }]))).toBe(false); // moved too
    expect(deletesOnly(snap([ds('a', true)]), snap([ds('a')]))).toBe(false); // undeleted
    expect(deletesOnly(snap([ds('a')]), snap([ds('a', true)], { nodes: [{ ...node, alive: false }] }))).toBe(false);
    expect(deletesOnly(snap([ds('a')]), snap([ds('a', true)], { snapshots: [{ snapshot_id: 's' }] }))).toBe(false);
  });
});

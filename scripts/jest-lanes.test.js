// scripts/jest-lanes.js and the sequencer's shard(): the split of scripts/test.sh's e2e lanes. Pure; no root.
'use strict';
const { assignLanes, secondsOf, durationsFrom } = require('./jest-lanes');
const Sequencer = require('./jest-sequencer');

const items = (spec) => Object.entries(spec).map(([id, seconds]) => ({ id, seconds }));

describe('assignLanes', () => {
  it('longest first, each to the lane with the fewest seconds so far (ties: the lowest lane)', () => {
    expect(assignLanes(items({ a: 7, b: 5, c: 4, d: 3, e: 1 }), 2)).toEqual({
      lanes: [
        ['a', 'd'],
        ['b', 'c', 'e'],
      ],
      seconds: [10, 10],
    });
  });

  it('every file in exactly one lane, whatever the order it is given in (both lanes compute the same split)', () => {
    const spec = Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`f${i}.test.js`, (i * 37) % 23]));
    const forward = assignLanes(items(spec), 2);
    const backward = assignLanes(items(spec).reverse(), 2);
    expect(backward).toEqual(forward);
    expect([...forward.lanes[0], ...forward.lanes[1]].sort()).toEqual(Object.keys(spec).sort());
    expect(new Set([...forward.lanes[0], ...forward.lanes[1]]).size).toBe(40);
    expect(Math.abs(forward.seconds[0] - forward.seconds[1])).toBeLessThanOrEqual(22); // at most the longest file
  });

  it('a group shares one lane and weighs its sum; equal units go by their first id', () => {
    const r = assignLanes(
      [
        { id: 'k1', seconds: 4, group: 'k8s' },
        { id: 'x', seconds: 6 },
        { id: 'k2', seconds: 4, group: 'k8s' },
        { id: 'y', seconds: 5 },
        { id: 'z', seconds: 5 },
      ],
      2,
    );
    expect(r).toEqual({
      lanes: [
        ['k1', 'k2', 'z'],
        ['x', 'y'],
      ],
      seconds: [13, 11],
    });
  });

  it('one lane: everything; more lanes than files: some empty', () => {
    expect(assignLanes(items({ a: 1, b: 2 }), 1).lanes).toEqual([['b', 'a']]);
    expect(assignLanes(items({ a: 1 }), 3).lanes).toEqual([['a'], [], []]);
    expect(() => assignLanes([], 0)).toThrow(RangeError);
  });
});

it('secondsOf: by basename; a file not in the table counts as defaultSeconds (30 when the table has none)', () => {
  const table = { defaultSeconds: 12, seconds: { 'a.test.js': 3 } };
  expect(secondsOf(table, '/r/e2e/dist/a.test.js')).toBe(3);
  expect(secondsOf(table, '/r/e2e/dist/new.test.js')).toBe(12);
  expect(secondsOf({}, 'x.test.js')).toBe(30);
});

it('durationsFrom: the suites of Jest JSON results (both lanes) update the table; others keep their seconds', () => {
  const lane = (name, start, end) => ({ testResults: [{ name, startTime: start, endTime: end }] });
  const table = durationsFrom({ defaultSeconds: 30, groups: {}, seconds: { 'old.test.js': 9, 'b.test.js': 1 } }, [
    lane('/r/e2e/dist/b.test.js', 1000, 13_460),
    lane('/r/e2e/dist/cluster/a.test.js', 5000, 7000),
  ]);
  expect(table).toEqual({
    defaultSeconds: 30,
    groups: {},
    seconds: { 'a.test.js': 2, 'b.test.js': 12.5, 'old.test.js': 9 },
  });
  expect(Object.keys(table.seconds)).toEqual(['a.test.js', 'b.test.js', 'old.test.js']);
});

it("the sequencer's shard: the lanes are disjoint, cover every file, and keep the k8s files together", () => {
  const tests = ['k8s-csi', 'k8s-other', 'containers', 'cli', 'multihost', 'web-ui', 'brand-new'].map((n) => ({
    path: `/nowhere/e2e/dist/${n}.test.js`,
  }));
  const sequencer = new Sequencer({ contexts: [], globalConfig: {} });
  const [one, two] = [1, 2].map((i) =>
    sequencer.shard(tests, { shardIndex: i, shardCount: 2 }).map((t) => t.path.split('/').pop()),
  );
  expect([...one, ...two].sort()).toEqual(tests.map((t) => t.path.split('/').pop()).sort());
  expect(one.filter((f) => two.includes(f))).toEqual([]);
  expect(one.includes('k8s-csi.test.js')).toBe(one.includes('k8s-other.test.js'));
  expect(one.length).toBeGreaterThan(0);
  expect(two.length).toBeGreaterThan(0);
});

import {
  groupRunsIn,
  groupsToRun,
  INFO_GROUPS,
  ratioEstimates,
  renderMarkdown,
  ROUND_STEPS,
  roundSteps,
  SCENARIO_GROUPS,
  summarise,
  waitForShownMounted,
  type ScenarioGroup,
} from './bench';
import { estimateRatio, type RatioEstimate } from './stats';

describe('the plugin bench: scenario groups (--only) and ratios', () => {
  it("orders a round's steps by a Williams square (review s29 R2 G3): each step follows every other equally often", () => {
    const all = groupsToRun(undefined);
    const listed = ROUND_STEPS.map(([step]) => step);
    // Every scenario's step once a round, a step for each scenario of the groups run (create-rm's time their rm too).
    expect(new Set(listed).size).toBe(listed.length);
    for (const [group, scenarios] of Object.entries(SCENARIO_GROUPS))
      for (const s of scenarios)
        expect(
          ROUND_STEPS.some(([step, g]) => g === group && (step === s || step === s.replace(/_rm$/, '_create_rm'))),
        ).toBe(true);
    // A carry-over is from the step just before: over a full cycle of rounds (n rounds for n steps, 2n when n is odd),
    // from any round on, every ordered pair of distinct steps is adjacent equally often and every round runs each of
    // its steps once.
    const balanced = (groups: ReadonlySet<ScenarioGroup>, from: number, infoRuns: number) => {
      const expected = listed.filter((step) =>
        ROUND_STEPS.some(([s, g]) => s === step && groups.has(g) && groupRunsIn(g, from, infoRuns)),
      );
      const n = expected.length;
      const cycle = n % 2 === 0 ? n : 2 * n;
      const follows = new Map<string, number>();
      for (let round = from; round < from + cycle; round++) {
        const order = roundSteps(groups, round, infoRuns);
        expect([...order].sort()).toEqual([...expected].sort());
        for (let j = 1; j < order.length; j++) {
          const pair = `${order[j - 1]} -> ${order[j]}`;
          follows.set(pair, (follows.get(pair) ?? 0) + 1);
        }
      }
      expect(follows.size).toBe(n * (n - 1));
      expect(new Set(follows.values())).toEqual(new Set(n > 1 ? [cycle / n] : []));
      return n;
    };
    // All groups: 15 steps (odd) in the first --info-runs rounds, then 9 (the info groups dropped out).
    expect(balanced(all, 0, 40)).toBe(15);
    expect(balanced(all, 7, 40)).toBe(15);
    expect(balanced(all, 40, 40)).toBe(9);
    expect(balanced(all, 53, 40)).toBe(9);
    // --only: 3 steps (odd), 6 steps (even), 1 step.
    expect(balanced(new Set(['new'] as const), 0, 40)).toBe(3);
    expect(balanced(new Set(['new', 'existing'] as const), 5, 40)).toBe(6);
    expect(balanced(new Set(['no-volume'] as const), 0, 40)).toBe(1);
    // The info groups run in the first --info-runs rounds only.
    for (let round = 0; round < 60; round++) {
      const order = roundSteps(all, round, 40);
      for (const [step, g] of ROUND_STEPS) expect(order.includes(step)).toBe(!INFO_GROUPS.has(g) || round < 40);
    }
  });

  it('runs every group unless some are named, and refuses a group it does not know', () => {
    expect([...groupsToRun(undefined)]).toEqual(Object.keys(SCENARIO_GROUPS));
    expect([...groupsToRun([])]).toEqual(Object.keys(SCENARIO_GROUPS));
    expect([...groupsToRun(['new'])]).toEqual(['new']);
    expect([...groupsToRun(['new', 'create-rm', 'new'])]).toEqual(['new', 'create-rm']);
    expect(() => groupsToRun(['newest'])).toThrow();
  });

  it('runs the groups with targets in every round, the others in the first --info-runs rounds only', () => {
    expect([...INFO_GROUPS].sort()).toEqual(['no-volume', 'raw', 'rm-settled']);
    expect(groupRunsIn('rm-settled', 40, 40)).toBe(false);
    for (const g of ['new', 'existing', 'create-rm'] as const) {
      expect(groupRunsIn(g, 0, 40)).toBe(true);
      expect(groupRunsIn(g, 99, 40)).toBe(true);
    }
    expect(groupRunsIn('raw', 39, 40)).toBe(true);
    expect(groupRunsIn('raw', 40, 40)).toBe(false);
    expect(groupRunsIn('no-volume', 40, 40)).toBe(false);
  });

  it('rm-settled: waits until docker volume inspect shows the volume mounted, and says when it never did', async () => {
    const asked: string[][] = [];
    const states = ['pending', 'pending', 'mounted'];
    const docker = (args: readonly string[]) => {
      asked.push([...args]);
      return Promise.resolve({ code: 0, stdout: `${states.shift() ?? 'mounted'}\n`, stderr: '' });
    };
    await expect(waitForShownMounted(docker, 'v1')).resolves.toBe(true);
    expect(asked).toHaveLength(3);
    expect(asked[0]).toEqual(['volume', 'inspect', '--format', '{{.Status.state}}', 'v1']);
    const never = () => Promise.resolve({ code: 0, stdout: 'pending\n', stderr: '' });
    await expect(waitForShownMounted(never, 'v2', 120)).resolves.toBe(false);
    expect(SCENARIO_GROUPS['rm-settled']).toEqual(['local_rm_settled', 'flocker_rm_settled', 'noop_rm_settled']);
  });

  it('estimates a ratio only when both of its scenarios ran, over the rounds both ran', () => {
    const samples = {
      flocker_new: [330, 334, 338],
      local_new: [300, 306, 310],
      no_volume: [290, 296],
    };
    const estimates = ratioEstimates(samples, {
      flocker_new_vs_local_new: ['flocker_new', 'local_new'],
      flocker_new_vs_no_volume: ['flocker_new', 'no_volume'],
      flocker_rm_vs_local_rm: ['flocker_rm', 'local_rm'],
    });
    expect(Object.keys(estimates)).toEqual(['flocker_new_vs_local_new', 'flocker_new_vs_no_volume']);
    expect(estimates.flocker_new_vs_local_new).toEqual(estimateRatio([330, 334, 338], [300, 306, 310]));
    expect(estimates.flocker_new_vs_local_new?.ratio).toBeCloseTo(334 / 306, 12);
    // A scenario of an info group ran the first rounds only: the ratio pairs those rounds.
    expect(estimates.flocker_new_vs_no_volume).toEqual(estimateRatio([330, 334], [290, 296]));
    expect(ratioEstimates({ a: [], b: [1] }, { a_vs_b: ['a', 'b'] })).toEqual({});
  });

  it('reports each ratio with its interval, met by the ratio of medians, and where the interval lies', () => {
    const s = summarise([1, 2, 3]);
    const at = (ratio: number, ci: [number, number]): RatioEstimate => ({
      rounds: 100,
      ratio,
      ci,
      paired: ratio - 0.01,
      paired_ci: [ci[0] + 0.01, ci[1] - 0.01],
      median_of_ratios: ratio,
    });
    const md = renderMarkdown(
      { local_new: s },
      {
        flocker_new_vs_local_new: at(1.04, [1.02, 1.049]),
        flocker_existing_vs_local_existing: at(1.02, [0.99, 1.06]),
        flocker_rm_vs_local_rm: at(1.5, [1.4, 1.6]),
        noop_new_vs_local_new: at(1.0, [0.97, 1.03]),
      },
      { flocker_new_vs_local_new: 1.05, flocker_existing_vs_local_existing: 1.03, flocker_rm_vs_local_rm: 1.3 },
      { runs: 100, infoRuns: 40 },
    );
    expect(md).toContain('100 interleaved rounds, each running every scenario once (ms); a row with fewer runs');
    expect(md).toContain('the first 40 rounds only.');
    expect(md).toContain('| Ratio | ratio of medians [95% CI] | target | met | CI vs target | paired ratio [95% CI] |');
    expect(md).toContain(
      '| flocker_new_vs_local_new | 1.040 [1.020, 1.049] | ≤ 1.05 | met | CI entirely within target | 1.030 [1.030, 1.039] |',
    );
    expect(md).toContain(
      '| flocker_existing_vs_local_existing | 1.020 [0.990, 1.060] | ≤ 1.03 | met | CI straddles | 1.010 [1.000, 1.050] |',
    );
    expect(md).toContain(
      '| flocker_rm_vs_local_rm | 1.500 [1.400, 1.600] | ≤ 1.3 | **missed** | CI entirely above target | 1.490 [1.410, 1.590] |',
    );
    expect(md).toContain(
      "| noop_new_vs_local_new (floor: Docker's legacy plugin mechanism alone) | 1.000 [0.970, 1.030] | — | — | — | 0.990 [0.980, 1.020] |",
    );
    // The method is explained beside the tables.
    expect(md).toContain('bootstrap over rounds');
  });
});

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
} from './bench';
import { estimateRatio, type RatioEstimate } from './stats';

describe('the plugin bench: scenario groups (--only) and ratios', () => {
  it("alternates a round's order (review s29 R1 F5): listed on even rounds, reversed on odd, every scenario once", () => {
    const all = groupsToRun(undefined);
    const listed = ROUND_STEPS.map(([step]) => step);
    expect(roundSteps(all, 0, 40)).toEqual(listed);
    expect(roundSteps(all, 1, 40)).toEqual([...listed].reverse());
    expect(roundSteps(all, 2, 40)).toEqual(listed);
    // Every scenario's step once a round, a step for each scenario of the groups run (create-rm's time their rm too).
    expect(new Set(listed).size).toBe(listed.length);
    for (const [group, scenarios] of Object.entries(SCENARIO_GROUPS))
      for (const s of scenarios)
        expect(
          ROUND_STEPS.some(([step, g]) => g === group && (step === s || step === s.replace(/_rm$/, '_create_rm'))),
        ).toBe(true);
    // So over any two rounds each scenario ran once before and once after each other: flocker_existing follows
    // flocker_new in one, precedes it in the other (a carry-over lands on each side alike).
    const before = (order: string[], a: string, b: string) => order.indexOf(a) < order.indexOf(b);
    for (const round of [40, 41])
      expect(before(roundSteps(all, round, 40), 'flocker_new', 'flocker_existing')).toBe(round % 2 === 0);
    // The info groups stay in the first --info-runs rounds; the rest keep the alternation.
    const late = roundSteps(all, 41, 40);
    expect(late).not.toContain('no_volume');
    expect(late).not.toContain('raw_loop_new');
    expect(late).not.toContain('flocker_rm_settled');
    expect(late[0]).toBe('noop_create_rm');
    expect(roundSteps(new Set(['new'] as const), 3, 40)).toEqual(['noop_new', 'flocker_new', 'local_new']);
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

import { groupsToRun, ratiosOf, SCENARIO_GROUPS, summarise } from './bench';

describe('the plugin bench: scenario groups (--only) and ratios', () => {
  it('runs every group unless some are named, and refuses a group it does not know', () => {
    expect([...groupsToRun(undefined)]).toEqual(Object.keys(SCENARIO_GROUPS));
    expect([...groupsToRun([])]).toEqual(Object.keys(SCENARIO_GROUPS));
    expect([...groupsToRun(['new'])]).toEqual(['new']);
    expect([...groupsToRun(['new', 'create-rm', 'new'])]).toEqual(['new', 'create-rm']);
    expect(() => groupsToRun(['newest'])).toThrow();
  });

  it('reports a ratio only when both of its scenarios ran', () => {
    const results = {
      flocker_new: summarise([330, 334]),
      local_new: summarise([300, 306]),
      noop_new: summarise([310]),
    };
    expect(
      ratiosOf(results, {
        flocker_new_vs_local_new: ['flocker_new', 'local_new'],
        noop_new_vs_local_new: ['noop_new', 'local_new'],
        flocker_rm_vs_local_rm: ['flocker_rm', 'local_rm'],
      }),
    ).toEqual({ flocker_new_vs_local_new: 1.096, noop_new_vs_local_new: 1.023 });
    // An empty scenario (its median NaN) is left out as well.
    expect(ratiosOf({ a: summarise([]), b: summarise([1]) }, { a_vs_b: ['a', 'b'] })).toEqual({});
  });
});

import { chooseSides, median, quantile, removeDurations, sideTable } from './trace-rm';

describe('trace-rm: sides and the paired table (issue 23)', () => {
  it('takes the sides asked for, in their own order, and refuses unknown ones', () => {
    expect(chooseSides(undefined)).toEqual([
      'local',
      'noop',
      'at once',
      'settled',
      'settled/stopped',
      'stopped throughout',
    ]);
    expect(chooseSides('settled, at once,local')).toEqual(['local', 'at once', 'settled']);
    expect(() => chooseSides('at once,soon')).toThrow('unknown side(s): soon');
  });

  it('medians and quantiles of samples', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 2, 3])).toBe(2.5);
    expect(median([])).toBeNaN();
    expect(quantile([5, 1, 4, 2, 3], 0.9)).toBe(5);
    expect(quantile([5, 1, 4, 2, 3], 0.5)).toBe(3);
  });

  it('pairs each side with the reference round by round', () => {
    const table = sideTable(
      { local: [10, 10, 10], 'at once': [20, 30, 16], settled: [18, 31, 15] },
      'local',
      'at once',
    );
    const rows = table.trim().split('\n');
    expect(rows[0]).toBe('| side | median | p90 | max | / local | median of (side − at once) | faster than at once |');
    expect(rows[2]).toBe('| local | 10.0 | 10.0 | 10.0 | 1.000 | -10.0 | 3/3 |');
    expect(rows[3]).toBe('| at once | 20.0 | 30.0 | 30.0 | 2.000 | — | — |');
    // Differences -2, +1, -1: median -1, faster in 2 of 3.
    expect(rows[4]).toBe('| settled | 18.0 | 31.0 | 31.0 | 1.800 | -1.0 | 2/3 |');
  });

  it("reads each Remove's answer time from the plugin's log, by volume", () => {
    const log = [
      JSON.stringify({
        message: 'plugin call',
        call: '/VolumeDriver.Remove',
        duration_ms: 4.5,
        request: { Name: 'a' },
      }),
      JSON.stringify({ message: 'plugin call', call: '/VolumeDriver.Get', duration_ms: 0.3, request: { Name: 'a' } }),
      'not json /VolumeDriver.Remove',
      JSON.stringify({ message: 'plugin call', call: '/VolumeDriver.Remove', duration_ms: 7, request: { Name: 'b' } }),
    ].join('\n');
    expect([...removeDurations(log)]).toEqual([
      ['a', 4.5],
      ['b', 7],
    ]);
  });
});

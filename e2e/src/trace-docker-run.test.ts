import {
  cpuLine,
  callGaps,
  commandSplit,
  gapTable,
  pluginCallTotals,
  spareMakes,
  splitTable,
  tracedLines,
} from './trace-docker-run';

const line = (t: number, message: string, call: string, duration: number) =>
  JSON.stringify({ level: 'info', message, call, duration_ms: duration, t: String(t), timestamp: 'x' });

describe('trace-docker-run: reading the plugin log (issue 23)', () => {
  const log = [
    line(999, 'plugin call', '/VolumeDriver.Get', 9), // before the window
    line(1000, 'plugin call failed', '/VolumeDriver.Get', 0.5),
    line(1001, 'plugin call', '/VolumeDriver.Create', 5.25),
    line(1002, 'plugin call', '/VolumeDriver.Get', 0.25),
    JSON.stringify({ message: 'mount timing', t: '1003', lease_ms: 3 }),
    'not json',
    line(1004, 'plugin call', '/VolumeDriver.Mount', 60),
    line(1005, 'plugin call', '/Plugin.Activate', 0.1),
    line(2000, 'plugin call', '/VolumeDriver.Remove', 4), // after the window
  ].join('\n');

  it('sums the time inside the plugin per call within the window', () => {
    expect(pluginCallTotals(log, 1000, 1500)).toBe(
      'Get 2× 0.8, Create 1× 5.3, Mount 1× 60.0, Activate 1× 0.1; in all 66.1 ms',
    );
    expect(pluginCallTotals(log, 3000, 4000)).toBe('no call; in all 0.0 ms');
  });

  it('keeps the stamped lines of the window as events', () => {
    expect(tracedLines(log, 'plugin', 1003, 1004).map((e) => [e.t, e.what.split(' ')[0]])).toEqual([
      [1003, 'mount'],
      [1004, 'plugin'],
    ]);
  });

  it('shows the spare makes that overlap the window at their start (the agent logs each at its end, with its duration)', () => {
    const made = (t: number, durationMs: number) =>
      JSON.stringify({ level: 'debug', message: 'spare volume made', t: String(t), spareId: 's', durationMs });
    const agent = [
      made(990, 20), // 970-990: ends before the window
      made(1010, 30), // 980-1010: began before, ends inside
      made(1400, 50), // 1350-1400: inside
      made(1700, 150), // 1550-1700: begins inside, ends after
      made(1900, 100), // 1800-1900: after
      JSON.stringify({ message: 'spare volume made', t: '1200' }), // no duration: not a make line this reads
      line(1100, 'plugin call', '/VolumeDriver.Get', 1),
    ].join('\n');
    expect(spareMakes(agent, 1000, 1600).map((e) => [e.t, e.who, e.what])).toEqual([
      [980, 'agent', 'spare make started (took 30.0 ms)'],
      [1350, 'agent', 'spare make started (took 50.0 ms)'],
      [1550, 'agent', 'spare make started (took 150.0 ms)'],
    ]);
  });

  it('splits a command at its plugin calls: before the first, inside the answers, Docker between them, after the last', () => {
    // A docker volume rm timed over [1000, 1030]: Get at 1010-1011, Get at 1012-1012.5, Remove at 1014-1020.
    const rm = [
      line(1005, 'plugin call', '/VolumeDriver.Get', 10), // arrived at 995, before the command: not its call
      line(1011, 'plugin call', '/VolumeDriver.Get', 1),
      line(1012.5, 'plugin call', '/VolumeDriver.Get', 0.5),
      JSON.stringify({ message: 'removed volume', t: '1019' }),
      line(1020, 'plugin call', '/VolumeDriver.Remove', 6),
      line(1031, 'plugin call', '/VolumeDriver.Get', 0.5), // answered after the command
    ].join('\n');
    expect(commandSplit(rm, 1000, 1030)).toEqual({
      calls: 3,
      before: 10,
      plugin: 7.5,
      docker: 2.5,
      after: 10,
      total: 30,
    });
    expect(commandSplit(rm, 1040, 1050)).toBeUndefined();
  });

  it('tabulates paired splits: medians of each side and of the paired differences, pairs missing a side left out', () => {
    const split = (before: number, plugin: number) => ({
      calls: 3,
      before,
      plugin,
      docker: 1,
      after: 2,
      total: before + plugin + 3,
    });
    const md = splitTable('rm', [
      { floor: split(10, 0.5), flocker: split(12, 4.5) },
      { floor: split(14, 0.5), flocker: split(13, 3.5) },
      { floor: split(12, 0.5), flocker: split(16, 5.5) },
      { flocker: split(100, 100) },
    ]);
    expect(md).toContain('### rm: 3 pairs, medians (ms)');
    expect(md).toContain('| CLI start → first plugin call | 12.0 | 13.0 | 2.0 |');
    expect(md).toContain("| inside the plugin's answers | 0.5 | 4.5 | 4.0 |");
    expect(md).toContain('| last answer → CLI back | 2.0 | 2.0 | 0.0 |');
    expect(md).toContain('| whole command | 15.5 | 19.5 | 6.0 |');
  });

  it('names its two sides as told (--agent-stopped: the agent stopped against running)', () => {
    const split = (before: number, plugin: number) => ({ calls: 3, before, plugin, docker: 1, after: 2, total: 0 });
    const md = splitTable('rm', [{ floor: split(10, 4), flocker: split(12, 5) }], {
      floor: 'agent stopped',
      flocker: 'agent running',
    });
    expect(md).toContain('| segment | agent stopped | agent running | median of agent running − agent stopped |');
    expect(md).toContain("| inside the plugin's answers | 4.0 | 5.0 | 1.0 |");
  });

  it("lists a command's calls in order, each with Docker's gap before it, and the time after the last answer", () => {
    const run = [
      line(1012, 'plugin call', '/VolumeDriver.Unmount', 1), // arrived 1011
      line(1002, 'plugin call', '/VolumeDriver.Get', 0.5), // arrived 1001.5
      line(1010, 'plugin call', '/VolumeDriver.Mount', 4), // arrived 1006
      line(1100, 'plugin call', '/VolumeDriver.Get', 1), // after the window
    ].join('\n');
    expect(callGaps(run, 1000, 1020)).toEqual({
      calls: [
        { call: 'Get', gap: 1.5, ms: 0.5 },
        { call: 'Mount', gap: 4, ms: 4 },
        { call: 'Unmount', gap: 1, ms: 1 },
      ],
      after: 8,
    });
    expect(callGaps(run, 2000, 2010)).toBeUndefined();
  });

  it('compares call sequences gap by gap over the pairs whose calls are the same on both sides', () => {
    const seq = (gap: number, mount: number, after: number) => ({
      calls: [
        { call: 'Get', gap, ms: 0.5 },
        { call: 'Mount', gap: 1, ms: mount },
      ],
      after,
    });
    const md = gapTable('existing', [
      { floor: seq(10, 0.1, 5), flocker: seq(11, 4.1, 9) },
      { floor: seq(20, 0.1, 5), flocker: seq(18, 3.1, 7) },
      { floor: seq(10, 0.1, 5), flocker: { calls: [{ call: 'Get', gap: 1, ms: 1 }], after: 1 } }, // other calls
      { flocker: seq(1, 1, 1) },
    ]);
    expect(md).toContain('### existing: 2 of 4 pairs with the same calls, medians (ms)');
    expect(md).toContain('| Docker before Get #1 | 15.0 | 14.5 | -0.5 |');
    expect(md).toContain('| Mount #2 answered | 0.1 | 3.6 | 3.5 |');
    expect(md).toContain('| last answer → CLI back | 5.0 | 8.0 | 3.0 |');
    expect(md).toContain('| whole command | 21.6 | 27.6 | 6.0 |');
    expect(gapTable('none', [{ floor: seq(1, 1, 1) }])).toContain('no pair with the same calls on both sides');
    const held = gapTable('held', [{ floor: seq(10, 0.1, 5), flocker: seq(11, 4.1, 9) }], {
      floor: 'Flocker held',
      flocker: 'Flocker',
    });
    expect(held).toContain('| step | Flocker held | Flocker | median of Flocker − Flocker held |');
  });

  it('prints the mean CPU per run of each process, side by side', () => {
    const line = cpuLine('create + rm', {
      floor: { runs: 2, ms: { agent: 3, plugin: 10 } },
      flocker: { runs: 4, ms: { agent: 20, plugin: 50 } },
    });
    expect(line).toBe(
      '\nCPU per create + rm (ms, mean): floor: agent 1.5, plugin 5.0; flocker: agent 5.0, plugin 12.5\n',
    );
  });
});

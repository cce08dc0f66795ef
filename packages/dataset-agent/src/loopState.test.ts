import {
  INITIAL_LOOP_STATE,
  LOOP_EVENTS,
  LOOP_PHASES,
  loopTransition,
  type LoopEvent,
  type LoopState,
} from './loopState';

/**
 * Every phase event in every phase. "-": nothing changes; "woken": the wake is
 * remembered; "turn": due when woken meanwhile, else sleeping (and woken cleared);
 * a trailing "!": the sleep ends (effect endSleep).
 */
const EXPECTED = `
            start   turnStarted  turnEnded  wake    timerFired  stop
idle        due     -            -          woken   -           stopping
due         -       observing    -          -       -           stopping
observing   -       -            turn       woken   -           stopping
sleeping    -       -            -          due!    due!        stopping!
stopping    -       -            -          -       -           -
`;

const rows = EXPECTED.trim()
  .split('\n')
  .map((l) => l.trim().split(/\s+/));
const header = rows[0]!;
const expected = new Map<string, string>();
for (const row of rows.slice(1))
  for (let i = 1; i < row.length; i++) expected.set(`${row[0]}/${header[i - 1]}`, row[i]!);

const states: LoopState[] = LOOP_PHASES.flatMap((phase) =>
  [false, true].flatMap((wokenMeanwhile) =>
    [false, true].map((lookWhenIdle) => ({ phase, wokenMeanwhile, lookWhenIdle })),
  ),
);
const show = (s: LoopState): string =>
  `${s.phase}${s.wokenMeanwhile ? '+woken' : ''}${s.lookWhenIdle ? '+lookWhenIdle' : ''}`;

describe('loopTransition (the main loop as a state machine)', () => {
  it('the expected table covers every phase and phase event', () => {
    expect(rows.slice(1).map((r) => r[0])).toEqual(LOOP_PHASES);
    expect(header).toEqual(LOOP_EVENTS.filter((e) => e !== 'missed' && e !== 'queueIdle'));
  });

  describe.each(states.map((s) => [show(s), s] as const))('from %s', (_name, s) => {
    it.each(LOOP_EVENTS.filter((e) => e !== 'missed' && e !== 'queueIdle'))(
      'on %s: as the table says; lookWhenIdle untouched',
      (event) => {
        const cell = expected.get(`${s.phase}/${event}`)!;
        const { state, effect } = loopTransition(s, event);
        expect(state.lookWhenIdle).toBe(s.lookWhenIdle);
        expect(effect).toBe(cell.endsWith('!') ? 'endSleep' : 'none');
        const target = cell.replace('!', '');
        if (target === '-') expect(state).toEqual(s);
        else if (target === 'woken') expect(state).toEqual({ ...s, wokenMeanwhile: true });
        else if (target === 'turn')
          expect(state).toEqual({ ...s, phase: s.wokenMeanwhile ? 'due' : 'sleeping', wokenMeanwhile: false });
        else if (target === 'stopping' || target === 'due' || target === 'observing')
          expect(state).toEqual({ ...s, phase: target });
        else throw new Error(`bad cell ${cell}`);
      },
    );

    it('on missed: lookWhenIdle set, nothing else', () => {
      expect(loopTransition(s, 'missed')).toEqual({ state: { ...s, lookWhenIdle: true }, effect: 'none' });
    });

    it('on queueIdle: the look wanted (if any) is taken once, after the report in flight; not while stopping', () => {
      const { state, effect } = loopTransition(s, 'queueIdle');
      expect(state).toEqual({ ...s, lookWhenIdle: false });
      expect(effect).toBe(s.lookWhenIdle && s.phase !== 'stopping' ? 'wakeAfterReport' : 'none');
    });
  });

  const run = (events: LoopEvent[], from: LoopState = INITIAL_LOOP_STATE): LoopState =>
    events.reduce((s, e) => loopTransition(s, e).state, from);

  it('a wake during a turn costs exactly one more turn; a wake while due costs none', () => {
    expect(run(['start', 'turnStarted', 'wake', 'wake', 'turnEnded']).phase).toBe('due');
    expect(run(['start', 'turnStarted', 'wake', 'turnEnded', 'turnStarted', 'turnEnded']).phase).toBe('sleeping');
    expect(run(['start', 'wake', 'turnStarted', 'turnEnded']).phase).toBe('sleeping');
  });

  it('a sleep ends on a wake or its timer; a later stale timer or a second wake is ignored', () => {
    const asleep = run(['start', 'turnStarted', 'turnEnded']);
    expect(asleep.phase).toBe('sleeping');
    expect(loopTransition(asleep, 'wake')).toEqual({ state: { ...asleep, phase: 'due' }, effect: 'endSleep' });
    expect(run(['wake', 'timerFired', 'wake'], asleep)).toEqual({ ...asleep, phase: 'due' });
  });

  it('stop is final and ends a sleep', () => {
    const asleep = run(['start', 'turnStarted', 'turnEnded']);
    expect(loopTransition(asleep, 'stop').effect).toBe('endSleep');
    expect(run(['stop', ...LOOP_EVENTS.filter((e) => e !== 'missed')], asleep).phase).toBe('stopping');
  });

  it('something missed while busy is looked at once, when the queue is idle', () => {
    const s = run(['start', 'turnStarted', 'missed', 'turnEnded']);
    expect(s).toMatchObject({ phase: 'sleeping', lookWhenIdle: true });
    expect(loopTransition(s, 'queueIdle').effect).toBe('wakeAfterReport');
    expect(loopTransition(loopTransition(s, 'queueIdle').state, 'queueIdle').effect).toBe('none');
  });
});

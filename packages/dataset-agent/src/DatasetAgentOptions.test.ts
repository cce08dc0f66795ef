import { parseFollow } from './DatasetAgentOptions';

describe('parseFollow (FLOCKER_AGENT_FOLLOW)', () => {
  it('defaults to the watch; long-poll when asked', () => {
    expect(parseFollow(undefined)).toBe('watch');
    expect(parseFollow('')).toBe('watch');
    expect(parseFollow('watch')).toBe('watch');
    expect(parseFollow('long-poll')).toBe('long-poll');
  });

  it('refuses anything else, naming the variable', () => {
    expect(() => parseFollow('poll')).toThrow(/FLOCKER_AGENT_FOLLOW/);
    expect(() => parseFollow('WATCH')).toThrow(/FLOCKER_AGENT_FOLLOW/);
  });
});

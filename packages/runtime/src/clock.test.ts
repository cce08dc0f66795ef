import { systemClock } from './clock';

describe('systemClock', () => {
  it('measures intervals on a monotonic clock: a step of the wall clock changes no deadline', () => {
    const before = systemClock.now();
    const spy = jest.spyOn(Date, 'now').mockReturnValue(before + 3_600_000); // the wall clock jumps an hour
    try {
      const after = systemClock.now();
      expect(after - before).toBeGreaterThanOrEqual(0);
      expect(after - before).toBeLessThan(1_000);
      expect(systemClock.wallNow()).toBe(before + 3_600_000);
    } finally {
      spy.mockRestore();
    }
  });
});

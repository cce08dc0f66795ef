import { AVAILABLE_BYTES_STEP, reportedAvailableBytes } from './capacity';

const MiB = 1024 * 1024;

describe('reportedAvailableBytes', () => {
  it.each([
    [0, 0],
    [AVAILABLE_BYTES_STEP - 1, 0],
    [AVAILABLE_BYTES_STEP, AVAILABLE_BYTES_STEP],
    [3 * AVAILABLE_BYTES_STEP + 5 * MiB, 3 * AVAILABLE_BYTES_STEP],
    [Number.MAX_SAFE_INTEGER, Math.floor(Number.MAX_SAFE_INTEGER / AVAILABLE_BYTES_STEP) * AVAILABLE_BYTES_STEP],
  ])('%d free bytes are reported as %d (whole 64 MiB steps)', (free, reported) => {
    expect(reportedAvailableBytes(free)).toBe(reported);
    expect(Number.isSafeInteger(reportedAvailableBytes(free))).toBe(true);
  });

  it.each([[undefined], [-1], [Number.NaN], [Number.POSITIVE_INFINITY]])('%p is no figure', (free) => {
    expect(reportedAvailableBytes(free)).toBeUndefined();
  });

  it('small writes do not change the figure; another step does', () => {
    const free = 10 * AVAILABLE_BYTES_STEP + 1;
    expect(reportedAvailableBytes(free - MiB)).toBe(reportedAvailableBytes(free - 2 * MiB));
    expect(reportedAvailableBytes(free - AVAILABLE_BYTES_STEP - 1)).toBeLessThan(reportedAvailableBytes(free) ?? 0);
    expect(reportedAvailableBytes(1000, 100)).toBe(1000);
  });
});

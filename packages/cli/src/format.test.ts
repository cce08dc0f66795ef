import { duration, leaseHolders, relativeTime, table } from './format';

describe('format', () => {
  it('aligns columns and trims trailing space', () => {
    expect(
      table(
        ['NAME', 'SIZE'],
        [
          ['a', '10 GiB'],
          ['longer', '1 GiB'],
        ],
      ),
    ).toBe('NAME    SIZE\na       10 GiB\nlonger  1 GiB');
  });
  it('gives relative times', () => {
    const now = new Date('2026-01-01T12:00:00Z');
    expect(relativeTime(new Date('2026-01-01T11:59:57Z'), now)).toBe('3s ago');
    expect(relativeTime(new Date('2026-01-01T11:55:00Z'), now)).toBe('5m ago');
    expect(relativeTime(new Date('2025-12-30T12:00:00Z'), now)).toBe('2d ago');
    expect(relativeTime(new Date('2026-01-01T12:00:30Z'), now)).toBe('in 30s');
  });
  it('gives durations', () => {
    expect(duration(null)).toBe('never');
    expect(duration(42.4)).toBe('42s');
    expect(duration(3600 * 3)).toBe('3h');
  });

  it('names the holders of a lease, an acquire without holder as (unnamed)', () => {
    expect(leaseHolders({ holders: ['docker', 'csi'] })).toBe('docker, csi');
    expect(leaseHolders({})).toBe('(unnamed)');
    expect(leaseHolders({ holders: ['csi'], unnamed_holder: true })).toBe('csi, (unnamed)');
  });
});

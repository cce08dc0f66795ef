import { mayClaimSpare, mayRefill, nextSpareSize, noteSize, startingClasses } from './spareDecisions';

const GiB = 1024 ** 3;

describe('spare pool decisions (issue 23)', () => {
  it('a new dataset takes a spare only where the agent would format a blank ext4 volume', () => {
    expect(mayClaimSpare({})).toBe(true);
    expect(mayClaimSpare({ sourceSnapshotId: 's' })).toBe(false);
    expect(mayClaimSpare({ restoreFrom: { target: 't', backupId: 'b' } })).toBe(false);
    expect(mayClaimSpare({ filesystem: 'xfs' })).toBe(false);
  });

  it('keeps the pinned size classes first (the default size, dataset.spare_sizes), then the sizes asked for most recently, bounded', () => {
    expect(noteSize([GiB], [GiB], GiB, 2)).toEqual([GiB]);
    expect(noteSize([GiB], [GiB], 2 * GiB, 2)).toEqual([GiB, 2 * GiB]);
    expect(noteSize([GiB, 2 * GiB], [GiB], 3 * GiB, 2)).toEqual([GiB, 3 * GiB, 2 * GiB]);
    expect(noteSize([GiB, 3 * GiB, 2 * GiB], [GiB], 4 * GiB, 2)).toEqual([GiB, 4 * GiB, 3 * GiB]);
    expect(noteSize([GiB, 3 * GiB, 2 * GiB], [GiB], 2 * GiB, 2)).toEqual([GiB, 2 * GiB, 3 * GiB]);
    expect(noteSize([], [GiB], 2 * GiB, 0)).toEqual([GiB]);
    // A pinned class is never pushed out, and asking for it changes nothing.
    expect(noteSize([GiB, 10 * GiB, 2 * GiB], [GiB, 10 * GiB], 3 * GiB, 1)).toEqual([GiB, 10 * GiB, 3 * GiB]);
    expect(noteSize([GiB, 10 * GiB, 3 * GiB], [GiB, 10 * GiB], 10 * GiB, 1)).toEqual([GiB, 10 * GiB, 3 * GiB]);
  });

  it('starts with the pinned classes, then the sizes of the spares an earlier run left (most common first)', () => {
    expect(startingClasses([GiB], [], 2)).toEqual([GiB]);
    const left = [{ size: 10 * GiB }, { size: 2 * GiB }, { size: 10 * GiB }, { size: GiB }, { size: 3 * GiB }];
    expect(startingClasses([GiB], left, 2)).toEqual([GiB, 10 * GiB, 2 * GiB]);
    expect(startingClasses([GiB, GiB], left, 0)).toEqual([GiB]);
  });

  it('makes the first class short of its target (the default first), nothing when all are full or disabled', () => {
    const classes = [GiB, 2 * GiB];
    expect(nextSpareSize([], classes, 2)).toBe(GiB);
    expect(nextSpareSize([{ size: GiB }], classes, 2)).toBe(GiB);
    expect(nextSpareSize([{ size: GiB }, { size: GiB }], classes, 2)).toBe(2 * GiB);
    expect(nextSpareSize([{ size: GiB }, { size: GiB }, { size: 2 * GiB }, { size: 2 * GiB }], classes, 2)).toBe(
      undefined,
    );
    // More than the target (another host made some): nothing destroyed, nothing made.
    expect(nextSpareSize([{ size: GiB }, { size: GiB }, { size: GiB }], [GiB], 2)).toBe(undefined);
    expect(nextSpareSize([], classes, 0)).toBe(undefined);
  });

  it('refills only while the agent has no real work and is not stopping', () => {
    expect(mayRefill({ queueIdle: true, stopping: false })).toBe(true);
    expect(mayRefill({ queueIdle: false, stopping: false })).toBe(false);
    expect(mayRefill({ queueIdle: true, stopping: true })).toBe(false);
  });
});

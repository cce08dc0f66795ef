import {
  leasesHereChanged,
  mayClaimSpare,
  mayRefill,
  nextSpareSize,
  noteSize,
  refillDelay,
  startingClasses,
} from './spareDecisions';

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

  it('a refill waits for settleMs of quiet after the last idle moment, but no longer than maxDeferMs after it was first wanted, and never before a failed make allows', () => {
    const at = (now: number, wantedSince: number, notBefore = 0) =>
      refillDelay({ now, wantedSince, settleMs: 1_000, maxDeferMs: 5_000, notBefore });
    // The first kick: the whole settling time.
    expect(at(100, 100)).toBe(1_000);
    // A later idle moment pushes it back by the whole settling time again …
    expect(at(3_000, 100)).toBe(1_000);
    // … but only up to maxDeferMs after the first kick (5,100): commands that keep coming do not starve it.
    expect(at(4_500, 100)).toBe(600);
    expect(at(5_100, 100)).toBe(0);
    expect(at(9_000, 100)).toBe(0);
    // After a failed make nothing earlier than notBefore, bound or not.
    expect(at(100, 100, 5_100)).toBe(5_000);
    expect(at(9_000, 100, 9_400)).toBe(400);
    // A bound shorter than the settling time wins; a notBefore in the past changes nothing.
    expect(refillDelay({ now: 0, wantedSince: 0, settleMs: 1_000, maxDeferMs: 300, notBefore: -50 })).toBe(300);
  });

  it("a lease here taken or let go (a container starting or stopping on this node) is activity; other nodes' leases and a first snapshot are not", () => {
    const lease = (dataset_id: string, node_uuid: string) => ({ dataset_id, node_uuid, expires: null });
    const at = (...leases: ReturnType<typeof lease>[]) => ({ leases });
    const me = 'n1';
    expect(leasesHereChanged(null, at(lease('d1', me)), me)).toBe(false);
    expect(leasesHereChanged(at(), at(lease('d1', me)), me)).toBe(true); // taken at a Mount
    expect(leasesHereChanged(at(lease('d1', me)), at(), me)).toBe(true); // let go after the last Unmount
    expect(leasesHereChanged(at(lease('d1', me)), at(lease('d2', me)), me)).toBe(true);
    expect(leasesHereChanged(at(lease('d1', me), lease('d2', me)), at(lease('d2', me), lease('d1', me)), me)).toBe(
      false,
    );
    expect(leasesHereChanged(at(lease('d1', me)), at(lease('d1', me), lease('d2', 'n2')), me)).toBe(false);
    expect(leasesHereChanged(at(lease('d2', 'n2')), at(), me)).toBe(false);
    // A lease moving from here to another node is one let go here.
    expect(leasesHereChanged(at(lease('d1', me)), at(lease('d1', 'n2')), me)).toBe(true);
  });
});

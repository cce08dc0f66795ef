/**
 * pendingHolder's proof (review FR F1, session 19): an attach mark names the maker of an uncompleted reservation
 * only when Cinder stamped the reservation (attached_at) shortly after the mark was written.
 */
import {
  attachingMarkerKey,
  cinderTime,
  MARK_CLOCK_SKEW_MS,
  MARK_RESERVES_WITHIN_MS,
  markProvesReservation,
  META_ATTACHED_TO,
  META_ATTACHMENT_ID,
  pendingHolder,
} from './CinderDriver';
import type { Attachment, Volume } from './schemas';

const RESERVED_AT = '2026-12-06T08:00:00.000000';
const reservedMs = Date.parse(`${RESERVED_AT}Z`);

function iso(offsetMs: number): string {
  return new Date(reservedMs + offsetMs).toISOString();
}

function volume(metadata: Record<string, string>, status = 'attaching'): Volume {
  return { id: 'v1', status, size: 1, metadata, attachments: [] };
}

function reservation(attachedAt: string | null = RESERVED_AT): Attachment {
  return { id: 'a1', status: 'attaching', volume_id: 'v1', attached_at: attachedAt };
}

describe('pendingHolder', () => {
  it('names the one mark written shortly before the reservation', () => {
    expect(pendingHolder(volume({ [attachingMarkerKey('A')]: iso(-2000) }), [reservation()])).toBe('A');
  });

  it("names nobody for a stale mark and another's unmarked reservation (an older agent's)", () => {
    expect(pendingHolder(volume({ [attachingMarkerKey('A')]: iso(-3600_000) }), [reservation()])).toBeNull();
  });

  it("ignores a stale mark beside the reserver's fresh one", () => {
    const v = volume({ [attachingMarkerKey('A')]: iso(-3600_000), [attachingMarkerKey('B')]: iso(-500) });
    expect(pendingHolder(v, [reservation()])).toBe('B');
  });

  it('names nobody for two marks that both fit', () => {
    const v = volume({ [attachingMarkerKey('A')]: iso(-1000), [attachingMarkerKey('B')]: iso(-500) });
    expect(pendingHolder(v, [reservation()])).toBeNull();
  });

  it('names nobody when Cinder shows no reservation time, or a mark is not a time', () => {
    expect(pendingHolder(volume({ [attachingMarkerKey('A')]: iso(-1000) }), [reservation('')])).toBeNull();
    expect(pendingHolder(volume({ [attachingMarkerKey('A')]: iso(-1000) }), [reservation(null)])).toBeNull();
    expect(pendingHolder(volume({ [attachingMarkerKey('A')]: 'yesterday' }), [reservation()])).toBeNull();
  });

  it('still names the holder recorded with the reservation id, whatever the marks', () => {
    const v = volume({
      [META_ATTACHED_TO]: 'A',
      [META_ATTACHMENT_ID]: 'a1',
      [attachingMarkerKey('B')]: iso(-500),
    });
    expect(pendingHolder(v, [reservation(null)])).toBe('A');
  });

  it('names nobody without exactly one live reservation', () => {
    const v = volume({ [attachingMarkerKey('A')]: iso(-1000) });
    expect(pendingHolder(v, [])).toBeNull();
    expect(pendingHolder(v, [reservation(), { ...reservation(), id: 'a2' }])).toBeNull();
  });
});

describe('markProvesReservation', () => {
  it('allows the clock skew either way and the reservation window after the mark, nothing more', () => {
    expect(markProvesReservation(iso(MARK_CLOCK_SKEW_MS), reservedMs)).toBe(true);
    expect(markProvesReservation(iso(MARK_CLOCK_SKEW_MS + 1), reservedMs)).toBe(false);
    expect(markProvesReservation(iso(-(MARK_RESERVES_WITHIN_MS + MARK_CLOCK_SKEW_MS)), reservedMs)).toBe(true);
    expect(markProvesReservation(iso(-(MARK_RESERVES_WITHIN_MS + MARK_CLOCK_SKEW_MS) - 1), reservedMs)).toBe(false);
  });
});

describe('cinderTime', () => {
  it("reads Cinder's zone-less UTC times and zoned ones; NaN for none", () => {
    expect(cinderTime('2026-12-06T08:00:00.000000')).toBe(reservedMs);
    expect(cinderTime('2026-12-06T09:00:00+01:00')).toBe(reservedMs);
    expect(cinderTime('')).toBeNaN();
    expect(cinderTime(null)).toBeNaN();
  });
});

/**
 * Review FR finding 11: the snapshot-name rule was written twice (engine.ts checkSnapshotName,
 * btrfs.ts lineage's name check). One predicate, isSnapshotName, now serves both.
 */
import { checkSnapshotName, isSnapshotName } from './engine';

const NAMES: [string, boolean][] = [
  ['move-000001', true],
  ['flocker_1.2', true],
  ['a'.repeat(64), true],
  ['a'.repeat(65), false],
  ['', false],
  ['.', false],
  ['..', false],
  ['-p', false],
  ['a/b', false],
  ['a b', false],
  ['a\n', false],
  ['é', false],
];

describe('isSnapshotName (names that become path components and command arguments)', () => {
  it.each(NAMES)('%j: %s', (name, ok) => {
    expect(isSnapshotName(name)).toBe(ok);
  });

  it('checkSnapshotName refuses exactly the names isSnapshotName does not take (UNKNOWN_SNAPSHOT)', () => {
    for (const [name, ok] of NAMES)
      if (ok) expect(() => checkSnapshotName(name)).not.toThrow();
      else expect(() => checkSnapshotName(name)).toThrow(expect.objectContaining({ code: 'UNKNOWN_SNAPSHOT' }));
  });
});

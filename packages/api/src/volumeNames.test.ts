import {
  isVolumeName,
  newVolumeNameProblem,
  VOLUME_NAME_MAX_LENGTH,
  VolumeName,
  volumeNameProblem,
} from './volumeNames';

describe('volume names (one rule for plugin, CLI and UI)', () => {
  it.each(['ab', 'v1', 'my-volume', 'my_volume.2', '0abc', 'A'.repeat(VOLUME_NAME_MAX_LENGTH)])(
    '%p is a name',
    (name) => {
      expect(isVolumeName(name)).toBe(true);
      expect(VolumeName.safeParse(name).success).toBe(true);
    },
  );

  it.each([
    '',
    ' ',
    '   ',
    'a',
    'bad name!',
    '-abc',
    '.abc',
    '_abc',
    'a/b',
    ' ab',
    'ab ',
    'ünï',
    'a:b',
    'a'.repeat(VOLUME_NAME_MAX_LENGTH + 1),
  ])('%p is not', (name) => {
    expect(isVolumeName(name)).toBe(false);
    const r = VolumeName.safeParse(name);
    expect(r.success).toBe(false);
    expect(r.error?.issues[0]?.message).toBe(volumeNameProblem(name));
  });

  it('says why in a sentence', () => {
    expect(volumeNameProblem('   ')).toBe('a volume needs a name');
    expect(volumeNameProblem('bad name!')).toMatch(
      /^"bad name!" is not a valid volume name: use at least two characters from \[a-zA-Z0-9_.-\]/,
    );
  });
});

describe('new volume names (review TN F1: a UUID-shaped name makes "name or id" ambiguous)', () => {
  it.each(['c6fcd4ab-6141-509f-95da-52a54a496abe', 'C6FCD4AB-6141-509F-95DA-52A54A496ABE'])('%p is refused', (name) => {
    expect(isVolumeName(name)).toBe(true); // still looked up: existing volumes keep working
    expect(newVolumeNameProblem(name)).toMatch(/is shaped like a volume id/);
  });
  it.each(['c6fcd4ab', 'c6fcd4ab-6141-509f-95da-52a54a496abe-2', 'pg', 'my-volume'])('%p is allowed', (name) => {
    expect(newVolumeNameProblem(name)).toBeUndefined();
  });
  it('keeps the base rule', () => {
    expect(newVolumeNameProblem('bad name!')).toBe(volumeNameProblem('bad name!'));
  });
});

import { isVolumeName, VOLUME_NAME_MAX_LENGTH, VolumeName, volumeNameProblem } from './volumeNames';

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

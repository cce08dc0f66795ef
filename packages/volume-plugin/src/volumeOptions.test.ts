import {
  DEFAULT_VOLUME_SIZE,
  parseCreateOptions,
  parseSize,
  profileForBackend,
  validateVolumeName,
  volumeDatasetId,
} from './volumeOptions';

const KiB = 1024;
const MiB = 1024 ** 2;
const GiB = 1024 ** 3;

describe('parseSize', () => {
  it.each([
    ['10G', 10 * GiB],
    ['10GB', 10 * GiB],
    ['10GiB', 10 * GiB],
    ['10g', 10 * GiB],
    ['512MiB', 512 * MiB],
    ['512M', 512 * MiB],
    ['64MiB', 64 * MiB],
    ['65536KiB', 65536 * KiB],
    ['1.5G', 1.5 * GiB],
    ['1T', 1024 * GiB],
    ['67108864', 64 * MiB],
    ['1073741824B', GiB],
    [' 2 GiB ', 2 * GiB],
  ])('%p is %p bytes', (text, bytes) => expect(parseSize(text)).toBe(bytes));

  it.each(['', 'big', '-1G', '10X', '1e9', '10 G B', '0x100', 'G', '99999999999999999999T'])(
    '%p is not understood',
    (text) => {
      expect(() => parseSize(text)).toThrow(expect.objectContaining({ code: 'INVALID_SIZE' }));
    },
  );

  it.each(['100KiB', '63MiB', '1', '67108863'])('%p is below the 64 MiB minimum', (text) => {
    expect(() => parseSize(text)).toThrow(/too small/);
  });
});

describe('validateVolumeName', () => {
  it.each(['ab', 'v1', 'my-volume', 'my_volume.2', '0abc', 'A'.repeat(200)])('%p is valid', (name) => {
    expect(() => validateVolumeName(name)).not.toThrow();
  });
  it.each(['', 'a', '-abc', '.abc', '_abc', 'a/b', '/abs', 'has space', 'ünï', 'a:b', 'a'.repeat(257)])(
    '%p is rejected',
    (name) => {
      expect(() => validateVolumeName(name)).toThrow(expect.objectContaining({ code: 'INVALID_NAME' }));
    },
  );
});

describe('parseCreateOptions', () => {
  it('uses the default size without options', () => {
    expect(parseCreateOptions(undefined, DEFAULT_VOLUME_SIZE)).toEqual({ size: 10 * GiB, sizeGiven: false });
    expect(parseCreateOptions(null, GiB)).toEqual({ size: GiB, sizeGiven: false });
    expect(parseCreateOptions({}, GiB)).toEqual({ size: GiB, sizeGiven: false });
  });
  it('reads size and profile', () => {
    expect(parseCreateOptions({ size: '2G', profile: 'gold' }, GiB)).toEqual({
      size: 2 * GiB,
      sizeGiven: true,
      profile: 'gold',
    });
  });
  it('reads the file system (fs=xfs at least 300MiB; ext4 or xfs only)', () => {
    expect(parseCreateOptions({ fs: 'xfs' }, GiB)).toEqual({ size: GiB, sizeGiven: false, filesystem: 'xfs' });
    expect(parseCreateOptions({ fs: 'ext4', size: '64M' }, GiB)).toMatchObject({ filesystem: 'ext4' });
    expect(() => parseCreateOptions({ fs: 'xfs', size: '64M' }, GiB)).toThrow(
      expect.objectContaining({ code: 'INVALID_SIZE', message: expect.stringMatching(/at least 300MiB/) }),
    );
    expect(() => parseCreateOptions({ fs: 'zfs' }, GiB)).toThrow(
      expect.objectContaining({ code: 'INVALID_OPTION', message: expect.stringMatching(/use ext4 or xfs/) }),
    );
  });
  it('reads a clone source: from-snapshot or clone-of, not both, not with fs', () => {
    expect(parseCreateOptions({ 'from-snapshot': 'nightly' }, GiB)).toMatchObject({ fromSnapshot: 'nightly' });
    expect(parseCreateOptions({ 'clone-of': 'pgdata', size: '2G' }, GiB)).toMatchObject({
      cloneOf: 'pgdata',
      size: 2 * GiB,
      sizeGiven: true,
    });
    const invalid = (opts: Record<string, string>, message: RegExp) =>
      expect(() => parseCreateOptions(opts, GiB)).toThrow(
        expect.objectContaining({ code: 'INVALID_OPTION', message: expect.stringMatching(message) }),
      );
    invalid({ 'from-snapshot': 'a', 'clone-of': 'pgdata' }, /from-snapshot or clone-of, not both/);
    invalid({ 'clone-of': 'pgdata', fs: 'xfs' }, /keeps the file system of its source/);
    invalid({ 'from-snapshot': ' ' }, /needs a snapshot name or id/);
    expect(() => parseCreateOptions({ 'clone-of': '-bad' }, GiB)).toThrow(
      expect.objectContaining({ code: 'INVALID_NAME' }),
    );
  });
  it('reads a snapshot schedule (issue 20): the grammar and keep checked, keep only with a schedule', () => {
    expect(parseCreateOptions({ 'snapshot-schedule': 'hourly', 'snapshot-keep': '24' }, GiB).schedule).toEqual({
      'clusterhq:flocker:snapshot-schedule': 'hourly',
      'clusterhq:flocker:snapshot-keep': '24',
    });
    expect(parseCreateOptions({ 'snapshot-schedule': 'every 15m' }, GiB).schedule).toEqual({
      'clusterhq:flocker:snapshot-schedule': 'every 15m',
    });
    expect(parseCreateOptions({}, GiB).schedule).toBeUndefined();
    const invalid = (opts: Record<string, string>, message: RegExp): void =>
      expect(() => parseCreateOptions(opts, GiB)).toThrow(
        expect.objectContaining({ code: 'INVALID_OPTION', message: expect.stringMatching(message) }),
      );
    invalid({ 'snapshot-schedule': 'weekly' }, /"weekly" is not a snapshot schedule; use hourly, daily/);
    invalid({ 'snapshot-schedule': 'hourly', 'snapshot-keep': '0' }, /snapshot-keep must be a whole number from 1/);
    invalid({ 'snapshot-keep': '3' }, /snapshot-keep needs snapshot-schedule/);
  });
  it('rejects unknown options by name', () => {
    expect(() => parseCreateOptions({ sise: '1G' }, GiB)).toThrow(
      /unknown volume option "sise".*size, profile, fs, from-snapshot, clone-of/,
    );
    expect(() => parseCreateOptions({ a: '1', b: '2' }, GiB)).toThrow(/options "a", "b"/);
  });
  it('rejects a bad profile and a bad size', () => {
    expect(() => parseCreateOptions({ profile: 'no good' }, GiB)).toThrow(
      expect.objectContaining({ code: 'INVALID_PROFILE' }),
    );
    expect(() => parseCreateOptions({ size: '1K' }, GiB)).toThrow(expect.objectContaining({ code: 'INVALID_SIZE' }));
  });
});

describe("profileForBackend: the CLI's rule (@flocker/api storageProfileFor) once the node's backend is known", () => {
  it("refuses a profile the backend does not know, with the CLI's sentence", () => {
    for (const backend of ['loopback', 'aws', 'local-zfs'])
      expect(() => profileForBackend('glod', backend)).toThrow(
        expect.objectContaining({
          code: 'INVALID_PROFILE',
          message:
            'unknown storage profile "glod": use gold, silver or bronze (on Cinder nodes, also a Cinder volume type; on ScaleIO nodes, a profile of its profile_storage_pools)',
        }),
      );
  });
  it('keeps gold, silver, bronze (lower case), any name on Cinder and ScaleIO, and anything while the backend is not known', () => {
    expect(profileForBackend('Gold', 'loopback')).toBe('gold');
    expect(profileForBackend('fast-ssd', 'openstack')).toBe('fast-ssd');
    expect(profileForBackend('ssd-pool', 'scaleio')).toBe('ssd-pool');
    expect(profileForBackend('glod', undefined)).toBe('glod');
  });
});

describe('volumeDatasetId', () => {
  it("is RFC 9562's name-based UUID (v5) of the volume name, as Python's uuid.uuid5 computes it", () => {
    // python3 -c "import uuid; print(uuid.uuid5(uuid.UUID('bd85c98e-bade-4abc-8617-d11353f57b90'), 'pgdata'))"
    expect(volumeDatasetId('pgdata')).toBe('9560bbf3-88ef-5abe-babb-cf2a2fb2581b');
    expect(volumeDatasetId('données-1')).toBe('345f9c24-0e1e-5f3d-b396-fb3058a140f3');
    expect(volumeDatasetId('pgdata')).toBe(volumeDatasetId('pgdata'));
    expect(volumeDatasetId('pgdata2')).not.toBe(volumeDatasetId('pgdata'));
  });
});

describe('-o replicas (review U2, finding 5: refused as an unknown option)', () => {
  it.each([
    ['1', '1'],
    ['0', '0'],
    [' 1 ', '1'],
    ['01', '1'],
  ])('replicas=%p sets clusterhq:flocker:replicas %p', (text, value) => {
    expect(parseCreateOptions({ replicas: text }, GiB).replicas).toEqual({ 'clusterhq:flocker:replicas': value });
  });

  it('absent: no replica metadata', () => {
    expect(parseCreateOptions({}, GiB).replicas).toBeUndefined();
  });

  it.each([
    ['2', /replicas "2": local storage keeps at most 1 standby replica per volume \(on another node\); use replicas=1/],
    ['-1', /replicas "-1": must be a whole number, 0 or more; use replicas=1 for a standby replica/],
    ['1.5', /must be a whole number/],
    ['one', /must be a whole number/],
    ['', /must be a whole number/],
  ])('replicas=%p is refused, saying why and what to use', (text, message) => {
    expect(() => parseCreateOptions({ replicas: text }, GiB)).toThrow(
      expect.objectContaining({ code: 'INVALID_OPTION', message: expect.stringMatching(message) }),
    );
  });

  it('is listed among the accepted options when an unknown one is given', () => {
    expect(() => parseCreateOptions({ 'clusterhq:flocker:replicas': '1' }, GiB)).toThrow(
      /unknown volume option "clusterhq:flocker:replicas": the Flocker driver accepts only .*snapshot-keep, replicas\./,
    );
  });
});

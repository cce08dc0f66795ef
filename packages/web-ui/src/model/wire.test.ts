import {
  CloneSnapshotBody,
  CreateVolumeBody,
  MoveVolumeBody,
  refusesSize,
  ResizeVolumeBody,
  SetScheduleBody,
  TakeSnapshotBody,
} from './wire';

describe('CreateVolumeBody', () => {
  it('takes ext4 or xfs, or no file system (the default, ext4)', () => {
    const base = { name: 'web', size: '1GiB', node: 'n' };
    expect(CreateVolumeBody.parse({ ...base, filesystem: 'xfs' }).filesystem).toBe('xfs');
    expect(CreateVolumeBody.parse(base).filesystem).toBeUndefined();
    expect(CreateVolumeBody.safeParse({ ...base, filesystem: 'btrfs' }).success).toBe(false);
  });
});

describe('TakeSnapshotBody', () => {
  it('trims the name; a blank or missing name is none', () => {
    expect(TakeSnapshotBody.parse({ name: '  nightly ' })).toEqual({ name: 'nightly' });
    expect(TakeSnapshotBody.parse({ name: '   ' }).name).toBeUndefined();
    expect(TakeSnapshotBody.parse({}).name).toBeUndefined();
  });
  it('refuses a name longer than metadata values may be', () => {
    const r = TakeSnapshotBody.safeParse({ name: 'x'.repeat(257) });
    expect(r.success).toBe(false);
    expect(r.error?.issues[0]?.message).toBe('snapshot names are at most 256 characters');
  });
});

describe('CloneSnapshotBody', () => {
  it('needs a volume name the Docker plugin accepts and a node; a size is optional', () => {
    expect(CloneSnapshotBody.parse({ name: 'copy', node: 'n' })).toEqual({ name: 'copy', size: '', node: 'n' });
    expect(CloneSnapshotBody.parse({ name: 'copy', size: ' 1G ', node: 'n' }).size).toBe('1G');
    expect(CloneSnapshotBody.safeParse({ name: 'bad name!', node: 'n' }).success).toBe(false);
    expect(CloneSnapshotBody.safeParse({ name: 'copy', node: '' }).error?.issues[0]?.message).toBe('choose a node');
  });
  it('names a missing node or name as the form asks for it (review T2 F9e), as create and move do', () => {
    const messages = (body: unknown) => CloneSnapshotBody.safeParse(body).error?.issues.map((i) => i.message);
    expect(messages({ name: 'copy' })).toEqual(['choose a node']);
    expect(messages({ node: 'n' })).toEqual(['a volume needs a name']);
    expect(MoveVolumeBody.safeParse({}).error?.issues.map((i) => i.message)).toEqual(['choose a node']);
    expect(CreateVolumeBody.safeParse({}).error?.issues.map((i) => i.message)).toEqual([
      'a volume needs a name',
      'give a size such as 1GiB',
      'choose a node',
    ]);
  });
});

describe('refusesSize', () => {
  it("is true for the UI server's size refusal and the API's size refusals", () => {
    expect(refusesSize({ code: 'INVALID_SIZE', message: 'size "1K" is too small: at least 64 MiB.' })).toBe(true);
    expect(refusesSize({ code: 'CLONE_TOO_SMALL', message: 'maximum_size 1 is smaller than the snapshot' })).toBe(true);
    expect(refusesSize({ code: 'DATASET_SHRINK', message: 'volumes do not shrink' })).toBe(true);
    expect(
      refusesSize({
        code: 'INVALID_REQUEST',
        message: 'The request is not valid: maximum_size: an xfs dataset needs at least 314572800 bytes (300 MiB)',
      }),
    ).toBe(true);
  });
  it('is false for refusals about anything else', () => {
    expect(refusesSize({ code: 'INVALID_NAME', message: '"x" is not a valid volume name' })).toBe(false);
    expect(refusesSize({ code: 'VOLUME_EXISTS', message: 'a volume named "maximum_size" already exists' })).toBe(false);
    expect(refusesSize({ code: 'INVALID_REQUEST', message: 'The request is not valid: primary: Invalid UUID' })).toBe(
      false,
    );
  });
});

describe('SetScheduleBody', () => {
  it('trims both; missing is blank (no schedule, the default keep)', () => {
    expect(SetScheduleBody.parse({ schedule: ' hourly ', keep: ' 6 ' })).toEqual({ schedule: 'hourly', keep: '6' });
    expect(SetScheduleBody.parse({})).toEqual({ schedule: '', keep: '' });
    expect(SetScheduleBody.safeParse({ schedule: 5 }).success).toBe(false);
  });
});

describe('ResizeVolumeBody', () => {
  it('takes a size as people write it, trimmed; a blank one is refused with a hint', () => {
    expect(ResizeVolumeBody.parse({ size: ' 2GiB ' })).toEqual({ size: '2GiB' });
    expect(ResizeVolumeBody.safeParse({ size: ' ' }).error?.issues[0]?.message).toBe('give a size such as 1GiB');
  });
});

import { CloneSnapshotBody, CreateVolumeBody, TakeSnapshotBody } from './wire';

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
});

import { CreateDatasetRequest, datasetFilesystem, METADATA_FILESYSTEM_KEY, XFS_MINIMUM_SIZE } from './schemas';

const primary = '3f9a0c4e-1b2d-4c5e-8f70-9a1b2c3d4e5f';

describe('the dataset file system (metadata clusterhq:flocker:filesystem)', () => {
  it('is ext4 when absent, xfs when asked, unsupported otherwise', () => {
    expect(datasetFilesystem({})).toBe('ext4');
    expect(datasetFilesystem({ [METADATA_FILESYSTEM_KEY]: 'xfs' })).toBe('xfs');
    expect(datasetFilesystem({ [METADATA_FILESYSTEM_KEY]: 'zfs' })).toBeUndefined();
  });

  it('a create request naming an unsupported file system, or an xfs one below 300 MiB, is refused with the reason', () => {
    const bad = CreateDatasetRequest.safeParse({ primary, metadata: { [METADATA_FILESYSTEM_KEY]: 'ntfs' } });
    expect(bad.success).toBe(false);
    expect(bad.error?.issues[0]?.message).toMatch(/unsupported file system "ntfs"; use one of ext4, xfs/);
    const small = CreateDatasetRequest.safeParse({
      primary,
      maximum_size: 64 * 1024 * 1024,
      metadata: { [METADATA_FILESYSTEM_KEY]: 'xfs' },
    });
    expect(small.error?.issues[0]).toMatchObject({ path: ['maximum_size'] });
    expect(small.error?.issues[0]?.message).toMatch(/xfs dataset needs at least 314572800 bytes/);
    const ok = CreateDatasetRequest.safeParse({
      primary,
      maximum_size: XFS_MINIMUM_SIZE,
      metadata: { [METADATA_FILESYSTEM_KEY]: 'xfs' },
    });
    expect(ok.success).toBe(true);
  });
});

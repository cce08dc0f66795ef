import { isBackupError } from './errors';
import { formatS3Url, parseS3Url } from './url';

describe('parseS3Url', () => {
  it.each([
    ['s3://backups', { bucket: 'backups', prefix: '' }],
    ['s3://backups/', { bucket: 'backups', prefix: '' }],
    ['s3://backups/flocker/prod', { bucket: 'backups', prefix: 'flocker/prod' }],
    ['S3://my.bucket-1//a//b/', { bucket: 'my.bucket-1', prefix: 'a/b' }],
  ])('accepts %s', (url, expected) => {
    expect(parseS3Url(url)).toEqual(expected);
  });

  it.each([
    ['backups/prefix', 'expected s3://bucket/prefix'],
    ['https://backups/prefix', 'scheme must be s3'],
    ['s3:///prefix', 'no bucket name'],
    ['s3://Backups/x', 'not a valid S3 bucket name'],
    ['s3://ab/x', 'not a valid S3 bucket name'],
    ['s3://a..b/x', 'not a valid S3 bucket name'],
    ['s3://backups/x?versionId=1', 'query strings'],
    ['s3://backups/a/../b', "'.' and '..'"],
  ])('refuses %s with INVALID_URL saying why', (url, why) => {
    let caught: unknown;
    try {
      parseS3Url(url);
    } catch (e) {
      caught = e;
    }
    expect(isBackupError(caught, 'INVALID_URL')).toBe(true);
    expect((caught as Error).message).toContain(why);
    expect((caught as Error).message).toContain(JSON.stringify(url));
  });

  it('formats back', () => {
    expect(formatS3Url(parseS3Url('s3://backups/a/b/'))).toBe('s3://backups/a/b');
    expect(formatS3Url(parseS3Url('s3://backups'))).toBe('s3://backups');
  });
});

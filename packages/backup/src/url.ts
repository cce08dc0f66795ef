import { BackupError } from './errors';

export interface S3Location {
  readonly bucket: string;
  /** Key prefix without leading or trailing slash; '' for the bucket's root. */
  readonly prefix: string;
}

// S3's bucket naming rules (general purpose buckets): 3-63 of a-z 0-9 . -, starting and ending alphanumeric.
const BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

/** Parses `s3://bucket[/prefix]`; every malformed URL is an INVALID_URL error that says what is wrong. */
export function parseS3Url(url: string): S3Location {
  const bad = (why: string) => new BackupError('INVALID_URL', `invalid backup location ${JSON.stringify(url)}: ${why}`);
  const m = /^([A-Za-z0-9+.-]+):\/\/([^/]*)(\/.*)?$/.exec(url.trim());
  if (m === null) throw bad('expected s3://bucket/prefix');
  const [, scheme = '', bucket = '', rest = ''] = m;
  if (scheme.toLowerCase() !== 's3') throw bad(`scheme must be s3, not ${scheme}`);
  if (bucket === '') throw bad('no bucket name');
  if (!BUCKET.test(bucket) || bucket.includes('..'))
    throw bad(`${JSON.stringify(bucket)} is not a valid S3 bucket name (3-63 characters: a-z, 0-9, '.', '-')`);
  if (/[?#]/.test(rest)) throw bad('query strings and fragments are not allowed');
  const segments = rest.split('/').filter((s) => s !== '');
  if (segments.some((s) => s === '.' || s === '..')) throw bad("prefix segments '.' and '..' are not allowed");
  const prefix = segments.join('/');
  if (Buffer.byteLength(prefix) > 512) throw bad('prefix longer than 512 bytes');
  return { bucket, prefix };
}

export function formatS3Url(location: S3Location): string {
  return `s3://${location.bucket}${location.prefix === '' ? '' : `/${location.prefix}`}`;
}

/** ObjectStore on S3 (or any S3-compatible service: moto, MinIO, Ceph RGW) through @aws-sdk/client-s3. */
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { createHash } from 'node:crypto';
import { backoffDelay, errorCode, errorMessage, sleep, type BackoffPolicy } from '@flocker/runtime';
import { BackupError } from './errors';
import type { CallOptions, ObjectInfo, ObjectStore } from './store';
import { formatS3Url, parseS3Url, type S3Location } from './url';

export interface S3StoreOptions {
  /** `s3://bucket/prefix`. */
  readonly url: string;
  /** Default: AWS_REGION, else us-east-1. */
  readonly region?: string;
  /** An S3-compatible endpoint (e.g. http://127.0.0.1:5000 for moto); implies path-style addressing. */
  readonly endpoint?: string;
  readonly forcePathStyle?: boolean;
  /** Default: the SDK's chain (environment, profile files, instance role). */
  readonly credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** Use this client (tests add middleware to it); region, endpoint and credentials are then ignored. */
  readonly client?: S3Client;
  /** Tries per call, first included (default 6). */
  readonly maxAttempts?: number;
  readonly backoff?: BackoffPolicy;
  readonly requestTimeoutMs?: number;
  readonly sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
}

export const DEFAULT_S3_BACKOFF: BackoffPolicy = { initialMs: 200, maxMs: 10_000, jitter: true };

export type S3Failure = 'not-found' | 'retry' | 'denied' | 'no-credentials' | 'fatal';

const RETRY_NAMES = new Set([
  'SlowDown',
  'Throttling',
  'ThrottlingException',
  'ThrottledException',
  'RequestThrottled',
  'RequestLimitExceeded',
  'TooManyRequestsException',
  'RequestTimeout',
  'RequestTimeoutException',
  'InternalError',
  'ServiceUnavailable',
  'TimeoutError',
]);
const RETRY_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'EAI_AGAIN',
  'ENOTFOUND',
  'EHOSTUNREACH',
]);
const DENIED_NAMES = new Set([
  'AccessDenied',
  'InvalidAccessKeyId',
  'SignatureDoesNotMatch',
  'NoSuchBucket',
  'ExpiredToken',
  'InvalidToken',
  'AllAccessDisabled',
]);

/** What to do about an error the S3 client threw (pure; exported for tests). */
export function classifyS3Error(e: unknown): S3Failure {
  const err = (typeof e === 'object' && e !== null ? e : {}) as {
    name?: unknown;
    $metadata?: { httpStatusCode?: unknown };
  };
  const name = typeof err.name === 'string' ? err.name : '';
  const status = typeof err.$metadata?.httpStatusCode === 'number' ? err.$metadata.httpStatusCode : undefined;
  // No credentials found anywhere (environment, profile, instance role): asking again finds none either.
  if (name === 'CredentialsProviderError') return 'no-credentials';
  if (DENIED_NAMES.has(name) || status === 401 || status === 403) return 'denied';
  if (name === 'NoSuchKey' || name === 'NotFound' || status === 404) return 'not-found';
  if (RETRY_NAMES.has(name) || (status !== undefined && (status === 429 || status >= 500))) return 'retry';
  const code = errorCode(e);
  if (status === undefined && (code === undefined || RETRY_CODES.has(code))) return 'retry'; // no answer at all
  return 'fatal';
}

export class S3ObjectStore implements ObjectStore {
  readonly location: string;
  readonly bucket: string;
  private readonly keyPrefix: string;
  private readonly client: S3Client;

  constructor(private readonly options: S3StoreOptions) {
    const loc: S3Location = parseS3Url(options.url);
    this.location = formatS3Url(loc);
    this.bucket = loc.bucket;
    this.keyPrefix = loc.prefix === '' ? '' : `${loc.prefix}/`;
    const timeout = options.requestTimeoutMs ?? 120_000;
    this.client =
      options.client ??
      new S3Client({
        region: options.region ?? process.env.AWS_REGION ?? 'us-east-1',
        ...(options.endpoint === undefined ? {} : { endpoint: options.endpoint }),
        forcePathStyle: options.forcePathStyle ?? options.endpoint !== undefined,
        ...(options.credentials === undefined ? {} : { credentials: options.credentials }),
        // We retry ourselves (bounded, jittered, with our error codes at the end).
        maxAttempts: 1,
        requestHandler: { requestTimeout: timeout, connectionTimeout: Math.min(timeout, 10_000) },
      });
  }

  /** The client, e.g. to create the bucket in tests. */
  get s3(): S3Client {
    return this.client;
  }

  private async call<T>(
    what: string,
    key: string,
    options: CallOptions | undefined,
    fn: (abortSignal: AbortSignal | undefined) => Promise<T>,
    notFound: () => T,
  ): Promise<T> {
    const maxAttempts = this.options.maxAttempts ?? 6;
    const policy = this.options.backoff ?? DEFAULT_S3_BACKOFF;
    const signal = options?.signal;
    const pause =
      this.options.sleep ?? ((ms: number, s?: AbortSignal) => sleep(ms, s === undefined ? {} : { signal: s }));
    for (let attempt = 0; ; attempt++) {
      signal?.throwIfAborted();
      try {
        return await fn(signal);
      } catch (e) {
        // Aborted by the caller (an agent stopping, a cancelled backup): not a store failure, never retried.
        signal?.throwIfAborted();
        const kind = classifyS3Error(e);
        const where = `${what} ${this.location}/${key}`;
        if (kind === 'not-found') return notFound();
        if (kind === 'no-credentials')
          throw new BackupError(
            'STORE_DENIED',
            `${where}: no S3 credentials (${errorMessage(e)}): set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE`,
            key,
            { cause: e },
          );
        if (kind === 'denied')
          throw new BackupError('STORE_DENIED', `${where}: refused (${errorMessage(e)})`, key, { cause: e });
        if (kind === 'fatal') throw new BackupError('STORE_ERROR', `${where}: ${errorMessage(e)}`, key, { cause: e });
        if (attempt + 1 >= maxAttempts)
          throw new BackupError(
            'STORE_UNREACHABLE',
            `${where}: no answer after ${maxAttempts} tries (${errorMessage(e)})`,
            key,
            { cause: e },
          );
        await pause(backoffDelay(attempt, policy), signal);
      }
    }
  }

  private notFoundError(what: string, key: string): never {
    throw new BackupError('STORE_ERROR', `${what} ${this.location}/${key}: the bucket answered 404`, key);
  }

  async put(key: string, body: Uint8Array, options?: CallOptions): Promise<void> {
    // The SHA-256 travels with the PUT: S3 refuses bytes damaged on the way and keeps it (HEAD answers it).
    const sha256 = createHash('sha256').update(body).digest('base64');
    await this.call(
      'PUT',
      key,
      options,
      (abortSignal) =>
        this.client.send(
          new PutObjectCommand({
            Bucket: this.bucket,
            Key: this.keyPrefix + key,
            Body: body,
            ChecksumAlgorithm: 'SHA256',
            ChecksumSHA256: sha256,
          }),
          { abortSignal },
        ),
      () => this.notFoundError('PUT', key),
    );
  }

  async get(key: string, options?: CallOptions): Promise<Buffer | undefined> {
    return this.call(
      'GET',
      key,
      options,
      async (abortSignal) => {
        const r = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.keyPrefix + key }), {
          abortSignal,
        });
        if (r.Body === undefined) return Buffer.alloc(0);
        return Buffer.from(await r.Body.transformToByteArray());
      },
      () => undefined,
    );
  }

  async head(key: string, options?: CallOptions): Promise<ObjectInfo | undefined> {
    return this.call(
      'HEAD',
      key,
      options,
      async (abortSignal) => {
        const r = await this.client.send(
          new HeadObjectCommand({ Bucket: this.bucket, Key: this.keyPrefix + key, ChecksumMode: 'ENABLED' }),
          { abortSignal },
        );
        // A multipart object's checksum is a checksum of checksums (`…-N`): not the object's SHA-256.
        const sha256 = r.ChecksumSHA256 !== undefined && !r.ChecksumSHA256.includes('-') ? r.ChecksumSHA256 : undefined;
        return {
          key,
          size: r.ContentLength ?? 0,
          lastModified: r.LastModified ?? new Date(0),
          ...(sha256 === undefined ? {} : { sha256 }),
        };
      },
      () => undefined,
    );
  }

  async *list(prefix: string, options?: CallOptions): AsyncIterable<ObjectInfo> {
    let token: string | undefined;
    do {
      const page = await this.call(
        'LIST',
        prefix,
        options,
        (abortSignal) =>
          this.client.send(
            new ListObjectsV2Command({
              Bucket: this.bucket,
              Prefix: this.keyPrefix + prefix,
              ...(token === undefined ? {} : { ContinuationToken: token }),
            }),
            { abortSignal },
          ),
        () => this.notFoundError('LIST', prefix),
      );
      for (const o of page.Contents ?? []) {
        if (o.Key === undefined || !o.Key.startsWith(this.keyPrefix)) continue;
        yield {
          key: o.Key.slice(this.keyPrefix.length),
          size: o.Size ?? 0,
          lastModified: o.LastModified ?? new Date(0),
        };
      }
      token = page.IsTruncated === true ? page.NextContinuationToken : undefined;
    } while (token !== undefined);
  }

  async delete(key: string, options?: CallOptions): Promise<void> {
    await this.call(
      'DELETE',
      key,
      options,
      (abortSignal) =>
        this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.keyPrefix + key }), { abortSignal }),
      () => undefined,
    );
  }
}

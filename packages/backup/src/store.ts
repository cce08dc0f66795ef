/** What the engine needs of an object store: flat keys (relative to the store's own prefix) holding bytes. */
export interface ObjectInfo {
  /** Relative to the store's prefix, e.g. `chunks/ab/ab12…`. */
  readonly key: string;
  readonly size: number;
  /** When the object was last written (the store's clock): garbage collection's grace period is measured on it. */
  readonly lastModified: Date;
  /**
   * Base64 SHA-256 of the whole object's bytes as the store recorded them at upload (S3 additional checksums),
   * when the store keeps one (head only; absent for objects written without a checksum).
   */
  readonly sha256?: string;
}

/** Per call: an aborted signal ends the call at once (in-flight request and retry pauses), rejecting with its reason. */
export interface CallOptions {
  readonly signal?: AbortSignal;
}

export interface ObjectStore {
  /** Where the objects live, for messages (e.g. `s3://bucket/prefix`). */
  readonly location: string;
  /** Writes (or overwrites) the whole object; the store checks and records its SHA-256 where it can. */
  put(key: string, body: Uint8Array, options?: CallOptions): Promise<void>;
  /** The object's bytes, or undefined when there is no such object. */
  get(key: string, options?: CallOptions): Promise<Buffer | undefined>;
  /** Size, age (and checksum, when recorded) of the object, or undefined when there is no such object. */
  head(key: string, options?: CallOptions): Promise<ObjectInfo | undefined>;
  /** Every object whose key starts with prefix, in key order (UTF-8 binary order, as S3 lists). */
  list(prefix: string, options?: CallOptions): AsyncIterable<ObjectInfo>;
  /** Removes the object; removing one that is not there is not an error. */
  delete(key: string, options?: CallOptions): Promise<void>;
}

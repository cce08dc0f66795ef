/** What the engine needs of an object store: flat keys (relative to the store's own prefix) holding bytes. */
export interface ObjectInfo {
  /** Relative to the store's prefix, e.g. `chunks/ab/ab12…`. */
  readonly key: string;
  readonly size: number;
  /** When the object was last written (the store's clock): garbage collection's grace period is measured on it. */
  readonly lastModified: Date;
}

export interface ObjectStore {
  /** Where the objects live, for messages (e.g. `s3://bucket/prefix`). */
  readonly location: string;
  /** Writes (or overwrites) the whole object. */
  put(key: string, body: Uint8Array): Promise<void>;
  /** The object's bytes, or undefined when there is no such object. */
  get(key: string): Promise<Buffer | undefined>;
  /** Size and age of the object, or undefined when there is no such object. */
  head(key: string): Promise<ObjectInfo | undefined>;
  /** Every object whose key starts with prefix, in key order (UTF-8 binary order, as S3 lists). */
  list(prefix: string): AsyncIterable<ObjectInfo>;
  /** Removes the object; removing one that is not there is not an error. */
  delete(key: string): Promise<void>;
}

/**
 * Log output that cannot kill the process. Flocker's services log JSON lines to
 * stdout/stderr, which `./dev up` and init systems redirect to files; when that disk
 * is full, Node's stdout stream emits an unhandled 'error' (ENOSPC) and the process
 * exits. Here a line that cannot be written is dropped and counted; once writing
 * works again, one line says how many were lost (after a newline ending a line that
 * was cut short), and logging goes on.
 *
 * Regular files and character devices are written directly (synchronously, every byte:
 * a short write is continued); pipes, sockets and terminals go through Node's own
 * stream, whose errors are caught.
 */
import * as fs from 'node:fs';
import { isatty } from 'node:tty';
import { Writable } from 'node:stream';
import { errorMessage } from '@flocker/runtime';
import type { SyncWriteOps } from './durableFiles';

export interface SafeLogOutputOptions {
  /** Where lines go when the fd is a pipe, socket or terminal (process.stdout/stderr). */
  fallback?: NodeJS.WritableStream & { destroyed?: boolean; writable?: boolean };
  /** Write operations for direct mode (tests put a failing fake here). */
  ops?: SyncWriteOps;
  /** Force direct writes (true) or the fallback stream (false); default: by the fd's type. */
  direct?: boolean;
  /** Clock of the "lines dropped" notice. */
  now?: () => Date;
  /**
   * Size-based rotation of a log file the fd appends to (`./dev up` redirects with >>): once it
   * holds more than `maxBytes`, its lines are copied to `<file>.1` (older copies shift up to
   * `<file>.<keep>`, the oldest is dropped) and it is truncated. Only for a regular file opened
   * with O_APPEND (after a truncate the next write then lands at its start); anything else is
   * never rotated.
   */
  rotate?: { maxBytes: number; keep: number };
}

/** Rotation from the environment: FLOCKER_LOG_MAX_BYTES (default 50 MiB; 0 = never) and FLOCKER_LOG_KEEP (default 5). */
export function rotationFromEnv(env: NodeJS.ProcessEnv = process.env): { maxBytes: number; keep: number } | undefined {
  const maxBytes = Number(env['FLOCKER_LOG_MAX_BYTES'] ?? 50 * 1024 * 1024);
  const keep = Number(env['FLOCKER_LOG_KEEP'] ?? 5);
  if (!Number.isFinite(maxBytes) || maxBytes <= 0 || !Number.isInteger(keep) || keep < 1) return undefined;
  return { maxBytes, keep };
}

/** The file an fd appends to, or undefined when it is not a regular file opened with O_APPEND. */
function appendedFile(fd: number): string | undefined {
  try {
    if (!fs.fstatSync(fd).isFile()) return undefined;
    const flags = /^flags:\s+([0-7]+)$/m.exec(fs.readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'))?.[1];
    const O_APPEND = 0o2000;
    if (flags === undefined || (parseInt(flags, 8) & O_APPEND) === 0) return undefined;
    const file = fs.readlinkSync(`/proc/self/fd/${fd}`);
    return file.startsWith('/') && !file.endsWith(' (deleted)') ? file : undefined;
  } catch {
    return undefined;
  }
}

export class SafeLogOutput extends Writable {
  /** Lines lost since the last successful write. */
  dropped = 0;
  /** Lines lost since the start. */
  droppedTotal = 0;
  /** The error of the last failed write (e.g. ENOSPC). */
  lastError: string | undefined;
  /** A write failed after part of its line was written: the next output starts with a newline. */
  private torn = false;
  private readonly direct: boolean;
  private readonly ops: SyncWriteOps;
  private readonly now: () => Date;

  constructor(
    readonly fd: number,
    private readonly options: SafeLogOutputOptions = {},
  ) {
    super({ decodeStrings: true });
    this.ops = options.ops ?? fs;
    this.now = options.now ?? (() => new Date());
    this.direct = options.direct ?? (options.fallback === undefined || directlyWritable(fd));
    if (this.direct && options.rotate !== undefined) {
      const file = appendedFile(fd);
      if (file !== undefined) this.rotation = { ...options.rotate, file, written: 0 };
    }
    // Never emitted by _write; listened to anyway so nothing can make it fatal.
    this.on('error', () => undefined);
  }

  private rotation: { maxBytes: number; keep: number; file: string; written: number } | undefined;

  /** Rotates the file when it has grown past its limit (checked once per tenth of the limit written). */
  private maybeRotate(bytes: number): void {
    const r = this.rotation;
    if (r === undefined) return;
    r.written += bytes;
    if (r.written < r.maxBytes / 10) return;
    r.written = 0;
    try {
      if (fs.fstatSync(this.fd).size <= r.maxBytes) return;
      for (let i = r.keep - 1; i >= 1; i--) {
        try {
          fs.renameSync(`${r.file}.${i}`, `${r.file}.${i + 1}`);
        } catch {
          // that generation does not exist yet
        }
      }
      // Copy, then truncate (this process writes synchronously: no line falls between the two).
      fs.copyFileSync(r.file, `${r.file}.1`);
      fs.ftruncateSync(this.fd, 0);
    } catch (err) {
      // A log that cannot rotate still logs; try again after the next tenth.
      this.lastError = errorMessage(err);
    }
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.writeLine(chunk);
    callback();
  }

  private writeLine(line: Buffer): void {
    const notice =
      this.dropped > 0
        ? `${JSON.stringify({
            level: 'warn',
            message: 'log lines dropped: the log output failed',
            dropped: this.dropped,
            error: this.lastError ?? 'unknown',
            timestamp: this.now().toISOString(),
          })}\n`
        : '';
    const data =
      notice.length > 0 || this.torn ? Buffer.concat([Buffer.from(`${this.torn ? '\n' : ''}${notice}`), line]) : line;
    if (this.direct) this.writeDirect(data);
    else this.writeFallback(data);
  }

  private writeDirect(data: Buffer): void {
    let done = 0;
    try {
      while (done < data.length) {
        const n = this.ops.writeSync(this.fd, data, done, data.length - done, null);
        if (n <= 0) throw Object.assign(new Error('ENOSPC: no progress'), { code: 'ENOSPC' });
        done += n;
      }
      this.dropped = 0;
      this.torn = false;
    } catch (err) {
      this.fail(err);
      if (done > 0) this.torn = true;
    }
    if (done > 0 && !this.torn) this.maybeRotate(done);
  }

  private writeFallback(data: Buffer): void {
    const stream = this.options.fallback;
    if (stream === undefined || stream.destroyed === true || stream.writable === false) {
      this.fail(new Error('the output stream is closed'));
      return;
    }
    try {
      stream.write(data, (err?: Error | null) => {
        if (err) this.fail(err);
      });
      this.dropped = 0;
    } catch (err) {
      this.fail(err);
    }
  }

  private fail(err: unknown): void {
    this.dropped += 1;
    this.droppedTotal += 1;
    const code = typeof err === 'object' && err !== null ? (err as { code?: unknown }).code : undefined;
    this.lastError = typeof code === 'string' ? code : errorMessage(err);
  }
}

/** Regular files and character devices other than terminals: written with writeSync. */
function directlyWritable(fd: number): boolean {
  try {
    const st = fs.fstatSync(fd);
    return st.isFile() || st.isBlockDevice() || (st.isCharacterDevice() && !isatty(fd));
  } catch {
    return false;
  }
}

const outputs = new Map<number, SafeLogOutput>();
let guarded = false;

/**
 * Stops errors of process.stdout/stderr (a full disk, a closed pipe) from killing the
 * process, whoever writes to them (console.log, a startup line). Idempotent.
 */
export function guardStdio(): void {
  if (guarded) return;
  guarded = true;
  for (const stream of [process.stdout, process.stderr]) stream.on('error', () => undefined);
}

/**
 * The process's stdout or stderr as a stream for winston's Stream transport that never
 * errors (one per fd, shared by every logger of the process).
 */
export function safeLogStream(which: 'stdout' | 'stderr'): SafeLogOutput {
  guardStdio();
  const fd = which === 'stdout' ? 1 : 2;
  let out = outputs.get(fd);
  if (out === undefined) {
    const rotate = rotationFromEnv();
    out = new SafeLogOutput(fd, {
      fallback: which === 'stdout' ? process.stdout : process.stderr,
      ...(rotate !== undefined ? { rotate } : {}),
    });
    outputs.set(fd, out);
  }
  return out;
}

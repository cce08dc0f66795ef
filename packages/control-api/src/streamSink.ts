/**
 * The agent watch's sink over an HTTP/1.1 response (issue 23, fan-out at 10,000 agents): each line goes out as one
 * HTTP chunk, the same bytes `res.write` would send (`<hex length>\r\n<line>\r\n`), but framed once per shared line
 * and written straight to the socket. A change in every view writes the one Buffer to every watcher: through
 * `res.write` each of those writes corked the socket, queued four pieces (length, CRLF, line, CRLF), uncorked on a
 * later tick and gathered them into a writev — per watcher. Now it is one socket write of one Buffer, built once.
 * The wire format is unchanged (chunked transfer encoding, as any HTTP/1.1 client reads it).
 */
import type { ServerResponse } from 'node:http';
import type { StreamSink } from './routeSpec';

const CRLF = '\r\n';

/** A shared line (one Buffer written to many watchers) → its HTTP chunk, framed once (dropped with the line). */
const framed = new WeakMap<Buffer, Buffer>();

/** `line` as one HTTP chunk: its length in hex, CRLF, the line, CRLF (an empty line is never a chunk: see write). */
export function chunkOf(line: Buffer | string): Buffer | string {
  if (typeof line === 'string') return `${Buffer.byteLength(line).toString(16)}${CRLF}${line}${CRLF}`;
  let chunk = framed.get(line);
  if (chunk === undefined) {
    chunk = Buffer.concat([Buffer.from(`${line.length.toString(16)}${CRLF}`, 'latin1'), line, Buffer.from(CRLF)]);
    framed.set(line, chunk);
  }
  return chunk;
}

/**
 * Whether a chunk may go straight to the socket: the answer is chunked and still open, the socket is this answer's
 * (a pipelined answer waits for its turn with no socket), and nothing of it is held above the socket (its headers
 * and earlier chunks are in the socket's queue, so the order holds). Otherwise `res.write`, as before.
 */
function direct(res: ServerResponse): boolean {
  const socket = res.socket;
  return (
    socket !== null &&
    res.chunkedEncoding &&
    res.headersSent &&
    !res.writableEnded &&
    !socket.destroyed &&
    res.writableLength === socket.writableLength
  );
}

/** The sink of a streamed answer whose status and headers were flushed (res.flushHeaders()). */
export function responseSink(res: ServerResponse, signal: AbortSignal): StreamSink {
  return {
    write: (line) => {
      // An empty chunk would end the answer: never framed (res.write skips it, as before).
      if (line.length > 0 && direct(res)) return (res.socket as NonNullable<typeof res.socket>).write(chunkOf(line));
      return res.write(line);
    },
    drained: () =>
      new Promise<void>((resolve) => {
        // Full above the socket (res.write said so) or in it (a direct write did).
        const over = res.writableNeedDrain ? res : res.socket?.writableNeedDrain === true ? res.socket : undefined;
        if (over === undefined || signal.aborted) return resolve();
        const done = (): void => {
          over.off('drain', done);
          over.off('close', done);
          signal.removeEventListener('abort', done);
          resolve();
        };
        over.on('drain', done);
        over.on('close', done);
        signal.addEventListener('abort', done);
      }),
    end: () => void res.end(),
    signal,
  };
}

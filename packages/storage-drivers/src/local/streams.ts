import type { Readable } from 'node:stream';
import { errorMessage } from '@flocker/runtime';
import { releaserOf } from './bufferPool';
import { LocalStorageError } from './engine';
import type { StreamProcess } from './processes';

/**
 * Feeds the stream to the process and waits for it. An input that fails (a dropped connection,
 * a stream found corrupt) kills the process, so it never sees an end it could take for complete.
 *
 * What arrives in one turn of the event loop (a TLS socket gives 16-KiB records) is written in
 * one corked batch (one writev), not a syscall and a wake-up of the receiving program per piece;
 * backpressure pauses the input until the program's stdin drains. Pooled chunks (the transfer's
 * coalesced 1-MiB buffers) are released once their write to stdin completed.
 */
export async function pipeInto(input: Readable, p: StreamProcess): Promise<void> {
  let inputError: unknown;
  const { stdin } = p;
  const release = releaserOf(input);
  let batch: Buffer[] = [];
  let flushing: NodeJS.Immediate | null = null;
  let waitingForDrain = false;
  const flush = (): void => {
    flushing = null;
    if (batch.length === 0 || stdin.destroyed) return;
    stdin.cork();
    let ok = true;
    for (const piece of batch)
      ok = release !== undefined ? stdin.write(piece, () => release(piece)) : stdin.write(piece);
    batch = [];
    stdin.uncork();
    if (!ok && !waitingForDrain) {
      waitingForDrain = true;
      input.pause();
      stdin.once('drain', () => {
        waitingForDrain = false;
        if (inputError === undefined) input.resume();
      });
    }
  };
  const onData = (piece: Buffer): void => {
    batch.push(piece);
    flushing ??= setImmediate(flush);
  };
  const onEnd = (): void => {
    if (flushing !== null) clearImmediate(flushing);
    flush();
    stdin.end();
  };
  const onError = (e: unknown): void => {
    inputError ??= e;
    if (flushing !== null) clearImmediate(flushing);
    batch = [];
    input.off('data', onData);
    input.off('end', onEnd);
    p.kill();
  };
  input.once('error', onError);
  input.once('end', onEnd);
  input.on('data', onData);
  try {
    await p.done;
  } catch (e) {
    throw inputError !== undefined
      ? new LocalStorageError('TRANSFER_FAILED', `the stream failed: ${errorMessage(inputError)}`)
      : e;
  } finally {
    input.off('error', onError);
    input.off('data', onData);
    input.off('end', onEnd);
    if (flushing !== null) clearImmediate(flushing);
  }
  if (inputError !== undefined)
    throw new LocalStorageError('TRANSFER_FAILED', `the stream failed: ${errorMessage(inputError)}`);
}

import type { Readable } from 'node:stream';
import { errorMessage } from '@flocker/runtime';
import { LocalStorageError } from './engine';
import type { StreamProcess } from './processes';

/**
 * Feeds the stream to the process and waits for it. An input that fails (a dropped connection,
 * a stream found corrupt) kills the process, so it never sees an end it could take for complete.
 */
export async function pipeInto(input: Readable, p: StreamProcess): Promise<void> {
  let inputError: unknown;
  const onError = (e: unknown): void => {
    inputError ??= e;
    input.unpipe(p.stdin);
    p.kill();
  };
  input.once('error', onError);
  input.pipe(p.stdin);
  try {
    await p.done;
  } catch (e) {
    throw inputError !== undefined
      ? new LocalStorageError('TRANSFER_FAILED', `the stream failed: ${errorMessage(inputError)}`)
      : e;
  } finally {
    input.off('error', onError);
  }
  if (inputError !== undefined)
    throw new LocalStorageError('TRANSFER_FAILED', `the stream failed: ${errorMessage(inputError)}`);
}

/**
 * Runs operations one at a time, in call order; a failed one does not stop the next. The engines
 * use it for mounts and unmounts: the agent's loop and its transfer listener (promote with mount)
 * may mount the same dataset at once, and two checks-then-mounts would both mount.
 */
export class OneAtATime {
  private tail: Promise<void> = Promise.resolve();

  run<T>(op: () => Promise<T>): Promise<T> {
    const result = this.tail.then(op, op);
    this.tail = result.then(
      () => undefined,
      () => undefined,
    );
    return result;
  }
}

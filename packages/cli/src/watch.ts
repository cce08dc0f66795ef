/**
 * `--watch` on list commands (issue 21, as `kubectl get -w`): print the list, then again whenever
 * it changes — a table after a blank line, or with --json one line per change. Pure but for the
 * output function it is given.
 */

/** Prints a list only when it differs from the last one printed. */
export class WatchPrinter<T> {
  private last: string | undefined;

  /**
   * `jsonLines`: each change is the rows as one JSON line (else the rendered text).
   * `key`: what counts as a change (default: the rows; e.g. leave out a node's last_seen, which moves at every report).
   */
  constructor(
    private readonly out: (text: string) => void,
    private readonly jsonLines: boolean,
    private readonly key: (rows: readonly T[]) => unknown = (rows) => rows,
  ) {}

  /** Prints `rows` (rendered by `render`) if they changed; returns whether it printed. */
  show(rows: readonly T[], render: (rows: readonly T[]) => string): boolean {
    const key = JSON.stringify(this.key(rows));
    if (key === this.last) return false;
    const first = this.last === undefined;
    this.last = key;
    this.out(this.jsonLines ? JSON.stringify(rows) : first ? render(rows) : `\n${render(rows)}`);
    return true;
  }
}

/**
 * Runs `work` for the newest input, one run at a time: inputs that arrive during a run are
 * coalesced into one more run with the latest (a list that needs API calls never falls behind).
 */
export class Coalescer<S> {
  private running: Promise<void> | undefined;
  private pending: { readonly value: S } | undefined;

  constructor(
    private readonly work: (value: S) => Promise<void>,
    private readonly onError: (e: unknown) => void = () => undefined,
  ) {}

  push(value: S): void {
    this.pending = { value };
    this.running ??= this.drain();
  }

  /** Resolves once every pushed value has been worked on (or superseded). */
  async idle(): Promise<void> {
    while (this.running !== undefined) await this.running;
  }

  private async drain(): Promise<void> {
    try {
      while (this.pending !== undefined) {
        const { value } = this.pending;
        this.pending = undefined;
        try {
          await this.work(value);
        } catch (e) {
          this.onError(e);
        }
      }
    } finally {
      this.running = undefined;
    }
  }
}

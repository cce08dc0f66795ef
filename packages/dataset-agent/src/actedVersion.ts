/**
 * The configuration version a node report carries (NodeReport.configuration_version, session 10): the version the
 * agent had acted on when it built the report. The control service takes a "mounted" in it as current for a dataset
 * moved onto this node only if it is at least the version of that move; so it must never name a version some work
 * still running was not decided on. Workers decide each step on the latest snapshot (DatasetWorker.converge), so the
 * version the agent has acted on is the latest it received, or, while a worker that started before it runs, the
 * oldest such worker's start version (a step decided on an older configuration, e.g. an unmount for a move away
 * the configuration has since undone, may still be under way).
 */
export class ActedVersion {
  private readonly running = new Map<symbol, number | undefined>();
  /** The version the last report built carried (see reported()). */
  private lastReported: number | undefined;

  /**
   * @param latest the version of the latest configuration received (undefined: none, or a tag of another form)
   * @param rose the version acted on rose past the last report's (a worker that started before the latest ended):
   *   the report that says so should go out (the worker's own last report was built while it still ran)
   */
  constructor(
    private readonly latest: () => number | undefined,
    private readonly rose: () => void,
  ) {}

  /**
   * Runs `work` (a dataset's worker) as work decided on the configuration received by now, or on `decidedOn`'s
   * version when it was decided on an earlier one (LocalAgent: a move out a turn decided on the snapshot it began
   * with; a newer one may have arrived during the turn's listings).
   */
  async track<T>(work: () => Promise<T>, decidedOn?: { readonly version: number | undefined }): Promise<T> {
    const token = Symbol('worker');
    this.running.set(token, decidedOn !== undefined ? decidedOn.version : this.latest());
    try {
      return await work();
    } finally {
      this.running.delete(token);
      const now = this.current();
      if (now !== undefined && (this.lastReported === undefined || now > this.lastReported)) this.rose();
    }
  }

  /** The version acted on now; undefined while any running work (or the latest configuration) has none. */
  current(): number | undefined {
    let min = this.latest();
    if (min === undefined) return undefined;
    for (const v of this.running.values()) {
      if (v === undefined) return undefined;
      if (v < min) min = v;
    }
    return min;
  }

  /**
   * A configuration was adopted: with no work running (none was needed, or none started yet) a version above the
   * last report's is said at once (rose) — a dataset moved back onto this node while still mounted here needs no work,
   * and its wait needs that report. While work runs, its end says it (track).
   */
  adopted(): void {
    if (this.running.size > 0) return;
    const now = this.current();
    if (now !== undefined && (this.lastReported === undefined || now > this.lastReported)) this.rose();
  }

  /** The report's field, noting the version as reported: `{ configuration_version }`, or nothing when unknown. */
  reported(): { configuration_version?: number } {
    const v = this.current();
    this.lastReported = v;
    return v === undefined ? {} : { configuration_version: v };
  }
}

/**
 * Writing a pool's dirty data out while a receive runs, through one helper process per receive: a
 * shell that runs `btrfs filesystem sync <pool>` each time it reads a line and answers a line when
 * done. The receiving Node process then forks once per receive, not once per write-out — a fork of
 * it copies its page tables (large, with the transfer's pooled buffers), measurable CPU on a busy host.
 */
import type { SpawnFn, StreamProcess } from './processes';

/** `$0` is the pool (the argument after the script). The sync's own failure only leaves the data for later. */
export const WRITE_OUT_SCRIPT = 'while read -r _; do btrfs filesystem sync "$0" >/dev/null 2>&1; echo; done';

export class WriteOutHelper {
  private readonly p: StreamProcess;
  private since = 0;
  private busy = false;
  private ended = false;

  /** Starts the helper; a write-out is asked for every `every` received bytes, one at a time (0: only at finish). */
  constructor(
    spawn: SpawnFn,
    pool: string,
    private readonly every: number,
  ) {
    this.p = spawn('sh', ['-c', WRITE_OUT_SCRIPT, pool]);
    // It failing (no sh, killed) only leaves the write-out to the settle or the next receive.
    this.p.done.catch(() => undefined);
    this.p.stdout.on('data', () => (this.busy = false));
    this.p.stdout.on('error', () => undefined);
    this.p.stdin.on('error', () => undefined);
  }

  /** Counts received bytes; asks for a write-out once `every` came since the last one and none runs. */
  received(bytes: number): void {
    this.since += bytes;
    if (this.ended || this.busy || this.every <= 0 || this.since < this.every) return;
    this.since = 0;
    this.busy = true;
    this.p.stdin.write('\n');
  }

  /** The receive completed: one more write-out of the rest (after any running one), then the helper exits. Not awaited. */
  finish(): void {
    if (this.ended) return;
    this.ended = true;
    this.p.stdin.end('\n');
  }

  /** The receive failed: the helper exits after any running write-out. */
  stop(): void {
    if (this.ended) return;
    this.ended = true;
    this.p.stdin.end();
  }
}

/**
 * The spare-volume pool (issue 23): keeps `perClass` pre-made, pre-formatted, never-written
 * volumes of each size class in the backend (the loopback driver's spares, see
 * loopbackSpares.ts), so that a new dataset's volume is claimed instead of made and its
 * create + attach + format leave the critical path of a `docker run`.
 *
 * Refills run at a lower priority than every real operation: only once the agent's work queue
 * has been idle for settleMs (mayRefill, checked again before each spare), one spare at a time,
 * but no later than maxDeferMs after the refill was first wanted (refillDelay: commands that keep
 * coming push it back only so far, then it runs at the queue's next idle moment);
 * a dataset that arrives meanwhile is worked on at once (its claim takes the pool lock, which a
 * make does not hold). The settling keeps a make's disk writes (mkfs, then its fsync) off the
 * steps that usually follow a new volume at once: the container's start, a `docker volume rm`
 * whose DELETE commit on the same disk would wait for the make's blocks (ext4 data=ordered).
 * A failed make waits RETRY_MS before the next try. A claim that fails for any reason but
 * DATASET_HAS_VOLUME falls back to the ordinary create.
 */
import { isStorageError, type SpareCapable } from '@flocker/storage-drivers';
import type winston from 'winston';
import type { Clock, TimerHandle } from './clock';
import { errorCode, errorMessage } from './errors';
import { mayRefill, nextSpareSize, noteSize, refillDelay, startingClasses } from './spareDecisions';

/** What a claim answers: the volume, with its device when the claim attached it here. */
export type ClaimedSpare = NonNullable<Awaited<ReturnType<SpareCapable['claimSpare']>>>;

const RETRY_MS = 5_000;
/** How long the work queue stays idle before a refill starts (default). */
export const SETTLE_MS = 1_000;
/** At most this long from the first kick a refill is pushed back by more idle moments (default). */
export const MAX_DEFER_MS = 5_000;
/** Size classes learned from what datasets asked for, besides the pinned ones. */
const LEARNED_CLASSES = 2;

export interface SparePoolOptions {
  readonly driver: SpareCapable;
  readonly perClass: number;
  /** Size classes always kept (bytes, rounded to the allocation unit): the agent's default size, agent.yml dataset.spare_sizes. */
  readonly pinned: readonly number[];
  readonly logger: winston.Logger;
  /** Whether the agent's work queue is idle (no dataset waiting or being worked on). */
  readonly queueIdle: () => boolean;
  readonly clock: Clock;
  /** How long the queue stays idle before a refill starts; default SETTLE_MS. */
  readonly settleMs?: number;
  /** How long at most kicks push a wanted refill back; default MAX_DEFER_MS. */
  readonly maxDeferMs?: number;
}

export class SparePool {
  private classes: number[];
  private running: Promise<void> | undefined;
  private stopped = false;
  private timer: TimerHandle | undefined;
  /** After a failed make: no refill before this (clock ms). */
  private notBefore = 0;
  /** When the refill due now was first wanted (the first kick since the last one started; clock ms). */
  private wantedSince: number | undefined;
  /** Spares made by this process (a figure for logs and tests). */
  made = 0;

  constructor(private readonly o: SparePoolOptions) {
    this.classes = [...o.pinned];
  }

  /** The size classes kept now (pinned first). */
  get sizeClasses(): readonly number[] {
    return this.classes;
  }

  /**
   * After a crash: tidy what an interrupted make left, bind a device again to the spares that lost theirs
   * (`./dev down`, a reboot: claims stay pre-attached), learn the classes of the spares left, then fill.
   */
  start(): void {
    this.running = (async () => {
      try {
        await this.o.driver.tidySpares();
        await this.bind();
        this.classes = startingClasses(this.o.pinned, await this.o.driver.listSpares(), LEARNED_CLASSES);
      } catch (e) {
        this.o.logger.warn('cannot tidy the spare volumes', { code: errorCode(e), error: errorMessage(e) });
      }
    })().finally(() => {
      this.running = undefined;
      this.kick();
    });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.timer?.cancel();
    await this.running;
  }

  /**
   * A chance to refill, and a sign of activity on the node: the agent calls it when its queue goes idle, and when a
   * lease here is taken or let go (leasesHereChanged: a container starting or stopping, with Docker's own disk work,
   * while the agent's queue is idle). settleMs from now (a refill
   * due is pushed back: the queue must stay idle that long) but not later than maxDeferMs after the
   * first kick it waits on, and not before RETRY_MS after a failed make (refillDelay). A refill
   * running goes on.
   */
  kick(): void {
    if (this.running !== undefined || this.stopped) return;
    this.timer?.cancel();
    this.timer = undefined;
    const now = this.o.clock.now();
    this.wantedSince ??= now;
    this.schedule(
      refillDelay({
        now,
        wantedSince: this.wantedSince,
        settleMs: this.o.settleMs ?? SETTLE_MS,
        maxDeferMs: this.o.maxDeferMs ?? MAX_DEFER_MS,
        notBefore: this.notBefore,
      }),
    );
  }

  private schedule(ms: number): void {
    if (this.running !== undefined || this.timer !== undefined || this.stopped) return;
    this.timer = this.o.clock.setTimer(() => {
      this.timer = undefined;
      if (this.running !== undefined || !this.idle()) return; // the next idle queue kicks again
      this.wantedSince = undefined;
      this.running = this.refill().then((failed) => {
        this.running = undefined;
        if (!failed) return;
        this.notBefore = this.o.clock.now() + RETRY_MS;
        this.schedule(RETRY_MS);
      });
    }, ms);
  }

  /**
   * The dataset's volume from a spare of exactly `size` bytes, attached to this instance on the spare's own
   * loop device (devicePath; see loopbackSpares.ts), or unattached when that attach failed; undefined when
   * there is none.
   */
  async claim(
    datasetId: string,
    size: number,
    options: { profile?: string; onlyVolume?: boolean },
  ): Promise<ClaimedSpare | undefined> {
    this.classes = noteSize(this.classes, this.o.pinned, size, LEARNED_CLASSES);
    try {
      return await this.o.driver.claimSpare(datasetId, size, { ...options, attach: true });
    } catch (e) {
      if (isStorageError(e, 'DATASET_HAS_VOLUME')) throw e;
      this.o.logger.warn('cannot claim a spare volume; creating one', {
        datasetId,
        code: errorCode(e),
        error: errorMessage(e),
      });
      return undefined;
    }
  }

  private idle(): boolean {
    return mayRefill({ queueIdle: this.o.queueIdle(), stopping: this.stopped });
  }

  /** Spares whose loop device was let go get one again (see loopbackSpares.ts); a failure is only logged. */
  private async bind(): Promise<void> {
    try {
      await this.o.driver.bindSpares?.();
    } catch (e) {
      this.o.logger.warn('cannot bind loop devices to the spare volumes', {
        code: errorCode(e),
        error: errorMessage(e),
      });
    }
  }

  /**
   * Binds devices to spares that lost theirs (an operator's `losetup -D` while the agent runs), then makes spares
   * while idle and short of the targets; true when a make failed (tried again after RETRY_MS).
   */
  private async refill(): Promise<boolean> {
    await this.bind();
    while (this.idle()) {
      let size: number | undefined;
      try {
        size = nextSpareSize(await this.o.driver.listSpares(), this.classes, this.o.perClass);
        if (size === undefined || !this.idle()) return false;
        const t0 = performance.now();
        const spare = await this.o.driver.makeSpare(size);
        this.made++;
        this.o.logger.debug('spare volume made', {
          spareId: spare.id,
          size: spare.size,
          durationMs: Math.round((performance.now() - t0) * 1000) / 1000,
        });
      } catch (e) {
        this.o.logger.warn('cannot make a spare volume; trying again later', {
          size,
          code: errorCode(e),
          error: errorMessage(e),
        });
        return true;
      }
    }
    return false;
  }
}

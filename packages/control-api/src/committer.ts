/**
 * Writes of the configuration: applied in arrival order onto the latest (pending)
 * configuration, group-committed to the store, and re-applied (rebased) onto a
 * configuration another replica committed first.
 */
import type { Logger } from 'winston';
import { type Applied, type Configuration, configurationTag } from './configuration';
import { type ConfigurationStore, nextTurn } from './ConfigurationStore';
import { StoreConflict } from './etcd/conflict';
import { ConfigurationError, StoreError } from './errors';
import { currentMark, stalledError, type WriteMark } from './stallGuard';

interface CommitWaiter {
  resolve: () => void;
  reject: (err: unknown) => void;
  /**
   * Re-applies the waiter's change onto a configuration another replica committed
   * first; 'conflict' when the request was conditional (If-Configuration-Matches),
   * undefined when there is nothing to re-apply.
   */
  rebase?: ((config: Configuration, now: number) => Configuration) | 'conflict';
  /** The stall guard's mark of the request the write comes from (stallGuard.ts): not re-applied after a stall. */
  mark?: WriteMark;
  /** When the write was applied (performance.now()): the commit's timeline at debug level. */
  at: number;
}

export interface CommitterOptions {
  store: ConfigurationStore;
  logger: Logger;
  now: () => number;
  initial: Configuration;
  /** The committed configuration changed (our commit, or another replica's adopted). */
  onChange: () => void;
  /**
   * A write changed the latest (pending) configuration; called once its commit is queued, before that commit starts
   * (the next turn): a write made now from a microtask shares it (the lease hand-over's grant joins the release).
   */
  onApplied?: (latest: Configuration) => void;
}

export class Committer {
  private committed: Configuration;
  /** Latest applied value; equals `committed` unless a commit is pending. */
  private pending: Configuration;
  private waiters: CommitWaiter[] = [];
  private flushing = false;
  /** Newest configuration another replica committed while our own commit was in flight. */
  private external: Configuration | undefined;
  private closed = false;

  constructor(private readonly options: CommitterOptions) {
    this.committed = options.initial;
    this.pending = options.initial;
  }

  /** The durable configuration. */
  get configuration(): Configuration {
    return this.committed;
  }

  /** The configuration including applied but not yet durable writes: what the next mutate() will see. */
  get latestConfiguration(): Configuration {
    return this.pending;
  }

  /**
   * Applies `change` to the latest configuration and resolves once the result is
   * durable. Changes apply in arrival order; all that arrive while the store is busy
   * share the next commit (group commit).
   */
  async mutate<T>(change: (config: Configuration, now: number) => Applied<T>, ifMatches?: string): Promise<Applied<T>> {
    if (this.closed) throw new ConfigurationError('SHUTTING_DOWN', 'The control service is shutting down.');
    // A request read before a stall of this replica is never applied after it: its client may have moved on to another
    // replica and gone on there (review S26B B1; the guard refuses those read right after one).
    const mark = currentMark();
    const stalledMs = mark?.guard.stalledSince(mark);
    if (stalledMs !== undefined) throw stalledError(stalledMs, 'after the request was read, before it was applied');
    if (ifMatches !== undefined && ifMatches !== configurationTag(this.pending)) {
      throw new ConfigurationError(
        'CONFIGURATION_CHANGED',
        `The configuration changed since tag ${ifMatches} (now ${configurationTag(this.pending)}); read it again and retry.`,
      );
    }
    const before = this.pending;
    let applied = change(before, this.options.now());
    this.pending = applied.config;
    // Even an answer that changed nothing depends on pending writes, so it waits for them too.
    const done = this.durable(
      ifMatches !== undefined
        ? 'conflict'
        : (config, now) => {
            applied = change(config, now);
            return applied.config;
          },
      mark,
    );
    if (this.pending !== before) this.options.onApplied?.(this.pending);
    await done;
    return applied;
  }

  /**
   * A configuration another replica committed (shared stores). Replaces ours when newer;
   * writes not yet committed here are re-applied onto it.
   */
  externalConfiguration(config: Configuration): void {
    if (this.closed || config.version <= this.committed.version) return;
    if (this.flushing) {
      // Our commit in flight either wins (and this is older news) or conflicts and adopts this.
      if (this.external === undefined || config.version > this.external.version) this.external = config;
      return;
    }
    this.adopt(config);
    if (this.waiters.length > 0) void this.flush();
  }

  /** Refuses further writes and waits for a pending commit. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.pending !== this.committed) await this.durable().catch(() => undefined);
  }

  private durable(rebase?: CommitWaiter['rebase'], mark?: WriteMark): Promise<void> {
    if (this.pending === this.committed) return Promise.resolve();
    const done = new Promise<void>((resolve, reject) =>
      this.waiters.push({
        resolve,
        reject,
        at: performance.now(),
        ...(rebase !== undefined ? { rebase } : {}),
        ...(mark !== undefined ? { mark } : {}),
      }),
    );
    void this.flush();
    return done;
  }

  private async flush(): Promise<void> {
    if (this.flushing) return;
    this.flushing = true;
    try {
      // Let requests already parsed in this turn of the event loop join the batch.
      await nextTurn();
      while (this.pending !== this.committed) {
        const target = this.pending;
        const waiters = this.waiters;
        this.waiters = [];
        const sent = performance.now();
        try {
          await this.options.store.commit(target, this.committed);
        } catch (err) {
          if (err instanceof StoreConflict) {
            // Another replica won the compare-and-swap: re-apply our writes on its configuration.
            this.waiters = waiters.concat(this.waiters);
            this.adopt(
              this.external !== undefined && this.external.version > err.current.version ? this.external : err.current,
            );
            continue;
          }
          // Writes queued behind the failed one were built upon it: fail them all.
          const all = waiters.concat(this.waiters);
          this.waiters = [];
          this.pending = this.committed;
          this.options.logger.error('configuration commit failed', { error: String(err), waiting: all.length });
          // A store that could not be reached or written already says what failed and what to do; so does one whose
          // write may still apply (STORE_OUTCOME_UNKNOWN: never reworded into "could not be saved").
          // Any other error may come after the write reached the store (STORE_CORRUPT: an answer it could not read;
          // an error it did not classify): outcome unknown, since clients re-send a write answered STORE_UNAVAILABLE
          // ("nothing written") to another replica (review FR19-1). Only STORE_BASE_UNKNOWN is raised before sending.
          const failure =
            err instanceof StoreError && (err.unavailable || err.code === 'STORE_OUTCOME_UNKNOWN')
              ? err
              : err instanceof StoreError && err.code === 'STORE_BASE_UNKNOWN'
                ? new StoreError('STORE_UNAVAILABLE', `The configuration could not be saved: ${String(err)}`)
                : new StoreError(
                    'STORE_OUTCOME_UNKNOWN',
                    `The configuration store failed unexpectedly (${String(err)}): the write may or may not have been saved; read it back before retrying.`,
                  );
          for (const w of all) w.reject(failure);
          continue;
        }
        this.committed = target;
        const answered = performance.now();
        for (const w of waiters) w.resolve();
        if (this.pending === target) {
          // Writes that changed nothing, applied during this commit: they waited only for it.
          for (const w of this.waiters) w.resolve();
          this.waiters = [];
        }
        this.options.onChange();
        if (this.options.logger.isDebugEnabled()) this.logTimeline(target, waiters, sent, answered);
        if (this.external !== undefined && this.external.version > this.committed.version) this.adopt(this.external);
      }
    } finally {
      this.flushing = false;
      this.external = undefined;
    }
  }

  /**
   * Debug: where a commit's time went, for the writes it answered (issue 23: a slow create on etcd is told apart as
   * waiting for the group commit, the store's own work and answer, or what runs before the answer is written). The
   * writers' continuations run after onChange (the resolves queue microtasks): notify_ms is before their answers too.
   */
  private logTimeline(target: Configuration, waiters: readonly CommitWaiter[], sent: number, answered: number): void {
    const now = performance.now();
    const ms = (x: number): number => Math.round(x * 100) / 100;
    const first = waiters.reduce((t, w) => Math.min(t, w.at), sent);
    this.options.logger.debug('configuration commit', {
      version: target.version,
      writes: waiters.length,
      // From the first write applied to the commit sent: the group commit's turn, or a commit before it in flight.
      queued_ms: ms(sent - first),
      store_ms: ms(answered - sent),
      notify_ms: ms(now - answered),
      ...this.options.store.lastCommitTimeline?.(),
    });
  }

  /** Makes `fresh` the committed configuration and rebuilds the pending one on it. */
  private adopt(fresh: Configuration): void {
    this.committed = fresh;
    const waiters = this.waiters;
    this.waiters = [];
    let config = fresh;
    for (const w of waiters) {
      if (w.rebase === 'conflict') {
        w.reject(
          new ConfigurationError(
            'CONFIGURATION_CHANGED',
            `The configuration changed through another control replica (now ${configurationTag(fresh)}); read it again and retry.`,
          ),
        );
        continue;
      }
      // Lost to another replica's commit after a stall here: what happened meanwhile may be this request's client
      // going on without it (its failover bound passed), so it is not re-applied on top (review S26B B1).
      const stalledMs = w.mark?.guard.stalledSince(w.mark);
      if (stalledMs !== undefined) {
        w.reject(
          stalledError(stalledMs, 'while its change was being saved, and another replica changed the configuration'),
        );
        continue;
      }
      if (w.rebase !== undefined) {
        try {
          config = w.rebase(config, this.options.now());
        } catch (err) {
          w.reject(err);
          continue;
        }
      }
      this.waiters.push(w);
    }
    this.pending = config;
    if (config === fresh) {
      // Nothing left to write (re-applied changes were no-ops on the newer configuration).
      for (const w of this.waiters) w.resolve();
      this.waiters = [];
    }
    this.options.onChange();
  }
}

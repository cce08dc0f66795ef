/** The failed actions per dataset: backoff before the next try, and the errors the node reports. */
import type { ActionError } from '@flocker/api';
import type winston from 'winston';
import { backoffDelay, type Clock } from './clock';
import type { Action } from './LocalState';

interface Failure {
  readonly action: Action;
  readonly attempts: number;
  readonly since: string;
  readonly code: string;
  readonly message: string;
  readonly retryAt: number;
}

export class FailureLog {
  private readonly failures = new Map<string, Failure>();

  constructor(
    private readonly o: {
      readonly clock: Clock;
      readonly logger: winston.Logger;
      readonly backoffInitialMs: number;
      readonly backoffMaxMs: number;
    },
  ) {}

  /**
   * Records a failure; the same kind again counts as another attempt (longer backoff). `volume`:
   * the dataset's name, for the log (operators know volumes by name, not UUID).
   */
  record(action: Action, code: string, message: string, started: number, volume?: string): void {
    const now = this.o.clock.now();
    const prev = this.failures.get(action.datasetId);
    const attempts = (prev && prev.action.kind === action.kind ? prev.attempts : 0) + 1;
    const delay = backoffDelay(attempts, this.o.backoffInitialMs, this.o.backoffMaxMs);
    this.failures.set(action.datasetId, {
      action,
      attempts,
      since: prev?.since ?? new Date(this.o.clock.wallNow()).toISOString(),
      code,
      message,
      retryAt: now + delay,
    });
    this.o.logger.warn('action failed', {
      ...(volume !== undefined ? { volume } : {}),
      ...action,
      durationMs: now - started,
      attempts,
      retryInMs: delay,
      code,
      error: message,
    });
  }

  clear(datasetId: string): void {
    this.failures.delete(datasetId);
  }

  /** When the dataset may be tried again (0: now). */
  retryAt(datasetId: string): number {
    return this.failures.get(datasetId)?.retryAt ?? 0;
  }

  /** Forgets the failures of datasets that need nothing any more (unless a worker is on them). */
  prune(wanted: ReadonlySet<string>, isRunning: (datasetId: string) => boolean): void {
    for (const id of this.failures.keys()) if (!wanted.has(id) && !isRunning(id)) this.failures.delete(id);
  }

  reportErrors(): ActionError[] {
    return [...this.failures.entries()].map(([datasetId, f]) => ({
      dataset_id: datasetId,
      action: f.action.kind,
      code: f.code,
      message: f.message,
      attempts: f.attempts,
      since: f.since,
    }));
  }
}

/**
 * Sends this node's report to the control service: one request at a time, an
 * unchanged report at most once per resync interval (unless a heartbeat asks),
 * intermediate states debounced.
 */
import { ReportResponse, type NodeReport } from '@flocker/api';
import type winston from 'winston';
import type { z } from 'zod';
import type { Clock, TimerHandle } from './clock';
import { errorCode, errorMessage } from './errors';

export type ReportAnswer = z.infer<typeof ReportResponse>;

export interface ReporterOptions {
  readonly clock: Clock;
  readonly logger: winston.Logger;
  readonly send: (report: NodeReport) => Promise<unknown>;
  /** Builds the report from what the agent knows now (called when a request goes out). */
  readonly build: () => NodeReport;
  readonly resyncIntervalMs: number;
  /** How long the report of an intermediate state may wait (see DatasetAgentOptions.progressReportMs). */
  readonly progressReportMs: number;
  /** The control service accepted a report sent at `sentAt` and answered this. */
  readonly answered: (answer: ReportAnswer, sentAt: number) => void;
}

export class Reporter {
  private lastReport = '';
  private lastReportAt = 0;
  private wanted = false;
  private heartbeatWanted = false;
  private sending: Promise<void> | null = null;
  private progressTimer: TimerHandle | null = null;
  private stopped = false;

  constructor(private readonly o: ReporterOptions) {}

  /**
   * Report debouncing: a report of an intermediate state goes out within
   * progressReportMs, or with the next immediate one. Invariant it relies on: every
   * end of a dataset's work (converged, failed, waiting, not allowed) asks for an
   * immediate report(), so no final state waits on this timer; only the states in
   * between, which nobody waits for, may be merged away. One exception
   * (DatasetWorker.endReport): an end whose holdings here were already sent at once
   * after its last step goes out as progress; what it adds is other nodes' to report.
   */
  requestProgress(): void {
    if (this.progressTimer !== null || this.stopped) return;
    this.progressTimer = this.o.clock.setTimer(() => {
      this.progressTimer = null;
      this.request();
    }, this.o.progressReportMs);
  }

  /** Sends the report now (after the one in flight, if any); it replaces a pending progress report. */
  request(): void {
    if (this.progressTimer !== null) {
      this.progressTimer.cancel();
      this.progressTimer = null;
    }
    this.wanted = true;
    if (this.sending !== null) return;
    this.sending = (async () => {
      while (this.wanted) {
        this.wanted = false;
        await this.send();
      }
    })().finally(() => {
      this.sending = null;
    });
  }

  /** A report that goes out even if unchanged: it confirms contact (self-fencing's heartbeat). */
  heartbeat(): void {
    this.heartbeatWanted = true;
    this.request();
  }

  /** No more progress timers; the pending one is dropped (requested reports still go out). */
  stop(): void {
    this.stopped = true;
    this.progressTimer?.cancel();
    this.progressTimer = null;
  }

  /** Resolves when the report in flight (if any) is through. */
  settled(): Promise<void> {
    return this.sending ?? Promise.resolve();
  }

  /**
   * Whether a report is the one last accepted, sent less than a resync interval ago:
   * not sent again. Invariant: the control service keeps a node's last report (and
   * re-publishes it itself), so only a heartbeat (contact) needs the same text again.
   */
  private isRepeat(text: string, now: number): boolean {
    return text === this.lastReport && now - this.lastReportAt < this.o.resyncIntervalMs;
  }

  private async send(): Promise<void> {
    const report = this.o.build();
    const text = JSON.stringify(report);
    const now = this.o.clock.now();
    const heartbeat = this.heartbeatWanted;
    this.heartbeatWanted = false;
    if (!heartbeat && this.isRepeat(text, now)) return;
    try {
      this.o.logger.debug('reporting', {
        manifestations: report.manifestations.length,
        // Why it goes out (a trace of a move reads it): the fields that differ from the last report sent.
        ...(this.o.logger.isDebugEnabled() ? { changed: changedFields(this.lastReport, report) } : {}),
      });
      const answer = ReportResponse.safeParse(await this.o.send(report));
      this.o.logger.debug('reported', { durationMs: this.o.clock.now() - now });
      this.lastReport = text;
      this.lastReportAt = now;
      if (answer.success) this.o.answered(answer.data, now);
    } catch (e) {
      this.o.logger.warn('cannot report node state', { code: errorCode(e), error: errorMessage(e) });
    }
  }
}

/** The top-level fields of `report` that differ from the report sent as `lastText` (every field when none was). */
export function changedFields(lastText: string, report: NodeReport): string[] {
  const last = (lastText === '' ? {} : JSON.parse(lastText)) as Record<string, unknown>;
  const now: Record<string, unknown> = { ...report };
  const fields = new Set([...Object.keys(last), ...Object.keys(now)]);
  return [...fields].filter((k) => JSON.stringify(last[k]) !== JSON.stringify(now[k])).sort();
}

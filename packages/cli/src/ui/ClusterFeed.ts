/**
 * Follows the cluster with the control service's long-poll and turns each new
 * snapshot into a view and feed events for every subscribed browser.
 */
import { FlockerApiError, type ClusterSnapshot } from '@flocker/api';
import { errorMessage, followLongPoll } from '@flocker/runtime';
import { clusterView, diffSnapshots, type ControlStatus, type UiEvent, type UiMessage } from '@flocker/web-ui';
import type { UiClient } from './actions';

export interface ClusterFeedOptions {
  controlUrl: string;
  now?: () => Date;
  /** Events kept for browsers that connect later. */
  backlog?: number;
  /** Long-poll wait per request. */
  waitMs?: number;
  /** First retry delay after a failed poll; grows (jittered) up to 10 s. */
  retryMs?: number;
}

export class ClusterFeed {
  private latestSnapshot: ClusterSnapshot | undefined;
  private readonly firstSeen = new Map<string, string>();
  private readonly events: UiEvent[] = [];
  private nextId = 1;
  private control: ControlStatus;
  private readonly subscribers = new Set<(m: UiMessage) => void>();
  private readonly stopping = new AbortController();
  private readonly started: string;
  private readonly now: () => Date;

  constructor(
    private readonly client: UiClient,
    private readonly options: ClusterFeedOptions,
  ) {
    this.now = options.now ?? (() => new Date());
    this.started = this.now().toISOString();
    this.control = { url: options.controlUrl, connected: false, error: null };
  }

  latest(): ClusterSnapshot | undefined {
    return this.latestSnapshot;
  }

  /** What a newly connected browser gets: the view and the backlog. */
  current(): UiMessage {
    return this.message([...this.events]);
  }

  subscribe(fn: (m: UiMessage) => void): () => void {
    this.subscribers.add(fn);
    return () => this.subscribers.delete(fn);
  }

  /** Take in one snapshot (the poll loop calls this; tests call it directly). */
  ingest(next: ClusterSnapshot): void {
    const time = this.now().toISOString();
    const fresh = diffSnapshots(this.latestSnapshot, next).map((e): UiEvent => ({ ...e, id: this.nextId++, time }));
    if (this.latestSnapshot)
      for (const d of next.datasets)
        if (
          !this.firstSeen.has(d.dataset_id) &&
          !this.latestSnapshot.datasets.some((o) => o.dataset_id === d.dataset_id)
        )
          this.firstSeen.set(d.dataset_id, time);
    this.latestSnapshot = next;
    this.events.push(...fresh);
    this.events.splice(0, Math.max(0, this.events.length - (this.options.backlog ?? 200)));
    this.setControl({ url: this.options.controlUrl, connected: true, error: null }, fresh);
  }

  /** A failed poll: browsers learn the control service is out of reach, and why. */
  fail(error: unknown): void {
    const message = error instanceof FlockerApiError ? error.description : errorMessage(error);
    this.setControl({ url: this.options.controlUrl, connected: false, error: message }, []);
  }

  private setControl(control: ControlStatus, fresh: UiEvent[]): void {
    const changed = control.connected !== this.control.connected || control.error !== this.control.error;
    this.control = control;
    if (fresh.length > 0 || changed || control.connected) this.broadcast(this.message(fresh));
  }

  private message(events: UiEvent[]): UiMessage {
    const view = this.latestSnapshot ? clusterView(this.latestSnapshot, this.firstSeen) : null;
    return { view, events, control: this.control, started: this.started };
  }

  private broadcast(m: UiMessage): void {
    for (const fn of this.subscribers) fn(m);
  }

  /** Poll until stop(); never throws. */
  async run(): Promise<void> {
    await followLongPoll({
      wait: (since, timeoutMs) => this.client.waitForCluster(since, timeoutMs),
      waitMs: this.options.waitMs ?? 25_000,
      onSnapshot: (s) => {
        if (s.generation !== this.latestSnapshot?.generation || !this.control.connected) this.ingest(s);
      },
      onError: (e) => this.fail(e),
      backoff: { initialMs: this.options.retryMs ?? 1000, maxMs: 10_000, jitter: true },
      signal: this.stopping.signal,
    });
  }

  stop(): void {
    this.stopping.abort();
  }
}

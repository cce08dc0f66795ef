/**
 * The container agent's level-triggered loop: wait for the cluster to change (the
 * agent channel's long-poll) or a resync timer → read the configured containers →
 * observe Docker → calculateContainerChanges → apply one change at a time → report
 * what runs. Nothing is remembered between turns that Docker or the control
 * service can tell again, except the containers that failed to be created or
 * started (failures.ts): they are reported with Docker's reason and retried with a
 * per-container backoff, not on every turn; and the node's last fence lift seen
 * (withRememberedLift: the node report shows one for an hour only).
 */
import type { ClusterSnapshot, ContainerError, ContainerReport, FlockerClient } from '@flocker/api';
import { containerAgentMetrics, processRegistry, secondsSince } from '@flocker/metrics';
import {
  Backoff,
  type BackoffPolicy,
  type Clock,
  errorMessage,
  followLongPoll,
  sleep,
  systemClock,
} from '@flocker/runtime';
import type { Logger } from 'winston';
import {
  calculateContainerChanges,
  type ContainerChange,
  type ObservedContainer,
  stoppedByFence,
} from './calculateContainerChanges';
import { type DesiredContainer, desiredContainers } from './desiredContainers';
import { type LiftedFence, type NodeFence, nodeFence, withRememberedLift } from './fence';
import { dockerMessage, statusOf, type ContainerRuntime } from './DockerOps';
import {
  classifyDockerError,
  clearFailure,
  DEFAULT_FAILURE_BACKOFF,
  type Failures,
  isDue,
  keepFailures,
  nextRetryIn,
  recordFailure,
} from './failures';

export type AgentClient = Pick<
  FlockerClient,
  'waitForCluster' | 'listContainers' | 'listDatasets' | 'listNodes' | 'reportContainers'
>;

export interface ContainerAgentOptions {
  client: AgentClient;
  runtime: ContainerRuntime;
  nodeUuid: string;
  logger: Logger;
  /** Longest wait between turns when all is well (also the report interval). Default 5 s. */
  resyncMs?: number;
  /** Wait after a failed turn (failed turns in a row back off, jittered, up to 5x). Default 1 s. */
  retryMs?: number;
  /** Retries of a container that failed to be created or started. Default 1 s doubling up to 60 s, jittered. */
  failureBackoff?: BackoffPolicy;
  clock?: Clock;
  /**
   * After a turn that created or started a container, how long to wait before looking at Docker for the report
   * (TD-1): a container that exits at once (a crash loop's first run) is then reported exited or restarting, not
   * running. Default 0 (tests); the agent's main uses 1 s.
   */
  startSettleMs?: number;
}

/**
 * What the agent reports: the Flocker containers Docker has, and those it failed to create
 * (not in Docker, running false); each with its last failure, if any. A container of the desired
 * spec is reported with the configured image as written (flocker-deploy --wait compares it): Docker
 * lists the image's ID instead once the tag has moved to another image.
 */
export function reportOf(
  observed: readonly ObservedContainer[],
  failures: Failures = new Map(),
  desired: readonly DesiredContainer[] = [],
  /** Wall-clock ms, as Docker's container times (review FR-8). */
  now = Date.now(),
  /** The node's fence this turn: its victims are reported as the fence's (stoppedReason). */
  fence: NodeFence = { kind: 'none' },
): ContainerReport {
  const configured = new Map(desired.map((d) => [d.spec.name, d]));
  const containers: ContainerReport['containers'] = observed
    .filter((o) => o.name !== '')
    .map((o) => {
      const want = configured.get(o.name);
      const error = failures.get(o.name)?.error ?? fenceReason(o, fence, want) ?? stoppedReason(o, now);
      const current = want !== undefined && want.hash === o.hash;
      // Which configuration it runs: the desired one when it runs the desired spec (a kept container's label may name
      // an earlier configuration of the same spec), else the one it was created for, if labelled.
      const config = current ? want.config : o.config;
      return {
        name: o.name,
        image: current ? want.spec.image : o.image,
        // Docker's "restarting" is a crash loop's state (exited, waiting for its restart policy's back-off); a crash
        // loop's short runs between are not running either (stoppedReason).
        running: o.state === 'running' && !crashLooping(o, now),
        ...(error !== undefined ? { error } : {}),
        ...(config !== undefined ? { config } : {}),
      };
    });
  for (const [name, f] of failures) {
    if (!containers.some((c) => c.name === name))
      containers.push({ name, image: f.image, running: false, error: f.error });
  }
  return { containers: containers.sort((a, b) => a.name.localeCompare(b.name)) };
}

/** Docker's own measure of a failed run: its restart back-off starts afresh only after a run of 10 s. */
export const CRASH_LOOP_RUN_MS = 10_000;

/** Running again, restarted by Docker's restart policy, for less than CRASH_LOOP_RUN_MS: a crash loop's short run. */
function crashLooping(o: ObservedContainer, now: number): boolean {
  return (
    o.state === 'running' &&
    (o.restartCount ?? 0) > 0 &&
    o.startedAt !== undefined &&
    now - o.startedAt < CRASH_LOOP_RUN_MS
  );
}

/**
 * Why Docker does not run a container (review T8, TD-1), in the report's error (the reason member the schema has: a
 * new code would make clients one release behind refuse the answer): DOCKER_ERROR, the exit code and, for a crash
 * loop (Docker's state restarting, or a short run between), its restart count as attempts, since its creation. None
 * for a container that runs, or that exited with code 0.
 */
export function stoppedReason(o: ObservedContainer, now = Date.now()): ContainerError | undefined {
  const exit = o.exitCode !== undefined ? `exited with code ${o.exitCode}` : 'exited';
  // Exit code 0 is a clean stop (a job done): reported stopped, as before, not failing.
  if (o.state === 'exited' && o.exitCode !== undefined && o.exitCode !== 0)
    return { code: 'DOCKER_ERROR', message: exit, attempts: 1, since: new Date(o.finishedAt ?? now).toISOString() };
  const restarts = o.restartCount ?? 0;
  const loop = { code: 'DOCKER_ERROR' as const, attempts: Math.max(1, restarts) };
  const since = new Date(o.createdAt ?? o.finishedAt ?? now).toISOString();
  if (crashLooping(o, now)) {
    const up = Math.round((now - (o.startedAt ?? now)) / 1000);
    const message = `crash loop: restarted ${restarts} times by Docker (restart policy), up again for ${up} s only`;
    return { ...loop, message, since };
  }
  if (o.state !== 'restarting') return undefined;
  const message = `crash loop: ${exit}, restarted ${restarts} times by Docker (restart policy), restarting again`;
  return { ...loop, message, since };
}

/**
 * A message beginning "exited" means an exit of its own (flocker-deploy --wait: with restart policy never, it will not
 * run again). So a container the node's fence stopped is said otherwise while fenced (review FR-3), when the agent will
 * start it again once the fence is lifted (killedByFence: configured here, its volume still here). Once lifted, the
 * turn has started it again, or it stays stopped and its exit is what it says.
 */
function fenceReason(
  o: ObservedContainer,
  fence: NodeFence,
  want: DesiredContainer | undefined,
): ContainerError | undefined {
  if (fence.kind !== 'fenced' || fence.since === undefined || want?.volumeHere !== true || !stoppedByFence(o, fence))
    return undefined;
  const code = o.exitCode !== undefined ? ` (exit code ${o.exitCode})` : '';
  const message = `stopped by this node's fence${code}: started again once the fence is lifted`;
  return { code: 'DOCKER_ERROR', message, attempts: 1, since: new Date(fence.since).toISOString() };
}

function describe(change: ContainerChange): Record<string, unknown> {
  switch (change.kind) {
    case 'create':
      return {
        action: 'create',
        container: change.spec.name,
        image: change.spec.image,
        volume: change.spec.volume?.name,
      };
    case 'start':
      return {
        action: 'start',
        container: change.name,
        ...(change.reason !== undefined ? { reason: change.reason } : {}),
      };
    case 'remove':
      return { action: 'remove', container: change.name, reason: change.reason };
  }
}

export class ContainerAgent {
  private readonly stopping = new AbortController();
  private lastReport = '';
  private readonly metrics = containerAgentMetrics(processRegistry('container-agent'));
  private failures: Failures = new Map();
  /** Failed removes in a row (not per container: a remove is of a container nobody wants). */
  private readonly removeBackoff: Backoff;
  private removeRetryMs: number | undefined;

  constructor(private readonly opts: ContainerAgentOptions) {
    const retryMs = opts.retryMs ?? 1_000;
    this.removeBackoff = new Backoff({ initialMs: retryMs, maxMs: 60 * retryMs, jitter: true });
  }

  private get clock(): Clock {
    return this.opts.clock ?? systemClock;
  }

  /** The containers the agent failed to create or start, with their error and next try. */
  get currentFailures(): Failures {
    return this.failures;
  }

  /** How long to wait before the next turn needs to act, given `resyncMs` when all is well. */
  nextTurnInMs(resyncMs: number): number {
    const due = nextRetryIn(this.failures, this.clock.now());
    // At least 100 ms: a retry that is due is tried by the turn this wait ends in, never in a busy loop.
    return Math.max(100, Math.min(resyncMs, due ?? Infinity, this.removeRetryMs ?? Infinity));
  }

  /**
   * One turn: decide and act once (a container whose last try failed only when its retry is
   * due). `snapshot`: the agent channel's answer this turn follows, whose state of this node tells
   * of its fence (none without one). Returns whether every change tried succeeded and nothing is blocked.
   */
  async converge(snapshot?: Pick<ClusterSnapshot, 'nodes'>): Promise<boolean> {
    const { client, runtime, nodeUuid, logger } = this.opts;
    const policy = this.opts.failureBackoff ?? DEFAULT_FAILURE_BACKOFF;
    // A volume still held by the old node of a move is released within seconds: retried at least every 5 s.
    const volumePolicy = { ...policy, maxMs: Math.min(policy.maxMs, 5 * (this.opts.retryMs ?? 1_000)) };
    const [containers, datasets, nodes] = await Promise.all([
      client.listContainers(),
      client.listDatasets(),
      client.listNodes(),
    ]);
    const { desired, blocked } = desiredContainers(nodeUuid, containers, datasets, nodes);
    const hashes = new Map(desired.map((d) => [d.spec.name, d.hash]));
    this.failures = keepFailures(this.failures, new Set([...hashes.keys(), ...blocked.map((b) => b.name)]));
    for (const b of blocked) {
      // A blocked container has no spec yet: its "hash" is the reason, so a new reason counts afresh.
      if (!isDue(this.failures, b.name, b.reason, this.clock.now())) continue;
      const at = this.clock.wallNow();
      const failure = { name: b.name, hash: b.reason, image: b.image, code: 'VOLUME_NOT_FOUND' as const, at };
      this.failures = recordFailure(this.failures, { ...failure, message: b.reason }, this.clock.now(), volumePolicy);
      logger.warn('container cannot run yet', { container: b.name, reason: b.reason, ...this.retryInfo(b.name) });
    }
    const { fence, lastLift } = withRememberedLift(nodeFence(nodeUuid, snapshot?.nodes), this.lastLift);
    this.lastLift = lastLift;
    this.logFence(fence);
    const changes = calculateContainerChanges(desired, await runtime.list(), fence);
    // A container with nothing left to create or start (Docker runs it, or its restart policy decides) has no failure.
    const acting = new Set(
      changes.flatMap((c) => (c.kind === 'create' ? [c.spec.name] : c.kind === 'start' ? [c.name] : [])),
    );
    for (const name of hashes.keys()) if (!acting.has(name)) this.failures = clearFailure(this.failures, name);
    let ok = blocked.length === 0 && fence.kind !== 'fenced';
    let removeFailed = false;
    let started = false;
    for (const change of changes) {
      const name = change.kind === 'create' ? change.spec.name : change.name;
      const hash = hashes.get(name);
      if (change.kind !== 'remove' && hash !== undefined && !isDue(this.failures, name, hash, this.clock.now())) {
        ok = false;
        continue;
      }
      const t0 = process.hrtime.bigint();
      try {
        logger.info('container change', describe(change));
        if (change.kind === 'create') await runtime.create(change.spec, change.hash, change.config);
        else if (change.kind === 'start') await runtime.start(change.id);
        else await runtime.remove(change.id);
        this.metrics.stepSeconds.observe({ kind: change.kind, result: 'ok' }, secondsSince(t0));
        if (change.kind !== 'remove') {
          this.failures = clearFailure(this.failures, name);
          started = true;
        }
      } catch (err) {
        this.metrics.stepSeconds.observe({ kind: change.kind, result: 'error' }, secondsSince(t0));
        ok = false;
        const message = dockerMessage(err);
        if (change.kind === 'remove' || hash === undefined) {
          removeFailed = true;
          logger.warn('container change failed; retrying', { ...describe(change), error: message });
          continue;
        }
        const image =
          change.kind === 'create' ? change.spec.image : (desired.find((d) => d.spec.name === name)?.spec.image ?? '');
        const code = classifyDockerError(statusOf(err), message);
        const codePolicy = code === 'VOLUME_UNAVAILABLE' ? volumePolicy : policy;
        this.failures = recordFailure(
          this.failures,
          { name, hash, image, code, message, at: this.clock.wallNow() },
          this.clock.now(),
          codePolicy,
        );
        logger.warn('container change failed', { ...describe(change), code, error: message, ...this.retryInfo(name) });
      }
    }
    this.removeRetryMs = removeFailed ? this.removeBackoff.next() : undefined;
    if (!removeFailed) this.removeBackoff.reset();
    const settleMs = this.opts.startSettleMs ?? 0;
    // Stopping ends the wait: the report is still sent, from what Docker says then.
    if (started && settleMs > 0)
      await sleep(settleMs, { clock: this.clock, signal: this.stopping.signal }).catch(() => undefined);
    await this.report(await runtime.list(), desired, fence);
    return ok;
  }

  private lastFence: NodeFence['kind'] = 'none';
  /** The node's last fence lift seen: its victims are still started once the report no longer shows it (R2-6). */
  private lastLift: LiftedFence | undefined;

  /** Says when the node's fence holds the agent back, and when it no longer does. */
  private logFence(fence: NodeFence): void {
    if (fence.kind === this.lastFence) return;
    if (fence.kind === 'fenced')
      this.opts.logger.warn(
        'this node is fenced (or declared dead): no container is created or started until it is lifted',
      );
    else if (this.lastFence === 'fenced')
      this.opts.logger.info("this node's fence is lifted: starting again the containers it stopped", {
        ...(fence.kind === 'lifted' ? { stopped: [...fence.stopped] } : {}),
      });
    this.lastFence = fence.kind;
  }

  private retryInfo(name: string): Record<string, number> {
    const f = this.failures.get(name);
    return f === undefined
      ? {}
      : { attempts: f.error.attempts, retry_in_ms: Math.max(0, f.retryAt - this.clock.now()) };
  }

  private async report(
    observed: readonly ObservedContainer[],
    desired: readonly DesiredContainer[],
    fence: NodeFence,
  ): Promise<void> {
    // Docker's times are the wall clock's; clock.now() is monotonic for timers, apart after a suspend or a clock step.
    const report = reportOf(observed, this.failures, desired, this.clock.wallNow(), fence);
    const running = report.containers.filter((c) => c.running).length;
    this.metrics.containers.set({ state: 'running' }, running);
    this.metrics.containers.set({ state: 'stopped' }, report.containers.length - running);
    try {
      await this.opts.client.reportContainers(this.opts.nodeUuid, report);
      this.metrics.reports.inc({ result: 'ok' });
    } catch (err) {
      this.metrics.reports.inc({ result: 'error' });
      throw err;
    }
    const json = JSON.stringify(report);
    if (json !== this.lastReport) this.opts.logger.info('containers reported', { containers: report.containers });
    this.lastReport = json;
  }

  /**
   * Runs until stop(): a turn after every answer of the long-poll, which waits at most
   * resyncMs, less when a failed container's retry (or a failed remove's) falls due sooner.
   */
  async run(): Promise<void> {
    const resyncMs = this.opts.resyncMs ?? 5_000;
    const retryMs = this.opts.retryMs ?? 1_000;
    let waitMs = resyncMs;
    await followLongPoll({
      wait: (since, timeoutMs) => this.opts.client.waitForCluster(since, timeoutMs, { node: this.opts.nodeUuid }),
      waitMs: () => waitMs,
      onSnapshot: async (snapshot) => {
        await this.converge(snapshot);
        waitMs = this.nextTurnInMs(resyncMs);
      },
      onError: (err) => this.opts.logger.warn('container agent turn failed', { error: errorMessage(err) }),
      backoff: { initialMs: retryMs, maxMs: 5 * retryMs, jitter: true },
      signal: this.stopping.signal,
    });
  }

  stop(): void {
    this.stopping.abort();
  }
}

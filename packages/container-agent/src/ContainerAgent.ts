/**
 * The container agent's level-triggered loop: wait for the cluster to change (the
 * agent channel's long-poll) or a resync timer → read the configured containers →
 * observe Docker → calculateContainerChanges → apply one change at a time → report
 * what runs. Nothing is remembered between turns that Docker or the control
 * service can tell again; a failed change is simply retried on the next turn.
 */
import type { ContainerReport, FlockerClient } from '@flocker/api';
import { errorMessage, followLongPoll } from '@flocker/runtime';
import type { Logger } from 'winston';
import { calculateContainerChanges, type ContainerChange, type ObservedContainer } from './calculateContainerChanges';
import { desiredContainers } from './desiredContainers';
import { dockerMessage, type ContainerRuntime } from './DockerOps';

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
  /** Wait after a failed change or turn (failed turns in a row back off, jittered, up to 5x). Default 1 s. */
  retryMs?: number;
}

export function reportOf(observed: readonly ObservedContainer[]): ContainerReport {
  const containers = observed
    .filter((o) => o.name !== '')
    .map((o) => ({ name: o.name, image: o.image, running: o.state === 'running' || o.state === 'restarting' }))
    .sort((a, b) => a.name.localeCompare(b.name));
  return { containers };
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
      return { action: 'start', container: change.name };
    case 'remove':
      return { action: 'remove', container: change.name, reason: change.reason };
  }
}

export class ContainerAgent {
  private readonly stopping = new AbortController();
  private lastReport = '';

  constructor(private readonly opts: ContainerAgentOptions) {}

  /** One turn: decide and act once. Returns whether every change succeeded. */
  async converge(): Promise<boolean> {
    const { client, runtime, nodeUuid, logger } = this.opts;
    const [containers, datasets, nodes] = await Promise.all([
      client.listContainers(),
      client.listDatasets(),
      client.listNodes(),
    ]);
    const { desired, blocked } = desiredContainers(nodeUuid, containers, datasets, nodes);
    for (const b of blocked) logger.warn('container cannot run yet', { container: b.name, reason: b.reason });
    const changes = calculateContainerChanges(desired, await runtime.list());
    let ok = blocked.length === 0;
    for (const change of changes) {
      try {
        logger.info('container change', describe(change));
        if (change.kind === 'create') await runtime.create(change.spec, change.hash);
        else if (change.kind === 'start') await runtime.start(change.id);
        else await runtime.remove(change.id);
      } catch (err) {
        ok = false;
        logger.warn('container change failed; retrying', { ...describe(change), error: dockerMessage(err) });
      }
    }
    await this.report(await runtime.list());
    return ok;
  }

  private async report(observed: readonly ObservedContainer[]): Promise<void> {
    const report = reportOf(observed);
    await this.opts.client.reportContainers(this.opts.nodeUuid, report);
    const json = JSON.stringify(report);
    if (json !== this.lastReport) this.opts.logger.info('containers reported', { containers: report.containers });
    this.lastReport = json;
  }

  /** Runs until stop(): a turn after every answer of the long-poll, which waits at most resyncMs (retryMs after a failed change). */
  async run(): Promise<void> {
    const resyncMs = this.opts.resyncMs ?? 5_000;
    const retryMs = this.opts.retryMs ?? 1_000;
    let waitMs = resyncMs;
    await followLongPoll({
      wait: (since, timeoutMs) => this.opts.client.waitForCluster(since, timeoutMs, { node: this.opts.nodeUuid }),
      waitMs: () => waitMs,
      onSnapshot: async () => {
        waitMs = (await this.converge()) ? resyncMs : retryMs;
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

/**
 * The dataset agent's metrics and health listener (agent.yml metrics:, --metrics-address/--metrics-port;
 * 127.0.0.1:4531 by default): the per-volume gauges sampled from the agent's own report at each scrape, and
 * readiness: the control service answers, the storage driver answers.
 */
import { statfsSync } from 'node:fs';
import type { NodeReport } from '@flocker/api';
import {
  processRegistry,
  registerAgentSampler,
  registerCertificateExpiry,
  startMetricsServer,
  type AgentSample,
  type HealthCheck,
  type MetricsCheckHost,
  type MetricsServer,
} from '@flocker/metrics';
import type winston from 'winston';
import { errorMessage } from './errors';

/** How long a driver check's answer is reused: a cloud API is not asked at every probe. */
export const DRIVER_CHECK_CACHE_MS = 30_000;

/** Bytes used on a mounted file system; undefined when it cannot be read. */
export function usedBytesAt(path: string): number | undefined {
  try {
    const s = statfsSync(path);
    return (s.blocks - s.bfree) * s.bsize;
  } catch {
    return undefined;
  }
}

/** The metrics' view of a node report (pure but for `used`). */
export function sampleOfReport(
  report: Pick<NodeReport, 'manifestations' | 'errors'>,
  leases: number,
  used: (path: string) => number | undefined = usedBytesAt,
): AgentSample {
  return {
    volumes: report.manifestations.map((m) => {
      const bytes = m.status === 'mounted' && m.path !== undefined ? used(m.path) : undefined;
      return {
        datasetId: m.dataset_id,
        state: m.status,
        maximumBytes: m.size,
        ...(bytes !== undefined ? { usedBytes: bytes } : {}),
      };
    }),
    // Each dataset whose last step failed waits for its retry (errors without a dataset are the pool's).
    backoff: new Set(report.errors.flatMap((e) => (e.dataset_id !== undefined ? [e.dataset_id] : []))).size,
    leases,
  };
}

/** A check whose success is remembered for `cacheMs` (failures are not: the next probe asks again). */
export function cachedCheck(
  name: string,
  check: () => Promise<unknown>,
  cacheMs: number,
  now: () => number = Date.now,
): HealthCheck {
  let okUntil = 0;
  return {
    name,
    check: async () => {
      if (now() < okUntil) return;
      await check();
      okUntil = now() + cacheMs;
    },
  };
}

export interface AgentMetricsOptions {
  readonly listen: {
    readonly host: string;
    readonly port: number;
    readonly allowedHosts?: readonly string[];
    readonly checkHost?: MetricsCheckHost;
  };
  readonly logger: winston.Logger;
  /** The control service answers (a cheap GET). */
  readonly control: () => Promise<unknown>;
  /** The storage driver answers; absent for the local backend. */
  readonly driver?: () => Promise<unknown>;
  readonly certificates?: Record<string, Buffer>;
}

/** Starts the listener; a taken port is logged and the agent runs without it (storage matters more). */
export async function startAgentMetrics(o: AgentMetricsOptions): Promise<MetricsServer | undefined> {
  const registry = processRegistry('dataset-agent');
  if (o.certificates !== undefined) registerCertificateExpiry(registry, o.certificates);
  const checks: HealthCheck[] = [{ name: 'control', check: async () => void (await o.control()) }];
  if (o.driver !== undefined) checks.push(cachedCheck('driver', o.driver, DRIVER_CHECK_CACHE_MS));
  try {
    const server = await startMetricsServer({ registry, checks, logger: o.logger, ...o.listen });
    o.logger.info('metrics listening', { url: server.url });
    return server;
  } catch (e) {
    o.logger.warn('the metrics listener could not start; running without it', {
      code: 'METRICS_LISTEN_FAILED',
      address: `${o.listen.host}:${o.listen.port}`,
      error: errorMessage(e),
    });
    return undefined;
  }
}

/** The per-volume gauges, from the agent's report at each scrape. */
export function sampleAgent(buildReport: () => NodeReport, leases: () => number): void {
  registerAgentSampler(processRegistry('dataset-agent'), () => sampleOfReport(buildReport(), leases()));
}

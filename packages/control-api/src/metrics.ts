/**
 * The control service's metrics and health: the cluster gauges sampled at scrape time, the store's commit timing,
 * and the readiness checks (store writable; etcd quorum with the etcd store). Served on a separate plain listener
 * (--metrics-address/--metrics-port, 127.0.0.1:4530 by default), not on the mutual-TLS API: Prometheus and
 * orchestrator probes hold no client certificate, and the API authorizes every request by one.
 */
import { constants } from 'node:fs';
import { access } from 'node:fs/promises';
import {
  controlMetrics,
  registerClusterSampler,
  secondsSince,
  type ClusterSample,
  type HealthCheck,
  type Registry,
} from '@flocker/metrics';
import { isAlive, type ReportedNode } from './clusterState';
import type { ConfigurationStore } from './ConfigurationStore';
import { StoreConflict } from './etcd/conflict';
import type { ControlState } from './ControlState';

/** Per node report (an immutable value): the datasets it shows mounted, made once per report. */
const mountedSets = new WeakMap<ReportedNode['report'], ReadonlySet<string>>();

function mountedIn(report: ReportedNode['report']): ReadonlySet<string> {
  let set = mountedSets.get(report);
  if (set === undefined) {
    set = new Set(report.manifestations.filter((m) => m.status === 'mounted').map((m) => m.dataset_id));
    mountedSets.set(report, set);
  }
  return set;
}

/**
 * Which datasets are converging (not deleted, not mounted on their primary) and since when; `since` carries
 * the first time each was seen converging from one sample to the next (pure but for that map).
 * Per scrape O(datasets + nodes): each report's mounted set is built once per report (issue 23: a
 * Map of Sets over every manifestation per scrape held the event loop ~40 ms at 10,000 datasets).
 */
export function convergence(
  config: { readonly datasets: ReadonlyMap<string, { readonly primary: string; readonly deleted: boolean }> },
  reports: Iterable<ReportedNode>,
  now: number,
  since: Map<string, number>,
): { datasets: number; converging: number; oldestSeconds: number } {
  const mountedBy = new Map<string, ReadonlySet<string>>();
  for (const { report } of reports) {
    const mounted = mountedIn(report);
    const other = mountedBy.get(report.uuid);
    mountedBy.set(report.uuid, other === undefined ? mounted : new Set([...other, ...mounted]));
  }
  let datasets = 0;
  let oldest = now;
  let converging = 0;
  for (const [id, d] of config.datasets) {
    if (d.deleted) continue;
    datasets++;
    if (mountedBy.get(d.primary)?.has(id) === true) {
      since.delete(id);
      continue;
    }
    converging++;
    const from = since.get(id) ?? now;
    since.set(id, from);
    if (from < oldest) oldest = from;
  }
  // Datasets gone from the configuration (or deleted) are no longer converging.
  if (since.size > converging)
    for (const id of since.keys()) if (config.datasets.get(id)?.deleted !== false) since.delete(id);
  return { datasets, converging, oldestSeconds: (now - oldest) / 1000 };
}

/** Nodes alive as the API says (isAlive: monotonic time since heard), so a wall-clock step moves no gauge. */
export function aliveCount(reports: Iterable<ReportedNode>, now: number, nodeTimeoutMs: number): number {
  let alive = 0;
  for (const n of reports) if (isAlive(n, now, nodeTimeoutMs)) alive++;
  return alive;
}

export interface ControlHealthOptions {
  readonly state: ControlState;
  readonly store: ConfigurationStore;
  readonly nodeTimeoutMs: number;
  /** The file store's directory (checked writable); absent with etcd. */
  readonly dataDir?: string;
  /** With the etcd store: a linearizable read, which needs a quorum. */
  readonly etcdQuorum?: () => Promise<unknown>;
  readonly now?: () => number;
}

/** Wraps the store so every commit is timed and its failures counted; the rest passes through. */
export function instrumentStore(store: ConfigurationStore, registry: Registry): ConfigurationStore & StoreHealth {
  const m = controlMetrics(registry);
  const health: { lastCommitError: string | undefined } = { lastCommitError: undefined };
  const wrapped: ConfigurationStore & StoreHealth = {
    get lastCommitError() {
      return health.lastCommitError;
    },
    load: () => store.load(),
    commit: async (config, base) => {
      const t0 = process.hrtime.bigint();
      try {
        await store.commit(config, base);
        health.lastCommitError = undefined;
        m.commitSeconds.observe({ result: 'ok' }, secondsSince(t0));
      } catch (err) {
        m.commitSeconds.observe({ result: 'error' }, secondsSince(t0));
        // A lost compare-and-swap (another replica won) is no write failure.
        if (!(err instanceof StoreConflict)) {
          m.storeWriteFailures.inc();
          health.lastCommitError = err instanceof Error ? err.message : String(err);
        }
        throw err;
      }
    },
    get storedBytes() {
      return store.storedBytes;
    },
  };
  if (store.close !== undefined) wrapped.close = () => store.close?.() ?? Promise.resolve();
  if (store.subscribe !== undefined) wrapped.subscribe = (l) => store.subscribe?.(l) ?? Promise.resolve();
  if (store.publishReport !== undefined)
    wrapped.publishReport = (r, j, s, t) => store.publishReport?.(r, j, s, t) ?? Promise.resolve();
  if (store.publishContainers !== undefined)
    wrapped.publishContainers = (u, r, s) => store.publishContainers?.(u, r, s);
  if (store.loadNodeIdentities !== undefined)
    wrapped.loadNodeIdentities = () =>
      store.loadNodeIdentities?.() ?? Promise.resolve({ identities: new Map(), skipped: 0 });
  if (store.recordNodeIdentity !== undefined)
    wrapped.recordNodeIdentity = (identity) => store.recordNodeIdentity?.(identity) ?? Promise.resolve();
  if (store.forgetNodeIdentities !== undefined)
    wrapped.forgetNodeIdentities = (uuids) => store.forgetNodeIdentities?.(uuids) ?? Promise.resolve();
  if (store.lastCommitTimeline !== undefined) wrapped.lastCommitTimeline = () => store.lastCommitTimeline?.() ?? {};
  return wrapped;
}

export interface StoreHealth {
  /** Why the last commit failed; undefined once one succeeds again. */
  readonly lastCommitError: string | undefined;
}

/** With the etcd store: a read of its head key, which etcd answers only with a quorum (linearizable). */
export function etcdQuorumOf(store: ConfigurationStore): (() => Promise<unknown>) | undefined {
  if (!('isEmpty' in store) || typeof store.isEmpty !== 'function') return undefined;
  const isEmpty = store.isEmpty as () => Promise<unknown>;
  return () => isEmpty.call(store);
}

/** Registers the cluster gauges and returns the readiness checks. */
export function controlHealth(
  registry: Registry,
  o: ControlHealthOptions & { store: ConfigurationStore & StoreHealth },
): HealthCheck[] {
  const now = o.now ?? Date.now;
  const since = new Map<string, number>();
  const m = controlMetrics(registry);
  registerClusterSampler(registry, (): ClusterSample => {
    const t = now();
    const reports = [...o.state.reportedNodes()];
    const alive = aliveCount(reports, t, o.nodeTimeoutMs);
    const config = o.state.configuration;
    const c = convergence(config, reports, t, since);
    const bytes = o.store.storedBytes;
    return {
      nodesAlive: alive,
      nodesDead: reports.length - alive,
      leases: config.leases.size,
      datasets: c.datasets,
      converging: c.converging,
      oldestConvergingSeconds: c.oldestSeconds,
      longPollWaiters: o.state.waiting,
      ...(bytes !== undefined ? { storeBytes: bytes } : {}),
    };
  });
  const checks: HealthCheck[] = [
    {
      name: 'store',
      check: async () => {
        const failed = o.store.lastCommitError;
        if (failed !== undefined) throw new Error(`the last configuration commit failed: ${failed}`);
        if (o.dataDir !== undefined) await access(o.dataDir, constants.W_OK);
      },
    },
  ];
  const etcdQuorum = o.etcdQuorum;
  if (etcdQuorum !== undefined) {
    checks.push({
      name: 'etcd',
      check: async () => {
        try {
          await etcdQuorum();
          m.etcdUp.set(1);
        } catch (err) {
          m.etcdUp.set(0);
          throw err;
        }
      },
    });
  }
  return checks;
}

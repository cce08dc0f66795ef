/**
 * Every Flocker metric, defined once per registry. Label sets are bounded: route templates (not paths), action
 * kinds, Docker methods, error codes through LabelBound; a dataset id appears only on per-volume gauges, never on
 * a histogram (each histogram series costs a dozen buckets).
 */
import { X509Certificate } from 'node:crypto';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { LabelBound, OTHER, statusLabel, STEP_KINDS, type StepKind } from './labels';

function once<T>(make: (registry: Registry) => T): (registry: Registry) => T {
  const made = new WeakMap<Registry, T>();
  return (registry) => {
    let m = made.get(registry);
    if (m === undefined) {
      m = make(registry);
      made.set(registry, m);
    }
    return m;
  };
}

/** Seconds from 1 ms to 2 min: API requests, driver calls and mounts all fit. */
const LATENCY_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];
/** Convergence steps: cloud attach/detach take tens of seconds, a move minutes. */
const STEP_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900];

const STEP_BOUND = new Set<string>(STEP_KINDS);
const stepLabel = (kind: string): StepKind | typeof OTHER => (STEP_BOUND.has(kind) ? (kind as StepKind) : OTHER);

// ---- Control service --------------------------------------------------------------------------------------------

export interface ControlMetrics {
  readonly requests: Counter<'method' | 'route' | 'status'>;
  readonly requestSeconds: Histogram<'method' | 'route'>;
  readonly errors: Counter<'route' | 'code'>;
  readonly fanOutSeconds: Histogram;
  readonly commitSeconds: Histogram<'result'>;
  readonly storeWriteFailures: Counter;
  readonly etcdUp: Gauge;
  /** Observes a request by its route template (e.g. /v1/configuration/datasets/:dataset_id). */
  request(method: string, route: string, status: number, seconds: number, code?: string): void;
}

const errorCodes = new LabelBound(new Set(), 100, /^[A-Z][A-Z0-9_]{0,63}$/);

export const controlMetrics = once((registry: Registry): ControlMetrics => {
  const registers = [registry];
  const requests = new Counter({
    name: 'flocker_api_requests_total',
    help: 'API requests by method, route template and status.',
    labelNames: ['method', 'route', 'status'] as const,
    registers,
  });
  const requestSeconds = new Histogram({
    name: 'flocker_api_request_duration_seconds',
    help: 'API request latency by method and route template (a long-poll counts its wait).',
    labelNames: ['method', 'route'] as const,
    buckets: LATENCY_BUCKETS,
    registers,
  });
  const errors = new Counter({
    name: 'flocker_api_errors_total',
    help: 'API requests answered with an error, by route template and error code.',
    labelNames: ['route', 'code'] as const,
    registers,
  });
  return {
    requests,
    requestSeconds,
    errors,
    fanOutSeconds: new Histogram({
      name: 'flocker_longpoll_fanout_duration_seconds',
      help: 'Time from a change to every waiting long-poll having been woken.',
      buckets: LATENCY_BUCKETS,
      registers,
    }),
    commitSeconds: new Histogram({
      name: 'flocker_store_commit_duration_seconds',
      help: 'Time to make a configuration change durable, by result (ok, error).',
      labelNames: ['result'] as const,
      buckets: LATENCY_BUCKETS,
      registers,
    }),
    storeWriteFailures: new Counter({
      name: 'flocker_store_write_failures_total',
      help: 'Configuration changes that could not be made durable.',
      registers,
    }),
    etcdUp: new Gauge({
      name: 'flocker_etcd_up',
      help: '1 when etcd answered the last health check with a quorum, 0 when not (absent with the file store).',
      registers,
    }),
    request(method, route, status, seconds, code) {
      const m = method.toUpperCase();
      requests.inc({ method: m, route, status: statusLabel(status) });
      requestSeconds.observe({ method: m, route }, seconds);
      if (status >= 400) errors.inc({ route, code: errorCodes.value(code) });
    },
  };
});

/** What the control service knows right now (sampled at each scrape). */
export interface ClusterSample {
  readonly nodesAlive: number;
  readonly nodesDead: number;
  readonly leases: number;
  readonly datasets: number;
  /** Datasets not (yet) mounted on their primary. */
  readonly converging: number;
  /** How long the dataset converging longest has been at it; 0 when none is. */
  readonly oldestConvergingSeconds: number;
  readonly longPollWaiters: number;
  /** Bytes of the stored configuration; absent when the store does not say. */
  readonly storeBytes?: number;
}

/** The control service's gauges, computed at scrape time. */
export function registerClusterSampler(registry: Registry, sample: () => ClusterSample): void {
  clusterGauges(registry).sample = sample;
}

const clusterGauges = once((registry: Registry): { sample: () => ClusterSample | undefined } => {
  const registers = [registry];
  const holder: { sample: () => ClusterSample | undefined } = { sample: () => undefined };
  let last: ClusterSample | undefined;
  const take = (): ClusterSample | undefined => {
    try {
      last = holder.sample() ?? last;
    } catch {
      // keep the previous sample
    }
    return last;
  };
  // flocker_nodes is registered first: its collect takes the sample the others read (collected in order).
  const simple = (name: string, help: string, pick: (s: ClusterSample) => number | undefined) =>
    new Gauge({
      name,
      help,
      registers,
      collect() {
        const v = last === undefined ? undefined : pick(last);
        if (v !== undefined) this.set(v);
      },
    });
  new Gauge({
    name: 'flocker_nodes',
    help: 'Nodes that have reported, by state (alive: reported within the node timeout; dead).',
    labelNames: ['state'] as const,
    registers,
    collect() {
      const s = take();
      if (s === undefined) return;
      this.set({ state: 'alive' }, s.nodesAlive);
      this.set({ state: 'dead' }, s.nodesDead);
    },
  });
  simple('flocker_cluster_leases', 'Leases in the configuration.', (s) => s.leases);
  simple('flocker_datasets', 'Datasets in the configuration (deleted ones excluded).', (s) => s.datasets);
  simple(
    'flocker_datasets_converging',
    'Datasets not mounted on their primary node (yet): being created, moved, or stuck.',
    (s) => s.converging,
  );
  simple(
    'flocker_dataset_converging_oldest_seconds',
    'How long the dataset converging longest has not been mounted on its primary (0: none converging).',
    (s) => s.oldestConvergingSeconds,
  );
  simple('flocker_longpoll_waiters', 'Long-poll requests waiting for a change.', (s) => s.longPollWaiters);
  simple(
    'flocker_store_size_bytes',
    'Size of the stored configuration (snapshot plus the log of changes since).',
    (s) => s.storeBytes,
  );
  return holder;
});

// ---- Dataset agent -------------------------------------------------------------------------------------------------

export interface DatasetAgentMetrics {
  readonly stepSeconds: Histogram<'kind' | 'result'>;
  readonly stepFailures: Counter<'kind' | 'code'>;
  /** A step finished (ok or failed with code) after seconds. */
  step(kind: string, seconds: number, failure?: string): void;
}

const agentErrorCodes = new LabelBound(new Set(), 100, /^[A-Z][A-Z0-9_]{0,63}$/);

export const datasetAgentMetrics = once((registry: Registry): DatasetAgentMetrics => {
  const registers = [registry];
  const stepSeconds = new Histogram({
    name: 'flocker_convergence_step_duration_seconds',
    help: 'Duration of one convergence step (create, attach, format, mount, detach, destroy, move, …) by result.',
    labelNames: ['kind', 'result'] as const,
    buckets: STEP_BUCKETS,
    registers,
  });
  const stepFailures = new Counter({
    name: 'flocker_convergence_step_failures_total',
    help: 'Failed convergence steps by kind and error code.',
    labelNames: ['kind', 'code'] as const,
    registers,
  });
  return {
    stepSeconds,
    stepFailures,
    step(kind, seconds, failure) {
      const k = stepLabel(kind);
      stepSeconds.observe({ kind: k, result: failure === undefined ? 'ok' : 'error' }, seconds);
      if (failure !== undefined) stepFailures.inc({ kind: k, code: agentErrorCodes.value(failure) });
    },
  };
});

/** What a dataset agent knows of its volumes right now (sampled at each scrape). */
export interface VolumeSample {
  readonly datasetId: string;
  readonly state: 'attached' | 'mounted' | 'detached';
  /** Bytes the file system uses, when mounted here. */
  readonly usedBytes?: number;
  /** The volume's size. */
  readonly maximumBytes: number;
}

export interface AgentSample {
  readonly volumes: readonly VolumeSample[];
  /** Datasets waiting for a retry after a failed step. */
  readonly backoff: number;
  /** Leases held on this node. */
  readonly leases: number;
}

/**
 * Gauges computed at scrape time from the agent's own view: volumes by state, used/maximum bytes per volume
 * (dataset label: gauges only), datasets in backoff, leases on this node.
 */
export function registerAgentSampler(registry: Registry, sample: () => AgentSample): void {
  agentGauges(registry).sample = sample;
}

const agentGauges = once((registry: Registry): { sample: () => AgentSample } => {
  const registers = [registry];
  const holder = { sample: (): AgentSample => ({ volumes: [], backoff: 0, leases: 0 }) };
  let last: AgentSample = { volumes: [], backoff: 0, leases: 0 };
  const take = (): AgentSample => {
    try {
      last = holder.sample();
    } catch {
      // keep the previous sample: a scrape never fails because of one bad look
    }
    return last;
  };
  new Gauge({
    name: 'flocker_volumes',
    help: "This node's volumes by state (attached, mounted; backoff counts datasets waiting to retry).",
    labelNames: ['state'] as const,
    registers,
    collect() {
      const s = take();
      this.reset();
      for (const state of ['attached', 'mounted', 'detached'] as const)
        this.set({ state }, s.volumes.filter((v) => v.state === state).length);
      this.set({ state: 'backoff' }, s.backoff);
    },
  });
  new Gauge({
    name: 'flocker_backoff_datasets',
    help: 'Datasets whose last step failed and that wait for their retry.',
    registers,
    collect() {
      this.set(last.backoff);
    },
  });
  new Gauge({
    name: 'flocker_leases',
    help: 'Leases held on this node.',
    registers,
    collect() {
      this.set(last.leases);
    },
  });
  new Gauge({
    name: 'flocker_volume_used_bytes',
    help: "Bytes used on a volume's file system mounted on this node.",
    labelNames: ['dataset'] as const,
    registers,
    collect() {
      this.reset();
      for (const v of last.volumes) if (v.usedBytes !== undefined) this.set({ dataset: v.datasetId }, v.usedBytes);
    },
  });
  new Gauge({
    name: 'flocker_volume_maximum_bytes',
    help: 'Size of a volume attached to this node.',
    labelNames: ['dataset'] as const,
    registers,
    collect() {
      this.reset();
      for (const v of last.volumes) this.set({ dataset: v.datasetId }, v.maximumBytes);
    },
  });
  return holder;
});

// ---- Docker plugin ------------------------------------------------------------------------------------------------

export const DOCKER_METHODS = [
  'Plugin.Activate',
  'VolumeDriver.Create',
  'VolumeDriver.Remove',
  'VolumeDriver.Mount',
  'VolumeDriver.Unmount',
  'VolumeDriver.Path',
  'VolumeDriver.Get',
  'VolumeDriver.List',
  'VolumeDriver.Capabilities',
] as const;
const dockerMethods = new LabelBound(new Set(DOCKER_METHODS));

export interface PluginMetrics {
  readonly requestSeconds: Histogram<'method' | 'result'>;
  readonly mountWaitSeconds: Histogram<'result'>;
  request(method: string, seconds: number, ok: boolean): void;
}

export const pluginMetrics = once((registry: Registry): PluginMetrics => {
  const registers = [registry];
  const requestSeconds = new Histogram({
    name: 'flocker_plugin_request_duration_seconds',
    help: 'Docker volume plugin requests by Docker method and result (ok: no Err in the answer).',
    labelNames: ['method', 'result'] as const,
    buckets: LATENCY_BUCKETS,
    registers,
  });
  return {
    requestSeconds,
    mountWaitSeconds: new Histogram({
      name: 'flocker_plugin_mount_wait_seconds',
      help: 'Time a Mount waited for the volume to be mounted on this node, by result (ok, error).',
      labelNames: ['result'] as const,
      buckets: LATENCY_BUCKETS,
      registers,
    }),
    request(method, seconds, ok) {
      requestSeconds.observe({ method: dockerMethods.value(method), result: ok ? 'ok' : 'error' }, seconds);
    },
  };
});

// ---- Container agent ----------------------------------------------------------------------------------------------

export interface ContainerAgentMetrics {
  readonly stepSeconds: Histogram<'kind' | 'result'>;
  readonly reports: Counter<'result'>;
  readonly containers: Gauge<'state'>;
}

export const containerAgentMetrics = once((registry: Registry): ContainerAgentMetrics => {
  const registers = [registry];
  return {
    stepSeconds: new Histogram({
      name: 'flocker_container_step_duration_seconds',
      help: 'Duration of one container change (start, stop, remove, …) by kind and result.',
      labelNames: ['kind', 'result'] as const,
      buckets: STEP_BUCKETS,
      registers,
    }),
    reports: new Counter({
      name: 'flocker_container_reports_total',
      help: 'Container state reports sent to the control service, by result.',
      labelNames: ['result'] as const,
      registers,
    }),
    containers: new Gauge({
      name: 'flocker_containers',
      help: 'Containers this agent runs, by state.',
      labelNames: ['state'] as const,
      registers,
    }),
  };
});

// ---- CSI driver ---------------------------------------------------------------------------------------------------

export interface CsiMetrics {
  readonly callSeconds: Histogram<'method' | 'result'>;
  call(method: string, seconds: number, ok: boolean): void;
}

const csiMethods = new LabelBound(new Set(), 40, /^[A-Za-z]{1,40}$/);

export const csiMetrics = once((registry: Registry): CsiMetrics => {
  const callSeconds = new Histogram({
    name: 'flocker_csi_call_duration_seconds',
    help: 'CSI calls by method (CreateVolume, NodePublishVolume, …) and result.',
    labelNames: ['method', 'result'] as const,
    buckets: STEP_BUCKETS,
    registers: [registry],
  });
  return {
    callSeconds,
    call(method, seconds, ok) {
      callSeconds.observe({ method: csiMethods.value(method), result: ok ? 'ok' : 'error' }, seconds);
    },
  };
});

// ---- Certificates -------------------------------------------------------------------------------------------------

/**
 * flocker_certificate_expiry_timestamp_seconds{role}: when each certificate this process uses stops being valid
 * (the alert fires 30 days ahead). Read once: a renewed certificate needs a restart anyway.
 */
export function registerCertificateExpiry(registry: Registry, certificates: Record<string, string | Buffer>): void {
  const gauge = certificateGauge(registry);
  for (const [role, pem] of Object.entries(certificates)) {
    try {
      gauge.set({ role }, Date.parse(new X509Certificate(pem).validTo) / 1000);
    } catch {
      // not a certificate: nothing to watch (the TLS set-up reports it)
    }
  }
}

const certificateGauge = once(
  (registry: Registry) =>
    new Gauge({
      name: 'flocker_certificate_expiry_timestamp_seconds',
      help: 'Unix time at which a certificate this process uses expires, by role (node, control-service, cluster-ca).',
      labelNames: ['role'] as const,
      registers: [registry],
    }),
);

/** Seconds elapsed since a high-resolution start, for histograms. */
export function secondsSince(startNs: bigint): number {
  return Number(process.hrtime.bigint() - startNs) / 1e9;
}

import * as fs from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { FlockerClient, safeLogStream, tlsDispatcher } from '@flocker/api';
import {
  processRegistry,
  registerCertificateExpiry,
  startMetricsServer,
  type HealthCheck,
  type MetricsServer,
} from '@flocker/metrics';
import * as winston from 'winston';
import { MOUNTS_FILE, type PluginSettings } from './config';
import { DEFAULT_RECONCILE_INTERVAL_MS, DockerReconciler, driverNameOf } from './DockerReconciler';
import { DockerodeView, type DockerView } from './DockerView';
import { FlockerVolumeBackend, type ControlClient } from './FlockerVolumeBackend';
import { PropagatedMounts } from './managed/PropagatedMounts';
import { MountRegistry } from './MountRegistry';
import { MountTable } from './MountTable';
import { createPluginHttpServer, listenOnUnixSocket } from './PluginHttpServer';

export interface VolumePluginOptions extends PluginSettings {
  logger?: winston.Logger;
  /** Socket permission bits; default 0600: whoever can connect acts with this node's credentials. */
  socketMode?: number;
  /** Long-poll duration of the cluster watcher (ms). */
  pollMs?: number;
  /** How long start waits for the control service before serving anyway (ms). */
  startTimeoutMs?: number;
  /** Inject a client (tests); default: FlockerClient on controlUrl. */
  client?: ControlClient;
  /** Inject the view of dockerd (tests); default: dockerode on dockerSocket, none without one. */
  docker?: DockerView;
  /**
   * The driver name Docker uses for this plugin (--driver-name); default: the socket's base
   * name less ".sock". Names Docker lists this plugin's volumes under are recognised too.
   */
  driverName?: string;
  /** Follow the kernel's mount table under the agent's mount root (MountTable); default true when that root is known. */
  followMountTable?: boolean;
}

export interface RunningVolumePlugin {
  socketPath: string;
  backend: FlockerVolumeBackend;
  /** Reconciles mount IDs with the containers dockerd runs; undefined when off (no dockerSocket). */
  reconciler: DockerReconciler | undefined;
  close(): Promise<void>;
}

/** Sub-millisecond wall clock (epoch ms), to line up debug timings with the agent's (docs/performance.md). */
const hrTime = winston.format((info) => {
  info.t = (performance.timeOrigin + performance.now()).toFixed(2);
  return info;
});

export function createLogger(level = process.env.FLOCKER_LOG_LEVEL ?? 'info'): winston.Logger {
  return winston.createLogger({
    level,
    format: winston.format.combine(
      winston.format.timestamp(),
      ...(level === 'debug' ? [hrTime()] : []),
      winston.format.json(),
    ),
    defaultMeta: { service: 'flocker-docker-plugin' },
    // JSON lines on stdout; a full disk under the log drops lines, never stops the plugin.
    transports: [new winston.transports.Stream({ stream: safeLogStream('stdout') })],
  });
}

/** Start the plugin: load mount IDs, reconcile with the cluster, then serve Docker on the socket. */
export async function startVolumePlugin(options: VolumePluginOptions): Promise<RunningVolumePlugin> {
  const logger = options.logger ?? createLogger();
  // With several control replicas, FlockerClient's default failoverTimeoutMs (10 s) moves the watcher and the calls
  // off a frozen one well inside Docker's call timeouts (frozenReplica.test).
  const client =
    options.client ??
    new FlockerClient({
      baseUrl: options.controlUrl,
      ...(options.tls !== undefined ? { dispatcher: tlsDispatcher(options.tls) } : {}),
      logger,
    });
  const registry = await MountRegistry.load(join(options.stateDir, MOUNTS_FILE), (problem) => logger.warn(problem));
  // The agent's mount root as seen here (a managed plugin sees the host's elsewhere), followed in the kernel's table.
  const hostMountRoot = options.propagated?.hostMountRoot ?? options.hostMountRoot;
  const seenRoot = options.propagated?.seenAt ?? hostMountRoot;
  const mountTable =
    options.followMountTable !== false && hostMountRoot !== undefined && seenRoot !== undefined
      ? new MountTable(seenRoot, logger)
      : undefined;
  mountTable?.start();
  const backend = new FlockerVolumeBackend({
    client,
    nodeUuid: options.nodeUuid,
    registry,
    logger,
    mountTimeoutMs: options.mountTimeoutMs,
    defaultSize: options.defaultSize,
    ...(options.pollMs !== undefined ? { pollMs: options.pollMs } : {}),
    ...(options.mountSafetyWindowMs !== undefined ? { mountSafetyWindowMs: options.mountSafetyWindowMs } : {}),
    ...(options.idleLeaseMs !== undefined ? { idleLeaseMs: options.idleLeaseMs } : {}),
    ...(mountTable !== undefined && hostMountRoot !== undefined
      ? { mountTable: { table: mountTable, hostMountRoot } }
      : {}),
  });
  const metrics = await startPluginMetrics(options, logger);
  await backend.start(options.startTimeoutMs);
  const served = options.propagated ? new PropagatedMounts(backend, registry, options.propagated, logger) : backend;
  if (served instanceof PropagatedMounts) await served.start();
  const server = createPluginHttpServer(served, logger);
  await listenOnUnixSocket(server, { socketPath: options.socketPath, mode: options.socketMode ?? 0o600 });
  logger.info('flocker docker plugin listening', {
    socket: options.socketPath,
    control_url: options.controlUrl,
    node_uuid: options.nodeUuid,
    ...(options.propagated ? { propagated_mount: options.propagated.propagatedMount } : {}),
  });
  // dockerd usually starts after the plugin: the reconciler keeps trying to reach it, off the socket's path.
  const docker =
    options.docker ??
    (options.dockerSocket ? new DockerodeView({ socketPath: options.dockerSocket, logger }) : undefined);
  const reconciler =
    docker &&
    new DockerReconciler({
      docker,
      target: backend,
      driver: options.driverName ?? driverNameOf(options.socketPath),
      logger,
      intervalMs: options.reconcileIntervalMs ?? DEFAULT_RECONCILE_INTERVAL_MS,
    });
  reconciler?.start();
  return {
    socketPath: options.socketPath,
    backend,
    reconciler,
    close: async () => {
      await metrics?.close();
      await reconciler?.close();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      await backend.close();
      mountTable?.close();
      fs.rmSync(options.socketPath, { force: true });
    },
  };
}

/**
 * The metrics and health listener (127.0.0.1:4532 by default); readiness: the control service answers a short
 * request of the listener's own. A taken port is logged and the plugin serves Docker without it.
 */
async function startPluginMetrics(
  options: VolumePluginOptions,
  logger: winston.Logger,
): Promise<MetricsServer | undefined> {
  if (options.metrics === undefined) return undefined;
  const registry = processRegistry('docker-plugin');
  if (options.tls !== undefined)
    registerCertificateExpiry(registry, { node: options.tls.cert, 'cluster-ca': options.tls.ca });
  const probe = new FlockerClient({
    baseUrl: options.controlUrl,
    timeoutMs: 2000,
    ...(options.tls !== undefined ? { dispatcher: tlsDispatcher(options.tls) } : {}),
  });
  const checks: HealthCheck[] = [{ name: 'control', check: async () => void (await probe.version()) }];
  try {
    const server = await startMetricsServer({ registry, checks, logger, ...options.metrics });
    logger.info('metrics listening', { url: server.url });
    return server;
  } catch (err) {
    logger.warn('the metrics listener could not start; running without it', {
      code: 'METRICS_LISTEN_FAILED',
      address: `${options.metrics.host}:${options.metrics.port}`,
      error: String(err),
    });
    return undefined;
  }
}

/** Wires configuration, identity, driver and client into a running DatasetAgent. */
import { backupSettingsOf } from './backups';
import { createSocket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { FlockerClient, tlsDispatcher } from '@flocker/api';
import { controlUrl } from '@flocker/node-config';
import { DockerContainerStopper, type ContainerStopper } from './containers';
import { createAgentDriver } from './drivers';
import { fenceReportFile } from './fenceReportFile';
import type winston from 'winston';
import { errorMessage } from './errors';
import { replicaFailoverMs, selfFenceBoundMs } from './fencing';
import {
  clusterIdentity,
  configDirOf,
  controlTlsFiles,
  loadAgentConfig,
  loadControlCredentials,
  type ControlCredentials,
  type RunnableAgentConfig,
} from './config';
import { DatasetAgent, parseCrashAfter, type CrashAfter } from './DatasetAgent';
import { controlChannelOf } from './controlChannel';
import { type FollowChoice, parseFollow } from './DatasetAgentOptions';
import { linuxHostOps, linuxHostOpsWith, type HostOps } from './HostOps';
import {
  ensureNodeIdentity,
  readEra,
  readLastNodeTimeout,
  readNodeIdentity,
  writeLastNodeTimeout,
  writeNodeIdentity,
  type NodeIdentity,
} from './identity';
import { createAgentLogger } from './logger';
import { sampleAgent, startAgentMetrics, type AgentMetricsOptions } from './metrics';
import { checkPoolAtStart, fetchSnapshotPatiently } from './poolSafety';
import { startLocalAgent } from './startLocalAgent';
import { thawManagedMounts } from './thawAtStart';

export interface StartDatasetAgentOptions {
  /** A parsed configuration, or the path of the YAML file. */
  readonly config: RunnableAgentConfig | string;
  readonly logger?: winston.Logger;
  /** Default: FLOCKER_AGENT_CRASH_AFTER from the environment. */
  readonly crashAfter?: CrashAfter;
  /** How to follow the node's view; default: FLOCKER_AGENT_FOLLOW from the environment, else the watch. */
  readonly follow?: FollowChoice;
  /** The release reported to the control service. Default: this package's package.json version. */
  readonly version?: string;
  readonly hostOps?: HostOps;
  /** How long one long-poll waits; a pending one outlives stop() by at most this. Default 10 s. */
  readonly pollWaitMs?: number;
  /** http or https base URL; default http(s)://<hostname>:<port> from the configuration. */
  readonly baseUrl?: string;
  /** Where cluster.crt, node.crt and node.key are looked for; default the directory of the config file. */
  readonly configDir?: string;
  /** Default: this host's dockerd at node.docker_socket. */
  readonly containers?: ContainerStopper;
  /** The metrics and health listener (/metrics, /healthz, /readyz); absent = none. */
  readonly metrics?: AgentMetricsOptions['listen'];
}

export interface RunningDatasetAgent {
  readonly nodeUuid: string;
  readonly era: string;
  stop(): Promise<void>;
}

/** The local address used to reach the control service (no packet is sent), else the hostname. */
export async function sourceAddressFor(host: string, port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = createSocket(host.includes(':') ? 'udp6' : 'udp4');
    const done = (address: string): void => {
      socket.close();
      resolve(address);
    };
    socket.on('error', () => done(hostname()));
    try {
      socket.connect(port === 0 ? 4523 : port, host, () => {
        try {
          done(socket.address().address);
        } catch {
          done(hostname());
        }
      });
    } catch {
      done(hostname());
    }
  });
}

/**
 * With a node certificate the certificate is the identity: node.json is created
 * from it, or rewritten when it names another UUID (the control service would
 * refuse reports under any other UUID anyway).
 */
export function nodeIdentityFromCertificate(stateDir: string, certUuid: string, logger: winston.Logger): NodeIdentity {
  const existing = readNodeIdentity(stateDir);
  if (existing === null) return ensureNodeIdentity(stateDir, () => certUuid);
  if (existing.uuid.toLowerCase() === certUuid) return { uuid: certUuid };
  logger.warn('node.json names another node than node.crt; the certificate wins', {
    nodeJson: existing.uuid,
    certificate: certUuid,
  });
  return writeNodeIdentity(stateDir, { uuid: certUuid });
}

/** This package's version (packaging/deb/build.sh stamps the Debian version in), or undefined if unreadable. */
function packageVersion(): string | undefined {
  try {
    const v: unknown = (
      JSON.parse(readFileSync(join(__dirname, '..', 'package.json'), 'utf8')) as { version?: unknown }
    ).version;
    return typeof v === 'string' && v.length > 0 && v.length <= 64 ? v : undefined;
  } catch {
    return undefined;
  }
}

export async function startDatasetAgent(options: StartDatasetAgentOptions): Promise<RunningDatasetAgent> {
  const config = typeof options.config === 'string' ? loadAgentConfig(options.config) : options.config;
  const logger = options.logger ?? createAgentLogger(config.agent.log_level);
  const control = config['control-service'];
  const configDir = options.configDir ?? (typeof options.config === 'string' ? configDirOf(options.config) : undefined);
  const tlsFiles = configDir === undefined ? undefined : controlTlsFiles(control, configDir);
  const credentials: ControlCredentials | undefined =
    tlsFiles === undefined ? undefined : loadControlCredentials(tlsFiles);
  if (credentials === undefined)
    logger.warn('talking plain HTTP to the control service (no node certificate, or insecure_http)');
  const identity =
    credentials === undefined
      ? ensureNodeIdentity(config.node.state_dir)
      : nodeIdentityFromCertificate(config.node.state_dir, credentials.nodeUuid, logger);
  const era = readEra(config.node.era_file);
  const host = config.node.host ?? (await sourceAddressFor(control.hostname, control.port));
  // Readiness asks the control service with a short request of its own (a long-poll may be under way).
  const probe = new FlockerClient({
    timeoutMs: 2000,
    baseUrl: options.baseUrl ?? controlUrl(control, credentials !== undefined),
    ...(credentials !== undefined ? { dispatcher: tlsDispatcher(credentials) } : {}),
  });
  const startMetrics = (driverCheck?: () => Promise<unknown>) =>
    options.metrics === undefined
      ? Promise.resolve(undefined)
      : startAgentMetrics({
          listen: options.metrics,
          logger,
          control: () => probe.version(),
          ...(driverCheck !== undefined ? { driver: driverCheck } : {}),
          ...(credentials !== undefined
            ? { certificates: { node: credentials.cert, 'cluster-ca': credentials.ca } }
            : {}),
        });
  if (config.dataset.backend === 'local') {
    const metricsServer = await startMetrics();
    const local = await startLocalAgent({
      config,
      dataset: config.dataset,
      credentials,
      nodeUuid: identity.uuid,
      era,
      host,
      logger,
      ...(options.baseUrl !== undefined ? { baseUrl: options.baseUrl } : {}),
      ...(options.pollWaitMs !== undefined ? { pollWaitMs: options.pollWaitMs } : {}),
    });
    return {
      nodeUuid: identity.uuid,
      era,
      stop: async () => {
        await metricsServer?.close();
        await local.stop();
      },
    };
  }
  const { driver, instanceId, repair, poolChanges, releaseFenced, resizeUnmounted, checkInstance, mountDiscard } =
    await createAgentDriver(config.dataset, identity.uuid, logger);
  // Before the waits of the start-up (pool check, repair): liveness answers meanwhile, readiness says why not.
  const metricsServer = await startMetrics(() => driver.listVolumes());
  const lastNodeTimeout = readLastNodeTimeout(config.node.state_dir);
  const configuredFenceMs =
    config.agent.self_fence_seconds !== undefined ? config.agent.self_fence_seconds * 1000 : undefined;
  /** FlockerClient failoverTimeoutMs: follows the self-fence bound (replicaFailoverMs), from the node timeout last told. */
  let failoverMs = replicaFailoverMs(
    selfFenceBoundMs(lastNodeTimeout !== undefined ? lastNodeTimeout * 1000 : undefined, configuredFenceMs),
  );
  const client = new FlockerClient({
    // Short requests (long-polls add their wait): a report stuck on a cut connection
    // must not hold back the heartbeats that confirm contact for long.
    timeoutMs: 5000,
    // A frozen replica must not hold a heartbeat past the bound while others could answer it.
    failoverTimeoutMs: () => failoverMs,
    baseUrl: options.baseUrl ?? controlUrl(control, credentials !== undefined),
    ...(credentials !== undefined ? { dispatcher: tlsDispatcher(credentials) } : {}),
  });
  const availableBytes = driver.availableBytes?.bind(driver);
  const version = options.version ?? packageVersion();
  const crashAfter = options.crashAfter ?? parseCrashAfter(process.env.FLOCKER_AGENT_CRASH_AFTER);
  const follow = options.follow ?? parseFollow(process.env.FLOCKER_AGENT_FOLLOW);
  // The client streams the node's view (watchCluster); without it the agent long-polls deltas.
  const channel = controlChannelOf(client, follow);
  const backups = backupSettingsOf(config.backup, process.env);
  const agent = new DatasetAgent({
    nodeUuid: identity.uuid,
    era,
    host,
    instanceId,
    driver,
    ...(resizeUnmounted === true ? { resizeUnmounted } : {}),
    hostOps: options.hostOps ?? linuxHostOpsWith({ discard: mountDiscard === true }),
    control: channel,
    mountRoot: config.node.mount_root,
    defaultSize: config.agent.default_dataset_size,
    resyncIntervalMs: config.agent.resync_interval_seconds * 1000,
    concurrency: config.agent.concurrency,
    backoffInitialMs: config.agent.backoff_initial_seconds * 1000,
    backoffMaxMs: config.agent.backoff_max_seconds * 1000,
    logger,
    pollWaitMs: options.pollWaitMs ?? 10_000,
    ...(lastNodeTimeout !== undefined ? { lastNodeTimeoutMs: lastNodeTimeout * 1000 } : {}),
    onNodeTimeout: (seconds) => {
      failoverMs = replicaFailoverMs(selfFenceBoundMs(seconds * 1000, configuredFenceMs));
      try {
        writeLastNodeTimeout(config.node.state_dir, seconds);
      } catch (e) {
        logger.warn('cannot keep the node timeout in the state directory', { error: errorMessage(e) });
      }
    },
    fenceReports: fenceReportFile(config.node.state_dir, logger),
    containers: options.containers ?? new DockerContainerStopper(config.node.docker_socket ?? '/var/run/docker.sock'),
    ...(configuredFenceMs !== undefined ? { selfFenceMs: configuredFenceMs } : {}),
    ...(releaseFenced !== undefined ? { releaseFenced } : {}),
    ...(version !== undefined ? { version } : {}),
    ...(availableBytes !== undefined ? { availableBytes } : {}),
    ...(poolChanges !== undefined ? { poolChanges } : {}),
    ...(crashAfter ? { crashAfter } : {}),
    ...(backups !== undefined ? { backups } : {}),
    ...(config.dataset.backend === 'loopback'
      ? {
          spares: config.dataset.spares,
          ...(config.dataset.spare_sizes !== undefined ? { spareSizes: config.dataset.spare_sizes } : {}),
        }
      : {}),
  });
  logger.info('dataset agent starting', {
    nodeUuid: identity.uuid,
    era,
    host,
    backend: driver.backend,
    mountRoot: config.node.mount_root,
    follow,
    backups: backups === undefined ? 'off' : (backups.endpoint ?? 'AWS default endpoint'),
  });
  // A predecessor killed mid-snapshot may have left a file system frozen: nothing may wait on it (the fence either).
  await thawManagedMounts(options.hostOps ?? linuxHostOps, config.node.mount_root, logger);
  // The self-fence bound holds from here, also while the start-up steps wait on the backend (DatasetAgent.guard).
  await agent
    .startAfter(async () => {
      await checkInstance?.();
      // Before touching the pool: is it this cluster's, and may it be used (issue 17, poolSafety.ts)?
      await checkPoolAtStart({
        driver,
        cluster: clusterIdentity(config.dataset, credentials?.ca, tlsFiles?.ca),
        where:
          config.dataset.backend === 'loopback'
            ? `pool ${config.dataset.root_path}`
            : `the ${config.dataset.backend} pool`,
        fetchSnapshot: () => fetchSnapshotPatiently(() => client.waitForCluster(undefined, 0), logger),
        logger,
        nodeUuid: identity.uuid,
      });
      // After a crash or reboot, bring local attachments in line with the backend's records.
      const repaired = await repair();
      if (repaired !== undefined) logger.warn('repaired attachments at start', repaired);
      const maxVolumeSize = await driver.maximumVolumeSize?.().catch((e: unknown) => {
        logger.warn('cannot find the largest volume size of the backend', { error: errorMessage(e) });
        return undefined;
      });
      // After checkPoolAtStart: a loopback pool has its id (the zone) once claimed.
      const zone = await driver.storageZone?.().catch((e: unknown) => {
        logger.warn('cannot find the storage zone of this node', { error: errorMessage(e) });
        return undefined;
      });
      return { ...(maxVolumeSize !== undefined ? { maxVolumeSize } : {}), ...(zone !== undefined ? { zone } : {}) };
    })
    .catch(async (e: unknown) => {
      await metricsServer?.close();
      throw e;
    });
  sampleAgent(
    () => agent.buildReport(),
    () => agent.leasesHere(),
  );
  return {
    nodeUuid: identity.uuid,
    era,
    stop: async () => {
      await metricsServer?.close();
      await agent.stop();
      logger.info('dataset agent stopped', { nodeUuid: identity.uuid });
    },
  };
}

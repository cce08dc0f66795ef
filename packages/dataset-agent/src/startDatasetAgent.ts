/** Wires configuration, identity, driver and client into a running DatasetAgent. */
import { createSocket } from 'node:dgram';
import { hostname } from 'node:os';
import { FlockerClient } from '@flocker/api';
import { LoopbackDriver } from '@flocker/storage-drivers';
import type winston from 'winston';
import { loadAgentConfig, type RunnableAgentConfig } from './config';
import { DatasetAgent, parseCrashAfter, type CrashAfter } from './DatasetAgent';
import { linuxHostOps, type HostOps } from './HostOps';
import { ensureNodeIdentity, readEra } from './identity';
import { createAgentLogger } from './logger';

export interface StartDatasetAgentOptions {
  /** A parsed configuration, or the path of the YAML file. */
  readonly config: RunnableAgentConfig | string;
  readonly logger?: winston.Logger;
  /** Default: FLOCKER_AGENT_CRASH_AFTER from the environment. */
  readonly crashAfter?: CrashAfter;
  readonly hostOps?: HostOps;
  /** How long one long-poll waits; a pending one outlives stop() by at most this. Default 10 s. */
  readonly pollWaitMs?: number;
  /** http or https base URL; default http://<hostname>:<port> from the configuration. */
  readonly baseUrl?: string;
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

export async function startDatasetAgent(options: StartDatasetAgentOptions): Promise<RunningDatasetAgent> {
  const config = typeof options.config === 'string' ? loadAgentConfig(options.config) : options.config;
  const logger = options.logger ?? createAgentLogger(config.agent.log_level);
  const identity = ensureNodeIdentity(config.node.state_dir);
  const era = readEra(config.node.era_file);
  const control = config['control-service'];
  const host = config.node.host ?? (await sourceAddressFor(control.hostname, control.port));
  // The node's compute instance in the loopback pool is the node itself.
  const instanceId = identity.uuid;
  const driver = new LoopbackDriver({
    rootPath: config.dataset.root_path,
    instanceId,
    ...(config.dataset.allocation_unit !== undefined ? { allocationUnit: config.dataset.allocation_unit } : {}),
    logger,
  });
  // After a crash or reboot, bring loop devices in line with the pool's records.
  const repaired = await driver.repair();
  if (repaired.reattached.length + repaired.detachedStale.length + repaired.busy.length > 0) {
    logger.warn('repaired loop devices at start', { ...repaired });
  }
  const controlHost = control.hostname.includes(':') ? `[${control.hostname}]` : control.hostname;
  const client = new FlockerClient({ baseUrl: options.baseUrl ?? `http://${controlHost}:${control.port}` });
  const crashAfter = options.crashAfter ?? parseCrashAfter(process.env.FLOCKER_AGENT_CRASH_AFTER);
  const agent = new DatasetAgent({
    nodeUuid: identity.uuid,
    era,
    host,
    instanceId,
    driver,
    hostOps: options.hostOps ?? linuxHostOps,
    control: client,
    mountRoot: config.node.mount_root,
    defaultSize: config.agent.default_dataset_size,
    resyncIntervalMs: config.agent.resync_interval_seconds * 1000,
    concurrency: config.agent.concurrency,
    backoffInitialMs: config.agent.backoff_initial_seconds * 1000,
    backoffMaxMs: config.agent.backoff_max_seconds * 1000,
    logger,
    pollWaitMs: options.pollWaitMs ?? 10_000,
    ...(crashAfter ? { crashAfter } : {}),
  });
  logger.info('dataset agent starting', { nodeUuid: identity.uuid, era, host, backend: driver.backend, mountRoot: config.node.mount_root });
  agent.start();
  return {
    nodeUuid: identity.uuid,
    era,
    stop: async () => {
      await agent.stop();
      logger.info('dataset agent stopped', { nodeUuid: identity.uuid });
    },
  };
}

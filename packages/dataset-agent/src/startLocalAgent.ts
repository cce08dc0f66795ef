/** Wires a node with a local backend (issue 24) into a running LocalAgent (see startDatasetAgent). */
import { FlockerClient, tlsDispatcher } from '@flocker/api';
import { controlUrl } from '@flocker/node-config';
import { BtrfsEngine, ZfsEngine, type LocalEngine, type ZfsEngineOptions } from '@flocker/storage-drivers';
import type winston from 'winston';
import type { ControlCredentials, LocalBackendConfig, RunnableAgentConfig } from './config';
import { controlChannelOf } from './controlChannel';
import { parseFollow } from './DatasetAgentOptions';
import { AgentError } from './errors';
import { LocalAgent } from './LocalAgent';

/**
 * The node's local engine. What it tells (a zfs destroy tried again) goes to the agent's log with the pool, not to
 * stderr (FR's F8). `commands`: the host's commands and mounts (tests only; default the real ones).
 */
export function localEngineOf(
  dataset: LocalBackendConfig,
  logger: Pick<winston.Logger, 'warn'>,
  commands: Pick<ZfsEngineOptions, 'exec' | 'readMounts' | 'sleep' | 'features'> = {},
): LocalEngine {
  const pool = dataset.pool;
  return dataset.engine === 'btrfs'
    ? new BtrfsEngine({ pool })
    : new ZfsEngine({ pool, ...commands, warn: (m) => logger.warn(m, { pool }) });
}

export async function startLocalAgent(o: {
  readonly config: RunnableAgentConfig;
  readonly dataset: LocalBackendConfig;
  readonly credentials: ControlCredentials | undefined;
  readonly nodeUuid: string;
  readonly era: string;
  readonly host: string;
  readonly baseUrl?: string;
  readonly pollWaitMs?: number;
  readonly logger: winston.Logger;
}): Promise<{ stop(): Promise<void> }> {
  // Moves go node to node over mutual TLS with the node certificates: no certificate, no moves.
  if (o.credentials === undefined)
    throw new AgentError(
      'CONFIG_INVALID',
      "the local backend needs this node's certificate (cluster.crt, node.crt and node.key beside agent.yml): datasets move between nodes over mutual TLS",
    );
  const control = o.config['control-service'];
  const client = new FlockerClient({
    timeoutMs: 5000,
    baseUrl: o.baseUrl ?? controlUrl(control, true),
    dispatcher: tlsDispatcher(o.credentials),
  });
  // The node's view over the watch (FLOCKER_AGENT_FOLLOW=long-poll: by long-poll deltas), whole
  // snapshots from a control service without local views (LocalAgent).
  const follow = parseFollow(process.env.FLOCKER_AGENT_FOLLOW);
  const channel = controlChannelOf(client, follow);
  const agent = new LocalAgent({
    nodeUuid: o.nodeUuid,
    era: o.era,
    host: o.host,
    engine: localEngineOf(o.dataset, o.logger),
    control: channel,
    mountRoot: o.config.node.mount_root,
    defaultSize: o.config.agent.default_dataset_size,
    resyncIntervalMs: o.config.agent.resync_interval_seconds * 1000,
    backoffInitialMs: o.config.agent.backoff_initial_seconds * 1000,
    backoffMaxMs: o.config.agent.backoff_max_seconds * 1000,
    logger: o.logger,
    credentials: o.credentials,
    transferPort: o.dataset.transfer_port,
    ...(o.dataset.replica_interval_seconds !== undefined
      ? { replicaIntervalMs: o.dataset.replica_interval_seconds * 1000 }
      : {}),
    ...(o.dataset.keep_source_snapshots !== undefined ? { keepSourceSnapshots: o.dataset.keep_source_snapshots } : {}),
    ...(o.config.node.host !== undefined ? { listenHost: o.config.node.host } : {}),
    ...(o.pollWaitMs !== undefined ? { pollWaitMs: o.pollWaitMs } : {}),
    // Test only (e2e local-two-live-copies): the process stops itself right after a move's promote,
    // before its copy is retired, so a kill -9 lands there every time.
    ...(process.env.FLOCKER_TEST_STOP_AFTER_PROMOTE === '1'
      ? {
          afterPromote: () => {
            o.logger.warn('test hook: stopping after the promote, before the retire (FLOCKER_TEST_STOP_AFTER_PROMOTE)');
            process.kill(process.pid, 'SIGSTOP');
          },
        }
      : {}),
    // Test only (e2e local-move-back-promote): stops right before a move's first promote is asked for,
    // so the move back lands at the target before the promote does.
    ...(process.env.FLOCKER_TEST_STOP_BEFORE_PROMOTE === '1'
      ? {
          beforePromote: () => {
            o.logger.warn('test hook: stopping before the promote is asked for (FLOCKER_TEST_STOP_BEFORE_PROMOTE)');
            process.kill(process.pid, 'SIGSTOP');
          },
        }
      : {}),
  });
  await agent.start();
  o.logger.info('dataset agent starting (local backend)', {
    nodeUuid: o.nodeUuid,
    host: o.host,
    engine: o.dataset.engine,
    pool: o.dataset.pool,
    transferPort: o.dataset.transfer_port,
    follow,
  });
  return agent;
}

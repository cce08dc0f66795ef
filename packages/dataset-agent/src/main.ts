#!/usr/bin/env node
/** flocker-dataset-agent: converges this node's datasets with the control service's configuration. */
import yargs from 'yargs';
import { DEFAULT_METRICS_PORTS } from '@flocker/metrics';
import { metricsListen } from '@flocker/node-config';
import { configDirOf, DEFAULT_CONFIG_PATH, loadAgentConfig, type RunnableAgentConfig } from './config';
import { errorCode, errorMessage, isAgentError } from './errors';
import { createAgentLogger, logLevelOf } from './logger';
import { startDatasetAgent } from './startDatasetAgent';

async function main(): Promise<void> {
  const argv = yargs(process.argv.slice(2))
    .scriptName('flocker-dataset-agent')
    .usage(
      "$0 [--config <agent.yml>]\n\nConverges this node's volumes (create, attach, format, mount, …) with the control service's configuration.",
    )
    .option('config', { type: 'string', default: DEFAULT_CONFIG_PATH, describe: 'agent configuration file (YAML)' })
    .option('metrics-address', {
      type: 'string',
      describe: 'address of the metrics and health listener (default agent.yml metrics.address, else 127.0.0.1)',
    })
    .option('metrics-port', {
      type: 'number',
      describe: `port of the metrics and health listener, 0 = none (default agent.yml metrics.dataset_agent_port, else ${DEFAULT_METRICS_PORTS['dataset-agent']})`,
    })
    .strict()
    .help()
    .parseSync();

  let config: RunnableAgentConfig;
  try {
    config = loadAgentConfig(argv.config);
  } catch (e) {
    process.stderr.write(`flocker-dataset-agent: ${errorMessage(e)}\n`);
    process.exit(2);
  }
  // FLOCKER_LOG_LEVEL overrides the configured level (as for the plugin): debug timings without editing agent.yml.
  const logger = createAgentLogger(logLevelOf(process.env.FLOCKER_LOG_LEVEL) ?? config.agent.log_level);
  // TLS files (cluster.crt, node.crt, node.key) are looked for beside agent.yml.
  const metrics = metricsListen(config.metrics, 'dataset_agent', DEFAULT_METRICS_PORTS['dataset-agent'], {
    address: argv['metrics-address'],
    port: argv['metrics-port'],
  });
  const agent = await startDatasetAgent({
    config,
    logger,
    configDir: configDirOf(argv.config),
    ...(metrics !== undefined ? { metrics } : {}),
  });
  let stopping = false;
  const shutdown = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    logger.info('stopping: finishing the current actions', { signal });
    agent.stop().then(
      () => process.exit(0),
      (e: unknown) => {
        logger.error('stop failed', { error: errorMessage(e) });
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

main().catch((e: unknown) => {
  process.stderr.write(`flocker-dataset-agent: ${errorMessage(e)} (${errorCode(e)})\n`);
  process.exit(isAgentError(e) ? 2 : 1);
});

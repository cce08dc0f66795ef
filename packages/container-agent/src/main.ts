#!/usr/bin/env node
/**
 * flocker-container-agent: runs this node's configured containers in the local
 * dockerd. Finds the control service and the node identity as the Docker plugin
 * does (@flocker/node-config: the dataset agent's agent.yml, node certificate, node.json).
 */
import { parseArgs } from 'node:util';
import { errorMessage } from '@flocker/runtime';
import { FlockerClient, safeLogStream, tlsDispatcher } from '@flocker/api';
import {
  DEFAULT_METRICS_PORTS,
  processRegistry,
  releaseVersion,
  registerCertificateExpiry,
  startMetricsServer,
  type MetricsServer,
} from '@flocker/metrics';
import { DEFAULT_DOCKER_SOCKET, metricsListen, resolveNodeConnection } from '@flocker/node-config';
import winston from 'winston';
import { ContainerAgent } from './ContainerAgent';
import { containerAgentClientOptions } from './controlClient';
import { DockerOps } from './DockerOps';

const USAGE = `Usage: flocker-container-agent [options]
  --agent-config FILE   the dataset agent's agent.yml (default /etc/flocker/agent.yml)
  --control-url URL     control service, e.g. https://10.0.0.1:4523 (default: from agent.yml)
  --node-uuid UUID      this node (default: the node certificate, or node.json of the dataset agent)
  --docker-socket PATH  dockerd's socket (default: node.docker_socket of agent.yml, else /var/run/docker.sock)
  --volume-driver NAME  Docker volume driver of Flocker datasets (default flocker)
  --resync SECONDS      longest time between two checks (default 5)
  --metrics-address A   metrics and health listener (default: metrics.address of agent.yml, else 127.0.0.1)
  --metrics-port N      its port, 0 = none (default: metrics.container_agent_port of agent.yml, else 4533)
  --version             print this release and exit
  -h, --help            this text`;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      'agent-config': { type: 'string' },
      'control-url': { type: 'string' },
      'node-uuid': { type: 'string' },
      'docker-socket': { type: 'string' },
      'volume-driver': { type: 'string', default: 'flocker' },
      resync: { type: 'string', default: '5' },
      'metrics-address': { type: 'string' },
      'metrics-port': { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
      version: { type: 'boolean', default: false },
    },
  });
  if (values.version) {
    process.stdout.write(`${releaseVersion()}\n`);
    return;
  }
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const resync = Number(values.resync);
  if (!Number.isFinite(resync) || resync <= 0)
    throw new Error(`--resync ${values.resync} is not a positive number of seconds`);
  const settings = await resolveNodeConnection({
    ...(values['agent-config'] !== undefined ? { agentConfig: values['agent-config'] } : {}),
    ...(values['control-url'] !== undefined ? { controlUrl: values['control-url'] } : {}),
    ...(values['node-uuid'] !== undefined ? { nodeUuid: values['node-uuid'] } : {}),
  });
  const dockerSocket = values['docker-socket'] ?? settings.config?.node.docker_socket ?? DEFAULT_DOCKER_SOCKET;
  const logger = winston.createLogger({
    level: process.env.FLOCKER_LOG_LEVEL ?? 'info',
    format: winston.format.combine(winston.format.timestamp(), winston.format.json()),
    defaultMeta: { service: 'flocker-container-agent' },
    // A full disk under the log drops lines, never stops the agent.
    transports: [new winston.transports.Stream({ stream: safeLogStream('stdout') })],
  });
  const client = new FlockerClient({
    baseUrl: settings.controlUrl,
    ...(settings.tls !== undefined ? { dispatcher: tlsDispatcher(settings.tls) } : {}),
    // A frozen replica must not hold the report past the control service's staleness bound.
    ...containerAgentClientOptions(resync * 1000),
  });
  const metricsPort = values['metrics-port'] === undefined ? undefined : Number(values['metrics-port']);
  if (metricsPort !== undefined && !(Number.isInteger(metricsPort) && metricsPort >= 0 && metricsPort <= 65535))
    throw new Error(`--metrics-port ${values['metrics-port']} is not a port (0 to 65535)`);
  const listen = metricsListen(settings.config?.metrics, 'container_agent', DEFAULT_METRICS_PORTS['container-agent'], {
    address: values['metrics-address'],
    port: metricsPort,
  });
  const metrics = listen === undefined ? undefined : await startContainerAgentMetrics(listen, settings, logger);
  const agent = new ContainerAgent({
    client,
    runtime: new DockerOps(dockerSocket, values['volume-driver']),
    nodeUuid: settings.nodeUuid,
    logger,
    resyncMs: resync * 1000,
    startSettleMs: 1000,
  });
  for (const sig of ['SIGTERM', 'SIGINT'] as const) {
    process.on(sig, () => {
      logger.info('stopping', { signal: sig });
      agent.stop();
      void metrics?.close();
      // Containers keep running: the agent owns decisions, not the containers' lives.
      process.exit(0);
    });
  }
  logger.info('container agent starting', {
    node: settings.nodeUuid,
    control: settings.controlUrl,
    docker: dockerSocket,
  });
  await agent.run();
}

/** /metrics, /healthz and /readyz (the control service answers); a taken port is logged, not fatal. */
async function startContainerAgentMetrics(
  listen: NonNullable<ReturnType<typeof metricsListen>>,
  settings: Awaited<ReturnType<typeof resolveNodeConnection>>,
  logger: winston.Logger,
): Promise<MetricsServer | undefined> {
  const registry = processRegistry('container-agent');
  if (settings.tls !== undefined)
    registerCertificateExpiry(registry, { node: settings.tls.cert, 'cluster-ca': settings.tls.ca });
  const probe = new FlockerClient({
    baseUrl: settings.controlUrl,
    timeoutMs: 2000,
    ...(settings.tls !== undefined ? { dispatcher: tlsDispatcher(settings.tls) } : {}),
  });
  try {
    const server = await startMetricsServer({
      registry,
      logger,
      ...listen,
      checks: [{ name: 'control', check: async () => void (await probe.version()) }],
    });
    logger.info('metrics listening', { url: server.url });
    return server;
  } catch (err) {
    logger.warn('the metrics listener could not start; running without it', {
      code: 'METRICS_LISTEN_FAILED',
      address: `${listen.host}:${listen.port}`,
      error: errorMessage(err),
    });
    return undefined;
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`flocker-container-agent: ${errorMessage(err)}\n`);
  process.exit(1);
});

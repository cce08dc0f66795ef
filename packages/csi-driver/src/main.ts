#!/usr/bin/env node
/** flocker-csi: the Container Storage Interface driver of Flocker (Identity, Controller and Node services). */
import { readFileSync } from 'node:fs';
import { parseSize } from '@flocker/api';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { resolveNodeId } from './nodeId';
import { createLogger, startCsiDriver } from './startCsiDriver';
import { errorMessage } from '@flocker/runtime';
import { FlockerClient, tlsDispatcher } from '@flocker/api';
import { processRegistry, registerCertificateExpiry, startMetricsServer } from '@flocker/metrics';

/**
 * The shortest --unused-release-after: the kubelet's NodePublish follows its NodeStage within milliseconds, but a
 * grace shorter than a few seconds would let go of stages whose publish is merely slow (each then staged again).
 */
const MIN_UNUSED_RELEASE_S = 5;

async function main(): Promise<void> {
  const argv = await yargs(hideBin(process.argv))
    .scriptName('flocker-csi')
    .usage(
      '$0 [options]\n\nServe the CSI Identity, Controller and/or Node services on a Unix socket, backed by the Flocker control service.',
    )
    .option('endpoint', {
      type: 'string',
      describe: 'CSI socket (unix:///path or a path)',
      default: 'unix:///run/flocker/csi.sock',
    })
    .option('mode', {
      choices: ['controller', 'node', 'all'] as const,
      describe: 'which services to serve',
      default: 'all' as const,
    })
    .option('control-url', {
      type: 'string',
      describe: 'control service URL(s), comma-separated',
      default: 'https://127.0.0.1:4523',
    })
    .option('cacert', { type: 'string', describe: 'cluster CA certificate (enables mutual TLS)' })
    .option('cert', {
      type: 'string',
      describe: "this driver's certificate: an API user's for the controller, the node's for the node service",
    })
    .option('key', { type: 'string', describe: 'key of --cert' })
    .option('node-id', {
      type: 'string',
      describe: "this node's Flocker UUID (default: from --cert if a node certificate, else <state-dir>/node.json)",
    })
    .option('state-dir', {
      type: 'string',
      describe: "the dataset agent's node.state_dir (where it writes node.json)",
      default: '/var/lib/flocker',
    })
    .option('default-size', {
      type: 'string',
      describe: 'size of volumes created without a capacity range',
      default: '1GiB',
    })
    .option('kubelet-registration-dir', {
      type: 'string',
      describe:
        'node service: register with the kubelet through its plugin registration API, on a socket in this directory ' +
        "(the kubelet's is /var/lib/kubelet/plugins_registry); no node-driver-registrar needed",
    })
    .option('kubelet-csi-endpoint', {
      type: 'string',
      describe: 'the CSI socket path the kubelet dials (default: the --endpoint path)',
    })
    .option('stage-timeout', {
      type: 'number',
      describe: 'seconds NodeStageVolume waits for the agent to mount the volume here',
      default: 100,
    })
    .option('handover-wait', {
      type: 'number',
      describe:
        'seconds NodeStageVolume waits for a live node to release the lease (a pod moving here while its old node still unstages) before FAILED_PRECONDITION',
      default: 10,
    })
    .option('unused-release-after', {
      type: 'number',
      describe: `node service: seconds this node's lease of a volume no pod here uses (staged, never published or unpublished, never unstaged) is kept before it is released, at least ${MIN_UNUSED_RELEASE_S}; one found at start is released at once; 0 = never released so`,
      default: 30,
    })
    .option('metrics-address', {
      type: 'string',
      describe: 'address of the metrics and health listener (/metrics, /healthz, /readyz)',
      default: '127.0.0.1',
    })
    .option('metrics-port', {
      type: 'number',
      describe: 'port of the metrics and health listener, e.g. 4534; 0 = none (the default)',
      default: 0,
    })
    // yargs reads `abc` as NaN: refuse it rather than run without the listener (only a METRICS_LISTEN_FAILED warning).
    .check((a) => {
      const port = a['metrics-port'];
      return (
        (Number.isInteger(port) && port >= 0 && port <= 65535) ||
        `--metrics-port ${String(port)} is not a port (0 to 65535)`
      );
    })
    // `abc` (NaN) would silently never release (TK-1/TK-2 back), a negative value release at every pass (review FRK-6).
    .check((a) => {
      const after = a['unused-release-after'];
      return (
        after === 0 ||
        (Number.isFinite(after) && after >= MIN_UNUSED_RELEASE_S) ||
        `--unused-release-after ${String(after)} is neither 0 (never release) nor a number of seconds of at least ${MIN_UNUSED_RELEASE_S}`
      );
    })
    .strict()
    .help()
    .parseAsync();
  const logger = createLogger();
  const mode = argv.mode;
  const tls =
    argv.cacert !== undefined
      ? {
          ca: readFileSync(argv.cacert),
          ...(argv.cert !== undefined ? { cert: readFileSync(argv.cert) } : {}),
          ...(argv.key !== undefined ? { key: readFileSync(argv.key) } : {}),
        }
      : undefined;
  const nodeId =
    mode === 'controller'
      ? undefined
      : await resolveNodeId({
          ...(argv['node-id'] !== undefined ? { nodeId: argv['node-id'] } : {}),
          ...(argv.cert !== undefined ? { certFile: argv.cert } : {}),
          stateDir: argv['state-dir'],
        });
  const running = await startCsiDriver({
    endpoint: argv.endpoint,
    mode,
    controlUrl: argv['control-url'],
    ...(tls !== undefined ? { tls } : {}),
    ...(nodeId !== undefined ? { nodeId } : {}),
    defaultSize: parseSize(argv['default-size']),
    stageTimeoutMs: argv['stage-timeout'] * 1000,
    handoverWaitMs: argv['handover-wait'] * 1000,
    unusedReleaseMs: argv['unused-release-after'] === 0 ? 'never' : argv['unused-release-after'] * 1000,
    ...(argv['kubelet-registration-dir'] !== undefined ? { kubeletRegistryDir: argv['kubelet-registration-dir'] } : {}),
    ...(argv['kubelet-csi-endpoint'] !== undefined ? { kubeletCsiEndpoint: argv['kubelet-csi-endpoint'] } : {}),
    logger,
  });
  logger.info('flocker-csi started', { mode, node_id: nodeId, socket: running.socketPath });
  const metrics =
    argv['metrics-port'] === 0
      ? undefined
      : await startCsiMetrics(argv['metrics-address'], argv['metrics-port'], argv['control-url'], tls, logger);
  const stop = (signal: string) => {
    logger.info('stopping', { signal });
    void metrics?.close();
    running.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
}

/** /metrics, /healthz, /readyz (the control service answers); a taken port is logged, not fatal. */
async function startCsiMetrics(
  host: string,
  port: number,
  controlUrl: string,
  tls: { ca: Buffer; cert?: Buffer; key?: Buffer } | undefined,
  logger: ReturnType<typeof createLogger>,
) {
  const registry = processRegistry('csi-driver');
  if (tls?.cert !== undefined) registerCertificateExpiry(registry, { node: tls.cert, 'cluster-ca': tls.ca });
  const probe = new FlockerClient({
    baseUrl: controlUrl,
    timeoutMs: 2000,
    ...(tls !== undefined ? { dispatcher: tlsDispatcher(tls) } : {}),
  });
  try {
    const server = await startMetricsServer({
      registry,
      logger,
      host,
      port,
      checks: [{ name: 'control', check: async () => void (await probe.version()) }],
    });
    logger.info('metrics listening', { url: server.url });
    return server;
  } catch (err) {
    logger.warn('the metrics listener could not start; running without it', {
      code: 'METRICS_LISTEN_FAILED',
      address: `${host}:${port}`,
      error: errorMessage(err),
    });
    return undefined;
  }
}

main().catch((err: unknown) => {
  const code = typeof err === 'object' && err !== null && 'code' in err ? String(err.code) : 'FATAL';
  process.stderr.write(`flocker-csi: ${errorMessage(err)} (${code})\n`);
  process.exit(1);
});

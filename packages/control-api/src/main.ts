#!/usr/bin/env -S MALLOC_ARENA_MAX=2 node --max-semi-space-size=32
/** flocker-control: the Flocker control service (v1 dataset API + agent channel). */
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { DEFAULT_METRICS_ADDRESS, DEFAULT_METRICS_PORTS, METRICS_CHECK_HOST_MODES } from '@flocker/metrics';
import { checkAllowedHosts, createLogger, DEFAULT_LIMITS, DEFAULT_PORT, startControlService } from './server';
import { chooseTls, DEFAULT_TLS_DIR, readTlsFiles } from './tls';

async function main(): Promise<void> {
  const argv = await yargs(hideBin(process.argv))
    .scriptName('flocker-control')
    .usage(
      '$0 [options]\n\nRuns the Flocker control service: the v1 dataset API and the channel dataset agents use.\n\n' +
        'Also: $0 migrate-store --from <store> --to <store> (see $0 migrate-store --help).',
    )
    .option('port', { type: 'number', default: DEFAULT_PORT, describe: 'TCP port of the API (0 = any free port)' })
    .option('host', { type: 'string', default: '0.0.0.0', describe: 'Address to listen on' })
    .option('data-dir', {
      type: 'string',
      default: '/var/lib/flocker',
      describe: 'Directory of the durable configuration',
    })
    .option('node-timeout', {
      type: 'number',
      default: 30,
      describe: 'Seconds without a report after which a node counts as dead',
    })
    .option('lease-grace', {
      type: 'number',
      default: 5,
      describe:
        'Seconds a node stays dead (no report for --node-timeout) before the control service releases its leases, except pinned ones (0 = at once)',
    })
    .option('handover-wait', {
      type: 'number',
      default: 5,
      describe:
        "Seconds a request refused by an idle volume's lease (release_on_request: a Docker plugin keeps it while no container uses the volume) waits for its holder to let go of it; 0 = refuse at once (at most 20)",
    })
    .option('sole-replica', {
      type: 'boolean',
      default: false,
      describe:
        'etcd store: this is the only control replica. A write in flight across a stall of its event loop is then applied (with several replicas it is refused REPLICA_STALLED: its client may have sent it to another); writes read right after a stall are still refused',
    })
    .option('compact-log-bytes', {
      type: 'number',
      default: 1024 * 1024,
      describe: 'Fold the configuration log into the snapshot once it exceeds this many bytes (and the snapshot size)',
    })
    .option('store', {
      type: 'string',
      default: 'file',
      choices: ['file', 'etcd'],
      describe:
        'Where the configuration lives: files in --data-dir, or an etcd cluster shared by several control replicas',
    })
    .option('etcd-endpoints', {
      type: 'string',
      describe:
        'With --store etcd: comma-separated etcd client URLs, e.g. http://10.0.0.1:2379,http://10.0.0.2:2379,http://10.0.0.3:2379',
    })
    .option('etcd-prefix', {
      type: 'string',
      default: '/flocker',
      describe: 'With --store etcd: key prefix of this cluster',
    })
    .option('etcd-ca', {
      type: 'string',
      describe: 'With --store etcd: CA certificate (PEM) of the etcd members; enables TLS',
    })
    .option('etcd-cert', { type: 'string', describe: 'With --store etcd: client certificate (PEM) for etcd' })
    .option('etcd-key', { type: 'string', describe: 'With --store etcd: private key (PEM) of --etcd-cert' })
    .option('etcd-timeout', {
      type: 'number',
      default: 3,
      describe:
        'With --store etcd: seconds to wait for etcd before a request fails with 503 STORE_UNAVAILABLE; a write sent ' +
        'but unconfirmed is resolved for up to twice as long again, then answered 503 STORE_OUTCOME_UNKNOWN',
    })
    .option('tls-dir', {
      type: 'string',
      describe: `Directory with cluster.crt, control-service.crt and control-service.key (default ${DEFAULT_TLS_DIR})`,
    })
    .option('cert', {
      type: 'string',
      describe: 'Control service certificate (PEM); with --key and --ca instead of --tls-dir',
    })
    .option('key', { type: 'string', describe: 'Private key of --cert (PEM)' })
    .option('ca', {
      type: 'string',
      describe: 'Cluster CA certificate (PEM): clients must present a certificate it issued',
    })
    .option('insecure-http', {
      type: 'boolean',
      default: false,
      describe: 'Serve plain HTTP without authentication (development and tests only)',
    })
    .option('allowed-host', {
      type: 'string',
      array: true,
      default: [] as string[],
      describe:
        'With --insecure-http: a DNS name clients may reach this service by (repeatable). Requests naming any other ' +
        'name in their Host header are refused 403 HOST_NOT_ALLOWED (DNS rebinding); IP addresses, localhost and ' +
        'the --host name are always taken',
    })
    .option('test-only-min-snapshot-interval', {
      type: 'number',
      describe:
        'TESTS ONLY: the shortest snapshot schedule accepted and run, in seconds (default 300); never in production',
    })
    .option('metrics-address', {
      type: 'string',
      default: DEFAULT_METRICS_ADDRESS,
      describe: 'Address of the metrics and health listener (/metrics, /healthz, /readyz; plain HTTP, unauthenticated)',
    })
    .option('metrics-port', {
      type: 'number',
      default: DEFAULT_METRICS_PORTS['control-service'],
      describe: 'Port of the metrics and health listener (0 = none)',
    })
    .option('metrics-check-host', {
      choices: METRICS_CHECK_HOST_MODES,
      describe:
        "Which of the metrics listener's connections have their Host checked (403 HOST_NOT_ALLOWED unless an " +
        'address, localhost, this host or an --allowed-host name): loopback ones (the default, else ' +
        'FLOCKER_METRICS_CHECK_HOST), or always: for a metrics port published from a container, which a browser ' +
        "reaches over the host's 127.0.0.1 but which arrives on the container's address",
    })
    .option('max-connections', {
      type: 'number',
      default: DEFAULT_LIMITS.maxConnections,
      describe:
        'Open connections beyond this are refused. Every dataset agent holds one (its long-poll): with more than ' +
        '~9,000 agents on one replica raise it (and the open-file limit), or spread the agents over replicas',
    })
    .option('compress-lists', {
      type: 'boolean',
      default: false,
      describe:
        'Send whole lists (GET /v1/configuration/datasets, /v1/state/datasets, ...) of 64 KiB or more gzipped to ' +
        'clients that accept it. Off by default: on a LAN compressing and unpacking take longer than sending ' +
        '(~10x at 10,000 datasets); turn on when clients read whole lists over slow links',
    })
    .option('log-level', {
      type: 'string',
      default: 'info',
      choices: ['error', 'warn', 'info', 'debug'],
      describe: 'Log verbosity (JSON logs on stderr)',
    })
    .example('$0 --port 4523 --data-dir /var/lib/flocker --tls-dir /etc/flocker', 'the defaults, spelled out')
    .example('$0 --insecure-http --host 127.0.0.1', 'plain HTTP for development')
    .example('$0 --insecure-http --allowed-host control.dev.lan', 'plain HTTP that agents reach as control.dev.lan')
    // yargs reads `abc` as NaN: refuse it rather than run without the listener (only a METRICS_LISTEN_FAILED warning).
    .check((a) => {
      const port = a['metrics-port'];
      return (
        (Number.isInteger(port) && port >= 0 && port <= 65535) ||
        `--metrics-port ${String(port)} is not a port (0 to 65535)`
      );
    })
    .check((a) => {
      const max = a['max-connections'];
      return (Number.isInteger(max) && max > 0) || `--max-connections ${String(max)} is not a positive number`;
    })
    .strict()
    .help()
    .parse();
  const logger = createLogger(argv['log-level']);
  const tls = chooseTls({
    tlsDir: argv['tls-dir'],
    cert: argv.cert,
    key: argv.key,
    ca: argv.ca,
    insecureHttp: argv['insecure-http'],
  });
  // Before the certificates are read: a misplaced --allowed-host is the first thing to fix.
  const allowedHosts = checkAllowedHosts(argv['allowed-host'], tls.mode === 'https');
  if (tls.mode === 'http') logger.warn('serving plain HTTP without authentication (--insecure-http)');
  const service = await startControlService({
    port: argv.port,
    host: argv.host,
    dataDir: argv['data-dir'],
    nodeTimeoutSeconds: argv['node-timeout'],
    leaseGraceSeconds: argv['lease-grace'],
    handoverWaitSeconds: argv['handover-wait'],
    compactLogBytes: argv['compact-log-bytes'],
    logger,
    limits: { maxConnections: argv['max-connections'] },
    compressLists: argv['compress-lists'],
    allowedHosts,
    ...(argv['metrics-port'] !== 0
      ? {
          metrics: {
            host: argv['metrics-address'],
            port: argv['metrics-port'],
            ...(argv['metrics-check-host'] !== undefined ? { checkHost: argv['metrics-check-host'] } : {}),
          },
        }
      : {}),
    ...(argv['test-only-min-snapshot-interval'] !== undefined
      ? { testOnlyMinSnapshotIntervalSeconds: argv['test-only-min-snapshot-interval'] }
      : {}),
    ...(tls.mode === 'https' ? { tls: readTlsFiles(tls.files) } : {}),
    ...(argv.store === 'etcd'
      ? {
          // Replicas share the store: a write a client gave up on while this one was stalled, and sent to another
          // replica, must not be applied here after it (stallGuard.ts; one file-store replica has no other).
          // One replica (--sole-replica): its clients have no other to have moved to (review s27 F9).
          stallGuard: argv['sole-replica'] ? { inFlight: false } : true,
          // Loaded only when used: the etcd client (gRPC) adds start-up time the file store does not need.
          store: (await import('./etcd/flags.js')).etcdStoreFromFlags(
            {
              endpoints: argv['etcd-endpoints'],
              prefix: argv['etcd-prefix'],
              ca: argv['etcd-ca'],
              cert: argv['etcd-cert'],
              key: argv['etcd-key'],
              timeoutSeconds: argv['etcd-timeout'],
            },
            logger,
          ),
        }
      : {}),
  });
  // Machine-readable line for whoever started us (tests, scripts) to learn the port.
  process.stdout.write(`${JSON.stringify({ listening: service.url, port: service.port })}\n`);
  const stop = (signal: string): void => {
    logger.info('stopping', { signal });
    service.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
}

(process.argv[2] === 'migrate-store'
  ? import('./etcd/migrate.js').then((m) => m.migrateStoreCli(process.argv.slice(3)))
  : main()
).catch((err: unknown) => {
  const code = typeof err === 'object' && err !== null && 'code' in err ? String(err.code) : 'STARTUP_FAILED';
  process.stderr.write(
    `${JSON.stringify({ level: 'error', message: 'flocker-control failed to start', code, error: String(err) })}\n`,
  );
  process.exit(1);
});

/** Wires a CsiDriver to the control service and serves it. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FlockerClient, safeLogStream, tlsDispatcher, type TlsCredentials } from '@flocker/api';
import winston from 'winston';
import { CsiDriver, type ControlClient, type DriverMode } from './CsiDriver';
import { SystemMounter, type Mounter } from './mounter';
import { PACKAGE_DIR } from './proto';
import { serveRegistration, type RunningRegistration } from './registration';
import { serveCsi, type RunningCsiServer } from './server';
import { csiClientOptions } from './controlClient';

export interface CsiDriverSettings {
  endpoint: string;
  mode: DriverMode;
  controlUrl: string;
  tls?: TlsCredentials;
  nodeId?: string;
  defaultSize: number;
  stageTimeoutMs: number;
  /** See CsiDriverOptions.handoverWaitMs. */
  handoverWaitMs?: number;
  /** See CsiDriverOptions.unusedReleaseMs. */
  unusedReleaseMs?: number | 'never';
  pollMs?: number;
  protoPath?: string;
  /** Serve the kubelet's plugin registration here (node service), e.g. /var/lib/kubelet/plugins_registry. */
  kubeletRegistryDir?: string;
  /** The CSI socket path the kubelet dials (default: the endpoint's path). */
  kubeletCsiEndpoint?: string;
  client?: ControlClient;
  mounter?: Mounter;
  logger?: winston.Logger;
}

export function createLogger(level = process.env.FLOCKER_LOG_LEVEL ?? 'info'): winston.Logger {
  return winston.createLogger({
    level,
    format: winston.format.combine(winston.format.timestamp(), winston.format.json()),
    defaultMeta: { service: 'flocker-csi' },
    transports: [new winston.transports.Stream({ stream: safeLogStream('stdout') })],
  });
}

export function driverVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(join(PACKAGE_DIR, 'package.json'), 'utf8')) as { version?: unknown };
    return typeof pkg.version === 'string' ? pkg.version : '0.0.0';
  } catch {
    return '0.0.0';
  }
}

export async function startCsiDriver(
  settings: CsiDriverSettings,
): Promise<RunningCsiServer & { driver: CsiDriver; registration?: RunningRegistration }> {
  const logger = settings.logger ?? createLogger();
  const client =
    settings.client ??
    new FlockerClient({
      baseUrl: settings.controlUrl,
      ...(settings.tls !== undefined ? { dispatcher: tlsDispatcher(settings.tls) } : {}),
      logger,
      // A frozen replica must not hold a call past the CO's timeout while another could answer it.
      ...csiClientOptions(),
    });
  const driver = new CsiDriver({
    client,
    logger,
    mode: settings.mode,
    ...(settings.nodeId !== undefined ? { nodeId: settings.nodeId } : {}),
    mounter: settings.mounter ?? new SystemMounter(),
    version: driverVersion(),
    defaultSize: settings.defaultSize,
    stageTimeoutMs: settings.stageTimeoutMs,
    ...(settings.handoverWaitMs !== undefined ? { handoverWaitMs: settings.handoverWaitMs } : {}),
    ...(settings.pollMs !== undefined ? { pollMs: settings.pollMs } : {}),
    ...(settings.unusedReleaseMs !== undefined ? { unusedReleaseMs: settings.unusedReleaseMs } : {}),
  });
  const server = await serveCsi(driver, settings.endpoint, logger, settings.protoPath);
  // The node service keeps the leases of the volumes staged here (review U6 1b: released while the agent was down).
  const watch = settings.mode === 'controller' ? undefined : driver.watchLeases();
  const closeServer = (): Promise<void> => {
    watch?.stop();
    return server.close();
  };
  if (settings.kubeletRegistryDir === undefined || settings.mode === 'controller')
    return { ...server, driver, close: closeServer };
  const registration = await serveRegistration({
    registryDir: settings.kubeletRegistryDir,
    csiEndpoint: settings.kubeletCsiEndpoint ?? server.socketPath,
    logger,
  }).catch(async (err: unknown) => {
    await closeServer();
    throw err;
  });
  return {
    ...server,
    driver,
    registration,
    close: async () => {
      await registration.close();
      await closeServer();
    },
  };
}

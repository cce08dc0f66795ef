/** gRPC over a Unix socket: the CSI services of a CsiDriver, every answer or error logged as one structured line. */
import { rm } from 'node:fs/promises';
import { connect } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { csiMetrics, processRegistry } from '@flocker/metrics';
import type { Logger } from 'winston';
import type { CsiDriver } from './CsiDriver';
import { toCsiError } from './mapping';
import { loadCsiServices } from './proto';

export interface RunningCsiServer {
  socketPath: string;
  close(): Promise<void>;
}

/** "unix:///csi/csi.sock", "unix:/csi/csi.sock" or a plain path → the socket path. */
export function socketPathOf(endpoint: string): string {
  if (endpoint.startsWith('unix://')) return endpoint.slice('unix://'.length);
  if (endpoint.startsWith('unix:')) return endpoint.slice('unix:'.length);
  if (/^[a-z]+:/.test(endpoint)) throw new Error(`endpoint ${endpoint}: only unix sockets are served`);
  return endpoint;
}

/** Whether a process listens on the Unix socket (a connect is accepted; a stale socket of a dead one refuses it). */
export function socketServed(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const c = connect(path);
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
}

type Handler = (request: unknown) => Promise<object>;

function unary(logger: Logger, method: string, handler: Handler): grpc.handleUnaryCall<unknown, object> {
  const metrics = csiMetrics(processRegistry('csi-driver'));
  return (call, callback) => {
    const started = Date.now();
    handler(call.request).then(
      (response) => {
        logger.debug('csi call', { method, ms: Date.now() - started });
        metrics.call(method, (Date.now() - started) / 1000, true);
        callback(null, response);
      },
      (err: unknown) => {
        const e = toCsiError(err);
        metrics.call(method, (Date.now() - started) / 1000, false);
        const level = e.code === grpc.status.INTERNAL || e.code === grpc.status.UNAVAILABLE ? 'warn' : 'info';
        logger.log(level, 'csi call failed', {
          method,
          code: grpc.status[e.code],
          detail: e.message,
          ms: Date.now() - started,
        });
        callback({ code: e.code, details: e.message });
      },
    );
  };
}

export async function serveCsi(
  driver: CsiDriver,
  endpoint: string,
  logger: Logger,
  protoPath?: string,
): Promise<RunningCsiServer> {
  const services = loadCsiServices(protoPath);
  const server = new grpc.Server();
  const u = (method: string, h: Handler) => unary(logger, method, h);
  server.addService(services.Identity, {
    GetPluginInfo: u('GetPluginInfo', () => driver.getPluginInfo()),
    GetPluginCapabilities: u('GetPluginCapabilities', () => driver.getPluginCapabilities()),
    Probe: u('Probe', () => driver.probe()),
  });
  // Methods left out answer UNIMPLEMENTED (grpc-js), as the spec asks for RPCs without a capability.
  if (driver.mode !== 'node')
    server.addService(services.Controller, {
      CreateVolume: u('CreateVolume', (r) => driver.createVolume(r)),
      DeleteVolume: u('DeleteVolume', (r) => driver.deleteVolume(r)),
      ValidateVolumeCapabilities: u('ValidateVolumeCapabilities', (r) => driver.validateVolumeCapabilities(r)),
      ListVolumes: u('ListVolumes', (r) => driver.listVolumes(r)),
      ControllerExpandVolume: u('ControllerExpandVolume', (r) => driver.controllerExpandVolume(r)),
      ControllerGetVolumeHealth: u('ControllerGetVolumeHealth', (r) => driver.controllerGetVolumeHealth(r)),
      ControllerListVolumeHealth: u('ControllerListVolumeHealth', (r) => driver.controllerListVolumeHealth(r)),
      GetCapacity: u('GetCapacity', (r) => driver.getCapacity(r)),
      CreateSnapshot: u('CreateSnapshot', (r) => driver.createSnapshot(r)),
      DeleteSnapshot: u('DeleteSnapshot', (r) => driver.deleteSnapshot(r)),
      ListSnapshots: u('ListSnapshots', (r) => driver.listSnapshots(r)),
      GetSnapshot: u('GetSnapshot', (r) => driver.getSnapshot(r)),
      ControllerGetCapabilities: u('ControllerGetCapabilities', () => driver.controllerGetCapabilities()),
    });
  if (driver.mode !== 'controller')
    server.addService(services.Node, {
      NodeStageVolume: u('NodeStageVolume', (r) => driver.nodeStageVolume(r)),
      NodeUnstageVolume: u('NodeUnstageVolume', (r) => driver.nodeUnstageVolume(r)),
      NodePublishVolume: u('NodePublishVolume', (r) => driver.nodePublishVolume(r)),
      NodeUnpublishVolume: u('NodeUnpublishVolume', (r) => driver.nodeUnpublishVolume(r)),
      NodeGetVolumeStats: u('NodeGetVolumeStats', (r) => driver.nodeGetVolumeStats(r)),
      NodeGetVolumeHealth: u('NodeGetVolumeHealth', (r) => driver.nodeGetVolumeHealth(r)),
      NodeGetCapabilities: u('NodeGetCapabilities', () => driver.nodeGetCapabilities()),
      NodeGetInfo: u('NodeGetInfo', () => driver.nodeGetInfo()),
    });
  const socketPath = socketPathOf(endpoint);
  // A second plugin on the same socket would take the kubelet's calls from the first, and its per-process
  // in-flight keys and mount-table reads would race the first's (review FRK-4): refuse while a process answers.
  if (await socketServed(socketPath))
    throw new Error(
      `${socketPath} is served by another process (a flocker-csi already running here? one node plugin per node): stop it first`,
    );
  await rm(socketPath, { force: true }); // a stale socket of an earlier run
  await new Promise<void>((resolve, reject) =>
    server.bindAsync(`unix://${socketPath}`, grpc.ServerCredentials.createInsecure(), (err) =>
      err ? reject(err) : resolve(),
    ),
  );
  logger.info('serving CSI', { socket: socketPath });
  return {
    socketPath,
    close: () =>
      new Promise<void>((resolve) => {
        const timer = setTimeout(() => server.forceShutdown(), 5_000);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      }),
  };
}

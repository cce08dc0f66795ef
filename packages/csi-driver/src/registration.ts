/**
 * Registration with the kubelet without the node-driver-registrar sidecar: the kubelet's
 * plugin watcher finds `<registry dir>/<driver>-reg.sock` and calls the
 * pluginregistration.v1 Registration service on it (GetInfo, then
 * NotifyRegistrationStatus). Removing the socket (on close) deregisters the driver.
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'winston';
import { z } from 'zod';
import { DRIVER_NAME } from './CsiDriver';
import { loadRegistrationService } from './proto';
import { parseRequest } from './wire';
import { errorMessage } from '@flocker/runtime';

/** The kubelet's default plugin registry directory. */
export const KUBELET_PLUGINS_REGISTRY = '/var/lib/kubelet/plugins_registry';
/** The CSI versions this driver speaks, as the kubelet's CSI plugin wants them (semver). */
export const SUPPORTED_CSI_VERSIONS = ['1.0.0'];

export const RegistrationStatus = z
  .object({ plugin_registered: z.boolean().optional().nullable(), error: z.string().optional().nullable() })
  .loose();

export interface RegistrationOptions {
  registryDir: string;
  /** The CSI socket the kubelet is to dial (as the kubelet sees it). */
  csiEndpoint: string;
  logger: Logger;
  protoPath?: string;
}

export interface RunningRegistration {
  socketPath: string;
  /** Resolves with the kubelet's verdict the first time it sends one. */
  status: Promise<{ registered: boolean; error: string }>;
  close(): Promise<void>;
}

/** What GetInfo answers. */
export function pluginInfo(csiEndpoint: string): {
  type: string;
  name: string;
  endpoint: string;
  supported_versions: string[];
} {
  return { type: 'CSIPlugin', name: DRIVER_NAME, endpoint: csiEndpoint, supported_versions: SUPPORTED_CSI_VERSIONS };
}

export async function serveRegistration(opts: RegistrationOptions): Promise<RunningRegistration> {
  const service = loadRegistrationService(opts.protoPath);
  const server = new grpc.Server();
  let report: (v: { registered: boolean; error: string }) => void = () => undefined;
  const status = new Promise<{ registered: boolean; error: string }>((resolve) => (report = resolve));
  server.addService(service, {
    GetInfo: (_call: grpc.ServerUnaryCall<unknown, object>, callback: grpc.sendUnaryData<object>) => {
      opts.logger.info('kubelet asked for the plugin info', { endpoint: opts.csiEndpoint });
      callback(null, pluginInfo(opts.csiEndpoint));
    },
    NotifyRegistrationStatus: (call: grpc.ServerUnaryCall<unknown, object>, callback: grpc.sendUnaryData<object>) => {
      let req: z.infer<typeof RegistrationStatus>;
      try {
        req = parseRequest(RegistrationStatus, call.request, 'NotifyRegistrationStatus');
      } catch (err) {
        callback({ code: grpc.status.INVALID_ARGUMENT, details: errorMessage(err) });
        return;
      }
      const verdict = { registered: req.plugin_registered === true, error: req.error ?? '' };
      if (verdict.registered) opts.logger.info('registered with the kubelet', { driver: DRIVER_NAME });
      else opts.logger.error('the kubelet refused the registration', { driver: DRIVER_NAME, error: verdict.error });
      report(verdict);
      callback(null, {});
    },
  });
  const socketPath = join(opts.registryDir, `${DRIVER_NAME}-reg.sock`);
  await rm(socketPath, { force: true });
  await new Promise<void>((resolve, reject) =>
    server.bindAsync(`unix://${socketPath}`, grpc.ServerCredentials.createInsecure(), (err) =>
      err ? reject(err) : resolve(),
    ),
  );
  opts.logger.info('serving kubelet plugin registration', { socket: socketPath });
  return {
    socketPath,
    status,
    close: async () => {
      server.forceShutdown();
      await rm(socketPath, { force: true });
    },
  };
}

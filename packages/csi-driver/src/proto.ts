/**
 * Loads the CSI spec's csi.proto, which scripts/fetch-proto.sh fetched from the Go
 * module proxy into <package>/proto (pinned; not kept in git).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

export const PACKAGE_DIR = resolve(__dirname, '..');
export const DEFAULT_PROTO_PATH = join(PACKAGE_DIR, 'proto', 'csi.proto');
/** The kubelet's plugin registration API (k8s.io/kubelet pkg/apis/pluginregistration/v1/api.proto). */
export const REGISTRATION_PROTO_PATH = join(PACKAGE_DIR, 'proto', 'pluginregistration.proto');

/** How requests are decoded: proto field names, int64 as decimal strings, enums by name, absent fields absent. */
export const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: true,
  longs: String,
  enums: String,
  defaults: false,
  oneofs: true,
};

export interface CsiServices {
  Identity: grpc.ServiceDefinition;
  Controller: grpc.ServiceDefinition;
  Node: grpc.ServiceDefinition;
}

export class ProtoMissingError extends Error {
  override readonly name = 'ProtoMissingError';
  readonly code = 'CSI_PROTO_MISSING';
}

/** The CSI spec version of the fetched proto (proto/VERSION.csi), e.g. v1.13.0. */
export function specVersion(protoPath = DEFAULT_PROTO_PATH): string {
  try {
    return readFileSync(join(protoPath, '..', 'VERSION.csi'), 'utf8').trim();
  } catch {
    return 'unknown';
  }
}

export function loadCsiPackage(protoPath = DEFAULT_PROTO_PATH): protoLoader.PackageDefinition {
  if (!existsSync(protoPath)) {
    throw new ProtoMissingError(
      `${protoPath} is missing: run ${join(PACKAGE_DIR, 'scripts', 'fetch-proto.sh')} (npm run build -w @flocker/csi-driver does)`,
    );
  }
  return protoLoader.loadSync(protoPath, LOADER_OPTIONS);
}

export function loadCsiServices(protoPath = DEFAULT_PROTO_PATH): CsiServices {
  const def = loadCsiPackage(protoPath);
  const service = (name: string): grpc.ServiceDefinition => {
    const s = def[`csi.v1.${name}`];
    if (s === undefined || 'format' in s) throw new Error(`csi.v1.${name} is not a service in ${protoPath}`);
    return s;
  };
  return { Identity: service('Identity'), Controller: service('Controller'), Node: service('Node') };
}

/** The kubelet's pluginregistration.Registration service (package "pluginregistration", v1 API). */
export function loadRegistrationService(protoPath = REGISTRATION_PROTO_PATH): grpc.ServiceDefinition {
  if (!existsSync(protoPath)) {
    throw new ProtoMissingError(`${protoPath} is missing: run ${join(PACKAGE_DIR, 'scripts', 'fetch-proto.sh')}`);
  }
  const s = protoLoader.loadSync(protoPath, LOADER_OPTIONS)['pluginregistration.Registration'];
  if (s === undefined || 'format' in s)
    throw new Error(`pluginregistration.Registration is not a service in ${protoPath}`);
  return s;
}

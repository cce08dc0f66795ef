/** A small CSI client of a driver's Unix socket (tests and tools): each method resolves with the answer or rejects with the gRPC error. */
import * as grpc from '@grpc/grpc-js';
import { loadCsiServices } from './proto';

export type CsiCall = (request: object) => Promise<Record<string, unknown>>;

export interface CsiClient {
  identity: Record<string, CsiCall>;
  controller: Record<string, CsiCall>;
  node: Record<string, CsiCall>;
  close(): void;
}

/** The gRPC status code of a failed call, if it is one. */
export function grpcCode(err: unknown): grpc.status | undefined {
  return typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'number'
    ? err.code
    : undefined;
}

export function createCsiClient(socketPath: string, protoPath?: string): CsiClient {
  const services = loadCsiServices(protoPath);
  const clients: grpc.Client[] = [];
  const wrap = (definition: grpc.ServiceDefinition): Record<string, CsiCall> => {
    const Ctor = grpc.makeGenericClientConstructor(definition, 'csi');
    const client = new Ctor(`unix://${socketPath}`, grpc.credentials.createInsecure()) as grpc.Client &
      Record<string, unknown>;
    clients.push(client);
    const calls: Record<string, CsiCall> = {};
    for (const method of Object.keys(definition)) {
      calls[method] = (request) =>
        new Promise((resolve, reject) => {
          const fn = client[method] as (
            req: object,
            cb: (err: grpc.ServiceError | null, res: Record<string, unknown>) => void,
          ) => void;
          fn.call(client, request, (err, res) => (err ? reject(err) : resolve(res)));
        });
    }
    return calls;
  };
  return {
    identity: wrap(services.Identity),
    controller: wrap(services.Controller),
    node: wrap(services.Node),
    close: () => clients.forEach((c) => c.close()),
  };
}

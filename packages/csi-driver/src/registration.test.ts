/** The kubelet's side of plugin registration, played by a gRPC client on the registration socket. */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import winston from 'winston';
import { PACKAGE_DIR, loadRegistrationService } from './proto';
import { serveRegistration, type RunningRegistration } from './registration';

let dir: string;
let running: RunningRegistration | undefined;
let kubelet: grpc.Client & Record<string, unknown>;

beforeAll(() => {
  execFileSync('bash', [join(PACKAGE_DIR, 'scripts/fetch-proto.sh')], { stdio: 'inherit' });
});

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'csi-reg-'));
});

afterEach(async () => {
  kubelet?.close();
  await running?.close();
  rmSync(dir, { recursive: true, force: true });
});

function call(method: string, request: object): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const fn = kubelet[method] as (
      req: object,
      cb: (err: grpc.ServiceError | null, res: Record<string, unknown>) => void,
    ) => void;
    fn.call(kubelet, request, (err, res) => (err ? reject(err) : resolve(res)));
  });
}

async function start(): Promise<RunningRegistration> {
  running = await serveRegistration({
    registryDir: dir,
    csiEndpoint: '/var/lib/kubelet/plugins/flocker.clusterhq.io/csi.sock',
    logger: winston.createLogger({ silent: true }),
  });
  const Ctor = grpc.makeGenericClientConstructor(loadRegistrationService(), 'Registration');
  kubelet = new Ctor(`unix://${running.socketPath}`, grpc.credentials.createInsecure());
  return running;
}

describe('kubelet plugin registration (pluginregistration.v1)', () => {
  it('serves <registry>/flocker.clusterhq.io-reg.sock: GetInfo names a CSI plugin, its endpoint and CSI 1.x; the verdict is reported', async () => {
    const r = await start();
    expect(r.socketPath).toBe(join(dir, 'flocker.clusterhq.io-reg.sock'));
    expect(await call('GetInfo', {})).toEqual({
      type: 'CSIPlugin',
      name: 'flocker.clusterhq.io',
      endpoint: '/var/lib/kubelet/plugins/flocker.clusterhq.io/csi.sock',
      supported_versions: ['1.0.0'],
    });
    expect(await call('NotifyRegistrationStatus', { plugin_registered: true })).toEqual({});
    await expect(r.status).resolves.toEqual({ registered: true, error: '' });
  });

  it("a refusal is reported with the kubelet's error; closing removes the socket (the kubelet deregisters)", async () => {
    const r = await start();
    await call('NotifyRegistrationStatus', { plugin_registered: false, error: 'version 0.3 not supported' });
    await expect(r.status).resolves.toEqual({ registered: false, error: 'version 0.3 not supported' });
    await r.close();
    running = undefined;
    expect(existsSync(join(dir, 'flocker.clusterhq.io-reg.sock'))).toBe(false);
  });
});

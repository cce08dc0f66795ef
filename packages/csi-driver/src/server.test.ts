/** serveCsi's socket: a live plugin's is never taken over (review FRK-4); a stale one (its process killed) is. */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import winston from 'winston';
import type { ControlClient } from './CsiDriver';
import { createCsiClient } from './client';
import { quietDriver } from './csiTestSupport';
import { PACKAGE_DIR } from './proto';
import { serveCsi, type RunningCsiServer } from './server';

const ME = '11111111-1111-4111-8111-111111111111';
const quiet = winston.createLogger({ silent: true });
let dir: string;
const running: RunningCsiServer[] = [];

beforeAll(() => {
  execFileSync('bash', [join(PACKAGE_DIR, 'scripts/fetch-proto.sh')], { stdio: 'inherit' });
});

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'csi-serve-'));
});

afterEach(async () => {
  for (const r of running.splice(0)) await r.close();
  rmSync(dir, { recursive: true, force: true });
});

function unusedClient(): ControlClient {
  const unused = (): Promise<never> => Promise.reject(new Error('unused'));
  return {
    version: unused,
    listDatasets: unused,
    createDataset: unused,
    updateDataset: unused,
    deleteDataset: unused,
    listLeases: unused,
    acquireLease: unused,
    releaseLease: unused,
    waitForCluster: unused,
    createSnapshot: unused,
    deleteSnapshot: unused,
  };
}

async function serve(socket: string): Promise<RunningCsiServer> {
  const r = await serveCsi(quietDriver(unusedClient(), ME, [], { mode: 'node' }), socket, quiet);
  running.push(r);
  return r;
}

async function pluginName(socket: string): Promise<unknown> {
  const c = createCsiClient(socket);
  try {
    return (await c.identity.GetPluginInfo!({})).name;
  } finally {
    c.close();
  }
}

describe('serveCsi', () => {
  it('refuses a socket another process serves, and that one keeps serving', async () => {
    const socket = join(dir, 'csi.sock');
    await serve(socket);
    await expect(serve(`unix://${socket}`)).rejects.toThrow(/is served by another process .*one node plugin per node/);
    expect(await pluginName(socket)).toBe('flocker.clusterhq.io');
  });

  it('takes over the socket of a plugin killed with SIGKILL, and a leftover file', async () => {
    const socket = join(dir, 'csi.sock');
    const child = spawn(process.execPath, [
      '-e',
      `require('node:net').createServer().listen(${JSON.stringify(socket)}, () => console.log('up'))`,
    ]);
    await new Promise<void>((res) => child.stdout.once('data', () => res()));
    const exited = new Promise((res) => child.once('exit', res));
    child.kill('SIGKILL');
    await exited;
    expect(existsSync(socket)).toBe(true);
    await serve(socket);
    expect(await pluginName(socket)).toBe('flocker.clusterhq.io');

    const file = join(dir, 'other.sock');
    writeFileSync(file, '');
    await serve(file);
    expect(await pluginName(file)).toBe('flocker.clusterhq.io');
  });
});

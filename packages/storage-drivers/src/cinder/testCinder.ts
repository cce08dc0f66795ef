/**
 * Test helper: a private real Cinder (and Keystone) from scripts/cinder.sh in a
 * temporary state directory on free ports, so concurrent test runs never stop
 * each other's. Import only from tests.
 */
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';

const SCRIPT = path.resolve(__dirname, '../../../../scripts/cinder.sh');
const PREFIX = 'flocker-cinder-';
const run = promisify(execFile);

/**
 * Driver deps for tests against the test Cinder: the driver's polls back off to 2 s (4 s looking for a lost create),
 * made for a loaded production Cinder; a test then waits up to that long past each state change on a local Cinder
 * that has usually changed state within a few hundred ms. Capping each pause at QUICK_POLL_MS keeps every deadline
 * (those are on the clock, not counted in pauses) and only asks more often. Not for tests of retry or poll timing.
 */
export const QUICK_POLL_MS = 200;
export const quickPolls = {
  sleep: (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, Math.min(ms, QUICK_POLL_MS))),
} as const;

export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  if (address === null || typeof address === 'string') throw new Error('could not find a free port');
  return address.port;
}

export interface TestCinder {
  /** Cinder's …/v3 URL (without project id). */
  readonly url: string;
  /** Keystone's …/v3 URL when started with auth keystone. */
  readonly keystoneUrl: string | undefined;
  /** Runs a cinder.sh command against this instance. */
  readonly sh: (cmd: string) => Promise<string>;
  /** Stops everything and removes the state (mounts, loop devices, files). */
  readonly purge: () => Promise<void>;
}

async function alive(pidFile: string): Promise<boolean> {
  const pid = Number((await fs.readFile(pidFile, 'utf8').catch(() => '')).trim());
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Purges state directories of earlier runs that were killed before their
 * clean-up (no live process, older than ten minutes): their bind mounts and
 * loop devices would otherwise stay forever.
 */
async function sweepStale(): Promise<void> {
  const tmp = os.tmpdir();
  for (const name of await fs.readdir(tmp).catch(() => [])) {
    if (!name.startsWith(PREFIX)) continue;
    const dir = path.join(tmp, name);
    const stat = await fs.stat(dir).catch(() => null);
    if (stat === null || !stat.isDirectory() || Date.now() - stat.mtimeMs < 10 * 60 * 1000) continue;
    if ((await alive(path.join(dir, 'cinder.pid'))) || (await alive(path.join(dir, 'keystone', 'keystone.pid'))))
      continue;
    await run(SCRIPT, ['purge'], { env: { ...process.env, CINDER_STATE: dir } }).catch(() => undefined);
  }
}

export async function startTestCinder(auth: 'noauth' | 'keystone' = 'noauth'): Promise<TestCinder> {
  await sweepStale();
  const state = await fs.mkdtemp(path.join(os.tmpdir(), PREFIX));
  const port = await freePort();
  // freePort() may hand the port it just freed out again: Cinder and Keystone must not be given one port (as 9867d82).
  let kport = await freePort();
  while (kport === port) kport = await freePort();
  const env = {
    ...process.env,
    CINDER_STATE: state,
    CINDER_PORT: String(port),
    KEYSTONE_PORT: String(kport),
    CINDER_AUTH: auth,
  };
  const sh = async (cmd: string) =>
    (await run(SCRIPT, [cmd], { env, maxBuffer: 16 * 1024 * 1024, timeout: 14 * 60 * 1000 })).stdout.trim();
  try {
    const url = (await sh('start')).split('\n').pop() ?? '';
    return {
      url,
      keystoneUrl: auth === 'keystone' ? `http://127.0.0.1:${kport}/v3` : undefined,
      sh,
      purge: async () => void (await sh('purge')),
    };
  } catch (e) {
    await sh('purge').catch(() => undefined);
    throw e;
  }
}

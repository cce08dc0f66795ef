/**
 * Acknowledged means durable on a full disk (issue 17, item 1), with real processes
 * and a real full file system: the control service keeps its data directory and its
 * log file on a small tmpfs, which `dd` fills. Sequential creates then answer 201 or
 * 503 with a JSON description, never a refused connection; after kill -9, freeing the
 * space and a restart, every create answered 201 is there and no refused one is.
 * Needs root (mount).
 */
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const REPO_ROOT = path.resolve(__dirname, '../..');
/** Where the code under test is built (another checkout, to run these tests against an older version). */
const CODE_ROOT = process.env['FLOCKER_CODE_ROOT'] ?? REPO_ROOT;
const CONTROL_MAIN = path.join(CODE_ROOT, 'packages/control-api/dist/main.js');
const NODE = randomUUID();
const TMPFS_MB = 16;

interface Running {
  child: ChildProcess;
  url: string;
  exited: Promise<string>;
}

function start(dataDir: string, logFile: string): Promise<Running> {
  const log = fs.openSync(logFile, 'a');
  // stdout (the "listening" line) to us; the JSON log (stderr) to a file on the full disk, as `./dev up` does.
  const child = spawn(
    process.execPath,
    [
      CONTROL_MAIN,
      '--insecure-http',
      '--host',
      '127.0.0.1',
      '--port',
      '0',
      '--data-dir',
      dataDir,
      '--compact-log-bytes',
      '4096',
      '--log-level',
      'debug',
    ],
    {
      stdio: ['ignore', 'pipe', log],
    },
  );
  fs.closeSync(log);
  const exited = new Promise<string>((resolve) => child.once('exit', (code, signal) => resolve(`${code ?? signal}`)));
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const nl = out.indexOf('\n');
      if (nl >= 0) resolve({ child, url: (JSON.parse(out.slice(0, nl)) as { listening: string }).listening, exited });
    });
    void exited.then((how) =>
      reject(new Error(`flocker-control exited (${how}); log: ${fs.readFileSync(logFile, 'utf8').slice(-2000)}`)),
    );
  });
}

async function killHard(r: Running): Promise<void> {
  r.child.kill('SIGKILL');
  await r.exited;
}

async function json(url: string, method: string, body?: unknown): Promise<{ status: number; body: unknown }> {
  const res = await fetch(url, {
    method,
    ...(body !== undefined ? { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) } : {}),
    signal: AbortSignal.timeout(10_000),
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // not JSON: kept as text, the assertions say so
  }
  return { status: res.status, body: parsed };
}

/** Polls `ok` every 20 ms until it holds (30 s at most). */
async function until(what: string, ok: () => boolean): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Fills the file system with `dd` until it is full (dd fails with ENOSPC). */
function fill(file: string): void {
  const r = spawnSync('dd', ['if=/dev/zero', `of=${file}`, 'bs=64k'], { stdio: ['ignore', 'ignore', 'pipe'] });
  expect(r.stderr.toString()).toMatch(/No space left on device/);
}

describe('control service on a full disk (tmpfs + dd)', () => {
  let base: string;
  let mnt: string;
  let mounted = false;
  let running: Running | undefined;

  beforeAll(() => {
    base = fs.mkdtempSync(path.join(os.tmpdir(), 'flocker-enospc-'));
    mnt = path.join(base, 'disk');
    fs.mkdirSync(mnt);
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${TMPFS_MB}m,mode=0700`, 'tmpfs', mnt]);
    mounted = true;
  });

  afterEach(async () => {
    if (running !== undefined) await killHard(running);
    running = undefined;
    fs.rmSync(path.join(mnt, 'fill'), { force: true });
  });

  afterAll(() => {
    if (mounted) execFileSync('umount', ['-l', mnt]);
    fs.rmSync(base, { recursive: true, force: true });
  });

  it.each([
    ['its log file on the full disk too', true],
    ['its log file elsewhere', false],
  ])(
    'answers 201 only for what it saved, 503 with a description otherwise, stays up, and keeps every 201 across kill -9 (%s)',
    async (_what, logOnFullDisk) => {
      const run = randomUUID().slice(0, 8);
      const dataDir = path.join(mnt, `data-${run}`);
      const logFile = logOnFullDisk ? path.join(mnt, `control-${run}.log`) : path.join(base, `control-${run}.log`);
      running = await start(dataDir, logFile);
      const { url } = running;
      const reported = await json(`${url}/v1/agent/nodes/${NODE}`, 'PUT', {
        uuid: NODE,
        era: `era-${NODE}`,
        host: '127.0.0.1',
        instance_id: NODE,
        backend: 'loopback',
        manifestations: [],
        errors: [],
      });
      expect(reported.status).toBe(200);

      const acknowledged: string[] = [];
      const refused: string[] = [];
      const refusals: unknown[] = [];
      const create = async (i: number): Promise<void> => {
        const id = randomUUID();
        // A connection refused or reset here throws: the test fails, as it must.
        const r = await json(`${url}/v1/configuration/datasets`, 'POST', {
          primary: NODE,
          dataset_id: id,
          metadata: { name: `enospc-${i}`, pad: 'x'.repeat(200) },
        });
        if (r.status === 201) {
          acknowledged.push(id);
          return;
        }
        expect(r.status).toBe(503);
        expect(r.body).toEqual({
          code: expect.stringMatching(/^STORE_(FULL|UNAVAILABLE)$/),
          description: expect.stringMatching(/.{20,}/),
        });
        refused.push(id);
        refusals.push(r.body);
      };

      for (let i = 0; i < 5; i++) await create(i);
      expect(acknowledged).toHaveLength(5);

      fill(path.join(mnt, 'fill'));
      for (let i = 5; i < 45; i++) await create(i);
      // The disk is full: most are refused (a few may still fit in the log's last page).
      expect(refused.length).toBeGreaterThan(30);
      // Still healthy and serving reads; what it lists is exactly what it acknowledged.
      expect((await json(`${url}/v1/version`, 'GET')).status).toBe(200);
      const listed = (await json(`${url}/v1/configuration/datasets`, 'GET')).body as { dataset_id: string }[];
      expect(listed.map((d) => d.dataset_id).sort()).toEqual([...acknowledged].sort());

      // kill -9, free the space, restart: every 201 is there, no refused create is.
      await killHard(running);
      running = undefined;
      fs.rmSync(path.join(mnt, 'fill'));
      running = await start(dataDir, logFile);
      const after = (await json(`${running.url}/v1/configuration/datasets`, 'GET')).body as { dataset_id: string }[];
      const ids = new Set(after.map((d) => d.dataset_id));
      for (const id of acknowledged) expect(ids.has(id)).toBe(true);
      for (const id of refused) expect(ids.has(id)).toBe(false);
      expect(ids.size).toBe(acknowledged.length);

      // The refusals said why.
      expect(refusals.at(-1)).toEqual({ code: 'STORE_FULL', description: expect.stringMatching(/no space left/) });
      // Creates work again, and the log file kept being written once there was room.
      const again = await json(`${running.url}/v1/configuration/datasets`, 'POST', {
        primary: NODE,
        metadata: { name: 'enospc-again' },
      });
      expect(again.status).toBe(201);
      expect(fs.readdirSync(dataDir).filter((f) => f.includes('.tmp'))).toEqual([]);
      await killHard(running);
      running = undefined;
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
    120_000,
  );

  it.each([
    ['dataset agent', 'packages/dataset-agent/dist/logger.js', 'createAgentLogger'],
    ['Docker plugin', 'packages/volume-plugin/dist/startVolumePlugin.js', 'createLogger'],
  ])(
    'the %s keeps running while its log file is on the full disk, and says how many lines it dropped once there is room',
    async (_who, module, factory) => {
      const logFile = path.join(mnt, `${factory}.log`);
      const log = fs.openSync(logFile, 'a');
      const go = path.join(base, `${factory}.go`);
      const full = path.join(base, `${factory}.full`);
      const script = `
      const fs = require('node:fs');
      const logger = require(${JSON.stringify(path.join(CODE_ROOT, module))}).${factory}('debug');
      logger.info('before the disk filled');
      process.send?.(0);
      let i = 0;
      let whileFull = 0;
      const timer = setInterval(() => {
        logger.info('working', { i: i++, pad: 'x'.repeat(300) });
        if (fs.existsSync(${JSON.stringify(full)})) process.send?.(++whileFull);
        if (fs.existsSync(${JSON.stringify(go)})) {
          clearInterval(timer);
          logger.info('after space was freed');
          setTimeout(() => process.exit(42), 20);
        }
      }, 2);
    `;
      // The child tells over IPC that it logs, then how many lines it logged once told the disk is full: the test
      // waits for those rather than sleeping (under load the child's start alone could outlast a fixed sleep: nothing
      // logged on the full disk, nothing dropped).
      const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', log, 'pipe', 'ipc'] });
      fs.closeSync(log);
      let stderr = '';
      child.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
      let whileFull = -1;
      child.on('message', (n) => (whileFull = Number(n)));
      const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
      await until('the child to log', () => whileFull >= 0);
      fill(path.join(mnt, 'fill'));
      fs.writeFileSync(full, '');
      await until('lines logged on the full disk', () => whileFull >= 50);
      fs.rmSync(path.join(mnt, 'fill'));
      fs.writeFileSync(go, '');
      expect(await exited).toBe(42);
      expect(stderr).toBe('');
      const lines = fs
        .readFileSync(logFile, 'utf8')
        .split('\n')
        .filter((l) => l.length > 0);
      const dropped = lines.find((l) => l.includes('log lines dropped'));
      expect(dropped).toBeDefined();
      expect(JSON.parse(dropped ?? '{}')).toMatchObject({
        level: 'warn',
        error: 'ENOSPC',
        dropped: expect.any(Number),
      });
      expect(JSON.parse(lines.at(-1) ?? '{}')).toMatchObject({ message: 'after space was freed' });
      fs.rmSync(logFile);
    },
    60_000,
  );
});

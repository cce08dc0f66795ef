/**
 * TLS to etcd: real flocker-control processes (--store etcd --etcd-ca/--etcd-cert/--etcd-key)
 * and `flocker-control migrate-store` against a 3-member etcd cluster on loopback that serves
 * clients over https only and demands a client certificate (EtcdTestCluster `tls: true`).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { createInterface } from 'node:readline';
import { z } from 'zod';
import { FlockerClient } from '@flocker/api';
import { encodeConfiguration, FileConfigurationStore } from '../ConfigurationStore';
import { type EtcdTestPki, EtcdTestCluster } from '../testing/etcdCluster';
import { seedFileStore } from '../testing/seedFileStore';
import { emptyNodeReport } from '../testing/controlProcess';

jest.setTimeout(60_000);
const MAIN = path.resolve(__dirname, '../main.js');
const A = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';

const Listening = z.object({ listening: z.string(), port: z.number() });
const StartFailure = z.object({ level: z.literal('error'), code: z.string(), error: z.string() });
const Migrated = z.object({ migrated: z.literal(true), datasets: z.number(), leases: z.number(), nodes: z.number() });

const report = emptyNodeReport;

let etcd: EtcdTestCluster;
let pki: EtcdTestPki;
let prefix: string;
const running: ChildProcess[] = [];

beforeAll(async () => {
  etcd = await EtcdTestCluster.start(3, { tls: true });
  if (etcd.pki === undefined) throw new Error('the TLS test cluster has no certificates');
  pki = etcd.pki;
});
afterAll(async () => {
  await etcd?.stop();
});
beforeEach(() => {
  prefix = `/t-${randomUUID()}`;
});
afterEach(async () => {
  await Promise.all(
    running.splice(0).map(async (p) => {
      if (p.exitCode !== null || p.signalCode !== null) return;
      const gone = new Promise<void>((resolve) => p.once('exit', () => resolve()));
      p.kill('SIGKILL');
      await gone;
    }),
  );
});

/** The client's certificate flags for etcd. */
function goodTls(): string[] {
  return ['--etcd-ca', pki.ca, '--etcd-cert', pki.cert, '--etcd-key', pki.key];
}

function controlArgs(tls: string[], endpoints = etcd.endpoints): string[] {
  return [
    '--insecure-http',
    '--host',
    '127.0.0.1',
    '--port',
    '0',
    '--log-level',
    'error',
    '--store',
    'etcd',
    '--etcd-endpoints',
    endpoints.join(','),
    '--etcd-prefix',
    prefix,
    '--etcd-timeout',
    '2',
    ...tls,
  ];
}

/** Starts a flocker-control replica and resolves with its URL once it listens. */
async function replica(tls: string[]): Promise<string> {
  const proc = spawn(process.execPath, [MAIN, ...controlArgs(tls)], { stdio: ['ignore', 'pipe', 'pipe'] });
  running.push(proc);
  let stderr = '';
  proc.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const lines = createInterface({ input: proc.stdout as NodeJS.ReadableStream });
  return new Promise<string>((resolve, reject) => {
    proc.once('exit', (code) => reject(new Error(`flocker-control exited with ${String(code)}: ${stderr}`)));
    lines.once('line', (line) => resolve(Listening.parse(JSON.parse(line)).listening));
  });
}

interface Exit {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs flocker-control (or a subcommand) to its exit. */
async function runToExit(args: string[]): Promise<Exit> {
  const proc = spawn(process.execPath, [MAIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  running.push(proc);
  let stdout = '';
  let stderr = '';
  proc.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
  proc.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number | null>((resolve) => proc.once('exit', (c) => resolve(c)));
  return { code, stdout, stderr };
}

/** The JSON error line flocker-control prints when it gives up. */
function startFailure(exit: Exit): z.infer<typeof StartFailure> {
  for (const line of exit.stderr.split('\n').reverse()) {
    if (!line.startsWith('{')) continue;
    const parsed = StartFailure.safeParse(JSON.parse(line));
    if (parsed.success) return parsed.data;
  }
  throw new Error(`no error line from flocker-control (exit ${String(exit.code)}):\n${exit.stderr}`);
}

/** flocker-control exited 1 with `code` in its last error line, whose message names each of `says`. */
function expectStartFailure(exit: Exit, code: string, ...says: string[]): void {
  expect(exit.code).toBe(1);
  const failure = startFailure(exit);
  expect(failure.code).toBe(code);
  for (const s of says) expect(failure.error).toContain(s);
}

async function eventually(check: () => Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

it('two replicas with the CA and a client certificate: a dataset created through one is read through the other and wakes its long-poll', async () => {
  const [url1, url2] = await Promise.all([replica(goodTls()), replica(goodTls())]);
  const one = new FlockerClient({ baseUrl: url1, timeoutMs: 10_000 });
  const two = new FlockerClient({ baseUrl: url2, timeoutMs: 10_000 });
  await one.reportNodeState(report(A));
  await eventually(async () => (await two.listNodes()).some((n) => n.uuid === A));
  const snap = await two.waitForCluster(undefined, 0);
  const waiting = two.waitForCluster(snap.generation, 20_000);
  await new Promise((r) => setTimeout(r, 100));
  const started = Date.now();
  const created = await one.createDataset({ primary: A, maximum_size: 67108864, metadata: { name: 'over-tls' } });
  const woke = await waiting;
  // Woken by the change over etcd's watch, not at the long-poll's 20 s end (2 s is tight on a loaded host).
  expect(Date.now() - started).toBeLessThan(5000);
  expect(woke.datasets.map((d) => d.dataset_id)).toContain(created.dataset_id);
  expect((await two.listDatasets()).map((d) => d.dataset_id)).toEqual([created.dataset_id]);
  // And the other way round.
  await two.updateDataset(created.dataset_id, { maximum_size: 2 * 67108864 });
  await eventually(async () => (await one.listDatasets())[0]?.maximum_size === 2 * 67108864);
});

it('a CA that did not issue the members certificates: exits 1 with STORE_TLS_REJECTED naming --etcd-ca', async () => {
  const exit = await runToExit(controlArgs(['--etcd-ca', pki.otherCa, '--etcd-cert', pki.cert, '--etcd-key', pki.key]));
  expectStartFailure(exit, 'STORE_TLS_REJECTED', 'certificate is not trusted', '--etcd-ca');
});

it('no client certificate, or one issued by another CA: exits 1 with STORE_TLS_REJECTED naming --etcd-cert', async () => {
  const [none, foreign] = await Promise.all([
    runToExit(controlArgs(['--etcd-ca', pki.ca])),
    runToExit(controlArgs(['--etcd-ca', pki.ca, '--etcd-cert', pki.otherCert, '--etcd-key', pki.otherKey])),
  ]);
  for (const exit of [none, foreign]) {
    expectStartFailure(exit, 'STORE_TLS_REJECTED', 'refused the client certificate', '--etcd-cert');
  }
});

it('inconsistent TLS flags are refused before etcd is dialled, and plain http to TLS members fails', async () => {
  const httpEndpoints = etcd.endpoints.map((e) => e.replace('https://', 'http://'));
  const [httpWithCa, certWithoutKey, plain] = await Promise.all([
    runToExit(controlArgs(goodTls(), httpEndpoints)),
    runToExit(controlArgs(['--etcd-ca', pki.ca, '--etcd-cert', pki.cert])),
    runToExit(controlArgs([], httpEndpoints)),
  ]);
  expectStartFailure(httpWithCa, 'BAD_ETCD_TLS', 'https://');
  expectStartFailure(certWithoutKey, 'BAD_ETCD_TLS', '--etcd-key');
  expectStartFailure(plain, 'STORE_UNAVAILABLE');
});

it('migrate-store copies a file store to TLS etcd and back; without a client certificate it fails with exit 1', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'flocker-migrate-tls-'));
  const back = mkdtempSync(path.join(tmpdir(), 'flocker-migrate-tls-back-'));
  try {
    const ds = await seedFileStore(dir, A);
    const to = `etcd:${etcd.endpoints.join(',')}`;
    const migrate = (from: string, into: string, tls: string[]) =>
      runToExit(['migrate-store', '--from', from, '--to', into, '--etcd-prefix', prefix, ...tls]);

    const refused = await migrate(`file:${dir}`, to, ['--etcd-ca', pki.ca]);
    expectStartFailure(refused, 'STORE_TLS_REJECTED');

    const done = await migrate(`file:${dir}`, to, goodTls());
    expect(done.code).toBe(0);
    expect(Migrated.parse(JSON.parse(done.stdout.trim()))).toMatchObject({ datasets: 1, leases: 1, nodes: 1 });

    // A replica on TLS etcd serves what was migrated.
    const onEtcd = new FlockerClient({ baseUrl: await replica(goodTls()) });
    expect((await onEtcd.listDatasets()).map((d) => d.dataset_id)).toEqual([ds.dataset_id]);
    expect((await onEtcd.listLeases()).map((l) => l.node_uuid)).toEqual([A]);

    const backAgain = await migrate(to, `file:${back}`, goodTls());
    expect(backAgain.code).toBe(0);
    const original = new FileConfigurationStore(dir);
    const copy = new FileConfigurationStore(back);
    expect(encodeConfiguration(await copy.load())).toBe(encodeConfiguration(await original.load()));
    await copy.close();
    await original.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
    rmSync(back, { recursive: true, force: true });
  }
});

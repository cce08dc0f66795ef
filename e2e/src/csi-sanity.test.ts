/**
 * End to end: csi-sanity (kubernetes-csi/csi-test, built from the Go module proxy, pinned,
 * cached outside the clone) against flocker-csi serving Identity, Controller and Node on one
 * Unix socket, on a real single-node Flocker cluster: the control service (in process) and a
 * dataset agent (spawned) on the loopback backend, real loop devices, ext4 and mounts; the
 * node plugin runs in this test's mount namespace, csi-sanity's dirs under a temp dir.
 */
import { spawn, execFile, execFileSync, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { FlockerClient } from '@flocker/api';
import { startControlService, type ControlService } from '@flocker/control-api';
import { parseMountInfo } from '@flocker/storage-drivers';
import { waitFor } from './cluster/run';
import { removeTree } from './removeTree';

jest.setTimeout(900_000);

const REPO = resolve(__dirname, '../..');
const CSI_PACKAGE = join(REPO, 'packages/csi-driver');
const AGENT_MAIN = join(REPO, 'packages/dataset-agent/dist/main.js');
const CSI_MAIN = join(CSI_PACKAGE, 'dist/main.js');
const MiB = 1024 * 1024;

let dir: string;
let control: ControlService;
const procs: ChildProcess[] = [];

function spawnLogged(name: string, args: string[]): ChildProcess {
  const log = createWriteStream(join(dir, `${name}.log`), { flags: 'a' });
  const proc = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, FLOCKER_LOG_LEVEL: 'debug' } });
  proc.stdout?.pipe(log);
  proc.stderr?.pipe(log);
  procs.push(proc);
  return proc;
}

function logs(): string {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.log'))
    .map((f) => `--- ${f}\n${readFileSync(join(dir, f), 'utf8').split('\n').slice(-20).join('\n')}`)
    .join('\n');
}

function mountsUnder(root: string): string[] {
  return parseMountInfo(readFileSync('/proc/self/mountinfo', 'utf8'))
    .map((m) => m.mountPoint)
    .filter((p) => p.startsWith(root + '/'));
}

interface JunitCounts {
  tests: number;
  failures: number;
  errors: number;
  skipped: number;
  skippedNames: string[];
  failedNames: string[];
}

/** Counts of csi-sanity's JUnit report (ginkgo writes one testsuite). */
function junitCounts(xml: string): JunitCounts {
  const suite = /<testsuite\s[^>]*>/.exec(xml)?.[0] ?? '';
  const attr = (n: string) => Number(new RegExp(`\\s${n}="(\\d+)"`).exec(suite)?.[1] ?? 'NaN');
  const cases = [...xml.matchAll(/<testcase\s+name="([^"]*)"[^>]*?(\/>|>([\s\S]*?)<\/testcase>)/g)];
  const named = (tag: string) => cases.filter((c) => (c[3] ?? '').includes(`<${tag}`)).map((c) => c[1] as string);
  return {
    tests: attr('tests'),
    failures: attr('failures'),
    errors: attr('errors'),
    skipped: attr('skipped'),
    skippedNames: named('skipped'),
    failedNames: [...named('failure'), ...named('error')],
  };
}

beforeAll(async () => {
  // The pinned csi.proto (Go module proxy) and csi-sanity (built once, cached by version).
  execFileSync('bash', [join(CSI_PACKAGE, 'scripts/fetch-proto.sh')], { stdio: 'inherit' });
  const sanity = execFileSync('bash', [join(CSI_PACKAGE, 'scripts/build-csi-sanity.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], timeout: 1_200_000 }).trim();
  dir = mkdtempSync(join(tmpdir(), 'flocker-csi-e2e-'));
  writeFileSync(join(dir, 'sanity-bin'), sanity);
  control = await startControlService({ port: 0, host: '127.0.0.1', dataDir: join(dir, 'control'), nodeTimeoutSeconds: 60, logLevel: 'error' });
  mkdirSync(join(dir, 'a'), { recursive: true });
  writeFileSync(join(dir, 'a', 'era'), 'era-a\n');
  writeFileSync(
    join(dir, 'a.yml'),
    [
      'version: 1',
      `control-service: {hostname: 127.0.0.1, port: ${control.port}}`,
      `dataset: {backend: loopback, root_path: ${join(dir, 'pool')}}`,
      `node: {state_dir: ${join(dir, 'a', 'state')}, mount_root: ${join(dir, 'a', 'mnt')}, era_file: ${join(dir, 'a', 'era')}}`,
      'agent: {resync_interval_seconds: 2, default_dataset_size: 67108864, backoff_initial_seconds: 0.2, backoff_max_seconds: 2}',
      '',
    ].join('\n'),
  );
  spawnLogged('agent', [AGENT_MAIN, '--config', join(dir, 'a.yml')]);
  const client = new FlockerClient({ baseUrl: control.url });
  await waitFor('the agent to report', async () => (await client.listNodes()).length === 1, { timeoutMs: 60_000, context: logs });
  spawnLogged('csi', [
    CSI_MAIN,
    '--endpoint',
    `unix://${join(dir, 'csi.sock')}`,
    '--mode',
    'all',
    '--control-url',
    control.url,
    '--state-dir',
    join(dir, 'a', 'state'),
    '--default-size',
    '64MiB',
    '--stage-timeout',
    '60',
  ]);
  await waitFor('the CSI socket', () => existsSync(join(dir, 'csi.sock')), { timeoutMs: 30_000, context: logs });
});

afterAll(async () => {
  for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  await control?.close();
  if (!dir) return;
  for (const m of mountsUnder(dir).reverse()) execFileSync('umount', ['-l', m]);
  const volumesDir = join(dir, 'pool', 'volumes');
  if (existsSync(volumesDir)) {
    for (const f of readdirSync(volumesDir).filter((f) => f.endsWith('.img'))) {
      const out = execFileSync('losetup', ['-j', join(volumesDir, f)], { encoding: 'utf8' });
      for (const line of out.split('\n').filter((l) => l.includes(':'))) execFileSync('losetup', ['-d', line.split(':')[0]!]);
    }
  }
  if (process.env.FLOCKER_KEEP_CSI_E2E === undefined) removeTree(dir);
});

describe('flocker-csi', () => {
  it('passes csi-sanity against a real single-node Flocker cluster (0 failed; skips are the capabilities it does not offer)', async () => {
    const sanity = readFileSync(join(dir, 'sanity-bin'), 'utf8');
    const junit = join(dir, 'junit.xml');
    const out = await new Promise<{ code: number; output: string }>((res) => {
      execFile(
        sanity,
        [
          `-csi.endpoint=${join(dir, 'csi.sock')}`,
          `-csi.mountdir=${join(dir, 'sanity-target')}`,
          `-csi.stagingdir=${join(dir, 'sanity-staging')}`,
          `-csi.testvolumesize=${64 * MiB}`,
          `-ginkgo.junit-report=${junit}`,
          '-ginkgo.timeout=12m',
        ],
        { maxBuffer: 64 * MiB, timeout: 840_000 },
        (err, stdout, stderr) => res({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, output: stdout + stderr }),
      );
    });
    writeFileSync(join(dir, 'sanity.log'), out.output);
    const counts = junitCounts(readFileSync(junit, 'utf8'));
    const summary = `csi-sanity: ${counts.tests} specs, ${counts.failures} failed, ${counts.errors} errors, ${counts.skipped} skipped\n` +
      `failed: ${counts.failedNames.join(' | ')}\nskipped:\n  ${counts.skippedNames.join('\n  ')}`;
    process.stdout.write(summary + '\n');
    if (counts.failures + counts.errors > 0 || out.code !== 0) {
      throw new Error(`${summary}\n${out.output.split('\n').filter((l) => /\[FAIL\]|Expected|rpc error/.test(l)).slice(0, 60).join('\n')}\n${logs()}`);
    }
    expect(counts.tests).toBeGreaterThan(50);
    // No volume stays mounted by the node plugin under csi-sanity's dirs.
    expect(mountsUnder(join(dir, 'sanity-target'))).toEqual([]);
    expect(mountsUnder(join(dir, 'sanity-staging'))).toEqual([]);
  });
});

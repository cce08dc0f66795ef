/**
 * Review B13 (42875da): scripts/test.sh starts lint, the Python peers' installs and (a full run) a nice'd k8s build in
 * the background; a Ctrl-C or SIGTERM of the run left them running (a lint's eslint, pip installs, a 40-minute
 * build). Runs a copy of the real script in a scratch tree whose steps are stand-ins (each records its pid and its
 * child's and sleeps), with `npx`, `npm` and `id` stand-ins on PATH. No root, no daemons.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const TEST_SH = path.resolve(__dirname, '..', '..', 'scripts', 'test.sh');

let dir: string;
let marks: string;
let run: ChildProcess | undefined;

/** A stand-in step: records its pid and a child's under `name`, then (STALL_<NAME>=1) sleeps, else exits RC_<NAME>. */
function step(name: string): string {
  const v = name.toUpperCase().replace(/[^A-Z0-9]/g, '_');
  return (
    '#!/usr/bin/env bash\n' +
    `echo $$ >"${marks}/${name}.pid"\n` +
    `if [ "\${STALL_${v}:-0}" = 1 ]; then sleep 300 & echo $! >"${marks}/${name}.child"; wait; fi\n` +
    `exit "\${RC_${v}:-0}"\n`
  );
}

function write(rel: string, text: string): void {
  const file = path.join(dir, rel);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, text, { mode: 0o755 });
}

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flocker-test-sh-'));
  marks = path.join(dir, 'marks');
  fs.mkdirSync(marks);
  write('scripts/test.sh', fs.readFileSync(TEST_SH, 'utf8'));
  write('scripts/env.sh', 'FLOCKER_ROOT="$(pwd)"\nflocker_ensure_node() { :; }\nflocker_npm_ci() { :; }\n');
  for (const s of ['host-setup', 'lint', 'moto', 'cinder', 'schemathesis']) write(`scripts/${s}.sh`, step(s));
  write('scripts/k8s/build.sh', step('k8s'));
  write('packages/csi-driver/scripts/fetch-proto.sh', 'exit 0\n');
  // npx tsc -b / npx jest --selectProjects <p> ... --outputFile=<f>: a result file of RC_<P> failed tests.
  write(
    'bin/npx',
    '#!/usr/bin/env bash\n' +
      `if [ "$1" = tsc ]; then exec "${dir}/scripts/tsc-step.sh"; fi\n` +
      'project=$4; out=""; for a in "$@"; do case "$a" in --outputFile=*) out=${a#--outputFile=};; esac; done\n' +
      `bash "${dir}/scripts/jest-$project.sh"; rc=$?\n` +
      'echo "{\\"numPassedTests\\":1,\\"numFailedTests\\":$rc,\\"testResults\\":[]}" >"$out"; exit $rc\n',
  );
  write('scripts/tsc-step.sh', step('tsc'));
  write('scripts/jest-unit.sh', step('unit'));
  write('scripts/jest-e2e.sh', step('e2e'));
  write('bin/npm', '#!/bin/sh\nexit 0\n');
  write('bin/id', '#!/bin/sh\necho 0\n');
});

afterEach(() => {
  // Whatever the script left behind (the defect under test) is not left on the host.
  for (const f of fs.readdirSync(marks)) pidsAlive([f]).forEach((p) => process.kill(p, 'SIGKILL'));
  if (run?.exitCode === null) run.kill('SIGKILL');
  run = undefined;
  fs.rmSync(dir, { recursive: true, force: true });
});

function pidOf(file: string): number | undefined {
  const f = path.join(marks, file);
  return fs.existsSync(f) ? Number(fs.readFileSync(f, 'utf8').trim()) : undefined;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The recorded pids (files of marks/) still running. */
function pidsAlive(files: string[]): number[] {
  return files.flatMap((f) => {
    const p = pidOf(f);
    return p !== undefined && alive(p) ? [p] : [];
  });
}

async function until(what: string, ok: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Starts the copy of test.sh (no arguments: a full run) with `env`; resolves with its exit code or signal. */
function start(env: Record<string, string>): Promise<number | string> {
  const bin = path.join(dir, 'bin');
  const nodeDir = path.dirname(process.execPath);
  run = spawn('bash', [path.join(dir, 'scripts', 'test.sh')], {
    cwd: dir,
    env: { ...process.env, PATH: `${bin}:${nodeDir}:${process.env.PATH ?? ''}`, ...env },
    stdio: 'ignore',
  });
  const child = run;
  return new Promise((resolve) => child.on('exit', (code, signal) => resolve(code ?? signal ?? -1)));
}

const BACKGROUND = ['lint', 'moto', 'cinder', 'schemathesis'].flatMap((s) => [`${s}.pid`, `${s}.child`]);

it('SIGTERM during the build stops lint and the peers installs (their children too); the run fails', async () => {
  const ended = start({ STALL_TSC: '1', STALL_LINT: '1', STALL_MOTO: '1', STALL_CINDER: '1', STALL_SCHEMATHESIS: '1' });
  await until('every background step and the build running', () =>
    [...BACKGROUND, 'tsc.child'].every((f) => pidOf(f) !== undefined),
  );
  run?.kill('SIGTERM');
  expect(await ended).toBe(143);
  await until(
    'the background steps stopped',
    () => pidsAlive([...BACKGROUND, 'tsc.pid', 'tsc.child']).length === 0,
    5000,
  );
});

it('SIGINT (Ctrl-C) during the tests stops the k8s build, the peers and the tests', async () => {
  const ended = start({ STALL_UNIT: '1', STALL_K8S: '1', STALL_MOTO: '1' });
  await until('the unit tests and the k8s build running', () =>
    ['unit.child', 'k8s.child', 'moto.child'].every((f) => pidOf(f) !== undefined),
  );
  run?.kill('SIGINT');
  expect(await ended).toBe(130);
  await until(
    'the k8s build, the peers and the tests stopped',
    () => pidsAlive(['k8s.pid', 'k8s.child', 'moto.pid', 'moto.child', 'unit.pid', 'unit.child']).length === 0,
    5000,
  );
});

it('exit codes as before: clean 0; a lint failure 1 (the peers stopped); failed tests 1 (the k8s build stopped)', async () => {
  expect(await start({})).toBe(0);
  fs.rmSync(marks, { recursive: true });
  fs.mkdirSync(marks);
  expect(await start({ RC_LINT: '1', STALL_MOTO: '1' })).toBe(1);
  expect(pidOf('tsc.pid')).toBeDefined();
  expect(pidOf('unit.pid')).toBeUndefined();
  await until('the peers stopped', () => pidsAlive(['moto.pid', 'moto.child']).length === 0, 5000);
  expect(await start({ RC_UNIT: '1', STALL_K8S: '1' })).toBe(1);
  await until('the k8s build stopped', () => pidsAlive(['k8s.pid', 'k8s.child']).length === 0, 5000);
});

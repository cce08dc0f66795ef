/**
 * Review B13 (42875da), redone after the review of the reverted b0c5ee8 (s27 F2, F3, F4, F15): scripts/test.sh
 * starts lint, the Python peers' installs and (a full run) a nice'd k8s build in the background; a Ctrl-C or SIGTERM
 * of the run left them running. Now INT/TERM stops them with their children, never an apt/dpkg the peers' installs
 * run (F2: a dpkg cut off leaves the machine's packages half-configured); a normal exit never stops the peers (awaited,
 * within a bound after an early failure); the steps stay in the run's process group (F3: a group-wide SIGKILL still
 * ends them all). Runs a copy of the real script in a scratch tree whose steps are stand-ins (each records its pid and
 * start time, and its child's), with `npx`, `npm`, `id`, `apt-get` and `dpkg` stand-ins on PATH. No root, no daemons.
 * A process is known by its pid and its start time (F4: a zombie is not alive, a reused pid is never signalled).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const TEST_SH = path.resolve(__dirname, '..', '..', 'scripts', 'test.sh');

let dir: string;
let marks: string;
let run: ChildProcess | undefined;

/**
 * A stand-in step: records itself (and its child) under `name`; STALL_<NAME>=1: sleeps 300 s, SLEEP_<NAME>=n: sleeps
 * n s; then writes <name>.done and exits RC_<NAME>.
 */
function step(name: string, extra = ''): string {
  const v = name.toUpperCase().replace(/[^A-Z0-9]/g, '_');
  return (
    // bash itself (not through env): the process's name is the script's, as a real apt-get's or dpkg's is.
    '#!/bin/bash\n' +
    `source "${marks}/../record.sh"\n` +
    `record $$ "${marks}/${name}.pid"\n` +
    extra +
    `if [ "\${STALL_${v}:-0}" = 1 ]; then sleep 300 & record $! "${marks}/${name}.child"; wait; fi\n` +
    `if [ -n "\${SLEEP_${v}:-}" ]; then sleep "\${SLEEP_${v}}"; fi\n` +
    `touch "${marks}/${name}.done"\n` +
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
  // record PID FILE: "<pid> <start time>" (field 22 of /proc/PID/stat; fields counted after the ") " ending comm).
  write(
    'record.sh',
    'record() { local s f; s="$(cat "/proc/$1/stat")"; s="${s##*) }"; read -ra f <<<"$s"; echo "$1 ${f[19]}" >"$2"; }\n',
  );
  write('scripts/test.sh', fs.readFileSync(TEST_SH, 'utf8'));
  write('scripts/env.sh', 'FLOCKER_ROOT="$(pwd)"\nflocker_ensure_node() { :; }\nflocker_npm_ci() { :; }\n');
  for (const s of ['host-setup', 'lint', 'moto', 'schemathesis']) write(`scripts/${s}.sh`, step(s));
  // The Cinder install runs apt-get (APT=1), as cinder.sh's apt_install does on a machine missing packages.
  write('scripts/cinder.sh', step('cinder', 'if [ "${APT:-0}" = 1 ]; then apt-get install -y x; fi\n'));
  // apt-get runs dpkg, which takes SLEEP_DPKG seconds (default 3) and records that it finished.
  write('bin/apt-get', step('apt-get', 'dpkg --configure x\n'));
  write('bin/dpkg', step('dpkg', 'sleep "${SLEEP_DPKG:-3}"\n'));
  write('scripts/k8s/build.sh', step('k8s'));
  write('packages/csi-driver/scripts/fetch-proto.sh', 'exit 0\n');
  // npx tsc -b / npx jest --selectProjects <p> ... --outputFile=<f>: a result file of RC_<P> failed tests. A lane
  // (--shard=<i>/<n>) runs jest-<p>-<i>.sh; each jest's arguments are appended to marks/jest-args.
  write(
    'bin/npx',
    '#!/usr/bin/env bash\n' +
      `if [ "$1" = tsc ]; then exec "${dir}/scripts/tsc-step.sh"; fi\n` +
      `echo "$*" >>"${marks}/jest-args"\n` +
      'project=$4; out=""; for a in "$@"; do case "$a" in --outputFile=*) out=${a#--outputFile=};;\n' +
      '  --shard=*) s=${a#--shard=}; project="$project-${s%/*}";; esac; done\n' +
      `bash "${dir}/scripts/jest-$project.sh"; rc=$?\n` +
      'echo "{\\"numPassedTests\\":1,\\"numFailedTests\\":$rc,\\"testResults\\":[]}" >"$out"; exit $rc\n',
  );
  write('scripts/tsc-step.sh', step('tsc'));
  write('scripts/jest-unit.sh', step('unit'));
  write('scripts/jest-e2e.sh', step('e2e'));
  for (const lane of ['e2e-1', 'e2e-2']) write(`scripts/jest-${lane}.sh`, step(lane));
  write('bin/npm', '#!/bin/sh\nexit 0\n');
  write('bin/id', '#!/bin/sh\necho 0\n');
});

afterEach(() => {
  // Whatever is still running of this test's processes (known by pid and start time) is not left on the host.
  for (const f of fs.readdirSync(marks)) if (!f.endsWith('.done')) for (const p of running([f])) kill(p, 'SIGKILL');
  if (run?.exitCode === null && run.signalCode === null) run.kill('SIGKILL');
  run = undefined;
  fs.rmSync(dir, { recursive: true, force: true });
});

/** The recorded process of `file`: pid and start time. */
function recorded(file: string): { pid: number; start: string } | undefined {
  const f = path.join(marks, file);
  if (!fs.existsSync(f)) return undefined;
  const [pid, start] = fs.readFileSync(f, 'utf8').trim().split(' ');
  return pid !== undefined && start !== undefined ? { pid: Number(pid), start } : undefined;
}

/** Still the process recorded (same start time) and not a zombie. */
function stillRuns(p: { pid: number; start: string }): boolean {
  let stat: string;
  try {
    stat = fs.readFileSync(`/proc/${p.pid}/stat`, 'utf8');
  } catch {
    return false;
  }
  const f = stat.slice(stat.lastIndexOf(') ') + 2).split(' ');
  return f[0] !== 'Z' && f[19] === p.start;
}

function kill(p: { pid: number; start: string }, signal: NodeJS.Signals): void {
  try {
    if (stillRuns(p)) process.kill(p.pid, signal);
  } catch {
    // ended meanwhile
  }
}

/** The recorded processes (files of marks/) still running. */
function running(files: string[]): { pid: number; start: string }[] {
  return files.flatMap((f) => {
    const p = recorded(f);
    return p !== undefined && stillRuns(p) ? [p] : [];
  });
}

const done = (name: string): boolean => fs.existsSync(path.join(marks, `${name}.done`));

async function until(what: string, ok: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Starts the copy of test.sh with `env` and `args` (none: a full run), as the leader of its own process group (as a
 * shell's job or a CI runner's step); resolves with its exit code or signal.
 */
function start(env: Record<string, string>, args: string[] = []): Promise<number | string> {
  const bin = path.join(dir, 'bin');
  const nodeDir = path.dirname(process.execPath);
  run = spawn('bash', [path.join(dir, 'scripts', 'test.sh'), ...args], {
    cwd: dir,
    env: { ...process.env, PATH: `${bin}:${nodeDir}:${process.env.PATH ?? ''}`, ...env },
    stdio: 'ignore',
    detached: true,
  });
  const child = run;
  return new Promise((resolve) => child.on('exit', (code, signal) => resolve(code ?? signal ?? -1)));
}

const pidAndChild = (names: string[]): string[] => names.flatMap((s) => [`${s}.pid`, `${s}.child`]);

it('SIGTERM during the build stops lint, the build and the peers (their children too), never the apt-get/dpkg of an install; 143', async () => {
  const ended = start({
    STALL_TSC: '1',
    STALL_LINT: '1',
    STALL_MOTO: '1',
    STALL_CINDER: '1',
    STALL_SCHEMATHESIS: '1',
    APT: '1',
  });
  await until('every background step, the build and the apt-get/dpkg running', () =>
    [...pidAndChild(['lint', 'moto', 'schemathesis', 'tsc']), 'cinder.pid', 'apt-get.pid', 'dpkg.pid'].every(
      (f) => recorded(f) !== undefined,
    ),
  );
  run?.kill('SIGTERM');
  expect(await ended).toBe(143);
  expect(running(pidAndChild(['lint', 'moto', 'schemathesis', 'tsc']).concat('cinder.pid'))).toEqual([]);
  // The install's apt-get and its dpkg were left to finish.
  expect(done('dpkg')).toBe(false);
  await until('dpkg and apt-get finished by themselves', () => done('dpkg') && done('apt-get'), 10_000);
});

it('SIGINT (Ctrl-C) during the tests stops the k8s build, the peers and the tests; 130', async () => {
  const ended = start({ STALL_UNIT: '1', STALL_K8S: '1', STALL_MOTO: '1' });
  await until('the unit tests and the k8s build running', () =>
    ['unit.child', 'k8s.child', 'moto.child'].every((f) => recorded(f) !== undefined),
  );
  run?.kill('SIGINT');
  expect(await ended).toBe(130);
  expect(running(pidAndChild(['k8s', 'moto', 'unit']))).toEqual([]);
});

it('a SIGKILL of the run’s process group (timeout -k, a runner’s cancel) ends every step', async () => {
  const ended = start({ STALL_UNIT: '1', STALL_K8S: '1', STALL_MOTO: '1', STALL_SCHEMATHESIS: '1' });
  await until('the unit tests, the k8s build and the peers running', () =>
    pidAndChild(['unit', 'k8s', 'moto', 'schemathesis']).every((f) => recorded(f) !== undefined),
  );
  process.kill(-(run?.pid ?? 0), 'SIGKILL');
  expect(await ended).toBe('SIGKILL');
  await until(
    'every step ended',
    () => running(pidAndChild(['unit', 'k8s', 'moto', 'schemathesis'])).length === 0,
    5000,
  );
});

it('exit codes as before: clean 0; failed tests 1 (the k8s build stopped); a lint failure 1, the peers never stopped (awaited within the bound)', async () => {
  expect(await start({})).toBe(0);
  expect(await start({ RC_UNIT: '1', STALL_K8S: '1' })).toBe(1);
  expect(running(pidAndChild(['k8s']))).toEqual([]);
  fs.rmSync(marks, { recursive: true });
  fs.mkdirSync(marks);
  // Peers that end within the bound: the run waits for them.
  expect(await start({ RC_LINT: '1', SLEEP_MOTO: '2' })).toBe(1);
  expect(recorded('tsc.pid')).toBeDefined();
  expect(recorded('unit.pid')).toBeUndefined();
  expect(done('moto')).toBe(true);
  // Past the bound: the run ends, the peers' installs finish in the background (not signalled).
  fs.rmSync(marks, { recursive: true });
  fs.mkdirSync(marks);
  expect(await start({ RC_LINT: '1', STALL_MOTO: '1', FLOCKER_PEERS_WAIT_S: '1' })).toBe(1);
  expect(running(['moto.pid', 'moto.child'])).toHaveLength(2);
});

it('a full run runs the e2e in two lanes at once (--shard=1/2 and 2/2, each --runInBand, each its own results); a failed lane fails the run; FLOCKER_E2E_LANES=1 and chosen tests: one lane', async () => {
  const jestArgs = (): string[] => fs.readFileSync(path.join(marks, 'jest-args'), 'utf8').trim().split('\n');
  const ended = start({ SLEEP_E2E_1: '2', SLEEP_E2E_2: '2' });
  await until('both lanes running', () => recorded('e2e-1.pid') !== undefined && recorded('e2e-2.pid') !== undefined);
  expect(done('e2e-1') || done('e2e-2')).toBe(false);
  expect(await ended).toBe(0);
  const lanes = jestArgs().filter((a) => a.includes('--selectProjects e2e'));
  expect(lanes.map((a) => a.match(/--shard=\S+/)?.[0]).sort()).toEqual(['--shard=1/2', '--shard=2/2']);
  expect(lanes.every((a) => a.includes('--runInBand'))).toBe(true);
  expect(new Set(lanes.map((a) => a.match(/--outputFile=\S+/)?.[0])).size).toBe(2);
  expect(await start({ RC_E2E_2: '1' })).toBe(1);
  fs.rmSync(marks, { recursive: true });
  fs.mkdirSync(marks);
  expect(await start({ FLOCKER_E2E_LANES: '1' })).toBe(0);
  expect(jestArgs().filter((a) => a.includes('--shard'))).toEqual([]);
  expect(done('e2e')).toBe(true);
  fs.rmSync(marks, { recursive: true });
  fs.mkdirSync(marks);
  expect(await start({}, ['e2e/dist/x.test.js'])).toBe(0);
  expect(jestArgs().filter((a) => a.includes('--selectProjects e2e'))).toEqual([
    expect.stringMatching(/--runInBand .*e2e\/dist\/x\.test\.js$/),
  ]);
  expect(jestArgs().some((a) => a.includes('--shard'))).toBe(false);
});

/**
 * s23 USER-T F6: `./dev up` (and scripts/test.sh, bench.sh, lint.sh) ran `npm ci` whenever package-lock.json was newer
 * (mtime) than node_modules/.package-lock.json: after a fresh clone or a checkout that rewrote an unchanged lock file,
 * a minute of `npm ci` for nothing. scripts/env.sh's flocker_npm_ci decides by the lock file's content (a hash recorded
 * after a successful npm ci), still running it when the dependencies changed. Runs the real functions in bash, with a
 * stand-in `npm` on PATH that records its calls and installs as `npm ci` does (node_modules replaced, npm's hidden
 * lockfile written). No root, no daemons.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const ENV_SH = path.resolve(__dirname, '..', '..', 'scripts', 'env.sh');

let dir: string;
let calls: string;
let bin: string;

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flocker-npm-ci-'));
  calls = path.join(dir, 'npm-calls');
  bin = path.join(dir, 'bin');
  fs.mkdirSync(bin);
  fs.mkdirSync(path.join(dir, 'checkout'));
  // npm ci: node_modules removed (KEEP_MODULES=1: left) and installed again, npm's hidden lockfile written last;
  // FAIL_NPM=1 fails midway.
  fs.writeFileSync(
    path.join(bin, 'npm'),
    `#!/bin/sh\necho "$*" >>"${calls}"\n[ "\${KEEP_MODULES:-0}" = 1 ] || rm -rf node_modules; mkdir -p node_modules\n` +
      '[ "${FAIL_NPM:-0}" = 1 ] && exit 1\ncp package-lock.json node_modules/.package-lock.json\n',
    { mode: 0o755 },
  );
  writeLock('{"packages":{"node_modules/a":{"version":"1.0.0"}}}');
});

afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

const checkout = () => path.join(dir, 'checkout');

/** The lock file as a checkout writes it: new content or the same, with a new mtime either way. */
function writeLock(content: string, mtime = new Date()): void {
  const lock = path.join(checkout(), 'package-lock.json');
  fs.writeFileSync(lock, content);
  fs.utimesSync(lock, mtime, mtime);
}

/** Runs `flocker_npm_ci <checkout> --no-fund` as the scripts do; answers how many times npm ran in all so far. */
function npmCi(env: Record<string, string> = {}): { ok: boolean; npmRuns: number } {
  let ok = true;
  try {
    execFileSync('bash', ['-c', `set -euo pipefail; source "$0"; flocker_npm_ci "$1" --no-fund`, ENV_SH, checkout()], {
      env: { ...process.env, PATH: `${bin}:${process.env.PATH ?? ''}`, ...env },
      stdio: 'ignore',
    });
  } catch {
    ok = false;
  }
  const runs = fs.existsSync(calls) ? fs.readFileSync(calls, 'utf8').trim().split('\n') : [];
  for (const r of runs) expect(r).toBe('ci --no-fund');
  return { ok, npmRuns: runs.length };
}

/** flocker_npm_ci_needed alone (exit status 0: npm ci must run). */
function needed(): boolean {
  try {
    execFileSync('bash', ['-c', 'source "$0"; flocker_npm_ci_needed "$1"', ENV_SH, checkout()], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const later = (s: number) => new Date(Date.now() + s * 1000);

it('a checkout that rewrites an unchanged lock file (newer mtime) runs no npm ci', () => {
  expect(npmCi()).toEqual({ ok: true, npmRuns: 1 }); // nothing installed yet
  writeLock('{"packages":{"node_modules/a":{"version":"1.0.0"}}}', later(60));
  expect(needed()).toBe(false);
  expect(npmCi()).toEqual({ ok: true, npmRuns: 1 });
});

it('a lock file whose content changed (the dependencies) runs npm ci, once', () => {
  expect(npmCi()).toEqual({ ok: true, npmRuns: 1 });
  // Even with an older mtime than what is installed (a checkout of an older commit).
  writeLock('{"packages":{"node_modules/a":{"version":"2.0.0"}}}', new Date(Date.now() - 3600_000));
  expect(needed()).toBe(true);
  expect(npmCi()).toEqual({ ok: true, npmRuns: 2 });
  expect(npmCi()).toEqual({ ok: true, npmRuns: 2 });
});

it('a failed npm ci records nothing: the next run tries again', () => {
  expect(npmCi({ FAIL_NPM: '1' })).toEqual({ ok: false, npmRuns: 1 });
  expect(needed()).toBe(true);
  expect(npmCi()).toEqual({ ok: true, npmRuns: 2 });
  expect(npmCi()).toEqual({ ok: true, npmRuns: 2 });
});

it("a node_modules from before the record is judged by npm's own lockfile's age, then recorded", () => {
  const modules = path.join(checkout(), 'node_modules');
  fs.mkdirSync(modules);
  const hidden = path.join(modules, '.package-lock.json');
  fs.writeFileSync(hidden, '{}');
  fs.utimesSync(hidden, later(10), later(10));
  expect(needed()).toBe(false);
  expect(npmCi()).toEqual({ ok: true, npmRuns: 0 });
  expect(fs.existsSync(path.join(modules, '.flocker-lock.sha256'))).toBe(true);
  // Recorded: from now on by content.
  writeLock('{"packages":{"node_modules/a":{"version":"1.0.0"}}}', later(60));
  expect(npmCi()).toEqual({ ok: true, npmRuns: 0 });
  // Without the record and older than the lock file: npm ci, as before.
  fs.rmSync(path.join(modules, '.flocker-lock.sha256'));
  expect(needed()).toBe(true);
  expect(npmCi()).toEqual({ ok: true, npmRuns: 1 });
});

it("the record is a file of this checkout's own, never one hard-linked from another (cp -al)", () => {
  expect(npmCi()).toEqual({ ok: true, npmRuns: 1 });
  const record = path.join(checkout(), 'node_modules', '.flocker-lock.sha256');
  const other = path.join(dir, 'other-record');
  fs.rmSync(record);
  fs.writeFileSync(other, 'another checkout\n');
  fs.linkSync(other, record);
  // Its record says another lock file: npm ci (here one that leaves node_modules' files), and the other checkout's
  // record is intact.
  expect(npmCi({ KEEP_MODULES: '1' })).toEqual({ ok: true, npmRuns: 2 });
  expect(fs.readFileSync(other, 'utf8')).toBe('another checkout\n');
  expect(fs.statSync(record).nlink).toBe(1);
});

#!/usr/bin/env bash
# The one command that runs every test: `npm test` or `./dev test`.
# Sets up everything itself (Node 24, npm ci, Debian packages, build); needs root
# for the real loop devices, mounts, namespaces and Docker engines the tests use.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/env.sh
flocker_ensure_node || exit 1
if [ "$(id -u)" != 0 ]; then echo "flocker: the tests use loop devices, mounts and Docker: run as root" >&2; exit 1; fi
bash scripts/host-setup.sh || exit 1
flocker_npm_ci "$FLOCKER_ROOT" --no-fund --no-audit || exit 1
# The Python test peers (moto; Cinder and Keystone; schemathesis) live in venvs cached per machine outside the clone
# (scripts/venv.sh, /var/cache/flocker/python): warm, this only checks them (~1 s). Cold (a new machine or a new pin),
# each install costs 1-3 min of CPU (6 min of wall at load): started here, beside lint and the build; a test that needs
# one before it is ready waits on the same lock (and installs again if this failed).
# Only for a full run (a run of chosen tests may need none).
peers_log="$(mktemp)"; peers=""
if [ $# -eq 0 ]; then
  ( bash scripts/moto.sh >/dev/null & CINDER_AUTH=keystone bash scripts/cinder.sh install &
    bash scripts/schemathesis.sh install >/dev/null & wait ) >"$peers_log" 2>&1 &
  peers=$!
fi
# Lint runs beside the build (its findings printed after it): eslint and prettier are one Node thread each, tsc -b's
# packages build on both cores; serial they were ~2-4 min of a clean-clone run. Lint reads the sources only (the type-
# aware rules follow the project references to src/, not dist/), so the build writing dist/ does not change its result.
lint_log="$(mktemp)"
bash scripts/lint.sh >"$lint_log" 2>&1 &
lint=$!
build=0
npx tsc -b || { echo "flocker: build failed" >&2; build=1; }
[ $build = 1 ] || npm run build --silent -w @flocker/web-ui || { echo "flocker: web UI build failed" >&2; build=1; }
# The CSI driver serves protos fetched from the Go module proxy (not in git): fetched once here, as its own build does.
[ $build = 1 ] || bash packages/csi-driver/scripts/fetch-proto.sh ||
  { echo "flocker: fetching the CSI protos failed" >&2; build=1; }
wait "$lint"; lint_rc=$?
cat "$lint_log"; rm -f "$lint_log"
[ $lint_rc = 0 ] || { echo "flocker: lint failed (eslint/prettier findings above)" >&2; exit 1; }
[ $build = 0 ] || exit 1
out="$(mktemp -d)"
status=0
# The suites start hundreds of Node processes (control services, agents, plugins, CLIs): V8's compile cache lets each
# one after the first load its modules' bytecode instead of compiling them again (SPEED-E2: ~20% of a CLI start's CPU).
export NODE_COMPILE_CACHE="$out/node-compile-cache"
# The real-Kubernetes e2e tests need Kubernetes and the CSI sidecars built from the Go module proxy
# (cached by version outside the clone; ~40 min on a fresh 2-core machine). When the cache is cold,
# build it in the background at the lowest priority while every other test runs (the k8s tests run
# last, see scripts/jest-sequencer.js, and wait for this build on its lock). Warm, it only checks the files.
# Only for a full run: a run of chosen tests does not start a 40-minute build.
k8s_build=""
if [ $# -eq 0 ]; then
  nice -n 19 bash scripts/k8s/build.sh >"$out/k8s-build.log" 2>&1 &
  k8s_build=$!
fi
# Two unit workers: Jest's default on 2 cores is one (cores - 1), which left the unit project serial (26 min of the
# 77-min run of stop 43) while its slowest suites mostly wait on their peers (Cinder, moto) and on the kernel.
npx jest --ci --selectProjects unit --maxWorkers=2 --json --outputFile="$out/unit.json" "$@" || status=1
npx jest --ci --selectProjects e2e --runInBand --json --outputFile="$out/e2e.json" "$@" || status=1
# Reaped here, not awaited before the tests: waiting held the unit run ~4 min (session 22, a clean clone: Keystone and
# Cinder install one after the other under lint and tsc); a test needing a peer waits on its install lock instead.
[ -z "$peers" ] || wait "$peers" || { echo "flocker: installing the Python test peers failed (the tests tried again):" >&2; tail -n 5 "$peers_log" >&2; }
rm -f "$peers_log"
node -e '
  const fs = require("fs"); let p = 0, f = 0, s = 0;
  for (const n of ["unit", "e2e"]) {
    const file = process.argv[1] + "/" + n + ".json";
    if (!fs.existsSync(file)) { f++; console.log(n + ": no results (runner failed)"); continue; }
    const r = JSON.parse(fs.readFileSync(file, "utf8"));
    p += r.numPassedTests; f += r.numFailedTests + (r.numRuntimeErrorTestSuites || 0); s += r.numPendingTests;
    // The slowest suites, so the next change to the run'"'"'s length knows where its minutes go (CI bound: 60 min).
    const slow = (r.testResults || []).map((t) => [((t.endTime || 0) - (t.startTime || 0)) / 1000, t.name.replace(process.cwd() + "/", "")])
      .sort((a, b) => b[0] - a[0]).slice(0, 15);
    console.log(n + ": slowest suites: " + slow.map(([d, name]) => name + " " + d.toFixed(0) + " s").join(", "));
    console.log(n + ": " + r.numPassedTests + " passed, " + (r.numFailedTests + (r.numRuntimeErrorTestSuites || 0)) + " failed");
  }
  if (p === 0) { f++; console.log("no test ran"); }
  console.log(p + " passed, " + f + " failed" + (s ? ", " + s + " skipped" : ""));
  process.exit(f ? 1 : 0);
' "$out" || status=1
# Still building (the k8s tests failed before waiting for it): stop it; its work dir lets the next run resume.
if [ -n "$k8s_build" ] && kill -0 "$k8s_build" 2>/dev/null; then pkill -TERM -P "$k8s_build" 2>/dev/null; kill "$k8s_build" 2>/dev/null; fi
rm -rf "$out"
exit $status

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
# The steps below (lint, the peers' installs, the build, the tests, the k8s build) run in the background, awaited with
# `wait`, which a signal interrupts (bash runs a trap only once a foreground command ends). A Ctrl-C or SIGTERM of the
# run stops them with their children (review B13: lint, the installs and the k8s build ran on; bash runs a script's
# background jobs with SIGINT ignored, and a SIGTERM reaches bash alone), exit 130/143. They stay in this run's
# process group (review F3: a group-wide kill, timeout -k or a runner's cancel, still reaches them all; a SIGKILL of
# bash alone leaves them running: stop a run with INT or TERM). Stopping a step sends TERM to it and to its
# descendants in this group, never to apt/dpkg or what they run (review F2: a dpkg cut off leaves the machine's
# packages half-configured), nor to a process whose id was reused (review F15: a step is known by its pid and start
# time). The peers' installs are never stopped on a normal exit: awaited at the end, or up to
# FLOCKER_PEERS_WAIT_S seconds (default 300) after an early failure, then left to finish.
steps=(); stopping=0
pgid="$(ps -o pgid= -p $$ | tr -d ' ')"
# The start time of process $1 (clock ticks since boot) while it runs (not a zombie); nothing otherwise.
started_at() {
  local stat rest f
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
  rest="${stat##*) }"; read -ra f <<<"$rest"
  [ "${f[0]}" != Z ] || return 1
  echo "${f[19]}"
}
# Starts "$@" in the background as a step; its "pid:start" in $step.
start_step() {
  "$@" & step="$!:$(started_at $!)"; steps+=("$step")
}
# Whether step $1 ("pid:start") still runs (the same process: its id not reused).
step_runs() { [ -n "${1#*:}" ] && [ "$(started_at "${1%%:*}")" = "${1#*:}" ]; }
# Waits for step $1 and answers its exit status; an ended step is forgotten.
wait_step() {
  local rc g left=()
  wait "${1%%:*}"; rc=$?
  for g in "${steps[@]}"; do [ "$g" = "$1" ] || left+=("$g"); done
  steps=("${left[@]}")
  return $rc
}
run_step() { start_step "$@"; wait_step "$step"; }
# TERM to step $1 and its descendants in this process group, apt/dpkg and theirs left out; those still there after
# 10 s get KILL (each checked against its start time).
stop_step() {
  step_runs "$1" || return 0
  local -A kids=() comm=() group=()
  local pid ppid pg name queue=("${1%%:*}") doomed=() under=() p
  while read -r pid ppid pg name; do kids[$ppid]+=" $pid"; comm[$pid]=$name; group[$pid]=$pg; done \
    < <(ps -e -o pid=,ppid=,pgid=,comm=)
  while [ ${#queue[@]} -gt 0 ]; do
    pid="${queue[0]}"; queue=("${queue[@]:1}")
    [ "${group[$pid]:-}" = "$pgid" ] || continue
    case "${comm[$pid]:-}" in apt|apt-get|aptitude|dpkg|dpkg-*|unattended-upgr*) continue ;; esac
    p="$(started_at "$pid")" && doomed+=("$pid:$p")
    read -ra under <<<"${kids[$pid]:-}"; queue+=("${under[@]}")
  done
  for p in "${doomed[@]}"; do kill -TERM "${p%%:*}" 2>/dev/null; done
  local end=$((SECONDS + 10)) left
  while :; do
    left=(); for p in "${doomed[@]}"; do step_runs "$p" && left+=("$p"); done
    if [ ${#left[@]} = 0 ] || [ "$SECONDS" -ge "$end" ]; then break; fi
    sleep 0.2
  done
  for p in "${left[@]}"; do kill -KILL "${p%%:*}" 2>/dev/null; done
  return 0
}
peers=""
# shellcheck disable=SC2317 # run by the EXIT trap
on_exit() {
  local g
  for g in "${steps[@]}"; do
    [ "$g" != "$peers" ] || continue
    stop_step "$g"
  done
  [ -n "$peers" ] && step_runs "$peers" || return 0
  if [ "$stopping" = 1 ]; then stop_step "$peers"; return 0; fi
  local end=$((SECONDS + ${FLOCKER_PEERS_WAIT_S:-300}))
  echo "flocker: waiting up to ${FLOCKER_PEERS_WAIT_S:-300} s for the Python peers' installs to finish" >&2
  while step_runs "$peers" && [ "$SECONDS" -lt "$end" ]; do sleep 1; done
  step_runs "$peers" && echo "flocker: the Python peers' installs (pid ${peers%%:*}) finish in the background" >&2
  return 0
}
trap on_exit EXIT
trap 'stopping=1; exit 130' INT
trap 'stopping=1; exit 143' TERM
flocker_npm_ci "$FLOCKER_ROOT" --no-fund --no-audit || exit 1
# The Python test peers (moto; Cinder and Keystone; schemathesis) live in venvs cached per machine outside the clone
# (scripts/venv.sh, /var/cache/flocker/python): warm, this only checks them (~1 s). Cold (a new machine or a new pin),
# each install costs 1-3 min of CPU (6 min of wall at load): started here, beside lint and the build; a test that needs
# one before it is ready waits on the same lock (and installs again if this failed).
# Only for a full run (a run of chosen tests may need none).
peers_log="$(mktemp)"
if [ $# -eq 0 ]; then
  start_step bash -c 'bash scripts/moto.sh >/dev/null & CINDER_AUTH=keystone bash scripts/cinder.sh install &
    bash scripts/schemathesis.sh install >/dev/null & wait' >"$peers_log" 2>&1
  peers=$step
fi
# Lint runs beside the build (its findings printed after it): eslint and prettier are one Node thread each, tsc -b's
# packages build on both cores; serial they were ~2-4 min of a clean-clone run. Lint reads the sources only (the type-
# aware rules follow the project references to src/, not dist/), so the build writing dist/ does not change its result.
lint_log="$(mktemp)"
start_step bash scripts/lint.sh >"$lint_log" 2>&1
lint=$step
build=0
run_step npx tsc -b || { echo "flocker: build failed" >&2; build=1; }
[ $build = 1 ] || run_step npm run build --silent -w @flocker/web-ui ||
  { echo "flocker: web UI build failed" >&2; build=1; }
# The CSI driver serves protos fetched from the Go module proxy (not in git): fetched once here, as its own build does.
[ $build = 1 ] || run_step bash packages/csi-driver/scripts/fetch-proto.sh ||
  { echo "flocker: fetching the CSI protos failed" >&2; build=1; }
wait_step "$lint"; lint_rc=$?
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
  start_step nice -n 19 bash scripts/k8s/build.sh >"$out/k8s-build.log" 2>&1
  k8s_build=$step
fi
# Two unit workers: Jest's default on 2 cores is one (cores - 1), which left the unit project serial (26 min of the
# 77-min run of stop 43) while its slowest suites mostly wait on their peers (Cinder, moto) and on the kernel.
run_step npx jest --ci --selectProjects unit --maxWorkers=2 --json --outputFile="$out/unit.json" "$@" || status=1
# The e2e files in FLOCKER_E2E_LANES (default 2) jest processes at once, each --runInBand over its own files (--shard:
# split by known seconds, the Kubernetes files in one lane: scripts/jest-sequencer.js, e2e/durations.json). Most e2e
# time is waiting (fault-detection windows, timeouts, daemons starting): in one lane the e2e were 2,440 of a 3,256 s
# run (session 29). Every e2e resource is per test (cluster slots, temp dirs, per-pid names), so two files run at once
# as they do in one lane. A run of chosen tests (arguments) runs them in one lane.
lanes="${FLOCKER_E2E_LANES:-2}"
[ $# -eq 0 ] || lanes=1
results=(unit)
if [ "$lanes" -gt 1 ] 2>/dev/null; then
  lane_steps=()
  for ((i = 1; i <= lanes; i++)); do
    start_step npx jest --ci --selectProjects e2e --runInBand --shard="$i/$lanes" --json --outputFile="$out/e2e-$i.json"
    lane_steps+=("$step"); results+=("e2e-$i")
  done
  for l in "${lane_steps[@]}"; do wait_step "$l" || status=1; done
else
  run_step npx jest --ci --selectProjects e2e --runInBand --json --outputFile="$out/e2e.json" "$@" || status=1
  results+=(e2e)
fi
# Reaped here, not awaited before the tests: waiting held the unit run ~4 min (session 22, a clean clone: Keystone and
# Cinder install one after the other under lint and tsc); a test needing a peer waits on its install lock instead.
[ -z "$peers" ] || wait_step "$peers" || { echo "flocker: installing the Python test peers failed (the tests tried again):" >&2; tail -n 5 "$peers_log" >&2; }
rm -f "$peers_log"
# The results of unit and e2e (each e2e lane's file, e2e-<i>.json, counted under e2e; a lane's wall time from its
# start to its last suite's end, so a change to the split sees how even it is).
node -e '
  const fs = require("fs"); let p = 0, f = 0, s = 0;
  const [dir, ...names] = process.argv.slice(1);
  for (const kind of ["unit", "e2e"]) {
    const mine = names.filter((n) => n === kind || n.startsWith(kind + "-"));
    const suites = []; let kp = 0, kf = 0;
    for (const n of mine) {
      const file = dir + "/" + n + ".json";
      if (!fs.existsSync(file)) { kf++; console.log(n + ": no results (runner failed)"); continue; }
      const r = JSON.parse(fs.readFileSync(file, "utf8"));
      kp += r.numPassedTests; kf += r.numFailedTests + (r.numRuntimeErrorTestSuites || 0); s += r.numPendingTests || 0;
      suites.push(...(r.testResults || []));
      for (const t of r.testResults || []) if (t.status === "failed") console.log(n + ": FAILED " + t.name.replace(process.cwd() + "/", ""));
      if (n !== kind) {
        const end = Math.max(r.startTime || 0, ...(r.testResults || []).map((t) => t.endTime || 0));
        console.log(n + ": " + (r.testResults || []).length + " files, " + ((end - (r.startTime || end)) / 1000).toFixed(0) + " s");
      }
    }
    // The slowest suites, so the next change to the run'"'"'s length knows where its minutes go (CI bound: 60 min).
    const slow = suites.map((t) => [((t.endTime || 0) - (t.startTime || 0)) / 1000, t.name.replace(process.cwd() + "/", "")])
      .sort((a, b) => b[0] - a[0]).slice(0, 15);
    console.log(kind + ": slowest suites: " + slow.map(([d, name]) => name + " " + d.toFixed(0) + " s").join(", "));
    console.log(kind + ": " + kp + " passed, " + kf + " failed");
    p += kp; f += kf;
  }
  if (p === 0) { f++; console.log("no test ran"); }
  console.log(p + " passed, " + f + " failed" + (s ? ", " + s + " skipped" : ""));
  process.exit(f ? 1 : 0);
' "$out" "${results[@]}" || status=1
# Still building (the k8s tests failed before waiting for it): stopped (with its children); its work dir lets the
# next run resume.
[ -z "$k8s_build" ] || stop_step "$k8s_build"
rm -rf "$out"
exit $status

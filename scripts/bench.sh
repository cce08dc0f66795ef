#!/usr/bin/env bash
# Runs every benchmark and rewrites BENCHMARKS.md: `npm run bench` or `./dev bench`.
# Each benchmark prints a markdown section and writes its figures as JSON
# (bench-results/<name>.json). Run as root (loop devices, mounts, Docker).
# `./dev bench NAME` runs one (e.g. failover); the other sections then come from
# bench-results/<name>.md, or else stay as they are in BENCHMARKS.md, and the chart
# is redrawn only when every benchmark's JSON is there.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/env.sh
flocker_ensure_node || exit 1
bash scripts/host-setup.sh || exit 1
bash scripts/etcd.sh install || exit 1
flocker_npm_ci "$FLOCKER_ROOT" --no-fund --no-audit || exit 1
npx tsc -b || exit 1
mkdir -p bench-results
# name | script | title | extra arguments
benches=(
  "control-api|packages/control-api/dist/bench/bench.js|Control service: API latency, fan-out and memory (issue 2)"
  "control-api-etcd|packages/control-api/dist/bench/bench.js|Control service on etcd (3 members): latency, fan-out, failover (issue 10)|--store etcd"
  "control-scale|packages/control-api/dist/bench/scaleBench.js|Control plane at scale: 1,000 / 5,000 / 10,000 agents, file and etcd (issue 23)|--svg docs/bench-scale.svg"
  "dataset-agent|packages/dataset-agent/dist/bench/bench.js|Dataset agent: create→mounted and delete vs the raw loopback sequence (issue 3)"
  "volume-plugin|packages/volume-plugin/dist/bench/bench.js|Docker plugin: docker run with a Flocker volume vs a local volume (issue 4)"
  "move|e2e/dist/bench-move.js|Moves between hosts and recovery from a dead host (issue 5)"
  "failover|e2e/dist/bench-failover.js|Failover without an operator: host killed or partitioned → volume usable elsewhere (issue 16)"
  "k8s|e2e/dist/k8s-bench.js|Kubernetes: PVC → pod running, and rescheduled with its data, vs emptyDir (issue 19)"
  "snapshots|packages/dataset-agent/dist/bench/snapshotBench.js|Snapshots and clones: latency, frozen window, clone → mounted (issue 20)"
  "backup|packages/backup/dist/bench/bench.js|Backups to S3 (moto): throughput vs raw upload, incremental size (issue 20)"
  "local-move|e2e/dist/bench-local-move.js|Local storage (btrfs): a move by transfer vs raw btrfs send/receive (issue 24)"
)
only="${1:-}"
status=0
for b in "${benches[@]}"; do
  IFS='|' read -r name script title extra <<<"$b"
  [ -n "$only" ] && [ "$only" != "$name" ] && continue
  if [ ! -f "$script" ]; then echo "flocker: $script not built; skipping $name" >&2; continue; fi
  echo "flocker: running benchmark $name" >&2
  # shellcheck disable=SC2086 # extra holds several arguments
  if node "$script" ${extra:-} --out "bench-results/$name.json" >"bench-results/$name.md.tmp" 2>"bench-results/$name.log"; then
    { echo "## $title"; echo; cat "bench-results/$name.md.tmp"; echo; } >"bench-results/$name.md"
  else
    echo "flocker: benchmark $name failed; see bench-results/$name.log" >&2; status=1
  fi
  rm -f "bench-results/$name.md.tmp"
done
# A section of the current BENCHMARKS.md: from its "## title" line up to the next "## " line.
old_section() { [ -f BENCHMARKS.md ] && awk -v h="## $1" '$0 == h {on = 1} on && /^## / && $0 != h {exit} on' BENCHMARKS.md; }
all_json=1
{
  echo "# Benchmarks"
  echo
  echo "Written by \`npm run bench\` on $(date -u +%Y-%m-%d) — $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, kernel $(uname -r), Node $(node --version), $(dockerd --version 2>/dev/null | cut -d, -f1)."
  echo "Every ratio compares against the physical baseline measured in the same run. Medians and p99 unless stated."
  echo
  for b in "${benches[@]}"; do
    IFS='|' read -r name _ title _ <<<"$b"
    [ -f "bench-results/$name.json" ] || all_json=0
    if [ -f "bench-results/$name.md" ]; then cat "bench-results/$name.md"; else old_section "$title"; fi
  done
} >BENCHMARKS.md.new
if [ "$all_json" = 1 ]; then
  mv BENCHMARKS.md.new BENCHMARKS.md
  node scripts/bench-chart.js bench-results BENCHMARKS.md 2>/dev/null || true
else
  # Some figures only exist in BENCHMARKS.md: keep the chart drawn from all of them.
  { cat BENCHMARKS.md.new; old_section "Latency at a glance"; } >BENCHMARKS.md.tmp && mv BENCHMARKS.md.tmp BENCHMARKS.md
  rm -f BENCHMARKS.md.new
fi
echo "flocker: wrote BENCHMARKS.md" >&2
exit $status

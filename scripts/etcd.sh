#!/usr/bin/env bash
# etcd for Flocker's HA control plane (tests and development).
#   scripts/etcd.sh install            installs Debian's etcd-server/etcd-client if etcd is missing
#   scripts/etcd.sh start DIR [BASE]   starts a 3-member cluster on 127.0.0.1 (client ports BASE, BASE+2,
#                                      BASE+4; peer ports +1), data and logs under DIR, pids in DIR/pids
#   scripts/etcd.sh stop DIR           stops the members started by `start DIR`
# Prints the client endpoints (comma-separated) after `start`.
set -euo pipefail

ensure_etcd() {
  if command -v etcd >/dev/null 2>&1 && command -v etcdctl >/dev/null 2>&1; then return 0; fi
  echo "etcd.sh: installing etcd-server and etcd-client (Debian packages)" >&2
  export DEBIAN_FRONTEND=noninteractive
  # A concurrent install (parallel test workers) waits for the dpkg lock instead of failing.
  flock /tmp/flocker-etcd-apt.lock sh -c 'command -v etcd >/dev/null 2>&1 && command -v etcdctl >/dev/null 2>&1 || { apt-get update -qq >/dev/null; apt-get install -y -qq etcd-server etcd-client >/dev/null; }'
  # Debian's package starts a system etcd on 2379; the tests start their own members.
  if command -v systemctl >/dev/null 2>&1; then systemctl disable --now etcd >/dev/null 2>&1 || true; fi
  command -v etcd >/dev/null 2>&1
}

start_cluster() {
  local dir="$1" base="${2:-23790}" cluster="" endpoints="" i
  mkdir -p "$dir"
  for i in 0 1 2; do cluster+="${cluster:+,}m$i=http://127.0.0.1:$((base + 2 * i + 1))"; done
  : >"$dir/pids"
  for i in 0 1 2; do
    local c=$((base + 2 * i)) p=$((base + 2 * i + 1))
    nohup etcd --name "m$i" --data-dir "$dir/m$i" \
      --listen-client-urls "http://127.0.0.1:$c" --advertise-client-urls "http://127.0.0.1:$c" \
      --listen-peer-urls "http://127.0.0.1:$p" --initial-advertise-peer-urls "http://127.0.0.1:$p" \
      --initial-cluster "$cluster" --initial-cluster-state new --initial-cluster-token flocker-dev \
      --heartbeat-interval 50 --election-timeout 500 \
      --auto-compaction-mode revision --auto-compaction-retention 1000 \
      --max-request-bytes 16777216 >"$dir/m$i.log" 2>&1 &
    echo $! >>"$dir/pids"
    endpoints+="${endpoints:+,}http://127.0.0.1:$c"
  done
  for _ in $(seq 1 100); do
    if ETCDCTL_API=3 etcdctl --endpoints "$endpoints" endpoint health >/dev/null 2>&1; then echo "$endpoints"; return 0; fi
    sleep 0.1
  done
  echo "etcd.sh: cluster did not become healthy; see $dir/m*.log" >&2
  return 1
}

stop_cluster() {
  local dir="$1" pid
  [ -f "$dir/pids" ] || return 0
  while read -r pid; do kill "$pid" 2>/dev/null || true; done <"$dir/pids"
  rm -f "$dir/pids"
}

case "${1:-}" in
  install) ensure_etcd ;;
  start) ensure_etcd && start_cluster "${2:?DIR}" "${3:-23790}" ;;
  stop) stop_cluster "${2:?DIR}" ;;
  *) echo "usage: $0 install | start DIR [BASE_PORT] | stop DIR" >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# Single-node Flocker on this machine: control service, dataset agent on the
# loopback backend, Docker volume plugin, and dockerd (started after the plugin,
# so Docker never stalls looking for it). Usage: scripts/up.sh up|down|status
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
ETC=${FLOCKER_ETC:-/etc/flocker}
DATA=${FLOCKER_DATA:-/var/lib/flocker}
LOGS=${FLOCKER_LOGS:-/var/log/flocker}
RUN=${FLOCKER_RUN:-/run/flocker}
PORT=${FLOCKER_PORT:-4523}
SOCKET=/run/docker/plugins/flocker.sock

running() { [ -f "$RUN/$1.pid" ] && kill -0 "$(cat "$RUN/$1.pid")" 2>/dev/null; }
wait_for() { # description, command...
  local what=$1; shift
  for _ in $(seq 1 300); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "flocker: $what did not come up; see $LOGS" >&2; return 1
}
launch() { # name, logfile, command...
  local name=$1; shift
  running "$name" && { echo "flocker: $name already running (pid $(cat "$RUN/$name.pid"))"; return 0; }
  setsid "$@" >>"$LOGS/$name.log" 2>&1 </dev/null &
  echo $! >"$RUN/$name.pid"
  echo "flocker: started $name (pid $!, log $LOGS/$name.log)"
}
stop() {
  local name=$1
  if running "$name"; then
    local pid; pid=$(cat "$RUN/$name.pid"); kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    echo "flocker: stopped $name"
  fi
  rm -f "$RUN/$name.pid"
}

case "${1:-up}" in
up)
  [ "$(id -u)" = 0 ] || { echo "flocker: run as root (loop devices, mounts, Docker)" >&2; exit 1; }
  source scripts/env.sh; flocker_ensure_node
  bash scripts/host-setup.sh
  if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then npm ci --no-fund --no-audit; fi
  npx tsc -b
  NODE="$ROOT/.tools/node/bin/node"
  mkdir -p "$ETC" "$DATA" "$LOGS" "$RUN" /run/docker/plugins && chmod 700 "$ETC"
  if [ ! -f "$ETC/agent.yml" ]; then
    cat >"$ETC/agent.yml" <<YML
# Flocker dataset agent configuration (written by ./dev up).
version: 1
control-service:
  hostname: 127.0.0.1
  port: $PORT
dataset:
  backend: loopback
  root_path: $DATA/loopback
node:
  state_dir: $DATA/agent
  mount_root: /flocker
YML
    echo "flocker: wrote $ETC/agent.yml"
  fi
  launch control "$NODE" packages/control-api/dist/main.js --port "$PORT" --host 127.0.0.1 --data-dir "$DATA"
  wait_for "the control service" curl -sf "http://127.0.0.1:$PORT/v1/version"
  launch agent "$NODE" packages/dataset-agent/dist/main.js --config "$ETC/agent.yml"
  wait_for "the dataset agent" test -s "$DATA/agent/node.json"
  launch plugin "$NODE" packages/volume-plugin/dist/main.js --agent-config "$ETC/agent.yml" --socket "$SOCKET"
  wait_for "the Docker plugin" curl -sf -X POST --unix-socket "$SOCKET" http://plugin/Plugin.Activate
  if ! docker version >/dev/null 2>&1; then
    launch dockerd dockerd
    wait_for "dockerd" docker version
  fi
  if ! docker image inspect flocker-tiny >/dev/null 2>&1; then
    tmp=$(mktemp -d); mkdir -p "$tmp"/{bin,etc,tmp,data}
    cp /bin/busybox "$tmp/bin/busybox"; for c in $("$tmp/bin/busybox" --list); do ln -sf busybox "$tmp/bin/$c"; done
    echo 'root:x:0:0:root:/root:/bin/sh' >"$tmp/etc/passwd"
    tar -C "$tmp" -c . | docker import - flocker-tiny >/dev/null && rm -rf "$tmp"
    echo "flocker: imported the demo image flocker-tiny (busybox)"
  fi
  cat <<TXT

Flocker is up: API http://127.0.0.1:$PORT/v1 · plugin $SOCKET · logs $LOGS
Try:
  docker run --rm -v demo:/data --volume-driver=flocker flocker-tiny sh -c 'echo hello > /data/hi'
  docker run --rm -v demo:/data --volume-driver=flocker flocker-tiny cat /data/hi
  curl -s http://127.0.0.1:$PORT/v1/state/datasets
Stop with: ./dev down
TXT
  ;;
down)
  stop dockerd; stop plugin; stop agent; stop control ;;
status)
  for n in control agent plugin dockerd; do
    if running "$n"; then echo "$n: running (pid $(cat "$RUN/$n.pid"))"; else echo "$n: stopped"; fi
  done ;;
*) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac

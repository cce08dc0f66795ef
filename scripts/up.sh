#!/usr/bin/env bash
# Single-node Flocker on this machine: control service, dataset agent on the
# loopback backend, Docker volume plugin, dockerd (started after the plugin,
# so Docker never stalls looking for it) and the container agent. Usage: scripts/up.sh up|down|status
# Everything talks mutual TLS: on first run a cluster CA and certificates for the
# control service, this node and the API user "admin" are created in /etc/flocker.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
ETC=${FLOCKER_ETC:-/etc/flocker}
DATA=${FLOCKER_DATA:-/var/lib/flocker}
LOGS=${FLOCKER_LOGS:-/var/log/flocker}
RUN=${FLOCKER_RUN:-/run/flocker}
PORT=${FLOCKER_PORT:-4523}
SOCKET=/run/docker/plugins/flocker.sock

# Creates whatever certificate is missing in $ETC (0700, keys 0600), with flocker-ca.
ensure_certificates() {
  local ca=(packages/cli/dist/flocker-ca.js)
  if [ ! -f "$ETC/cluster.crt" ]; then
    "$NODE" "${ca[@]}" initialize "flocker-$(hostname)" --outputpath "$ETC" >/dev/null
    echo "flocker: created the cluster CA $ETC/cluster.crt (its key $ETC/cluster.key stays on this machine)"
  fi
  if [ ! -f "$ETC/control-service.crt" ]; then
    # Valid for every name local clients and agents use: 127.0.0.1, localhost and the host name.
    "$NODE" -e '
      const fs = require("node:fs"); const path = require("node:path");
      const { loadCa, issueCertificate, CONTROL_COMMON_NAME } = { ...require("@flocker/cli"), ...require("@flocker/api") };
      const [dir, ...sans] = process.argv.slice(1);
      (async () => {
        const pem = await issueCertificate(await loadCa(dir), { commonName: CONTROL_COMMON_NAME, role: "control", subjectAltNames: [...new Set(sans)] });
        fs.writeFileSync(path.join(dir, "control-service.key"), pem.privateKey, { mode: 0o600 });
        fs.writeFileSync(path.join(dir, "control-service.crt"), pem.certificate, { mode: 0o644 });
      })().catch((e) => { console.error(e.message); process.exit(1); });
    ' "$ETC" 127.0.0.1 localhost ::1 "$(hostname)"
    echo "flocker: created $ETC/control-service.crt (127.0.0.1, localhost, $(hostname))"
  fi
  if [ ! -f "$ETC/node.crt" ]; then
    # Keep the identity of a node that ran before without TLS: its UUID goes into the certificate.
    local uuid_arg=() tmp
    if [ -f "$DATA/agent/node.json" ]; then uuid_arg=(--uuid "$(sed -n 's/.*"uuid": *"\([0-9a-fA-F-]*\)".*/\1/p' "$DATA/agent/node.json")"); fi
    tmp=$(mktemp -d)
    "$NODE" "${ca[@]}" create-node-certificate --inputpath "$ETC" --outputpath "$tmp" "${uuid_arg[@]}" >/dev/null
    mv "$tmp"/*.key "$ETC/node.key" && mv "$tmp"/*.crt "$ETC/node.crt" && rmdir "$tmp"
    echo "flocker: created $ETC/node.crt (this node's identity)"
  fi
  if [ ! -f "$ETC/admin.crt" ]; then
    "$NODE" "${ca[@]}" create-api-certificate admin --inputpath "$ETC" --outputpath "$ETC" >/dev/null
    echo "flocker: created the API user certificate $ETC/admin.crt"
  fi
  chmod 700 "$ETC" && chmod 600 "$ETC"/*.key
}
CURL_TLS=(--cacert "$ETC/cluster.crt" --cert "$ETC/admin.crt" --key "$ETC/admin.key")

# A process that has exited but is not reaped yet (a zombie: some init systems reap late) counts as gone.
alive() { local st; st=$(sed -n 's/^.*) \([A-Za-z]\).*/\1/p' "/proc/$1/stat" 2>/dev/null) && [ -n "$st" ] && [ "$st" != Z ]; }
running() { [ -f "$RUN/$1.pid" ] && alive "$(cat "$RUN/$1.pid")"; }
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
    for _ in $(seq 1 100); do alive "$pid" || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    echo "flocker: stopped $name"
  fi
  rm -f "$RUN/$name.pid"
}

# Spare volumes (never datasets) hold a loop device of their own while the agent runs, so a claim needs no
# attach; with the agent stopped, let those go, so that a pool without volumes leaves no loop device behind
# (a claim attaches a spare that has none). Volumes keep theirs: they stay mounted until removed.
release_spares() {
  local img dev
  [ -d "$DATA/loopback/spares" ] || return 0
  for img in "$DATA"/loopback/spares/* "$DATA"/loopback/spares/.[!.]*; do
    [ -f "$img" ] || continue
    for dev in $(losetup -j "$img" | cut -d: -f1); do losetup -d "$dev" 2>/dev/null || true; done
  done
}

# Puts `flocker`, `flocker-ca` and `flocker-deploy` on the PATH (/usr/local/bin),
# never replacing a file this script did not write.
install_commands() {
  local name script target
  for pair in flocker:packages/cli/dist/main.js flocker-ca:packages/cli/dist/flocker-ca.js flocker-deploy:packages/cli/dist/flocker-deploy.js; do
    name=${pair%%:*}; script=${pair#*:}; target=/usr/local/bin/$name
    [ -f "$ROOT/$script" ] || continue
    if [ -e "$target" ] && ! grep -q 'installed by Flocker' "$target" 2>/dev/null; then continue; fi
    printf '#!/bin/sh\n# installed by Flocker ./dev up\nexec "%s" "%s" "$@"\n' "$ROOT/.tools/node/bin/node" "$ROOT/$script" >"$target"
    chmod 755 "$target"
  done
}

case "${1:-up}" in
up)
  [ "$(id -u)" = 0 ] || { echo "flocker: run as root (loop devices, mounts, Docker)" >&2; exit 1; }
  source scripts/env.sh; flocker_ensure_node
  bash scripts/host-setup.sh --run   # the tests' extra packages (Prometheus, a registry, zfs-fuse) come with npm test
  flocker_npm_ci "$ROOT" --no-fund --no-audit   # only when package-lock.json's content changed (env.sh)
  node_modules/.bin/tsc -b   # not through npx: one npm start less
  # The app `flocker ui` serves, when its inputs changed (env.sh); its output (npm's and Vite's warnings) only when the
  # build fails.
  if flocker_webui_build_needed "$ROOT" && ! webui_log=$(npm run build --silent -w @flocker/web-ui 2>&1); then
    printf '%s\n' "$webui_log" >&2; echo "flocker: building the web UI failed" >&2; exit 1
  fi
  NODE="$ROOT/.tools/node/bin/node"
  mkdir -p "$ETC" "$DATA" "$LOGS" "$RUN" /run/docker/plugins && chmod 700 "$ETC"
  ensure_certificates
  install_commands
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
  # Run through its #! line, which carries the service's node flags and environment
  # (packages/control-api/src/nodeFlags.ts); env.sh put Node 24 first on PATH.
  chmod +x packages/control-api/dist/main.js   # tsc does not set the mode
  launch control packages/control-api/dist/main.js --port "$PORT" --host 127.0.0.1 --data-dir "$DATA" --tls-dir "$ETC"
  wait_for "the control service" curl -sf "${CURL_TLS[@]}" "https://127.0.0.1:$PORT/v1/version"
  launch agent "$NODE" packages/dataset-agent/dist/main.js --config "$ETC/agent.yml"
  wait_for "the dataset agent" test -s "$DATA/agent/node.json"
  launch plugin "$NODE" packages/volume-plugin/dist/main.js --agent-config "$ETC/agent.yml" --socket "$SOCKET"
  wait_for "the Docker plugin" curl -sf -X POST --unix-socket "$SOCKET" http://plugin/Plugin.Activate
  if ! docker version >/dev/null 2>&1; then
    launch dockerd dockerd
    wait_for "dockerd" docker version
  fi
  # Containers configured through the API or flocker-deploy (needs dockerd).
  launch container-agent "$NODE" packages/container-agent/dist/main.js --agent-config "$ETC/agent.yml"
  if ! docker image inspect flocker-tiny >/dev/null 2>&1; then
    tmp=$(mktemp -d); mkdir -p "$tmp"/{bin,etc,tmp,data}
    cp /bin/busybox "$tmp/bin/busybox"; for c in $("$tmp/bin/busybox" --list); do [ "$c" = busybox ] || ln -sf busybox "$tmp/bin/$c"; done
    echo 'root:x:0:0:root:/root:/bin/sh' >"$tmp/etc/passwd"
    tar -C "$tmp" -c . | docker import - flocker-tiny >/dev/null && rm -rf "$tmp"
    echo "flocker: imported the demo image flocker-tiny (busybox)"
  fi
  cat <<TXT

Flocker is up: API https://127.0.0.1:$PORT/v1 (mutual TLS, certificates in $ETC) · plugin $SOCKET · logs $LOGS
Try:
  docker run --rm -v demo:/data --volume-driver=flocker flocker-tiny sh -c 'echo hello > /data/hi'
  docker run --rm -v demo:/data --volume-driver=flocker flocker-tiny cat /data/hi
  flocker volumes list                 # the CLI finds $ETC/admin.crt by itself
  flocker ui                           # the web UI on http://127.0.0.1:4580/
  curl -s http://127.0.0.1:4531/readyz # health; metrics on /metrics (ports 4530-4533: README "Metrics and health")
  curl -s --cacert $ETC/cluster.crt --cert $ETC/admin.crt --key $ETC/admin.key https://127.0.0.1:$PORT/v1/state/datasets
Stop with: ./dev down
TXT
  ;;
down)
  stop container-agent; stop dockerd; stop plugin; stop agent; stop control
  release_spares ;;
status)
  for n in control agent plugin dockerd container-agent; do
    if running "$n"; then echo "$n: running (pid $(cat "$RUN/$n.pid"))"; else echo "$n: stopped"; fi
  done ;;
*) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac

# Shared settings of the Kubernetes harness (sourced by up.sh, down.sh, kubectl.sh, bench).
# State lives in $FLOCKER_K8S_DIR (default /tmp/flocker-k8s): pki/, run/*.pid, logs/, n1/ n2/ (one node each:
# containerd, kubelet root dir, CNI, Flocker agent state + mount root), pool/ (the shared loopback pool).
# Everything listens on 127.0.0.1 or on the node addresses 10.200.0.N (an empty bridge, never routed).
K8S_SCRIPTS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$K8S_SCRIPTS/../.." && pwd)"
K="${FLOCKER_K8S_DIR:-/tmp/flocker-k8s}"
RUN="$K/run"; LOGS="$K/logs"; PKI="$K/pki"
NODES="${FLOCKER_K8S_NODES:-2}"
ETCD_PORT=12379; APISERVER_PORT=16443; FLOCKER_PORT=14523
# node i's dataset agent serves its metrics on AGENT_METRICS_BASE+i (the default 4531 for all of them collided)
AGENT_METRICS_BASE=14530
NODE_BRIDGE=flk8snode0                     # holds the node IPs (this kernel has no dummy links)
node_ip() { echo "10.200.0.$1"; }
DRIVER=flocker.clusterhq.io
# The one harness on this machine (its names above are machine-wide): up.sh writes its state dir here (waiting while
# another harness owns it), down.sh clears the machine-wide state (bridges, cgroups, iptables chains, sysctls, pod
# netns) only when it is the owner and gives it up at its end.
OWNER_FILE=/run/flocker-k8s.owner
# owner_elsewhere: the state dir of another harness that is live (nothing when there is none): its dir is there and
# a process it started runs, or it took or touched the owner file in the last 2 minutes (up.sh before its first
# process, down.sh after its last one). A harness that died without down.sh is free to take over after that.
owner_elsewhere() { local o f; o="$(cat "$OWNER_FILE" 2>/dev/null)" || return 0
  [ -n "$o" ] && [ "$o" != "$K" ] && [ -d "$o" ] || return 0
  [ -n "$(find "$OWNER_FILE" -newermt '-120 seconds' 2>/dev/null)" ] && { echo "$o"; return 0; }
  for f in "$o"/run/*.pid; do [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null && { echo "$o"; return 0; }; done; }
export KUBECONFIG="$PKI/admin.kubeconfig"

# Binaries: the version-keyed cache build.sh fills (prints "<k8s dir> <sidecar dir>").
k8s_bins() { read -r KBIN SBIN < <(bash "$K8S_SCRIPTS/build.sh"); export KBIN SBIN; }
kc() { "$KBIN/kubectl" "$@"; }

# start NAME CMD...: a detached process, output in logs/NAME.log, pid in run/NAME.pid
start() { local name=$1; shift
  nohup "$@" > "$LOGS/$name.log" 2>&1 < /dev/null & echo $! > "$RUN/$name.pid"; }
# stop NAME...: SIGTERM to each (by its recorded pid only), SIGKILL to those still there after 10 s
stop() { local n f p pids="" i
  for n in "$@"; do f="$RUN/$n.pid"; [ -f "$f" ] || continue; p=$(cat "$f"); rm -f "$f"
    kill -0 "$p" 2>/dev/null && kill "$p" 2>/dev/null && pids="$pids $p"; done
  [ -n "$pids" ] || return 0
  for i in $(seq 1 100); do
    local alive=0; for p in $pids; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ $alive = 1 ] || return 0; sleep 0.1
  done
  for p in $pids; do kill -0 "$p" 2>/dev/null && { echo "k8s: pid $p ignored SIGTERM; SIGKILL" >&2; kill -9 "$p" 2>/dev/null; }; done; }
running() { local f="$RUN/$1.pid"; [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null; }
# start_controller: flocker-csi --mode controller, unless it runs. start_sidecars: the controller's CSI sidecars that
# do not run (csi-provisioner and csi-snapshotter exit when they lose the driver's socket; nothing supervises them).
start_controller() { running flocker-csi-controller && return 0; mkdir -p "$K/controller"
  start flocker-csi-controller "$(command -v node)" "$REPO_ROOT/packages/csi-driver/dist/main.js" --mode controller \
    --endpoint "unix://$K/controller/csi.sock" --control-url "http://127.0.0.1:$FLOCKER_PORT" --default-size 64MiB; }
start_sidecars() { local s extra sbin; sbin="$(cut -d" " -f2 "$K/bins")"
  for s in provisioner resizer snapshotter; do running csi-$s && continue
    extra=""; [ $s = provisioner ] && extra="--extra-create-metadata"
    start csi-$s "$sbin/csi-$s" --csi-address="$K/controller/csi.sock" --kubeconfig="$PKI/csi.kubeconfig" \
      --leader-election=false --timeout=60s $extra --v=2
  done; }
# wait_for SECONDS WHAT CMD...: polls CMD every 0.25 s
wait_for() { local secs=$1 what=$2 i; shift 2
  for i in $(seq 1 $((secs * 4))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.25; done
  echo "k8s: timed out after ${secs}s waiting for $what" >&2; return 1; }
T0=$(date +%s%N)
elapsed() { local ms=$(( ($(date +%s%N) - T0) / 1000000 )); printf 'k8s: %4d.%ds %s\n' $((ms / 1000)) $(((ms % 1000) / 100)) "$*" >&2; }

#!/usr/bin/env bash
# up.sh : a real two-node Kubernetes with Flocker as its CSI storage, all on this machine (root needed).
#   control plane: etcd (Debian), kube-apiserver, kube-controller-manager, kube-scheduler (built by build.sh)
#   Flocker:       the control service, and per node a dataset agent (loopback backend, one shared pool)
#   node N:        a private containerd (Debian) + CNI bridge, a kubelet named nodeN on 10.200.0.N, and
#                  flocker-csi --mode node beside the agent, registering itself with that kubelet
#   controller:    flocker-csi --mode controller + csi-provisioner + csi-resizer + csi-snapshotter, and
#                  snapshot-controller with the VolumeSnapshot CRDs (all from external-snapshotter's version)
#   objects:       CSIDriver flocker.clusterhq.io (attachRequired: false), StorageClass `flocker`,
#                  VolumeSnapshotClass `flocker`
# Any previous harness in $FLOCKER_K8S_DIR is torn down first. Stop with down.sh (it restores the machine).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
[ "$(id -u)" = 0 ] || { echo "k8s/up: needs root (kubelets, mounts, loop devices)" >&2; exit 1; }
# Debian packages the harness runs (installed once, like scripts/host-setup.sh does for the other tests)
need=()
for pair in etcd:etcd-server containerd:containerd runc:runc ctr:containerd iptables:iptables gcc:gcc python3:python3 openssl:openssl; do
  command -v "${pair%%:*}" >/dev/null || need+=("${pair#*:}"); done
[ -x /usr/lib/cni/bridge ] || need+=(containernetworking-plugins)
[ -f /usr/lib/x86_64-linux-gnu/libc.a ] || need+=(libc6-dev)
[ -x /bin/busybox ] || need+=(busybox-static)
if [ ${#need[@]} -gt 0 ]; then
  echo "k8s/up: installing ${need[*]}" >&2
  DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
source "$REPO_ROOT/scripts/env.sh"; flocker_ensure_node >/dev/null
NODE_BIN="$(command -v node)"
for m in control-api dataset-agent csi-driver; do
  [ -f "$REPO_ROOT/packages/$m/dist/main.js" ] || { echo "k8s/up: packages/$m is not built: npx tsc -b e2e" >&2; exit 1; }
done
bash "$REPO_ROOT/packages/csi-driver/scripts/fetch-proto.sh" >&2
k8s_bins; IMAGES="$(bash "$K8S_SCRIPTS/images.sh")"
elapsed "binaries and images ready ($KBIN)"

[ -d "$RUN" ] && bash "$K8S_SCRIPTS/down.sh" --fast >&2
# One harness per machine (fixed ports, machine-wide bridges and cgroups): wait for another one to go down.
waited=0
while :; do
  exec 9> "$OWNER_FILE.lock"; flock 9
  other="$(owner_elsewhere)"
  [ -n "$other" ] || { echo "$K" > "$OWNER_FILE"; flock -u 9; exec 9>&-; break; }
  flock -u 9; exec 9>&-
  [ $waited = 0 ] && echo "k8s/up: waiting for the harness in $other to go down (one per machine)" >&2
  [ $waited -lt "${FLOCKER_K8S_WAIT:-600}" ] || { echo "k8s/up: the harness in $other still runs after ${waited}s: stop it (FLOCKER_K8S_DIR=$other bash $K8S_SCRIPTS/down.sh)" >&2; exit 1; }
  sleep 2; waited=$((waited + 2))
done
rm -rf "$K"; mkdir -p "$RUN" "$LOGS" "$K/pool"
# Host state the kubelet and CNI change, restored by down.sh.
sysctl -n vm.overcommit_memory kernel.panic kernel.panic_on_oops net.ipv4.ip_forward | paste -sd' ' > "$K/sysctls"
ls /run/netns 2>/dev/null | grep '^cni-' > "$K/netns-before" || true
echo "$KBIN $SBIN" > "$K/bins"
nodes=""; for i in $(seq 1 "$NODES"); do nodes="$nodes node$i"; done
APISERVER_PORT=$APISERVER_PORT bash "$K8S_SCRIPTS/certs.sh" "$PKI" $nodes
ip link add $NODE_BRIDGE type bridge; ip link set $NODE_BRIDGE up
ip addr add 10.200.0.254/32 dev $NODE_BRIDGE                    # the apiserver's advertised address
for i in $(seq 1 "$NODES"); do ip addr add "$(node_ip $i)/32" dev $NODE_BRIDGE; done
elapsed "certificates, node addresses"

# --- control plane -------------------------------------------------------------------------------------------
start etcd etcd --name flocker-k8s --data-dir "$K/etcd" --listen-client-urls "http://127.0.0.1:$ETCD_PORT" \
  --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" --listen-peer-urls "http://127.0.0.1:$((ETCD_PORT + 1))" \
  --initial-advertise-peer-urls "http://127.0.0.1:$((ETCD_PORT + 1))" \
  --initial-cluster "flocker-k8s=http://127.0.0.1:$((ETCD_PORT + 1))" --unsafe-no-fsync
start kube-apiserver "$KBIN/kube-apiserver" --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
  --bind-address=127.0.0.1 --secure-port=$APISERVER_PORT --advertise-address=10.200.0.254 --endpoint-reconciler-type=none \
  --service-cluster-ip-range=10.96.0.0/24 --allow-privileged=true \
  --tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key" --client-ca-file="$PKI/ca.crt" \
  --service-account-key-file="$PKI/sa.pub" --service-account-signing-key-file="$PKI/sa.key" \
  --service-account-issuer=https://kubernetes.default.svc.cluster.local \
  --kubelet-client-certificate="$PKI/apiserver-kubelet-client.crt" --kubelet-client-key="$PKI/apiserver-kubelet-client.key" \
  --kubelet-preferred-address-types=InternalIP,Hostname \
  --authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction --profiling=false
# the Flocker control service meanwhile (plain HTTP on loopback: a test cluster)
start flocker-control "$NODE_BIN" "$REPO_ROOT/packages/control-api/dist/main.js" --insecure-http --host 127.0.0.1 \
  --port $FLOCKER_PORT --data-dir "$K/flocker-control" --node-timeout 10 --lease-grace 5 --log-level info

# --- nodes: a Flocker agent, containerd, kubelet and the CSI node plugin each ----------------------------------
# Started while the apiserver comes up (nothing before the kubelets needs it): each node's agent, containerd and its
# images, and the CSI controller plugin; one after another after the apiserver they cost ~10 s of a loaded up.sh.
for i in $(seq 1 "$NODES"); do
  D="$K/n$i"; mkdir -p "$D/flocker/state" "$D/flocker/mnt" "$D/containerd" "$D/cni/net.d" "$D/kubelet/plugins_registry" "$D/pod-logs"
  echo "era-n$i-$(date +%s)" > "$D/flocker/era"
  cat > "$D/flocker/agent.yml" <<Y
version: 1
control-service: {hostname: 127.0.0.1, port: $FLOCKER_PORT}
dataset: {backend: loopback, root_path: $K/pool}
node: {state_dir: $D/flocker/state, mount_root: $D/flocker/mnt, era_file: $D/flocker/era}
agent: {resync_interval_seconds: 2, default_dataset_size: 67108864, backoff_initial_seconds: 0.2, backoff_max_seconds: 2}
Y
  start flocker-agent-n$i "$NODE_BIN" "$REPO_ROOT/packages/dataset-agent/dist/main.js" --config "$D/flocker/agent.yml" \
    --metrics-port $((AGENT_METRICS_BASE + i))

  cat > "$D/containerd.toml" <<T
version = 2
root = "$D/containerd/root"
state = "$D/containerd/state"
[grpc]
  address = "$D/containerd/containerd.sock"
[ttrpc]
  address = "$D/containerd/containerd.sock.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "$D/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:3.10.1"
  # no CAP_SYS_RESOURCE here: runc could not lower the pause container's oom_score_adj, so clamp it
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$D/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$D/cni/net.d"
T
  cat > "$D/cni/net.d/10-bridge.conflist" <<J
{"cniVersion": "1.0.0", "name": "flocker-k8s-n$i", "plugins": [
  {"type": "bridge", "bridge": "flk8sbr$i", "isGateway": true, "ipMasq": false, "hairpinMode": true,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.244.$i.0/24"}]], "dataDir": "$D/cni/ipam"}},
  {"type": "loopback"}]}
J
  start containerd-n$i containerd --config "$D/containerd.toml"

  # cgroup v1 (PID 1 is not systemd): cgroupfs driver, a cgroup root per kubelet in every hierarchy
  for c in /sys/fs/cgroup/*/; do case $c in */unified/) continue ;; esac; mkdir -p "$c/flocker-k8s-n$i"; done
  cat /sys/fs/cgroup/cpuset/cpuset.cpus > "/sys/fs/cgroup/cpuset/flocker-k8s-n$i/cpuset.cpus"
  cat /sys/fs/cgroup/cpuset/cpuset.mems > "/sys/fs/cgroup/cpuset/flocker-k8s-n$i/cpuset.mems"
  cat > "$D/kubelet.yaml" <<Y
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $(node_ip $i)
port: $((10250 + 10 * (i - 1)))
healthzBindAddress: 127.0.0.1
healthzPort: $((10248 + 10 * (i - 1)))
readOnlyPort: 0
authentication: {anonymous: {enabled: false}, webhook: {enabled: true}, x509: {clientCAFile: $PKI/ca.crt}}
authorization: {mode: Webhook}
containerRuntimeEndpoint: unix://$D/containerd/containerd.sock
imageServiceEndpoint: unix://$D/containerd/containerd.sock
cgroupDriver: cgroupfs
cgroupRoot: /flocker-k8s-n$i
failCgroupV1: false
failSwapOn: false
resolvConf: /etc/resolv.conf
clusterDomain: cluster.local
volumePluginDir: $D/kubelet/volume-plugins
podLogsDir: $D/pod-logs
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", nodefs.inodesFree: "1%", imagefs.available: "1%"}
serializeImagePulls: false
maxPods: 50
nodeStatusUpdateFrequency: 4s
nodeLeaseDurationSeconds: 20
Y
done
# node_prep I: node I's images into its containerd, and its CSI node plugin once the agent wrote node.json (the
# plugin's node id). The plugin may start before its kubelet: the kubelet's plugin watcher finds the registration
# socket already there when it starts.
node_prep() { local i=$1 D="$K/n$1" S="$K/n$1/containerd/containerd.sock" img pids=""
  wait_for 30 "containerd of node$i" ctr -a "$S" version
  for img in pause busybox; do ctr -a "$S" -n k8s.io images import "$IMAGES/$img.tar" >/dev/null & pids="$pids $!"; done
  for p in $pids; do wait "$p"; done
  ctr -a "$S" -n k8s.io images label registry.k8s.io/pause:3.10.1 io.cri-containerd.pinned=pinned >/dev/null
  wait_for 60 "the Flocker agent of node$i" test -s "$D/flocker/state/node.json"
  start flocker-csi-n$i "$NODE_BIN" "$REPO_ROOT/packages/csi-driver/dist/main.js" --mode node \
    --endpoint "unix://$D/csi.sock" --control-url "http://127.0.0.1:$FLOCKER_PORT" --state-dir "$D/flocker/state" \
    --kubelet-registration-dir "$D/kubelet/plugins_registry" --stage-timeout 60 $CSI_NODE_FLAGS; }
# FLOCKER_K8S_UNUSED_RELEASE_AFTER, FLOCKER_K8S_HANDOVER_WAIT: the node plugins' --unused-release-after and
# --handover-wait (seconds; default: flocker-csi's), for a test that waits for that release or that refusal
CSI_NODE_FLAGS="${FLOCKER_K8S_UNUSED_RELEASE_AFTER:+--unused-release-after $FLOCKER_K8S_UNUSED_RELEASE_AFTER}"
CSI_NODE_FLAGS="$CSI_NODE_FLAGS${FLOCKER_K8S_HANDOVER_WAIT:+ --handover-wait $FLOCKER_K8S_HANDOVER_WAIT}"
preps=""; for i in $(seq 1 "$NODES"); do node_prep $i & preps="$preps $!"; done
start_controller
elapsed "agents, containerds and the CSI controller plugin started"

wait_for 120 "kube-apiserver" kc get --raw /readyz
# The snapshot CRDs (external-snapshotter's, same version; created, not applied: the content CRD is too big for
# apply's annotation), early: csi-provisioner looks for VolumeSnapshots when it starts.
kc create -f "$SBIN/snapshot-crd/" >/dev/null
start kube-controller-manager "$KBIN/kube-controller-manager" --kubeconfig="$PKI/controller-manager.kubeconfig" \
  --authentication-kubeconfig="$PKI/controller-manager.kubeconfig" --authorization-kubeconfig="$PKI/controller-manager.kubeconfig" \
  --bind-address=127.0.0.1 --secure-port=0 --leader-elect=false \
  --service-account-private-key-file="$PKI/sa.key" --root-ca-file="$PKI/ca.crt" --use-service-account-credentials=true \
  --cluster-signing-cert-file="$PKI/ca.crt" --cluster-signing-key-file="$PKI/ca.key" --service-cluster-ip-range=10.96.0.0/24 \
  --node-monitor-period=2s --node-monitor-grace-period=20s
start kube-scheduler "$KBIN/kube-scheduler" --kubeconfig="$PKI/scheduler.kubeconfig" \
  --authentication-kubeconfig="$PKI/scheduler.kubeconfig" --authorization-kubeconfig="$PKI/scheduler.kubeconfig" \
  --bind-address=127.0.0.1 --secure-port=0 --leader-elect=false
elapsed "control plane up"
for p in $preps; do wait "$p"; done   # a failed import or agent fails up.sh (set -e)
elapsed "images imported, node plugins started"
for i in $(seq 1 "$NODES"); do
  D="$K/n$i"
  start kubelet-n$i "$KBIN/kubelet" --config="$D/kubelet.yaml" --kubeconfig="$PKI/kubelet-node$i.kubeconfig" \
    --root-dir="$D/kubelet" --cert-dir="$D/kubelet/pki" --hostname-override=node$i --node-ip="$(node_ip $i)" --v=1
done
elapsed "kubelets started"

# --- the controller side ---------------------------------------------------------------------------------------
start_controller
wait_for 30 "the CSI controller socket" test -S "$K/controller/csi.sock"
kc wait --for=condition=established --timeout=60s crd --all >/dev/null
start_sidecars
# The cluster's snapshot controller (one per cluster, beside the driver's csi-snapshotter above).
start snapshot-controller "$SBIN/snapshot-controller" --kubeconfig="$PKI/csi.kubeconfig" --leader-election=false --v=2
kc apply -f - >/dev/null <<Y
apiVersion: snapshot.storage.k8s.io/v1
kind: VolumeSnapshotClass
metadata: {name: flocker}
driver: $DRIVER
deletionPolicy: Delete
---
apiVersion: storage.k8s.io/v1
kind: CSIDriver
metadata: {name: $DRIVER}
spec: {attachRequired: false, podInfoOnMount: false, volumeLifecycleModes: [Persistent], fsGroupPolicy: File}
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: flocker}
provisioner: $DRIVER
reclaimPolicy: Delete
volumeBindingMode: Immediate
allowVolumeExpansion: true
Y
for i in $(seq 1 "$NODES"); do wait_for 120 "node$i Ready" kc wait --for=condition=Ready "node/node$i" --timeout=1s; done
elapsed "nodes Ready"
registered() { [ "$(kc get csinode -o jsonpath='{range .items[*]}{.spec.drivers[*].name}{"\n"}{end}' | grep -cx $DRIVER)" -ge "$NODES" ]; }
wait_for 120 "flocker-csi registered with every kubelet" registered
wait_for 60 "the default service account" kc get serviceaccount default
elapsed "flocker-csi registered on $NODES node(s); cluster ready (KUBECONFIG=$KUBECONFIG)"

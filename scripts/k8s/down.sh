#!/usr/bin/env bash
# down.sh [--fast] : stops the harness started by up.sh and puts the machine back as it was: pods are deleted
# first (unless --fast) so the kubelets unmount their volumes; every process recorded in run/*.pid is stopped
# by pid; then the containers left in each node's containerd, mounts under the state dir, loop devices of the
# pool, the bridges, cgroups, iptables chains the kubelet adds, pod network namespaces, and the sysctls the
# kubelet and CNI change. Safe to run again, and with nothing running.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
[ -d "$K" ] || exit 0
KBIN="$(cut -d" " -f1 "$K/bins" 2>/dev/null)"
other="$(owner_elsewhere)"
[ -n "$other" ] || [ "$(cat "$OWNER_FILE" 2>/dev/null)" != "$K" ] || touch "$OWNER_FILE"   # live until its end
[ -z "$other" ] || echo "k8s/down: another harness runs in $other: its machine-wide state (bridges, cgroups, iptables, sysctls, pod netns) is left alone" >&2
mine() { [ -z "$other" ]; }
if [ "${1:-}" != --fast ] && [ -x "$KBIN/kubectl" ] && running kube-apiserver && kc get --raw /readyz >/dev/null 2>&1; then
  # controllers first, or they recreate the pods, whose claims then never go
  kc delete statefulsets,deployments,replicasets,daemonsets,jobs --all --all-namespaces --wait=false >/dev/null 2>&1
  kc delete pod --all --all-namespaces --grace-period=1 --wait=true --timeout=30s >/dev/null 2>&1 ||
    kc delete pod --all --all-namespaces --grace-period=0 --force >/dev/null 2>&1   # pods of a powered-off node
  kc delete volumesnapshots --all --all-namespaces --wait=true --timeout=30s >/dev/null 2>&1
  kc delete pvc --all --all-namespaces --wait=true --timeout=30s >/dev/null 2>&1
  elapsed "pods and claims deleted"
fi
names() { local f; for f in "$@"; do [ -f "$f" ] && basename "$f" .pid; done; }
# The control planes meanwhile (with the pods gone nothing on a node needs them); etcd after the apiserver.
( stop $(names "$RUN"/flocker-agent-n*.pid) flocker-control kube-scheduler kube-controller-manager kube-apiserver
  stop etcd ) & planes=$!
stop csi-provisioner csi-resizer csi-attacher csi-snapshotter snapshot-controller flocker-csi-controller $(names "$RUN"/kubelet-n*.pid "$RUN"/flocker-csi-n*.pid)
# containers the kubelets left: kill them through their containerd (each node's at once), then stop it
killers=""
for S in "$K"/n*/containerd/containerd.sock; do
  [ -S "$S" ] || continue
  ( for c in $(ctr -a "$S" -n k8s.io tasks ls -q 2>/dev/null); do ctr -a "$S" -n k8s.io tasks kill -s KILL "$c" >/dev/null 2>&1; done
    sleep 0.5
    for c in $(ctr -a "$S" -n k8s.io tasks ls -q 2>/dev/null); do ctr -a "$S" -n k8s.io tasks delete -f "$c" >/dev/null 2>&1; done ) & killers="$killers $!"
done
for p in $killers; do wait "$p"; done
stop $(names "$RUN"/containerd-n*.pid)
elapsed "nodes stopped"
# anything still in the kubelets' cgroups (shims, containers) is ours
mine && for c in /sys/fs/cgroup/pids/flocker-k8s-n* /sys/fs/cgroup/memory/flocker-k8s-n*; do
  [ -d "$c" ] && find "$c" -name cgroup.procs -exec cat {} + 2>/dev/null | sort -u | xargs -r kill -9 2>/dev/null
done
wait $planes
elapsed "control planes stopped"
# mounts under the state dir (volumes, staging/target paths, pod dirs, overlay snapshots), deepest first
grep -o " $K/[^ ]*" /proc/self/mounts | sed 's/^ //' | sort -r | while read -r m; do umount -l "$m" 2>/dev/null; done
losetup --list --noheadings --raw --output NAME,BACK-FILE 2>/dev/null | while read -r dev file; do
  case "${file% (deleted)}" in "$K"/pool/*) losetup -d "$dev" 2>/dev/null ;; esac; done
if mine; then
for b in flk8sbr1 flk8sbr2 flk8sbr3 $NODE_BRIDGE; do ip link show "$b" >/dev/null 2>&1 && ip link del "$b"; done
# pod network namespaces our containerd made and did not remove
for ns in $(ls /run/netns 2>/dev/null | grep '^cni-'); do
  grep -qx "$ns" "$K/netns-before" 2>/dev/null || { umount /run/netns/"$ns" 2>/dev/null; rm -f /run/netns/"$ns"; }
done
for c in /sys/fs/cgroup/*/flocker-k8s-n*; do [ -d "$c" ] && find "$c" -depth -type d -exec rmdir {} \; 2>/dev/null; done
for ipt in iptables ip6tables; do
  while $ipt -t filter -D INPUT -j KUBE-FIREWALL 2>/dev/null; do :; done
  while $ipt -t filter -D OUTPUT -j KUBE-FIREWALL 2>/dev/null; do :; done
  for t in filter nat mangle; do for c in KUBE-FIREWALL KUBE-KUBELET-CANARY KUBE-IPTABLES-HINT KUBE-PROXY-CANARY; do
    $ipt -t $t -F $c 2>/dev/null; $ipt -t $t -X $c 2>/dev/null; done; done
done
fi
# /var/log/containers is hard-coded in the kubelet: remove its links into our state dir
for l in /var/log/containers/*.log; do [ -L "$l" ] && case "$(readlink "$l")" in "$K"/*) rm -f "$l" ;; esac; done
rmdir /var/log/containers /run/containerd/s /run/containerd/fifo /run/containerd/runc/k8s.io /run/containerd/runc /run/containerd 2>/dev/null
if mine && [ -s "$K/sysctls" ]; then
  read -r oc panic oops fwd < "$K/sysctls"
  sysctl -q -w vm.overcommit_memory="$oc" kernel.panic="$panic" kernel.panic_on_oops="$oops" net.ipv4.ip_forward="$fwd"
fi
left=$(grep -c " $K/" /proc/self/mounts)
[ "$left" = 0 ] || echo "k8s/down: $left mounts under $K remain" >&2
if [ "${FLOCKER_K8S_KEEP:-0}" != 1 ] && [ "$left" = 0 ]; then rm -rf "$K"; fi
[ "$(cat "$OWNER_FILE" 2>/dev/null)" != "$K" ] || rm -f "$OWNER_FILE"
elapsed "down"

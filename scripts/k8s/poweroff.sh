#!/usr/bin/env bash
# poweroff.sh N : node N dies as a machine does: its kubelet, containerd, containers, dataset agent and CSI node
# plugin are SIGKILLed at once and its mounts vanish (the loop devices stay attached, like cloud volumes). The
# apiserver sees the node go NotReady; the Flocker control service sees its agent stop reporting.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
i=${1:?node index}; D="$K/n$i"
pids=""
for n in kubelet-n$i containerd-n$i flocker-agent-n$i flocker-csi-n$i; do
  [ -f "$RUN/$n.pid" ] && pids="$pids $(cat "$RUN/$n.pid")" && rm -f "$RUN/$n.pid"; done
for c in /sys/fs/cgroup/pids/flocker-k8s-n$i /sys/fs/cgroup/memory/flocker-k8s-n$i; do
  [ -d "$c" ] && pids="$pids $(find "$c" -name cgroup.procs -exec cat {} + 2>/dev/null | sort -u | tr '\n' ' ')"; done
# the shims of this node's containerd are not in its cgroups: find them by their -address argument
for p in $(pgrep -f "containerd-shim-runc-v2 .*-address $D/containerd/containerd.sock" || true); do pids="$pids $p"; done
# shellcheck disable=SC2086
[ -n "${pids// }" ] && kill -9 $pids 2>/dev/null
sleep 0.5
grep -o " $D/[^ ]*" /proc/self/mounts | sed 's/^ //' | sort -r | while read -r m; do umount -l "$m" 2>/dev/null; done
echo "k8s: node$i powered off" >&2

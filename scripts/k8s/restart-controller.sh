#!/usr/bin/env bash
# Starts flocker-csi --mode controller again if it is not running, then restarts csi-provisioner, csi-resizer and
# csi-snapshotter: the provisioner and snapshotter exit once they notice the driver's socket went (as sidecars do in a
# pod that restarts them; here nothing does), which may be only at their next call, after the driver is back.
# Usage: [FLOCKER_K8S_DIR=/tmp/flocker-k8s] bash scripts/k8s/restart-controller.sh
set -euo pipefail
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"
[ -f "$K/bins" ] || { echo "k8s: no harness at $K (run up.sh)" >&2; exit 1; }
start_controller
wait_for 30 "the CSI controller socket" test -S "$K/controller/csi.sock"
stop csi-provisioner csi-resizer csi-snapshotter
start_sidecars
echo "k8s: controller side running (logs in $LOGS)"

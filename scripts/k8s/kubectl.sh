#!/usr/bin/env bash
# kubectl.sh ARGS... : kubectl (the harness's build) against the harness cluster, as its admin.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
[ -s "$K/bins" ] || { echo "k8s: no harness in $K (scripts/k8s/up.sh)" >&2; exit 1; }
exec "$(cut -d' ' -f1 "$K/bins")/kubectl" "$@"

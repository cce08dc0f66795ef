#!/usr/bin/env bash
# Several simulated Docker hosts on this machine, each running a Flocker dataset
# agent, the Flocker Docker volume plugin and its own dockerd, plus a control
# service. Needs root (network/mount/UTS namespaces, loop devices). Nothing is
# routed off the machine: hosts live on 10.77.0.0/24 behind a bridge in its own
# netns; the control service is reachable from here on 10.77.1.<4·slot+2>:4523.
#
#   scripts/cluster.sh up [N] [--backend loopback|local] [--no-docker] [--no-agents] [--no-plugin] [--no-container-agents] [--node-timeout S] [--lease-grace S]
#                                     start N hosts (default 3) named a, b, c, …; T and G of flocker-control;
#                                     --backend local: each host its own btrfs file system on its own loop
#                                     device, a move copies the data over mutual TLS (default: loopback, shared)
#   scripts/cluster.sh status         control URL, node UUIDs, pids, DOCKER_HOST of each host
#   scripts/cluster.sh exec a <cmd…>  run a command inside host a (no command: a shell)
#   scripts/cluster.sh docker b ps    docker CLI against host b's dockerd
#   scripts/cluster.sh env a          prints `export DOCKER_HOST=…` for host a
#   scripts/cluster.sh flocker volumes list   the flocker CLI against this cluster (as API user admin)
#   scripts/cluster.sh down           stop everything, remove namespaces, loop devices, cgroups
# Faults (failover demos; see "Demo: failover by hand" in e2e/README.md):
#   scripts/cluster.sh kill a         SIGKILL a's agent, plugin, container agent and dockerd (containers keep running)
#   scripts/cluster.sh start a        start a's stopped daemons again, container agent included (same era)
#   scripts/cluster.sh poweroff a     every process of a dies, its mounts vanish; poweron a boots it (new era)
#   scripts/cluster.sh partition a    cut a's network (processes keep running); heal a reconnects it
#
# State and logs: $FLOCKER_CLUSTER_DIR (default /tmp/flocker-cluster); logs in
# hosts/<h>/log/{agent,plugin,dockerd}.log and control/control.log.
# Example:
#   scripts/cluster.sh up 2
#   scripts/cluster.sh docker a run --rm -v pg:/data --volume-driver=flocker tiny sh -c 'echo hi > /data/f'
#   scripts/cluster.sh docker b run --rm -v pg:/data --volume-driver=flocker tiny cat /data/f
#   scripts/cluster.sh down
# The library behind it: e2e/src/cluster (startCluster), documented in e2e/README.md.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/env.sh
source "$root/scripts/env.sh"
flocker_ensure_node >/dev/null
if [ ! -f "$root/e2e/dist/cluster/cli.js" ] || [ "${FLOCKER_BUILD:-0}" = 1 ]; then
  (cd "$root" && npx tsc -b e2e)
fi
exec node "$root/e2e/dist/cluster/cli.js" "$@"

#!/usr/bin/env bash
# Installs the host tools Flocker and its tests use (Debian packages), once.
# Idempotent: installs only what is missing. Needs root.
#   scripts/host-setup.sh        everything the tests and benchmarks use
#   scripts/host-setup.sh --run  only what a running cluster uses (./dev up): not Prometheus, docker-registry
#                                or zfs-fuse, which only tests use and whose Debian packages start services
set -euo pipefail
run_only=0
[ "${1:-}" = --run ] && run_only=1
need=()
command -v dockerd   >/dev/null 2>&1 || need+=(docker.io)
command -v losetup   >/dev/null 2>&1 || need+=(util-linux)
command -v mkfs.ext4 >/dev/null 2>&1 || need+=(e2fsprogs)
command -v mkfs.xfs  >/dev/null 2>&1 || need+=(xfsprogs)
command -v mkfs.btrfs >/dev/null 2>&1 || need+=(btrfs-progs)
command -v ip        >/dev/null 2>&1 || need+=(iproute2)
command -v nsenter   >/dev/null 2>&1 || need+=(util-linux)
command -v curl      >/dev/null 2>&1 || need+=(curl ca-certificates)
command -v openssl   >/dev/null 2>&1 || need+=(openssl)
[ -x /bin/busybox ] || need+=(busybox-static)
if [ "$run_only" = 0 ]; then
  command -v promtool  >/dev/null 2>&1 || need+=(prometheus)
  command -v docker-registry >/dev/null 2>&1 || need+=(docker-registry)
  # Userspace ZFS over FUSE (this kernel has no zfs module): the ZFS engine runs for real on it.
  command -v zfs-fuse  >/dev/null 2>&1 || need+=(zfs-fuse)
fi
if [ ${#need[@]} -gt 0 ]; then
  echo "flocker: installing ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# Loop devices: make sure the control node exists (no udev here).
[ -e /dev/loop-control ] || modprobe loop 2>/dev/null || true

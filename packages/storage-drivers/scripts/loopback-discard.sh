#!/usr/bin/env bash
# Does a loopback volume give freed blocks back to its backing file? Measures, for ext4 and xfs on a loop device over
# a sparse file (as LoopbackDriver makes them): mounted without discard, with `-o discard` (online: each freed extent
# punches a hole in the backing file), and without discard followed by one fstrim. For each: the backing file's
# allocated size after rewriting 20 x 1 MiB files ROUNDS times (no fsync, as TN's F10 repro), that loop's time, 50
# rewrites with fsync (a database's commits), an rm of 20 files + sync, the backing file once its discards settled,
# and a sparse copy of the image (what a snapshot on a non-reflink pool costs while the file system is frozen).
# Needs root, losetup, mkfs.ext4, mkfs.xfs, fstrim, bc. Usage: loopback-discard.sh [ROUNDS]
set -euo pipefail
ROUNDS=${1:-2000}
WORK=$(mktemp -d /var/tmp/flocker-discard.XXXXXX)
DEV=''
cleanup() {
  mountpoint -q "$WORK/mnt" && umount "$WORK/mnt"
  [ -n "$DEV" ] && losetup -d "$DEV" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT
mkdir "$WORK/mnt"
head -c 1048576 /dev/urandom >"$WORK/blob"
now() { date +%s.%N; }
ms() { echo "($2 - $1) * 1000 / 1" | bc; }
alloc_mib() { echo $(($(stat -c %b "$1") * 512 / 1048576)); }
# ext4 issues online discards from a work queue after the commit: wait until the size holds for a second (<= 10 s).
settled_mib() {
  local last=-1 cur
  for _ in $(seq 1 20); do
    cur=$(alloc_mib "$1")
    [ "$cur" = "$last" ] && break
    last=$cur
    sleep 0.5
  done
  echo "$cur"
}

row() { printf '%-5s %-8s %8s %8s %9s %7s %8s %8s %7s\n' "$@"; }
row fs mode 'img MiB' 'loop ms' 'fsync ms' 'rm ms' 'trim ms' 'after MiB' 'cp ms'
for fs in ext4 xfs; do
  for mode in none discard fstrim; do
    truncate -s 0 "$WORK/img" && truncate -s 4G "$WORK/img"
    DEV=$(losetup --find --show "$WORK/img")
    if [ "$fs" = ext4 ]; then mkfs.ext4 -q -E nodiscard "$DEV"; else mkfs.xfs -q -K "$DEV"; fi
    if [ "$mode" = discard ]; then mount -o discard "$DEV" "$WORK/mnt"; else mount "$DEV" "$WORK/mnt"; fi
    t0=$(now)
    for i in $(seq 1 "$ROUNDS"); do dd if="$WORK/blob" of="$WORK/mnt/f$((i % 20))" bs=1M status=none; done
    sync
    t1=$(now)
    img=$(settled_mib "$WORK/img")
    t2=$(now)
    for i in $(seq 1 50); do dd if="$WORK/blob" of="$WORK/mnt/f$((i % 20))" bs=1M conv=fsync status=none; done
    t3=$(now)
    for i in $(seq 0 19); do dd if="$WORK/blob" of="$WORK/mnt/d$i" bs=1M status=none; done
    sync
    t4=$(now)
    rm -f "$WORK"/mnt/d*
    sync
    t5=$(now)
    trim=-
    if [ "$mode" = fstrim ]; then
      t6=$(now)
      fstrim "$WORK/mnt"
      trim=$(ms "$t6" "$(now)")
    fi
    after=$(settled_mib "$WORK/img")
    t7=$(now)
    cp --sparse=always "$WORK/img" "$WORK/copy"
    cpms=$(ms "$t7" "$(now)")
    rm -f "$WORK/copy"
    row "$fs" "$mode" "$img" "$(ms "$t0" "$t1")" "$(ms "$t2" "$t3")" "$(ms "$t4" "$t5")" "$trim" "$after" "$cpms"
    umount "$WORK/mnt"
    losetup -d "$DEV"
    DEV=''
  done
done

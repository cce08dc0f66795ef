#!/usr/bin/env bash
# The two images pods here use, built locally (no registry is reachable): registry.k8s.io/pause:3.10.1 (a static
# pause from pause.c) and docker.io/library/busybox:1.35 (Debian's busybox-static). Pods must say
# `imagePullPolicy: Never`. Cached beside the binaries; prints the directory holding pause.tar and busybox.tar.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
dir="${FLOCKER_K8S_CACHE:-/var/cache/flocker}/k8s-images-v1"
if [ -s "$dir/pause.tar" ] && [ -s "$dir/busybox.tar" ]; then echo "$dir"; exit 0; fi
for tool in gcc python3; do command -v $tool >/dev/null || { echo "k8s/images: $tool is needed" >&2; exit 1; }; done
[ -x /bin/busybox ] || { echo "k8s/images: /bin/busybox missing: apt-get install busybox-static" >&2; exit 1; }
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
gcc -Os -static -o "$tmp/pause" "$here/pause.c" && strip "$tmp/pause"
python3 "$here/mkimage.py" "$tmp/pause.tar" registry.k8s.io/pause:3.10.1 '["/pause"]' "$tmp/pause=/pause"
links=$(/bin/busybox --list | grep -vx busybox | sed 's|.*|@/bin/busybox=/bin/&|')
# shellcheck disable=SC2086
python3 "$here/mkimage.py" "$tmp/busybox.tar" docker.io/library/busybox:1.35 '[]' /bin/busybox=/bin/busybox $links
mkdir -p "$dir" && mv "$tmp/pause.tar" "$tmp/busybox.tar" "$dir/"
echo "$dir"

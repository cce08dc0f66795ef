#!/usr/bin/env bash
# Builds csi-sanity (github.com/kubernetes-csi/csi-test) from the Go module proxy, pinned,
# into a cache outside the clone keyed by version; later runs find it and take no time.
# Prints the binary's path on stdout. FLOCKER_GO_BIN_CACHE overrides the cache directory.
set -euo pipefail
version="${CSI_SANITY_VERSION:-v5.6.0}"
cache="${FLOCKER_GO_BIN_CACHE:-/var/cache/flocker/go-bin}"
bin="$cache/csi-sanity-$version/csi-sanity"
if [ -x "$bin" ]; then echo "$bin"; exit 0; fi
command -v go >/dev/null || { echo "build-csi-sanity: no go on PATH (needed to build csi-sanity $version)" >&2; exit 1; }
mkdir -p "$cache"
tmp="$(mktemp -d "$cache/.build-XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
echo "build-csi-sanity: building csi-sanity $version (first time only)" >&2
GOBIN="$tmp" GOFLAGS=-mod=mod nice -n 19 go install "github.com/kubernetes-csi/csi-test/v5/cmd/csi-sanity@$version" >&2
mkdir -p "$cache/csi-sanity-$version"
mv "$tmp/csi-sanity" "$bin"
echo "$bin"

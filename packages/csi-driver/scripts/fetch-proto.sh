#!/usr/bin/env bash
# Fetches the CSI spec's csi.proto from the Go module proxy (the module
# github.com/container-storage-interface/spec, pinned; go verifies it against the
# checksum database) into proto/csi.proto, which git ignores. Does nothing when the
# pinned version is already there. CSI_SPEC_VERSION overrides the pin.
set -euo pipefail
version="${CSI_SPEC_VERSION:-v1.13.0}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="$here/proto"
if [ -f "$out/csi.proto" ] && [ "$(cat "$out/VERSION" 2>/dev/null)" = "$version" ]; then exit 0; fi
command -v go >/dev/null || { echo "fetch-proto: no go on PATH: it fetches csi.proto $version from the Go module proxy" >&2; exit 1; }
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
# Outside any module, so no go.mod of the caller is read or changed.
json="$(cd "$tmp" && GOFLAGS=-mod=mod GO111MODULE=on go mod download -json "github.com/container-storage-interface/spec@$version")"
dir="$(printf '%s' "$json" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
[ -n "$dir" ] && [ -f "$dir/csi.proto" ] || { echo "fetch-proto: go mod download gave no csi.proto: $json" >&2; exit 1; }
mkdir -p "$out"
cp "$dir/csi.proto" "$out/csi.proto.tmp" && chmod 644 "$out/csi.proto.tmp" && mv "$out/csi.proto.tmp" "$out/csi.proto"
printf '%s\n' "$version" > "$out/VERSION"
echo "fetch-proto: csi.proto $version -> $out/csi.proto" >&2

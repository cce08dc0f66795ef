#!/usr/bin/env bash
# Fetches the protos the driver serves from the Go module proxy (go verifies each module
# against the checksum database), pinned, into proto/ (git ignores it):
#   csi.proto                 github.com/container-storage-interface/spec   (CSI_SPEC_VERSION)
#   pluginregistration.proto  k8s.io/kubelet pkg/apis/pluginregistration/v1 (KUBELET_VERSION)
# Does nothing when the pinned versions are already there.
set -euo pipefail
csi_version="${CSI_SPEC_VERSION:-v1.13.0}"
kubelet_version="${KUBELET_VERSION:-v0.37.2}"
stamp="csi=$csi_version kubelet=$kubelet_version"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="$here/proto"
if [ -f "$out/csi.proto" ] && [ -f "$out/pluginregistration.proto" ] && [ "$(cat "$out/VERSION" 2>/dev/null)" = "$stamp" ]; then exit 0; fi
command -v go >/dev/null || { echo "fetch-proto: no go on PATH: it fetches csi.proto $csi_version and the kubelet's pluginregistration proto $kubelet_version from the Go module proxy" >&2; exit 1; }
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
# Outside any module, so no go.mod of the caller is read or changed.
module_dir() {
  local json dir
  json="$(cd "$tmp" && GOFLAGS=-mod=mod GO111MODULE=on go mod download -json "$1")"
  dir="$(printf '%s' "$json" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
  [ -n "$dir" ] || { echo "fetch-proto: go mod download $1 gave no directory: $json" >&2; return 1; }
  printf '%s' "$dir"
}
spec="$(module_dir "github.com/container-storage-interface/spec@$csi_version")"
kubelet="$(module_dir "k8s.io/kubelet@$kubelet_version")"
mkdir -p "$out"
# Each file appears whole (written under a name of this process, then renamed): test
# workers fetching at once never see half a proto.
put() { install -m 644 "$1" "$out/.$2.$$" && mv -f "$out/.$2.$$" "$out/$2"; }
printf '%s\n' "$csi_version" > "$tmp/VERSION.csi"
printf '%s\n' "$stamp" > "$tmp/VERSION"
put "$spec/csi.proto" csi.proto
put "$kubelet/pkg/apis/pluginregistration/v1/api.proto" pluginregistration.proto
put "$tmp/VERSION.csi" VERSION.csi
put "$tmp/VERSION" VERSION
echo "fetch-proto: csi.proto $csi_version, pluginregistration.proto (k8s.io/kubelet $kubelet_version) -> $out" >&2

#!/usr/bin/env bash
# Builds the Kubernetes binaries the harness runs (kube-apiserver, kube-controller-manager, kube-scheduler,
# kubelet, kubectl) and the controller-side CSI sidecars from the Go module proxy, pinned, into a cache OUTSIDE
# the clone keyed by version. A warm run only checks the files. Cold: once per machine (~22 min for Kubernetes
# and ~7-10 min per sidecar on 2 cores shared with other builds; nice 19). Prints on stdout the Kubernetes
# directory and the sidecars' directory (one directory of links to each sidecar's own versioned build).
#   FLOCKER_K8S_CACHE  cache root (default /var/cache/flocker)
#   K8S_SIDECARS       which sidecars (default "provisioner resizer snapshotter"; the harness's CSIDriver says
#                      attachRequired: false, so csi-attacher would have nothing to do: add "attacher" to build it).
#                      "snapshotter" is external-snapshotter: csi-snapshotter and snapshot-controller in one
#                      `go build` of the one module, plus the VolumeSnapshot CRDs from its client module.
#   K8S_VERSION / PROVISIONER_VERSION / ATTACHER_VERSION / RESIZER_VERSION / SNAPSHOTTER_VERSION  override the pins
set -euo pipefail
k8s_version="${K8S_VERSION:-1.35.4}"
provisioner_version="${PROVISIONER_VERSION:-v6.4.0}"
attacher_version="${ATTACHER_VERSION:-v4.13.0}"
resizer_version="${RESIZER_VERSION:-v2.3.0}"
snapshotter_version="${SNAPSHOTTER_VERSION:-v8.7.0}"
root="${FLOCKER_K8S_CACHE:-/var/cache/flocker}"
kdir="$root/k8s-v$k8s_version"
kbins="kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl"
sidecars="${K8S_SIDECARS:-provisioner resizer snapshotter}"
version_of() { case $1 in provisioner) echo "$provisioner_version" ;; resizer) echo "$resizer_version" ;; attacher) echo "$attacher_version" ;;
  snapshotter) echo "$snapshotter_version" ;;
  *) echo "k8s/build: unknown sidecar $1 (provisioner, resizer, attacher, snapshotter)" >&2; exit 1 ;; esac; }
module_of() { case $1 in provisioner) echo github.com/kubernetes-csi/external-provisioner/v6 ;;
  resizer) echo github.com/kubernetes-csi/external-resizer/v2 ;; attacher) echo github.com/kubernetes-csi/external-attacher/v4 ;;
  snapshotter) echo github.com/kubernetes-csi/external-snapshotter/v8 ;; esac; }
bins_of() { case $1 in snapshotter) echo csi-snapshotter snapshot-controller ;; *) echo "csi-$1" ;; esac; }
sdir="$root/k8s-csi-sidecars"          # links to the versioned builds below, rewritten on every run
sidecar_dir() { echo "$root/go-bin/csi-$1-$(version_of "$1")"; }

complete() { local d=$1 b; shift; for b in "$@"; do [ -x "$d/$b" ] || return 1; done; }
sidecar_built() { complete "$(sidecar_dir $1)" $(bins_of $1) || return 1
  [ "$1" != snapshotter ] || [ -f "$(sidecar_dir $1)/crd/groupsnapshot.storage.k8s.io_volumegroupsnapshots.yaml" ]; }
sidecars_built() { local s; for s in $sidecars; do sidecar_built $s || return 1; done; }
link_sidecars() { local s b; mkdir -p "$sdir"
  for s in $sidecars; do for b in $(bins_of $s); do ln -sfn "$(sidecar_dir $s)/$b" "$sdir/$b"; done
    [ "$s" != snapshotter ] || ln -sfn "$(sidecar_dir $s)/crd" "$sdir/snapshot-crd"; done; }
if complete "$kdir" $kbins && sidecars_built; then link_sidecars; echo "$kdir $sdir"; exit 0; fi

command -v go >/dev/null || export PATH="/usr/local/go/bin:$PATH"
command -v go >/dev/null || { echo "k8s/build: no go on PATH (needed to build Kubernetes v$k8s_version)" >&2; exit 1; }
mkdir -p "$root"
# One build per machine at a time: a second caller waits here, then finds the cache warm.
exec 9>"$root/.k8s-build.lock"
if ! flock -n 9; then echo "k8s/build: another build is running; waiting for it" >&2; flock 9; fi
if complete "$kdir" $kbins && sidecars_built; then link_sidecars; echo "$kdir $sdir"; exit 0; fi

work="$root/.k8s-build"          # kept between failed attempts (module downloads, compiled packages)
mkdir -p "$work"
export GOCACHE="$work/gocache" GOFLAGS="-modcacherw" CGO_ENABLED=0 GOTOOLCHAIN=local
gorun() { nice -n 19 go "$@"; }
modDir() { (cd /tmp && go mod download -json "$1@$2") | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p'; }
start=$(date +%s)
say() { echo "k8s/build: [$(( $(date +%s) - start ))s] $*" >&2; }

if ! complete "$kdir" $kbins; then
  say "Kubernetes v$k8s_version is not in the cache ($kdir): building it from the Go module proxy, once per machine (~20-25 min on 2 busy cores)"
  src=$(modDir k8s.io/kubernetes "v$k8s_version")
  [ -n "$src" ] || { echo "k8s/build: cannot download k8s.io/kubernetes v$k8s_version" >&2; exit 1; }
  # k8s.io/kubernetes replaces its staging modules with ./staging/...; a wrapper module pins them to the
  # published v0.<minor>.<patch> versions instead, so the commands build as dependencies.
  mkdir -p "$work/kbuild" && cd "$work/kbuild"
  { echo "module flockerk8sbuild"; echo; echo "go $(awk '/^go /{print $2; exit}' "$src/go.mod")"; echo
    echo "require k8s.io/kubernetes v$k8s_version"; echo; echo "replace ("
    grep '=> ./staging' "$src/go.mod" | awk -v v="v0.${k8s_version#1.}" '{print "\t"$1" => "$1" "v}'; echo ")"; } > go.mod
  pkgs=""; for c in $kbins; do pkgs="$pkgs k8s.io/kubernetes/cmd/$c"; done
  GOFLAGS="-mod=mod -modcacherw" gorun list -deps $pkgs > /dev/null    # resolves the graph, writes go.sum
  say "modules resolved; compiling"
  minor=$(echo "$k8s_version" | cut -d. -f2)
  tmp="$work/kbin.tmp"; rm -rf "$tmp"; mkdir -p "$tmp"
  gorun build -trimpath -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=v$k8s_version \
    -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor \
    -X k8s.io/client-go/pkg/version.gitVersion=v$k8s_version" -o "$tmp/" $pkgs
  rm -rf "$kdir"; mv "$tmp" "$kdir"
  say "Kubernetes binaries in $kdir"
fi

# The sidecars' go.mod files carry replace directives, so `go install pkg@version` refuses them: build a copy
# of each downloaded module as the main module.
for s in $sidecars; do
  out="$(sidecar_dir $s)"; sidecar_built $s && continue
  ver="$(version_of $s)"; mod="$(module_of $s)"
  say "building $(bins_of $s) $ver"
  d=$(modDir "$mod" "$ver"); [ -n "$d" ] || { echo "k8s/build: cannot download $mod $ver" >&2; exit 1; }
  rm -rf "$work/src-$s" "$work/bin-$s"; cp -r "$d" "$work/src-$s"; chmod -R u+w "$work/src-$s"; mkdir -p "$work/bin-$s"
  flags="-modcacherw"
  if [ "$s" = snapshotter ]; then
    # Its go.mod replaces its client module with ./client, which the proxy's zip of the main module leaves
    # out: pin the published client module of the same version instead. Its config/crd holds the CRDs: the
    # group snapshot ones too (VolumeGroupSnapshot is GA in v8, and snapshot-controller waits for its CRDs).
    cmod=github.com/kubernetes-csi/external-snapshotter/client/v8
    cdir=$(modDir "$cmod" "$ver"); [ -n "$cdir" ] || { echo "k8s/build: cannot download $cmod $ver" >&2; exit 1; }
    (cd "$work/src-$s" && go mod edit -replace "$cmod=$cmod@$ver"); flags="-mod=mod -modcacherw"   # go.sum gains it
    mkdir -p "$work/bin-$s/crd"; cp "$cdir"/config/crd/*snapshot.storage.k8s.io_*.yaml "$work/bin-$s/crd/"
  fi
  pkgs=""; for b in $(bins_of $s); do pkgs="$pkgs ./cmd/$b"; done
  (cd "$work/src-$s" && GOFLAGS="$flags" gorun build -trimpath -ldflags "-s -w -X main.version=$ver" -o "$work/bin-$s/" $pkgs)
  rm -rf "$work/src-$s" "$out"; mkdir -p "$(dirname "$out")"; mv "$work/bin-$s" "$out"
  say "$(bins_of $s) in $out"
done
link_sidecars
# The compiled-package cache is only useful to a build that failed half-way; the binaries are the cache.
rm -rf "$work"
say "done"
echo "$kdir $sdir"

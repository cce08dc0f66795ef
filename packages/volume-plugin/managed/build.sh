#!/usr/bin/env bash
# Builds the Flocker volume plugin as a managed Docker plugin (v2) and creates it:
#   packages/volume-plugin/managed/build.sh [--out DIR] [--no-create] [--no-compile] NAME:TAG
# e.g. build.sh flocker/flocker:0.1.0, then: docker plugin set / enable (README "Managed plugin").
# The rootfs holds the project's Node 24 binary and the shared libraries it links, mount and
# umount (the plugin binds volumes into its propagated mount), findmnt (it follows the agent's
# mounts in the kernel's table: MountTable.ts) and setpriv (findmnt runs under --pdeathsig: it is
# paused while idle, and must not outlive the plugin), and the plugin's compiled code
# with its production dependencies at their repository paths. The docker CLI honours DOCKER_HOST.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
out="" create=1 compile=1 ref=""
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out="$2"; shift 2 ;;
    --no-create) create=0; shift ;;
    --no-compile) compile=0; shift ;;
    -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
    -*) echo "build.sh: unknown option $1" >&2; exit 2 ;;
    *) ref="$1"; shift ;;
  esac
done
[ -n "$ref" ] || { echo "usage: build.sh [--out DIR] [--no-create] [--no-compile] NAME:TAG" >&2; exit 2; }
case "$ref" in *:*) version="${ref##*:}" ;; *) version=latest; ref="$ref:latest" ;; esac
out="${out:-$repo/.tools/managed-plugin}"  # .tools/ is not tracked

# shellcheck source=/dev/null
source "$repo/scripts/env.sh"
flocker_ensure_node >/dev/null
node_bin="$(readlink -f "$(command -v node)")"
if [ "$compile" = 1 ]; then (cd "$repo" && npx tsc -b packages/volume-plugin); fi

rm -rf "$out" && mkdir -p "$out/rootfs"
rootfs="$out/rootfs"
mkdir -p "$rootfs"/{usr/bin,bin,etc,tmp,proc,sys,dev,run/docker/plugins,run/flocker,mnt/flocker,host/flocker,etc/flocker,var/lib/flocker,app}
chmod 1777 "$rootfs/tmp"

# Executables and every shared library they link (with the dynamic loader), at their own paths.
copy_with_libs() { # source-binary dest-in-rootfs
  install -D -m 0755 "$1" "$rootfs$2"
  ldd "$1" | grep -o '/[^ ]*' | while read -r lib; do
    [ -e "$lib" ] && cp -L --parents "$lib" "$rootfs/"
  done
}
copy_with_libs "$node_bin" /usr/bin/node
copy_with_libs "$(command -v mount)" /bin/mount
copy_with_libs "$(command -v umount)" /bin/umount
copy_with_libs "$(command -v findmnt)" /bin/findmnt
copy_with_libs "$(command -v setpriv)" /bin/setpriv
echo 'root:x:0:0:root:/root:/bin/false' >"$rootfs/etc/passwd"
echo 'root:x:0:' >"$rootfs/etc/group"

# The plugin and its production dependencies, at their paths relative to the repository.
node "$repo/packages/volume-plugin/dist/managed/packageClosure.js" "$repo/packages/volume-plugin" "$repo" |
  while read -r kind a b; do
    case "$kind" in
      package)
        mkdir -p "$rootfs/app/$a"
        # Nested node_modules are packages of their own in the list; workspaces ship dist only.
        excl=(--exclude=./node_modules)
        case "$a" in packages/*) excl+=(--exclude=./src --exclude=./dist/.tsbuildinfo --exclude='*.test.js' --exclude='*.test.d.ts') ;; esac
        tar -C "$repo/$a" "${excl[@]}" -cf - . | tar -C "$rootfs/app/$a" -xf -
        ;;
      link)
        mkdir -p "$(dirname "$rootfs/app/$a")"
        ln -sfn "$(realpath --relative-to="$(dirname "$repo/$a")" "$repo/$b")" "$rootfs/app/$a"
        ;;
    esac
  done
# Fail here, not at `docker plugin enable`: the rootfs runs the plugin's code.
"$rootfs/usr/bin/node" -e "require('$rootfs/app/packages/volume-plugin/dist/config.js')" \
  || { echo "build.sh: the rootfs cannot load the plugin" >&2; exit 1; }

sed "s/@VERSION@/$version/" "$here/config.json" >"$out/config.json"
echo "build.sh: rootfs and config.json in $out ($(du -sh "$out" | cut -f1))" >&2
if [ "$create" = 1 ]; then
  docker plugin create "$ref" "$out"
fi

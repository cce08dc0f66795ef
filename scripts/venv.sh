# Source this file: flocker_venv VENV STAMP_NAME REQUIREMENT... installs Python
# packages from PyPI into a project-local venv once. Concurrent callers (parallel
# test processes) are serialised by a lock: one installs, the others wait.
flocker_venv() {
  local venv="$1" stamp="$1/.flocker-$2"; shift 2
  [ -f "$stamp" ] && return 0
  mkdir -p "$(dirname "$venv")"
  (
    exec 9>"$venv.lock"
    flock 9
    [ -f "$stamp" ] && exit 0
    if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
      echo "flocker: installing python3-venv" >&2
      apt-get update -qq && apt-get install -y -qq python3 python3-venv >/dev/null
    fi
    echo "flocker: installing $* into $venv" >&2
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "$@" >&2
    touch "$stamp" # written last: its presence means the install finished
  )
}

#!/usr/bin/env bash
# Installs moto's EC2 emulator (moto[server] from PyPI) into a project-local venv,
# .tools/moto-venv, for the EBS driver tests. Idempotent and fast when installed.
#
#   scripts/moto.sh             install if needed, print the moto_server path
#   scripts/moto.sh start PORT  then run `moto_server -H 127.0.0.1 -p PORT` in the foreground
#
# The jest tests call this themselves and start/stop moto_server on a free port.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${FLOCKER_MOTO_VENV:-$root/.tools/moto-venv}"
# Pinned so every run tests against the same emulator behaviour.
version="${FLOCKER_MOTO_VERSION:-5.2.5}"
stamp="$venv/.flocker-moto-$version"

if [ ! -f "$stamp" ]; then
  mkdir -p "$(dirname "$venv")"
  # Concurrent test processes may call this at once: one installs, the others wait.
  exec 9>"$venv.lock"
  flock 9
  if [ ! -f "$stamp" ]; then
    if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
      echo "moto.sh: installing python3-venv" >&2
      apt-get update -qq && apt-get install -y -qq python3 python3-venv >/dev/null
    fi
    echo "moto.sh: installing moto[server]==$version into $venv" >&2
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$version" >&2
    touch "$stamp" # written last: its presence means the install finished
  fi
  exec 9>&-
fi

if [ "${1:-}" = start ]; then
  exec "$venv/bin/moto_server" -H 127.0.0.1 -p "${2:?usage: moto.sh start PORT}"
fi
echo "$venv/bin/moto_server"

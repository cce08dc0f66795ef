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
source "$root/scripts/venv.sh"
flocker_venv "$venv" "moto-$version" "moto[server]==$version"

if [ "${1:-}" = start ]; then
  exec "$venv/bin/moto_server" -H 127.0.0.1 -p "${2:?usage: moto.sh start PORT}"
fi
echo "$venv/bin/moto_server"

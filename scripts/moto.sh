#!/usr/bin/env bash
# Installs moto's EC2 emulator (moto[server] from PyPI) into a venv cached per machine
# (scripts/venv.sh: /var/cache/flocker/python), for the EBS driver and backup tests.
# Idempotent and fast when installed.
#
#   scripts/moto.sh             install if needed, print the moto_server path
#   scripts/moto.sh start PORT  then run `moto_server -H 127.0.0.1 -p PORT` in the foreground
#
# The jest tests call this themselves and start/stop moto_server on a free port.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Pinned so every run tests against the same emulator behaviour.
version="${FLOCKER_MOTO_VERSION:-5.2.5}"
source "$root/scripts/venv.sh"
venv="$(flocker_venv moto python3 "moto[server]==$version")"

if [ "${1:-}" = start ]; then
  exec "$venv/bin/moto_server" -H 127.0.0.1 -p "${2:?usage: moto.sh start PORT}"
fi
echo "$venv/bin/moto_server"

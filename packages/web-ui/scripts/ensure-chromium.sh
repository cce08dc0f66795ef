#!/usr/bin/env bash
# Debian's Chromium for the web UI's browser tests (never a browser build downloaded
# by playwright). Idempotent; needs root when Chromium is missing.
set -euo pipefail
[ -x /usr/bin/chromium ] && exit 0
echo "flocker: installing Debian's chromium for the web UI tests" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium fonts-liberation >/dev/null

#!/usr/bin/env bash
# A real OpenStack Cinder (from PyPI) on 127.0.0.1 for the CinderDriver tests.
#
#   scripts/cinder.sh install   # venv + cinder + OS packages (idempotent)
#   scripts/cinder.sh start     # installs if needed, starts; prints the API URL
#   scripts/cinder.sh stop      # stops it; keeps state (volumes, database)
#   scripts/cinder.sh purge     # stops it and removes all state
#   scripts/cinder.sh status    # exit 0 when the API answers
#
# Environment: CINDER_PORT (default 18776), CINDER_STATE (default .tools/cinder-state),
# CINDER_VERSION (default 27.0.0, the 2025.2 release; installs on Python 3.11).
# Every state directory is an independent Cinder (tests use a temporary one and
# a free port, so concurrent test runs do not stop each other's Cinder); the
# venvs are shared, cached per machine outside the clone (scripts/venv.sh).
#
# What runs, and why this way (this machine is a container without device-mapper,
# SCSI or iSCSI in its kernel, so neither the LVM driver nor an iSCSI target can work):
# - cinder-api, cinder-scheduler and cinder-volume run as services of ONE process
#   (oslo.service ServiceLauncher, as the old cinder-all did) so that oslo.messaging's
#   in-process `fake://` transport connects them; no RabbitMQ needed.
# - The backend is Cinder's real NFS driver (NfsDriver). Its "share" is a local
#   directory bind-mounted where the driver would mount the export, so volumes are
#   sparse raw files; the host side (CinderDriver's connector) attaches the file of an
#   attached volume as a loop device, as a bare-metal NFS client would.
# - auth_strategy = noauth (X-Auth-Token "user:project"), SQLite database.
# - With CINDER_AUTH=keystone, a real Keystone (PyPI keystone 28.0.0, 2025.2, own venv,
#   SQLite, fernet tokens) runs on KEYSTONE_PORT (default CINDER_PORT+1)
#   and Cinder uses auth_strategy = keystone (keystonemiddleware, no token cache, so a
#   revoked token is refused at once). Keystone holds: admin/admin (project admin),
#   user flocker/flocker-secret with role member on project flocker (domain Default),
#   and a volumev3 service with public and internal endpoints in RegionOne.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PORT="${CINDER_PORT:-18776}"
STATE="${CINDER_STATE:-$ROOT/.tools/cinder-state}"
VENV="" # set by install
VERSION="${CINDER_VERSION:-27.0.0}"
SHARE="127.0.0.1:/flocker-cinder"
PYTHON="${CINDER_PYTHON:-}"
AUTH="${CINDER_AUTH:-noauth}"
KPORT="${KEYSTONE_PORT:-$((PORT + 1))}"
KVENV="" # set by install (with CINDER_AUTH=keystone)
KVERSION="${KEYSTONE_VERSION:-28.0.0}"
KURL="http://127.0.0.1:$KPORT/v3"

log() { echo "cinder.sh: $*" >&2; }
source "$ROOT/scripts/venv.sh"

find_python() {
  if [ -n "$PYTHON" ]; then echo "$PYTHON"; return; fi
  for p in python3.11 python3.12 python3.10 python3; do
    if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import sys, venv; sys.exit(0 if (3, 10) <= sys.version_info[:2] < (3, 13) else 1)' 2>/dev/null; then
      command -v "$p"; return
    fi
  done
  log "needs Python 3.10-3.12 with venv"; exit 1
}

# Concurrent test runs share the venvs: one installer per venv at a time (each under
# its own lock, so a Keystone and a Cinder install can proceed in parallel).
install() {
  install_os_packages
  local python; python="$(find_python)"
  if [ "$AUTH" = keystone ]; then
    KVENV="$(flocker_venv keystone "$python" "keystone==$KVERSION")"
  fi
  VENV="$(flocker_venv cinder "$python" "cinder==$VERSION")"
}

locked() { # venv command...
  local venv="$1"; shift
  mkdir -p "$(dirname "$venv")"
  ( flock 9; "$@" ) 9>"$venv.lock"
}

install_os_packages() {
  local missing=()
  command -v qemu-img >/dev/null 2>&1 || missing+=(qemu-utils)
  [ -x /sbin/mount.nfs ] || [ -x /usr/sbin/mount.nfs ] || missing+=(nfs-common)
  command -v losetup >/dev/null 2>&1 || missing+=(mount)
  command -v curl >/dev/null 2>&1 || missing+=(curl)
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    locked "$(flocker_py_cache)/apt" apt_install "${missing[@]}"
  fi
}

apt_install() {
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null 2>&1 ||
    { apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null; }
}

# A new database's schema (db sync: every migration since the first release, ~10-20 s of each start) is made once
# per venv and copied: the same file db sync makes, nothing in it depends on a state directory or port. The
# template lives in the venv, so a reinstall (rm -rf of the venv) drops it with the code it came from.
copy_db_template() { # template target sync-command...
  local template="$1" target="$2"; shift 2
  if [ ! -f "$template" ]; then
    log "creating the database"
    "$@" >>"$(dirname "$target")/db-sync.log" 2>&1 || { tail -20 "$(dirname "$target")/db-sync.log" >&2; return 1; }
    cp "$target" "$template.tmp" && mv "$template.tmp" "$template"
    return
  fi
  cp "$template" "$target"
}

# ------------------------------------------------------------------ keystone

start_keystone() {
  mkdir -p "$STATE/keystone"
  cat > "$STATE/keystone/keystone.conf" <<EOF
[DEFAULT]
log_file = $STATE/keystone/keystone.log
[database]
connection = sqlite:///$STATE/keystone/keystone.sqlite
[token]
provider = fernet
expiration = 3600
[fernet_tokens]
key_repository = $STATE/keystone/fernet-keys
[fernet_receipts]
key_repository = $STATE/keystone/fernet-keys
[credential]
key_repository = $STATE/keystone/credential-keys
EOF
  if [ ! -f "$STATE/keystone/keystone.sqlite" ]; then locked "$KVENV" keystone_state; fi
  cat > "$STATE/keystone/serve.py" <<'EOF'
# One request at a time: Keystone on SQLite fails with "database is locked" under concurrent requests.
import sys
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer as Server, make_server
class Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass
port = int(sys.argv[1])
sys.argv = sys.argv[:1]  # keystone parses the command line as its own options
from keystone.wsgi.api import application
make_server('127.0.0.1', port, application, server_class=Server, handler_class=Quiet).serve_forever()
EOF
  if ! curl -fsS -o /dev/null "$KURL" 2>/dev/null; then
    OS_KEYSTONE_CONFIG_FILES="$STATE/keystone/keystone.conf" PYTHONWARNINGS=ignore setsid "$KVENV/bin/python" "$STATE/keystone/serve.py" "$KPORT" \
      >>"$STATE/keystone/keystone.out" 2>&1 < /dev/null &
    echo $! > "$STATE/keystone/keystone.pid"
    local i
    for i in $(seq 1 120); do
      curl -fsS -o /dev/null "$KURL" 2>/dev/null && break
      kill -0 "$(cat "$STATE/keystone/keystone.pid")" 2>/dev/null || { log "keystone exited; see $STATE/keystone/keystone.out"; tail -20 "$STATE/keystone/keystone.out" >&2; exit 1; }
      sleep 0.5
    done
  fi
  # Users, project, role and the volumev3 endpoints (idempotent).
  "$KVENV/bin/python" - "$KURL" "http://127.0.0.1:$PORT/v3" <<'EOF'
import json, sys, urllib.request
kurl, cinder = sys.argv[1], sys.argv[2]
def call(method, path, body=None, token=None):
    req = urllib.request.Request(kurl + path, method=method, data=None if body is None else json.dumps(body).encode(),
                                 headers={'Content-Type': 'application/json', **({'X-Auth-Token': token} if token else {})})
    with urllib.request.urlopen(req) as r:
        return r.headers.get('X-Subject-Token'), (json.loads(r.read() or b'null'))
tok, _ = call('POST', '/auth/tokens', {'auth': {'identity': {'methods': ['password'], 'password': {'user': {'name': 'admin', 'password': 'admin', 'domain': {'id': 'default'}}}}, 'scope': {'project': {'name': 'admin', 'domain': {'id': 'default'}}}}})
def find(kind, key, name, **query):
    q = '&'.join([f'name={name}'] + [f'{k}={v}' for k, v in query.items()])
    return next(iter(call('GET', f'/{kind}?{q}', token=tok)[1][key]), None)
project = find('projects', 'projects', 'flocker') or call('POST', '/projects', {'project': {'name': 'flocker', 'domain_id': 'default'}}, tok)[1]['project']
user = find('users', 'users', 'flocker') or call('POST', '/users', {'user': {'name': 'flocker', 'password': 'flocker-secret', 'domain_id': 'default', 'default_project_id': project['id']}}, tok)[1]['user']
member = find('roles', 'roles', 'member')
call('PUT', f"/projects/{project['id']}/users/{user['id']}/roles/{member['id']}", token=tok)
service = find('services', 'services', 'cinderv3') or call('POST', '/services', {'service': {'name': 'cinderv3', 'type': 'volumev3'}}, tok)[1]['service']
# The identity endpoints bootstrap made (in a copied database: for another port).
for identity in call('GET', '/services?type=identity', token=tok)[1]['services']:
    for e in call('GET', f"/endpoints?service_id={identity['id']}", token=tok)[1]['endpoints']:
        if e['url'] != kurl:
            call('PATCH', f"/endpoints/{e['id']}", {'endpoint': {'url': kurl}}, tok)
have = {e['interface'] for e in call('GET', f"/endpoints?service_id={service['id']}", token=tok)[1]['endpoints']}
for iface in ('public', 'internal'):
    if iface not in have:
        call('POST', '/endpoints', {'endpoint': {'service_id': service['id'], 'interface': iface, 'region_id': 'RegionOne', 'url': cinder + '/%(project_id)s'}}, tok)
EOF
}

# Keystone's database after db_sync and bootstrap, with its fernet and credential keys: ~20 s of keystone-manage
# (four Keystone imports) on a quiet host, over a minute on a loaded one. Made once per venv (so a reinstall drops it)
# and copied into each state directory; the setup after the start points the identity endpoints at this port.
keystone_state() {
  local template="$KVENV/.keystone-state-$KVERSION"
  if [ -d "$template" ]; then cp -a "$template/." "$STATE/keystone/"; return; fi
  log "creating the keystone database"
  local km=("$KVENV/bin/keystone-manage" --config-file "$STATE/keystone/keystone.conf")
  {
    "${km[@]}" db_sync
    "${km[@]}" fernet_setup --keystone-user root --keystone-group root
    "${km[@]}" credential_setup --keystone-user root --keystone-group root
    "${km[@]}" bootstrap --bootstrap-password admin --bootstrap-region-id RegionOne \
      --bootstrap-admin-url "$KURL" --bootstrap-internal-url "$KURL" --bootstrap-public-url "$KURL"
    # WAL: a reader's open transaction no longer makes writers fail with "database is locked".
    "$KVENV/bin/python" -c 'import sqlite3, sys; sqlite3.connect(sys.argv[1]).execute("PRAGMA journal_mode=WAL")' "$STATE/keystone/keystone.sqlite"
  } >>"$STATE/keystone/keystone.out" 2>&1 || { tail -20 "$STATE/keystone/keystone.out" >&2; rm -f "$STATE/keystone/keystone.sqlite"; return 1; }
  rm -rf "$template.tmp"
  mkdir "$template.tmp"
  cp -a "$STATE/keystone/keystone.sqlite" "$STATE/keystone/fernet-keys" "$STATE/keystone/credential-keys" "$template.tmp/"
  mv "$template.tmp" "$template"
}

# An admin token: noauth's fixed one, or a real one from Keystone.
admin_token() {
  if [ "$AUTH" != keystone ]; then echo admin:admin; return; fi
  curl -fsS -D - -o /dev/null -H 'Content-Type: application/json' "$KURL/auth/tokens" \
    -d '{"auth":{"identity":{"methods":["password"],"password":{"user":{"name":"admin","password":"admin","domain":{"id":"default"}}}},"scope":{"project":{"name":"admin","domain":{"id":"default"}}}}}' \
    | tr -d '\r' | sed -n 's/^[Xx]-[Ss]ubject-[Tt]oken: //p'
}

mount_point() { echo "$STATE/mnt/$(printf '%s' "$SHARE" | md5sum | cut -d' ' -f1)"; }

write_config() {
  mkdir -p "$STATE/share" "$STATE/lock" "$STATE/mnt" "$STATE/coordination"
  echo "$SHARE" > "$STATE/nfs_shares"
  cat > "$STATE/cinder.conf" <<EOF
[DEFAULT]
auth_strategy = $AUTH
transport_url = fake://
host = flocker-cinder
state_path = $STATE
my_ip = 127.0.0.1
osapi_volume_listen = 127.0.0.1
osapi_volume_listen_port = $PORT
osapi_volume_workers = 1
api_paste_config = $VENV/etc/cinder/api-paste.ini
resource_query_filters_file = $VENV/etc/cinder/resource_filters.json
rootwrap_config = $VENV/etc/cinder/rootwrap.conf
enabled_backends = nfs
# Tests create many volumes in one project.
quota_volumes = -1
quota_gigabytes = -1
quota_snapshots = -1
quota_backups = -1
log_file = $STATE/cinder.log
debug = false
# One process: no periodic wake-ups that would keep it busy.
periodic_interval = 10
report_interval = 5
service_down_time = 60
[database]
connection = sqlite:///$STATE/cinder.sqlite
[keystone_authtoken]
www_authenticate_uri = $KURL
auth_url = $KURL
auth_type = password
username = admin
password = admin
user_domain_id = default
project_name = admin
project_domain_id = default
# No cache: a revoked token must be refused at once (the token-renewal test relies on it).
token_cache_time = -1
service_token_roles_required = false
[oslo_concurrency]
lock_path = $STATE/lock
# We run as root without sudo: start the privsep daemons directly.
[cinder_sys_admin]
helper_command = $VENV/bin/privsep-helper --config-file $STATE/cinder.conf
[privsep_osbrick]
helper_command = $VENV/bin/privsep-helper --config-file $STATE/cinder.conf
[coordination]
backend_url = file://$STATE/coordination
[nfs]
volume_driver = cinder.volume.drivers.nfs.NfsDriver
volume_backend_name = nfs
nfs_shares_config = $STATE/nfs_shares
nfs_mount_point_base = $STATE/mnt
nfs_sparsed_volumes = true
# Snapshots (issue 20): qcow2 overlays in the share. A snapshotted volume's active file is then a qcow2
# overlay, which a bare-metal host (loop device) cannot attach until its snapshots are gone; clones are raw.
nfs_snapshot_support = true
nas_secure_file_operations = false
nas_secure_file_permissions = false
EOF
  # All services in one process, so the fake:// transport reaches each of them.
  cat > "$STATE/cinder-all.py" <<'EOF'
import eventlet
eventlet.monkey_patch()
import __original_module_threading as orig_threading  # noqa
import threading  # noqa
orig_threading.current_thread.__globals__['_active'] = threading._active

import shlex
import sys

from oslo_config import cfg
from oslo_log import log as logging
from oslo_privsep import priv_context
from oslo_service import service as oslo_service
import os_brick

from cinder import i18n
i18n.enable_lazy()
from cinder.common import config
from cinder.common import constants
from cinder import coordination
from cinder import objects
from cinder import rpc
from cinder import service
from cinder import utils
from cinder import version

CONF = cfg.CONF


def main():
    objects.register_all()
    CONF(sys.argv[1:], project='cinder', version=version.version_string())
    config.set_middleware_defaults()
    logging.setup(CONF, 'cinder')
    priv_context.init(root_helper=shlex.split(utils.get_root_helper()))
    os_brick.setup(CONF)
    coordination.COORDINATOR.start()
    rpc.init(CONF)
    launcher = oslo_service.ServiceLauncher(CONF)
    launcher.launch_service(service.Service.create(binary=constants.SCHEDULER_BINARY))
    launcher.launch_service(service.Service.create(
        host='%s@nfs' % CONF.host, service_name='nfs', binary=constants.VOLUME_BINARY, coordination=True))
    launcher.launch_service(service.WSGIService('osapi_volume'))
    launcher.wait()


if __name__ == '__main__':
    main()
EOF
}

TOKEN=""
api_up() { curl -fsS -o /dev/null -H "X-Auth-Token: $TOKEN" "http://127.0.0.1:$PORT/v3/types" 2>/dev/null; }

# The volume service is up once the scheduler knows its capacity (pools listed).
backend_up() {
  curl -fsS -H "X-Auth-Token: $TOKEN" "http://127.0.0.1:$PORT/v3/scheduler-stats/get_pools" 2>/dev/null | grep -q '"name"'
}

running_pid() {
  local pid
  pid="$(cat "$STATE/cinder.pid" 2>/dev/null)" || return 1
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && grep -q cinder-all "/proc/$pid/cmdline" 2>/dev/null && echo "$pid"
}

# The database seeds the default quota class with 10 volumes; tests need more.
unlimited_quotas() {
  curl -fsS -o /dev/null -X PUT -H "X-Auth-Token: $TOKEN" -H 'Content-Type: application/json' \
    -d '{"quota_class_set": {"volumes": -1, "gigabytes": -1, "snapshots": -1, "backups": -1, "backup_gigabytes": -1, "per_volume_gigabytes": -1}}' \
    "http://127.0.0.1:$PORT/v3/os-quota-class-sets/default"
}

# Starts the Cinder process (its database made if missing); wait_cinder waits for it.
launch_cinder() {
  stop_process
  write_config
  local mp; mp="$(mount_point)"
  mkdir -p "$mp"
  mountpoint -q "$mp" || mount --bind "$STATE/share" "$mp"
  if [ ! -f "$STATE/cinder.sqlite" ] || [ "$(cat "$STATE/.db-version" 2>/dev/null)" != "$VERSION" ]; then
    rm -f "$STATE/cinder.sqlite"
    locked "$VENV" copy_db_template "$VENV/.cinder-db-$VERSION.sqlite" "$STATE/cinder.sqlite" \
      "$VENV/bin/cinder-manage" --config-file "$STATE/cinder.conf" db sync
    echo "$VERSION" > "$STATE/.db-version"
  fi
  PYTHONWARNINGS=ignore setsid "$VENV/bin/python" "$STATE/cinder-all.py" --config-file "$STATE/cinder.conf" >>"$STATE/cinder.out" 2>&1 < /dev/null &
  echo $! > "$STATE/cinder.pid"
}

wait_cinder() {
  local i
  for i in $(seq 1 240); do
    if api_up && backend_up; then unlimited_quotas; echo "http://127.0.0.1:$PORT/v3"; return; fi
    if ! kill -0 "$(cat "$STATE/cinder.pid")" 2>/dev/null; then log "cinder exited; see $STATE/cinder.log and $STATE/cinder.out"; tail -20 "$STATE/cinder.out" >&2; exit 1; fi
    sleep 0.5
  done
  log "cinder did not come up in 120 s; see $STATE/cinder.log"; exit 1
}

start() {
  install
  # Keystone and Cinder start side by side (each is one mostly single-threaded Python process): Cinder needs
  # Keystone only to check a request's token, and nothing here sends one before both are up.
  local keystone=""
  if [ "$AUTH" = keystone ]; then start_keystone & keystone=$!; fi
  local launched=""
  if ! running_pid >/dev/null; then launch_cinder; launched=1; fi
  if [ -n "$keystone" ]; then wait "$keystone" || { log "keystone did not start"; exit 1; }; fi
  TOKEN="$(admin_token)"
  if [ -z "$launched" ]; then
    if api_up && backend_up; then echo "http://127.0.0.1:$PORT/v3"; return; fi
    launch_cinder
  fi
  wait_cinder
}

# stop_process [KILL]: TERM lets Cinder finish what it is doing (its database and files kept for the next start),
# 3-7 s of graceful shutdown; purge, which removes them, kills at once (KILL).
stop_process() {
  local pid i
  pid="$(running_pid)" || { rm -f "$STATE/cinder.pid"; return 0; }
  if [ "${1:-}" != KILL ]; then
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  fi
  kill -KILL "$pid" 2>/dev/null || true
  # Gone before the caller unmounts its share (its open files would hold the mount).
  for i in $(seq 1 40); do [ -d "/proc/$pid" ] || break; sleep 0.05; done
  rm -f "$STATE/cinder.pid"
}

stop() { # [KILL]
  stop_process "${1:-}"
  local kpid
  if kpid="$(cat "$STATE/keystone/keystone.pid" 2>/dev/null)" && grep -q serve.py "/proc/$kpid/cmdline" 2>/dev/null; then
    kill "-${1:-TERM}" "$kpid" 2>/dev/null || true
  fi
  rm -f "$STATE/keystone/keystone.pid"
  local mp; mp="$(mount_point)"
  if mountpoint -q "$mp" 2>/dev/null; then umount "$mp" || umount -l "$mp"; fi
}

purge() {
  stop KILL
  # Loop devices left on volume files would keep the space; drop them.
  local dev file
  while read -r dev file; do
    case "$file" in "$STATE"/*) losetup -d "$dev" 2>/dev/null || true ;; esac
  done < <(losetup --list --noheadings --raw --output NAME,BACK-FILE 2>/dev/null || true)
  rm -rf "$STATE"
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  purge) purge ;;
  status) TOKEN="$(admin_token 2>/dev/null || true)"; api_up && backend_up ;;
  share-path) echo "$STATE/share" ;;
  *) echo "usage: $0 install|start|stop|purge|status|share-path" >&2; exit 2 ;;
esac

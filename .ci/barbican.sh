#!/usr/bin/env bash
# barbican.sh - Barbican (OpenStack Key Manager, Debian 12's barbican-api 15.0.1) on
# 127.0.0.1:9311 next to a running loopback OpenStack (.ci/openstack-in-a-box.sh), for
# test/encryption-barbican.test.ts. It never touches that stack's processes, files or state:
# its own dir ($BARBICAN_DIR), its own SQLite database, the simple_crypto plugin with a random
# master key made at start. In the stack's Keystone it registers, idempotently, a `barbican`
# service user (admin + service on the `service` project, like the stack's other services) and
# the `key-manager` service with public and internal endpoints; `stop` leaves those (harmless,
# and another Barbican start reuses them).
#
# Usage (as root; barbican-api installed):
#   barbican.sh start   # configure, start (uwsgi, one process), wait for an authenticated answer
#   barbican.sh stop    # stop it by its pid; its dir is removed
#   barbican.sh status
#
# Environment: BARBICAN_DIR (default /tmp/oib-barbican), OIB_PASSWORD (default secret: the
# stack's admin and service user password), OS_AUTH_URL_KS (default http://127.0.0.1:5000/v3).
set -euo pipefail

DIR=${BARBICAN_DIR:-/tmp/oib-barbican}
PW=${OIB_PASSWORD:-secret}
KS=${OS_AUTH_URL_KS:-http://127.0.0.1:5000/v3}
PORT=9311
URL=http://127.0.0.1:$PORT
PIDFILE=$DIR/barbican-api.pid

say() { echo "[barbican $(date +%T)] $*"; }
die() { echo "[barbican] ERROR: $*" >&2; exit 1; }
running() { [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }

# The openstack CLI as the stack's admin (the stack's adminrc, spelled out: no file of the stack is read).
os_admin() {
  OS_AUTH_URL=$KS OS_IDENTITY_API_VERSION=3 OS_USERNAME=admin OS_PASSWORD=$PW OS_PROJECT_NAME=admin \
    OS_USER_DOMAIN_ID=default OS_PROJECT_DOMAIN_ID=default OS_REGION_NAME=RegionOne OS_INTERFACE=public \
    openstack "$@"
}

# Service user, service and endpoints in Keystone, each only when missing (reruns change nothing).
register() {
  if ! os_admin user show --domain default barbican > /dev/null 2>&1; then
    os_admin user create --domain default --password "$PW" barbican > /dev/null
  fi
  os_admin role add --project service --user barbican admin
  os_admin role add --project service --user barbican service
  if ! os_admin service show key-manager > /dev/null 2>&1; then
    os_admin service create --name barbican key-manager > /dev/null
  fi
  local have iface
  have=$(os_admin endpoint list --service key-manager -f value -c Interface)
  for iface in public internal; do
    grep -qx "$iface" <<< "$have" || os_admin endpoint create --region RegionOne key-manager "$iface" "$URL" > /dev/null
  done
}

write_config() {
  mkdir -p "$DIR/home/.barbican" "$DIR/log"
  # oslo.config finds ~/.barbican/barbican.conf before /etc/barbican/barbican.conf: the package's
  # files stay untouched and unused (the paste pipeline is the package's: authtoken + context).
  cat > "$DIR/home/.barbican/barbican.conf" <<EOF
[DEFAULT]
host_href = $URL
sql_connection = sqlite:///$DIR/barbican.sqlite
db_auto_create = True
log_file = $DIR/log/barbican-api.log
[secretstore]
enabled_secretstore_plugins = store_crypto
[crypto]
enabled_crypto_plugins = simple_crypto
[simple_crypto_plugin]
kek = $(head -c 32 /dev/urandom | base64)
[queue]
enable = False
[keystone_notifications]
enable = False
[oslo_policy]
# Zed's new defaults: a project member may create secrets and set their ACLs (the old rules
# wanted Barbican's own creator role); a secret's payload is readable by its project's
# members and by the users on its read ACL (Lifeboat's service user, once a tenant adds it).
enforce_new_defaults = True
[keystone_authtoken]
www_authenticate_uri = $KS
auth_url = $KS
auth_type = password
project_domain_name = Default
user_domain_name = Default
region_name = RegionOne
project_name = service
username = barbican
password = $PW
EOF
  cat > "$DIR/barbican-api-uwsgi.ini" <<EOF
[uwsgi]
plugins = python3
http-socket = 127.0.0.1:$PORT
wsgi-file = /usr/bin/barbican-wsgi-api
env = HOME=$DIR/home
master = true
processes = 1
threads = 1
lazy-apps = true
die-on-term = true
buffer-size = 65535
add-header = Connection: close
pidfile = $PIDFILE
EOF
}

# Up means: an admin token gets a JSON answer from the secrets list (auth_token and the DB work).
wait_up() {
  local token i
  token=$(os_admin token issue -f value -c id)
  for ((i = 0; i < 600; i++)); do
    curl -sf -o /dev/null --max-time 3 -H "X-Auth-Token: $token" "$URL/v1/secrets?limit=1" && return 0
    running || die "barbican-api exited (see $DIR/log)"
    sleep 0.1
  done
  die "barbican-api did not answer in 60 s (see $DIR/log)"
}

cmd_start() {
  [ "$(id -u)" = 0 ] || die "run as root"
  [ -x /usr/bin/barbican-wsgi-api ] || die "barbican-api is not installed (apt-get install barbican-api)"
  curl -sf -o /dev/null --max-time 3 "$KS" || die "Keystone does not answer at $KS (start the loopback OpenStack first)"
  if running; then say "already running (pid $(cat "$PIDFILE"))"; return 0; fi
  rm -rf "$DIR"
  local t0; t0=$(date +%s)
  register
  write_config
  uwsgi --ini "$DIR/barbican-api-uwsgi.ini" --daemonize2 "$DIR/log/barbican-api-uwsgi.log" > /dev/null 2>&1
  for ((i = 0; i < 50; i++)); do [ -s "$PIDFILE" ] && break; sleep 0.1; done
  wait_up
  say "up on $URL in $(( $(date +%s) - t0 )) s (pid $(cat "$PIDFILE"))"
}

cmd_stop() {
  if ! running; then rm -rf "$DIR"; say "not running"; return 0; fi
  local p i; p=$(cat "$PIDFILE")
  # never signal a recycled pid: ours runs with our ini file on its command line
  tr '\0' ' ' < "/proc/$p/cmdline" 2>/dev/null | grep -qF "$DIR/" || { say "pid $p is not ours; left alone"; return 0; }
  kill -TERM "$p"
  for ((i = 0; i < 150; i++)); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$p" 2>/dev/null && kill -KILL "$p" 2>/dev/null || true
  rm -rf "$DIR"
  say "stopped"
}

cmd_status() {
  if running; then say "running (pid $(cat "$PIDFILE")) on $URL"; else say "not running"; return 1; fi
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# A local PostgreSQL with pgvector whose data lives in DIR, for the PostgreSQL store.
#   scripts/postgres.sh start DIR   starts it (creating DIR on first use); its URL is the last line
#   scripts/postgres.sh stop DIR    stops it
#   scripts/postgres.sh url DIR     prints the URL of a started one
# PostgreSQL 16 and pgvector come from the `pgserver` wheel on PyPI (installed into .venv by
# scripts/setup.sh): no system packages. It listens on 127.0.0.1 only, on a free port, with a
# password made at first start and kept in DIR/password. As root it runs as the system user
# memgpt-pg (PostgreSQL refuses to run as root), created when missing.
set -euo pipefail
usage() { echo "usage: scripts/postgres.sh start|stop|url DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
action=$1
dir=$(realpath -m "$2")
repo="$(cd "$(dirname "$0")/.." && pwd)"
data="$dir/data"

bash "$repo/scripts/setup.sh"
bin=$("$repo/.venv/bin/python" -c "import importlib.util as u, pathlib; print(pathlib.Path(
  u.find_spec('pgserver').submodule_search_locations[0]) / 'pginstall' / 'bin')")

as_owner() {  # run a PostgreSQL program as the owner of the data (never root)
  if [ "$(id -u)" -eq 0 ]; then runuser -u memgpt-pg -- "$@"; else "$@"; fi
}

url() {
  echo "postgresql://memgpt:$(cat "$dir/password")@127.0.0.1:$(cat "$dir/port")/memgpt"
}

init() {
  mkdir -p "$dir"
  if [ "$(id -u)" -eq 0 ]; then
    id memgpt-pg >/dev/null 2>&1 || useradd --system --no-create-home memgpt-pg
    chown memgpt-pg "$dir"
    # the user must reach the binaries and DIR through their parent folders
    for p in "$bin" "$dir"; do
      while [ "$p" != / ]; do chmod o+x "$p" 2>/dev/null || true; p=$(dirname "$p"); done
    done
  fi
  "$repo/.venv/bin/python" -c "import secrets; print(secrets.token_hex(16))" > "$dir/password"
  chmod 600 "$dir/password"
  local pwfile="$dir/.pw"
  cp "$dir/password" "$pwfile"
  [ "$(id -u)" -ne 0 ] || chown memgpt-pg "$pwfile"
  as_owner "$bin/initdb" -D "$data" -U memgpt --pwfile="$pwfile" --auth=scram-sha-256 \
    --encoding=UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 || {
      rm -f "$pwfile"; echo "postgres.sh: initdb failed, see $dir/initdb.log" >&2; exit 1; }
  rm -f "$pwfile"
}

start() {
  [ -f "$data/PG_VERSION" ] || init
  if as_owner "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then url; return; fi
  "$repo/.venv/bin/python" -c \
    "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])" \
    > "$dir/port"
  as_owner "$bin/pg_ctl" -D "$data" -l "$dir/server.log" -w -t 60 start \
    -o "-h 127.0.0.1 -p $(cat "$dir/port") -k $data -c max_connections=200" >/dev/null || {
      echo "postgres.sh: the server did not start, see $dir/server.log" >&2; exit 1; }
  PGPASSWORD=$(cat "$dir/password") as_owner "$bin/psql" -q -h 127.0.0.1 \
    -p "$(cat "$dir/port")" -U memgpt -d postgres -v ON_ERROR_STOP=1 \
    -c "SELECT 1 FROM pg_database WHERE datname = 'memgpt'" -tA | grep -q 1 || \
    PGPASSWORD=$(cat "$dir/password") as_owner "$bin/psql" -q -h 127.0.0.1 \
      -p "$(cat "$dir/port")" -U memgpt -d postgres -c "CREATE DATABASE memgpt" >/dev/null
  url
}

stop() {
  [ -f "$data/PG_VERSION" ] || { echo "postgres.sh: no database in $dir" >&2; exit 1; }
  as_owner "$bin/pg_ctl" -D "$data" -w -m fast stop >/dev/null 2>&1 || true
  echo "stopped $dir"
}

case "$action" in
  start) start ;;
  stop) stop ;;
  url) url ;;
  *) usage ;;
esac

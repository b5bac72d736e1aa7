#!/usr/bin/env bash
# Starts a throwaway PostgreSQL 15 cluster for the tests and prints
#   PAYBOUND_TEST_POSTGRES_URL=…  PGTEST_DIR=…
# Stop it with: scripts/postgres.sh stop DIR
# The cluster is durable like a production one (fsync=on,
# synchronous_commit=on), listens on 127.0.0.1 on a free port, and lives in a
# temporary directory. Installs Debian's postgresql package when it is missing.
set -euo pipefail

find_bin() {
  dpkg -L postgresql-15 2>/dev/null | grep '/bin/initdb$' | head -n 1 | xargs -r dirname
}

if [ "${1:-}" = "stop" ]; then
  dir=$2
  bin=$(find_bin)
  if [ -n "$bin" ] && [ -d "$dir/data" ]; then
    runuser -u postgres -- "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
  fi
  rm -rf "$dir"
  exit 0
fi

bin=$(find_bin)
if [ -z "$bin" ]; then
  echo "installing postgresql (Debian package)…" >&2
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-15 >&2
  bin=$(find_bin)
fi

dir=$(mktemp -d /tmp/paybound-pg.XXXXXX)
chown postgres "$dir"
# initdb refuses to run as root; the cluster belongs to the postgres user.
run() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
run "$bin/initdb" -D "$dir/data" -U postgres -A trust --no-instructions >/dev/null
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >>"$dir/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
fsync = on
synchronous_commit = on
max_connections = 300
shared_buffers = 256MB
CONF
run "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 start >/dev/null
echo "PAYBOUND_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
echo "PGTEST_DIR=$dir"

#!/usr/bin/env bash
# Starts a throwaway PostgreSQL 15 cluster for the tests and prints
#   PAYBOUND_TEST_POSTGRES_URL=…  PGTEST_DIR=…
# Stop it with: scripts/postgres.sh stop DIR
# The cluster is durable like a production one (fsync=on,
# synchronous_commit=on), listens on 127.0.0.1 on a free port, and lives in a
# temporary directory. Installs Debian's postgresql package when it is missing.
#
# scripts/postgres.sh replicated
# starts a primary and a synchronous standby instead (streaming replication,
# synchronous_standby_names naming the standby, synchronous_commit=on: a
# commit is acknowledged only once the standby has it), each on its own free
# port, for TestPostgresFailover, and prints
#   PAYBOUND_TEST_PG_PRIMARY=127.0.0.1:PORT   PAYBOUND_TEST_PG_STANDBY=127.0.0.1:PORT
#   PAYBOUND_TEST_PG_PRIMARY_DIR=…  PAYBOUND_TEST_PG_STANDBY_DIR=…  (data directories)
#   PAYBOUND_TEST_PG_BIN=…  (pg_ctl and friends)  PGTEST_DIR=…
# A test fails over by killing the primary's postmaster (its PID is the first
# line of PRIMARY_DIR/postmaster.pid) and running, as the postgres user,
#   pg_ctl -D STANDBY_DIR -w promote
# The promoted standby runs without a synchronous standby of its own (its
# synchronous_standby_names is empty), or every commit would wait forever for
# the dead primary. `stop DIR` stops both.
set -euo pipefail

find_bin() {
  dpkg -L postgresql-15 2>/dev/null | grep '/bin/initdb$' | head -n 1 | xargs -r dirname
}

if [ "${1:-}" = "stop" ]; then
  dir=$2
  bin=$(find_bin)
  for data in "$dir/data" "$dir/primary" "$dir/standby"; do
    if [ -n "$bin" ] && [ -d "$data" ]; then
      runuser -u postgres -- "$bin/pg_ctl" -D "$data" -m fast -w stop >/dev/null 2>&1 || true
    fi
  done
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
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

if [ "${1:-}" = "replicated" ]; then
  primary=$dir/primary standby=$dir/standby
  # Half a pair is of no use: stop whatever started if a step fails.
  trap '"$0" stop "$dir"' EXIT
  run "$bin/initdb" -D "$primary" -U postgres -A trust --no-instructions >/dev/null
  pport=$(free_port)
  # initdb's pg_hba.conf already trusts replication connections from 127.0.0.1.
  cat >>"$primary/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $pport
unix_socket_directories = '$dir'
fsync = on
synchronous_commit = on
synchronous_standby_names = 'paybound_standby'
max_connections = 100
shared_buffers = 128MB
CONF
  run "$bin/pg_ctl" -D "$primary" -l "$dir/primary.log" -w -t 60 start >/dev/null
  # -R writes primary_conninfo (with this application_name) and standby.signal.
  run "$bin/pg_basebackup" -D "$standby" -R -X stream -c fast \
    -d "host=127.0.0.1 port=$pport user=postgres application_name=paybound_standby" >&2
  sport=$(free_port)
  while [ "$sport" = "$pport" ]; do sport=$(free_port); done
  # Later lines win: the standby's own port, and no synchronous standby of
  # its own once promoted. A promote request that arrives just as the
  # standby finds its primary gone waits out wal_retrieve_retry_interval
  # (5s by default) before it is acted on; 200ms keeps promotion prompt.
  cat >>"$standby/postgresql.conf" <<CONF
port = $sport
synchronous_standby_names = ''
wal_retrieve_retry_interval = 200ms
CONF
  run "$bin/pg_ctl" -D "$standby" -l "$dir/standby.log" -w -t 60 start >/dev/null
  # Ready when the primary counts the standby as its synchronous one.
  for _ in $(seq 1 600); do
    state=$(run "$bin/psql" -h 127.0.0.1 -p "$pport" -U postgres -d postgres -Atc \
      "SELECT sync_state FROM pg_stat_replication WHERE application_name = 'paybound_standby'" 2>/dev/null || true)
    [ "$state" = "sync" ] && break
    sleep 0.1
  done
  if [ "$state" != "sync" ]; then
    echo "the standby did not become synchronous within 60s; its log:" >&2
    tail -n 20 "$dir/standby.log" >&2 || true
    exit 1
  fi
  echo "PAYBOUND_TEST_PG_PRIMARY=127.0.0.1:$pport"
  echo "PAYBOUND_TEST_PG_STANDBY=127.0.0.1:$sport"
  echo "PAYBOUND_TEST_PG_PRIMARY_DIR=$primary"
  echo "PAYBOUND_TEST_PG_STANDBY_DIR=$standby"
  echo "PAYBOUND_TEST_PG_BIN=$bin"
  echo "PGTEST_DIR=$dir"
  trap - EXIT
  exit 0
fi

run "$bin/initdb" -D "$dir/data" -U postgres -A trust --no-instructions >/dev/null
port=$(free_port)
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

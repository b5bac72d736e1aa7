#!/usr/bin/env bash
# Soaks Paybound with the bank test (TestBankMultiProcess in
# cmd/paybound/bank_test.go) for as long as asked: three paybound processes
# on one throwaway PostgreSQL 15 cluster (scripts/postgres.sh), a random
# workload of payments, approvals, captures, refunds, top-ups, mandate
# replacements and disputes through all of them, then every check of the
# test — no budget overspent, no wallet negative, no revoked mandate
# honoured, no false decline, every acknowledged operation there once, the
# ledger sound and the log's audit passed. Stops the cluster when done.
#
#   scripts/soak.sh [DURATION] [SEED]    e.g. scripts/soak.sh 10m 42
#
# DURATION is a Go duration in h, m and s (default 60s). SEED replays the
# mix of operations of a run whose log printed it (default: random). The
# environment may also set PAYBOUND_BANK_OPS (most operations, default
# 200000) and PAYBOUND_BANK_PROCS (processes, default 3). Exits non-zero when
# a check fails.
set -euo pipefail
cd "$(dirname "$0")/.."
dur=${1:-60s}
seed=${2:-}

seconds() {
  local d=$1 total=0
  while [[ $d =~ ^([0-9]+)([hms])(.*)$ ]]; do
    case ${BASH_REMATCH[2]} in
      h) total=$((total + BASH_REMATCH[1] * 3600)) ;;
      m) total=$((total + BASH_REMATCH[1] * 60)) ;;
      s) total=$((total + BASH_REMATCH[1])) ;;
    esac
    d=${BASH_REMATCH[3]}
  done
  if [ -n "$d" ] || [ "$total" -eq 0 ]; then
    echo "soak: duration $1: want a duration such as 90s, 10m or 1h30m" >&2
    exit 2
  fi
  echo "$total"
}
secs=$(seconds "$dur")
if [ -n "$seed" ] && ! [[ $seed =~ ^[0-9]+$ ]]; then
  echo "soak: seed $seed: want an unsigned integer" >&2
  exit 2
fi

pg_env=$(scripts/postgres.sh)
eval "$pg_env"
export PAYBOUND_TEST_POSTGRES_URL
trap 'scripts/postgres.sh stop "$PGTEST_DIR"' EXIT
echo "soak: PostgreSQL on ${PAYBOUND_TEST_POSTGRES_URL%%\?*}; $dur of load${seed:+, seed $seed}"

export PAYBOUND_BANK=1 PAYBOUND_BANK_DURATION="$dur"
if [ -n "$seed" ]; then
  export PAYBOUND_BANK_SEED="$seed"
fi
# The load, then the checks (they read everything back: allow as long
# again), then the build, with room to spare.
go test -run '^TestBankMultiProcess$' -count=1 -v -timeout "$((2 * secs + 600))s" ./cmd/paybound

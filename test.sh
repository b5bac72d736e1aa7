#!/usr/bin/env bash
# The whole test suite: vet, gofmt, staticcheck, a short benchmark smoke run, then every test
# with the race detector — on SQLite, and again on a throwaway PostgreSQL 15
# cluster that this script starts (installing Debian's postgresql package
# when it is missing) and stops; and the failover test, on a primary and a
# synchronous standby of its own. The interoperability tests use real npm
# packages, installed from interop/package-lock.json. Run from anywhere.
set -euo pipefail
cd "$(dirname "$0")"

echo "== go vet"
go vet ./...

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change:"; echo "$unformatted"; exit 1
fi

echo "== staticcheck (honnef.co/go/tools v0.8.2, from the Go module proxy)"
go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

echo "== npm packages for the interoperability tests (interop/package-lock.json)"
(cd interop && npm ci --no-audit --no-fund --loglevel=error)

echo "== Chromium for the wallet's browser tests (Debian's chromium)"
if [ ! -x /usr/bin/chromium ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium ||
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }
fi
export PAYBOUND_REQUIRE_BROWSER=1 # the browser tests fail, rather than skip, without it

echo "== PostgreSQL test cluster"
pg_env=$(scripts/postgres.sh)
eval "$pg_env"
export PAYBOUND_TEST_POSTGRES_URL
trap 'scripts/postgres.sh stop "$PGTEST_DIR"' EXIT
echo "started on ${PAYBOUND_TEST_POSTGRES_URL%%\?*}"

echo "== benchmark smoke run"
go test -run '^$' -bench . -benchtime 20000x ./internal/ledger
go test -run '^$' -bench 'RiskAssess|Evaluate' -benchtime 2000x ./internal/service ./internal/risk
go run ./cmd/paybound bench ledger --duration 1s --clients 500
go run ./cmd/paybound bench payments --duration 1s
go run ./cmd/paybound bench payments --duration 1s --signed --baseline=false
go run ./cmd/paybound bench ledger --duration 1s --clients 500 --hot --db "$PAYBOUND_TEST_POSTGRES_URL"
go run ./cmd/paybound bench payments --duration 1s --db "$PAYBOUND_TEST_POSTGRES_URL"

# TestPostgresFailover uses up a replicated cluster of its own (below).
echo "== tests on PostgreSQL (race detector on)"
PAYBOUND_TEST_STORE=postgres go test -race -count=1 -timeout 20m -skip '^TestPostgresFailover$' ./internal/ledger ./internal/service ./cmd/paybound

echo "== failover: a primary and a synchronous standby; the primary is killed mid-load"
failover_env=$(scripts/postgres.sh replicated)
failover_dir=$(sed -n 's/^PGTEST_DIR=//p' <<<"$failover_env")
trap 'scripts/postgres.sh stop "$PGTEST_DIR"; scripts/postgres.sh stop "$failover_dir"' EXIT
(
  eval "$failover_env" # in a subshell: PGTEST_DIR above stays the first cluster's
  export PAYBOUND_TEST_PG_PRIMARY PAYBOUND_TEST_PG_STANDBY PAYBOUND_TEST_PG_PRIMARY_DIR \
    PAYBOUND_TEST_PG_STANDBY_DIR PAYBOUND_TEST_PG_BIN
  go test -race -count=1 -timeout 5m -run '^TestPostgresFailover$' -v ./cmd/paybound
)
scripts/postgres.sh stop "$failover_dir"
trap 'scripts/postgres.sh stop "$PGTEST_DIR"' EXIT

echo "== bank test: three processes on one PostgreSQL database for 60s (scripts/soak.sh runs it longer)"
PAYBOUND_BANK=1 PAYBOUND_BANK_DURATION=60s go test -run '^TestBankMultiProcess$' -count=1 -v -timeout 15m ./cmd/paybound

echo "== tests (race detector on)"
go test -race -count=1 -timeout 20m -skip '^TestPostgresFailover$' ./...

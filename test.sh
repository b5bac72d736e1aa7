#!/usr/bin/env bash
# The whole test suite: vet, a short benchmark smoke run, then every test
# with the race detector. Needs only Go; run from anywhere.
set -euo pipefail
cd "$(dirname "$0")"

echo "== go vet"
go vet ./...

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change:"; echo "$unformatted"; exit 1
fi

echo "== benchmark smoke run"
go test -run '^$' -bench . -benchtime 20000x ./internal/ledger
go run ./cmd/paybound bench ledger --duration 1s --clients 500
go run ./cmd/paybound bench payments --duration 1s

echo "== tests (race detector on)"
go test -race -count=1 -timeout 20m ./...

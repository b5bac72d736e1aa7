#!/usr/bin/env bash
# What the transparency log costs the payment path: `paybound bench
# payments` on two builds of this tree, one with the log and one without
# (-tags paybound_nolog, which writes no entries and exists only for this),
# in PAIRS alternating pairs (the order flips each pair, so that drift
# on a shared machine falls on both). Prints each pair, then the medians
# and the median of the pairs' ratios: the log's cost is 1 - that ratio.
#
#   scripts/logcost.sh [PAIRS] [bench payments flags...]
#   e.g. scripts/logcost.sh 7 --duration 4s
#        scripts/logcost.sh 7 --duration 3s --db "postgres://…"
#
# The flags go to every `bench payments` as they are. With --db every run
# loads the same database, which grows from run to run (the alternating
# order spreads that over both builds); give the measurement a database,
# or a schema (`&search_path=…` in the URL), of its own.
set -euo pipefail
cd "$(dirname "$0")/.."
pairs=${1:-7}
shift || true
flags=("$@")
[ ${#flags[@]} -gt 0 ] || flags=(--duration 4s)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/with" ./cmd/paybound
go build -tags paybound_nolog -o "$tmp/without" ./cmd/paybound
rate() { "$tmp/$1" bench payments --baseline=false "${flags[@]}" | sed -n 's/.*"payments_per_sec":\([0-9]*\).*/\1/p'; }
for i in $(seq "$pairs"); do
	if [ $((i % 2)) -eq 1 ]; then without=$(rate without); with=$(rate with)
	else with=$(rate with); without=$(rate without); fi
	echo "$without $with" | awk '{printf "pair: without log %d, with log %d payments/s, ratio %.3f\n", $1, $2, $2/$1}'
	echo "$without $with" >>"$tmp/pairs"
done
awk '
	function median(a, n,   i, j, t) {
		for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j-1] > a[j]; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
		return n % 2 ? a[(n+1)/2] : (a[n/2] + a[n/2+1]) / 2
	}
	{ n++; wo[n] = $1; w[n] = $2; r[n] = $2 / $1 }
	END {
		mwo = median(wo, n); mw = median(w, n); mr = median(r, n)
		printf "medians: without log %d, with log %d payments/s; median ratio %.3f: the log costs %.1f%%\n", mwo, mw, mr, (1 - mr) * 100
	}' "$tmp/pairs"

#!/usr/bin/env bash
# A paired A/B run of `paybound bench payments` between two commits of this
# repository: both are built, then run in PAIRS alternating pairs (the
# order flips each pair, so that drift on a shared machine falls on both).
# Prints each pair, then the medians and the median of the pairs' ratios
# (B over A: above 1 means B is faster).
#
#   scripts/abbench.sh A B [PAIRS] [bench payments flags...]
#   e.g. scripts/abbench.sh main~5 main 7 --duration 3s
#        scripts/abbench.sh v1 HEAD 7 --duration 3s --signed
#
# A and B are anything `git rev-parse` accepts. The flags go to every run as
# they are (--baseline=false is always added: the baseline is the other
# commit, not one commit per operation).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 2 ]; then
	echo "usage: scripts/abbench.sh A B [PAIRS] [bench payments flags...]" >&2
	exit 2
fi
a=$(git rev-parse --verify "$1^{commit}")
b=$(git rev-parse --verify "$2^{commit}")
shift 2
pairs=${1:-7}
shift || true
if ! [[ $pairs =~ ^[1-9][0-9]*$ ]]; then
	echo "abbench: PAIRS must be a positive integer, not $pairs" >&2
	exit 2
fi
flags=("$@")
[ ${#flags[@]} -gt 0 ] || flags=(--duration 3s)
tmp=$(mktemp -d)
trap 'git worktree remove --force "$tmp/src" >/dev/null 2>&1 || true; rm -rf "$tmp"' EXIT
build() { # build COMMIT OUT
	git worktree add --detach -q "$tmp/src" "$1"
	(cd "$tmp/src" && go build -o "$2" ./cmd/paybound)
	git worktree remove --force "$tmp/src"
}
build "$a" "$tmp/a"
build "$b" "$tmp/b"
rate() { "$tmp/$1" bench payments --baseline=false "${flags[@]}" | sed -n 's/.*"payments_per_sec":\([0-9]*\).*/\1/p'; }
for i in $(seq "$pairs"); do
	if [ $((i % 2)) -eq 1 ]; then ra=$(rate a); rb=$(rate b)
	else rb=$(rate b); ra=$(rate a); fi
	echo "$ra $rb" | awk '{printf "pair: A %d, B %d payments/s, ratio %.3f\n", $1, $2, $2/$1}'
	echo "$ra $rb" >>"$tmp/pairs"
done
awk -v a="${a:0:10}" -v b="${b:0:10}" '
	function median(x, n,   i, j, t) {
		for (i = 2; i <= n; i++) for (j = i; j > 1 && x[j-1] > x[j]; j--) { t = x[j]; x[j] = x[j-1]; x[j-1] = t }
		return n % 2 ? x[(n+1)/2] : (x[n/2] + x[n/2+1]) / 2
	}
	{ n++; ra[n] = $1; rb[n] = $2; r[n] = $2 / $1 }
	END {
		printf "medians: A (%s) %d, B (%s) %d payments/s; median ratio B/A %.3f over %d pairs\n", a, median(ra, n), b, median(rb, n), median(r, n), n
	}' "$tmp/pairs"
